"""Newton-Schulz (Hotelling-Bodewig) iteration ``X <- X + (I - X A) X``, certified per matrix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._validate import int_at_least, one_of, positive
from ..certify import PASS_RATIO, eps, identity_residual, norm1
from ..errors import InputError
from ..solution import Status
from .base import Method, Partial


def scaled_transpose(A: Tensor) -> Tensor:
    """The seed ``A^T / (||A||_1 ||A||_inf)``: ``||I - X0 A||_2 < 1`` for every nonsingular A."""
    scale = norm1(A) * norm1(A.mT)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return A.mT / scale[:, None, None]


@dataclass(frozen=True)
class NewtonSchulz(Method):
    """Quadratically convergent refinement of an approximate inverse.

    tol:      stop a matrix once its dget03 ratio ``||I - X A||_1 / (n ||A||_1 ||X||_1 eps)``
              is below tol. A matrix also stops when its residual stalls at rounding level;
              it is OK if its ratio then passes the certificate (< 30), NOT_CONVERGED if not.
    max_iter: matrices whose ratio still fails after this many steps are NOT_CONVERGED.
    seed:     "transpose" (the scaled transpose, converges for any nonsingular A), "identity"
              (converges when ||I - A||_2 < 1), or a tensor: one (n, n) matrix for all, or
              one per matrix (A's batch shape, or any shape holding as many in order).
    Converged matrices leave the active set, so they stop costing work.
    """

    tol: float = 10.0
    max_iter: int = 100
    seed: Any = "transpose"

    name = "newton_schulz"

    def __post_init__(self):
        positive("tol", self.tol)
        int_at_least("max_iter", self.max_iter, 1)
        if isinstance(self.seed, str):
            one_of("seed", self.seed, ("transpose", "identity"))

    def initial(self, A: Tensor) -> Tensor:
        if isinstance(self.seed, str):
            if self.seed == "transpose":
                return scaled_transpose(A)
            return torch.eye(A.shape[-1], dtype=A.dtype, device=A.device).expand_as(A).clone()
        seed = torch.as_tensor(self.seed, dtype=A.dtype, device=A.device)
        B, n = A.shape[0], A.shape[-1]
        # A arrives flattened to (B, n, n): a seed with A's batch shape is flattened alike.
        if seed.ndim >= 2 and seed.shape[-2:] == (n, n) and seed.numel() in (n * n, B * n * n):
            return seed.reshape(-1, n, n).expand(B, n, n).clone()
        raise InputError(
            f"seed of shape {tuple(seed.shape)} fits neither one {n}x{n} matrix nor the batch "
            f"of {B} {n}x{n} matrices"
        )

    def _invert(self, A: Tensor) -> Partial:
        X, iters, converged = refine(A, self.initial(A), tol=self.tol, max_iter=self.max_iter)
        status = torch.where(converged, int(Status.OK), int(Status.NOT_CONVERGED)).to(torch.int8)
        return Partial(X, status, stats={"iterations": iters})


def refine(A: Tensor, X: Tensor, *, tol: float, max_iter: int) -> tuple[Tensor, Tensor, Tensor]:
    """Run Newton-Schulz from X on every matrix until its ratio < tol or max_iter steps.

    Returns the iterates, the per-matrix step counts and the per-matrix convergence flags.
    Matrices whose residual grows (the seed did not contract) are dropped early as unconverged;
    a matrix counts as converged when its ratio passes the certificate (< 30) where it stopped.
    """
    B, n = A.shape[0], A.shape[-1]
    X = X.clone()
    iters = torch.zeros(B, dtype=torch.int32, device=A.device)
    converged = torch.zeros(B, dtype=torch.bool, device=A.device)
    active = torch.arange(B, device=A.device)
    normA = norm1(A)
    e = eps(A.dtype)
    prev = torch.full((B,), float("inf"), dtype=A.dtype, device=A.device)
    for step in range(max_iter + 1):
        Aa, Xa = A[active], X[active]
        E = identity_residual(Aa, Xa)
        num = norm1(E)
        ratio = num / (n * normA[active] * norm1(Xa) * e)
        done = ratio < tol
        # Once the residual norm no longer shrinks the iteration has stalled or diverged.
        stalled = (num >= prev[active]) & (num < 1) if step >= 2 else torch.zeros_like(done)
        diverged = ~torch.isfinite(num) | (num > 1e6)
        stop = done | stalled | diverged
        converged[active[stop]] = ratio[stop] < PASS_RATIO
        if step == max_iter:
            converged[active] = ratio < PASS_RATIO
            break
        prev[active] = num
        keep = ~stop
        if not bool(keep.any()):
            break
        active, E, Xa = active[keep], E[keep], Xa[keep]
        X[active] = Xa + E @ Xa
        iters[active] += 1
    return X, iters, converged
