"""Newton-Schulz (Hotelling-Bodewig) iteration ``X <- X + (I - X A) X``, certified per matrix."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .._validate import int_at_least, one_of, ratio_tolerance, real_dtype
from ..certify import (
    PASS_RATIO,
    SMALL_N,
    contracts,
    identity_residual,
    max_exponent,
    norm1,
    pow2_scale,
    ratio_from_norms,
)
from ..errors import InputError
from ..solution import Status
from .base import Method
from .partial import Partial


def scaled_transpose(A: Tensor) -> Tensor:
    """The seed ``A^T / (||A||_1 ||A||_inf)``: ``||I - X0 A||_2 < 1`` for every nonsingular A.
    Complex A: the conjugate transpose ``A^H / (||A||_1 ||A||_inf)`` (``X0 A`` is then Hermitian
    positive definite with eigenvalues in (0, 1], as ``A^T A`` is for real A).

    At any scale: where the product of the norms over- or underflows (float32 entries beyond
    about 2^±63) the seed is computed as ``2^-e seed(2^-e A)``, e from A's largest entry, which is
    the same matrix (the seed scales as an inverse does) without leaving the normal range.
    """
    n1 = norm1(A)
    scale = n1 * norm1(A.mT)
    tiny, huge = torch.finfo(A.dtype).tiny, torch.finfo(A.dtype).max
    extreme = ((scale < tiny) & (n1 > 0)) | (scale > huge)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    X0 = A.mH / scale[:, None, None]
    if bool(extreme.any()):
        rows = extreme.nonzero().squeeze(-1)
        e = max_exponent(A[rows])
        X0[rows] = pow2_scale(scaled_transpose(pow2_scale(A[rows], -e)), -e)
    return X0


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
    takes_complex = True

    def __post_init__(self):
        ratio_tolerance("tol", self.tol)
        int_at_least("max_iter", self.max_iter, 1)
        if isinstance(self.seed, str):
            one_of("seed", self.seed, ("transpose", "identity"))
        elif not (hasattr(self.seed, "shape") or isinstance(self.seed, (list, tuple))):
            raise InputError(
                "seed must be 'transpose', 'identity' or an array of (n, n) matrices, "
                f"got {self.seed!r}"
            )

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
        return self._iterate(A, self.initial(A))

    def _invert_scaled(self, A: Tensor, rows: Tensor, exponent: Tensor) -> Partial:
        # The seed approximates A^-1, so S = 2^-e A starts from 2^e times it (the scaled
        # transpose is that already): the same iteration as on A, in another exponent range.
        S = pow2_scale(A[rows], -exponent)
        if isinstance(self.seed, str) and self.seed == "transpose":
            return self._iterate(S, scaled_transpose(S))
        return self._iterate(S, pow2_scale(self.initial(A)[rows], exponent))

    def _iterate(self, A: Tensor, X0: Tensor) -> Partial:
        X, iters, converged = refine(A, X0, tol=self.tol, max_iter=self.max_iter)
        status = torch.where(converged, int(Status.OK), int(Status.NOT_CONVERGED)).to(torch.int8)
        return Partial(X, status, stats={"iterations": iters})


class Refinement(NamedTuple):
    """What :func:`refine_certified` returns, one entry per matrix.

    X:            the iterates (a new tensor; the seed is never modified).
    iterations:   Newton-Schulz steps taken.
    converged:    the ratio where the matrix stopped passes the certificate (< 30).
    contracted:   the seed passed the contraction screen (all True without a screen).
    certificate:  ``(residual ratio, rcond)`` of X, computed exactly as
                  :func:`neuralinv.certify.certificate` computes them for n > ``SMALL_N`` (the
                  same ``identity_residual`` and ``norm1`` on the same final, contiguous X;
                  for a contiguous A whose 1-norm is finite: certificate() rescales a matrix
                  whose norm overflows, this gives it ratio inf), so ``Method.invert`` may
                  reuse it; None for
                  n <= ``SMALL_N``, whose certificate takes an entry-major path with another
                  summation order.
    """

    X: Tensor
    iterations: Tensor
    converged: Tensor
    contracted: Tensor
    certificate: tuple[Tensor, Tensor] | None


def refine(A: Tensor, X: Tensor, *, tol: float, max_iter: int) -> tuple[Tensor, Tensor, Tensor]:
    """Run Newton-Schulz from X on every matrix until its ratio < tol or max_iter steps.

    Returns the iterates, the per-matrix step counts and the per-matrix convergence flags.
    Matrices whose residual grows (the seed did not contract) are dropped early as unconverged;
    a matrix counts as converged when its ratio passes the certificate (< 30) where it stopped.
    """
    r = refine_certified(A, X, tol=tol, max_iter=max_iter)
    return r.X, r.iterations, r.converged


def refine_certified(
    A: Tensor,
    X: Tensor,
    *,
    tol: float,
    max_iter: int,
    screen: Callable[[Tensor, Tensor], Tensor] | None = None,
    out: Tensor | None = None,
    work: dict | None = None,
) -> Refinement:
    """:func:`refine`, also returning each answer's certificate and a contraction screen.

    The residual ``E = I - X A`` that decides whether a matrix stops is the one the next step
    uses (``X <- X + E X``), and where a matrix stops it is exactly the certificate's
    numerator: the certificate costs no extra product.

    screen: an optional contraction test ``screen(A, X) -> bool`` for the seeds whose first
    residual has ``||I - X0 A||_1 >= 1``; seeds with ``||I - X0 A||_1 < 1`` contract already
    (``I - X0 A`` has the spectral radius of ``I - A X0``, and Newton-Schulz squares it each
    step). Seeds failing the screen stop at once, unconverged and not contracted.
    out: where to write the iterates (default: a new tensor; a contiguous one, which must
    not overlap A or X); the seed is never modified.
    work: a dict the caller keeps across calls (e.g. over the chunks of a large batch): for
    n > ``SMALL_N`` the batch-sized temporaries (residual, its absolute value, the iterates)
    are kept there and reused, so repeated calls do not page-fault fresh memory for each
    (docs/performance.md, attempt 27). Same operations, same values, as without it.

    While every matrix is still active the batch is used as it is, without index gathers;
    converged matrices leave the active set, so they stop costing work.
    """
    B, n = A.shape[0], A.shape[-1]
    dev = A.device
    iters = torch.zeros(B, dtype=torch.int32, device=dev)
    converged = torch.zeros(B, dtype=torch.bool, device=dev)
    contracted = torch.ones(B, dtype=torch.bool, device=dev)
    real = real_dtype(A.dtype)
    num_at = torch.empty(B, dtype=real, device=dev)  # ||I - X A||_1 where each stopped
    nX_at = torch.empty(B, dtype=real, device=dev)
    # Contiguous iterates and answers: norm1's column sums round differently on other memory
    # layouts, and the certificate is of the contiguous answer Method.invert receives.
    X = X.contiguous()
    if out is None:
        out = torch.empty(X.shape, dtype=X.dtype, device=X.device)
    ws = _Workspace(work if work is not None and n > SMALL_N else None, A)
    normA = ws.norm1(A)
    if B == 0:
        cert = (normA, normA) if n > SMALL_N else None
        return Refinement(out, iters, converged, contracted, cert)
    active = None  # None: every matrix, no gathers
    Aa, Xa, nA = A, X, normA
    prev = None
    for step in range(max_iter + 1):
        E = ws.residual(Aa, Xa)
        num = ws.norm1(E)
        # Once the residual norm no longer shrinks the iteration has stalled or diverged.
        stalled = (num >= prev) & (num < 1) if step >= 2 else None
        diverged = ~torch.isfinite(num) | (num > 1e6)
        other = diverged if stalled is None else stalled | diverged
        nX = ws.norm1(Xa)
        # certify's own ratio (inf for a zero or overflowing denominator), as certificate() has it.
        ratio = ratio_from_norms(num, nA, nX, n, A.dtype)
        done = ratio < tol
        stop = done | other
        ok = ratio < PASS_RATIO
        if step == 0 and screen is not None:
            first = num < 1
            if not bool(first.all()):
                unsure = (~first & ~stop).nonzero().squeeze(-1)
                passed = first.clone()
                if unsure.numel():
                    passed[unsure] = screen(Aa[unsure], Xa[unsure]).to(dev)
                stop = stop | ~passed
                ok = ok & passed
                contracted = passed
        if step == max_iter:
            stop = torch.ones_like(stop)
        if bool(stop.any()):
            all_stop = bool(stop.all())
            if all_stop and active is None:
                num_at, nX_at, converged = num, nX, ok
                if Xa is not out:
                    out.copy_(Xa)
                break
            rows = stop.nonzero().squeeze(-1)
            where = rows if active is None else active[rows]
            num_at[where], nX_at[where], converged[where] = num[rows], nX[rows], ok[rows]
            out[where] = Xa[rows]
            if all_stop:
                break
            keep = (~stop).nonzero().squeeze(-1)
            active = keep if active is None else active[keep]
            Aa, Xa, E, nA, num, nX = Aa[keep], Xa[keep], E[keep], nA[keep], num[keep], nX[keep]
        prev = num
        Xa = ws.step(Xa, E, step, out if active is None else None)  # X + (I - X A) X
        if active is None:
            iters += 1
        else:
            iters[active] += 1
    cert = None
    if n > SMALL_N:
        cert = (ratio_from_norms(num_at, normA, nX_at, n, A.dtype), 1.0 / (normA * nX_at))
    return Refinement(out, iters, converged, contracted, cert)


def guess_contracts(A: Tensor, X: Tensor) -> Tensor:
    """Whether Newton-Schulz from X converges, decided cheaply where possible.

    Newton-Schulz converges iff the spectral radius of ``E = I - A X`` is below 1, and any
    induced norm bounds it. ``||E||_2 <= min(||E||_F, sqrt(||E||_1 ||E||_inf))`` costs a few
    passes over E; only where that bound is >= 1 is the exact 2-norm (an SVD per matrix,
    :func:`neuralinv.certify.contracts`) computed, so a good model pays no SVD at all and the
    decision still agrees with the documented test ``||I - A X||_2 < 1``.
    """
    E = identity_residual(X, A)  # I - A X
    fro = torch.linalg.matrix_norm(E, ord="fro")
    bound = torch.minimum(fro, torch.sqrt(norm1(E) * norm1(E.mT)))
    ok = bound < 1
    unsure = (~ok & torch.isfinite(bound)).nonzero().squeeze(-1)
    if unsure.numel():
        ok[unsure] = contracts(A[unsure], X[unsure])
    return ok


class _Workspace:
    """refine_certified's batch-sized temporaries, reused from ``work`` when it is given.

    The operations are those of ``certify.identity_residual`` (one baddbmm from the identity)
    and ``certify.norm1`` (abs, column sums, largest) for n > SMALL_N, written into kept
    buffers instead of new tensors: the same values, without fresh memory for every product.
    """

    def __init__(self, work: dict | None, A: Tensor):
        self.work = work
        if work is not None:
            n = A.shape[-1]
            eye = work.get("eye")
            if eye is None or eye.dtype != A.dtype or eye.device != A.device or eye.shape[-1] != n:
                work.clear()
                work["eye"] = torch.eye(n, dtype=A.dtype, device=A.device)

    def _buf(self, name: str, shape: tuple[int, ...], like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        size = math.prod(shape)
        dtype = like.dtype if dtype is None else dtype
        t = self.work.get(name)
        if t is None or t.numel() < size or t.dtype != dtype:
            t = self.work[name] = torch.empty(size, dtype=dtype, device=like.device)
        return t[:size].view(shape)

    def residual(self, A: Tensor, X: Tensor) -> Tensor:
        if self.work is None:
            return identity_residual(A, X)
        eye = self.work["eye"].expand_as(A)
        return torch.baddbmm(eye, X, A, alpha=-1, out=self._buf("E", tuple(A.shape), A))

    def norm1(self, M: Tensor) -> Tensor:
        if self.work is None:
            return norm1(M)
        real = real_dtype(M.dtype)
        absM = torch.abs(M, out=self._buf("abs", tuple(M.shape), M, real))
        cols = torch.sum(absM, dim=-2, out=self._buf("cols", tuple(M.shape[:-1]), M, real))
        return cols.amax(dim=-1)

    def step(self, X: Tensor, E: Tensor, step: int, out: Tensor | None) -> Tensor:
        """``X + E X``; odd steps over the whole batch go straight into ``out``, so after the
        usual two steps the answer is already in place (no copy)."""
        if self.work is None:
            return torch.baddbmm(X, E, X)
        if out is not None and step % 2 == 1 and X is not out:
            return torch.baddbmm(X, E, X, out=out)
        # Two buffers in turn: the new iterate never overwrites the one it is computed from.
        return torch.baddbmm(X, E, X, out=self._buf(f"X{step % 2}", tuple(X.shape), X))
