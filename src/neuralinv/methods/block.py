"""``block``: inversion by Schur-complement recursion over a small base method.

With ``A = [[A11, A12], [A21, A22]]``, ``X11 = A11^-1`` and the Schur complement
``S = A22 - A21 X11 A12`` (invertible whenever A and A11 are),

    A^-1 = [[X11 + X11 A12 S^-1 A21 X11,  -X11 A12 S^-1],
            [-S^-1 A21 X11,                S^-1        ]].

Applied recursively, every inversion is eventually one of ``base_size`` x ``base_size``: this is
how a network trained on small matrices (DeepMatrixInversion's 3x3 models, our Ball models)
serves larger ones. Matrices are padded with an identity block to a multiple of the base size
(``[[A, 0], [0, I]]^-1 = [[A^-1, 0], [0, I]]``, so cropping is exact).

Every sub-inverse is certified as every answer is (``certify.trusted``: LAPACK ratio < 30,
rcond >= eps, ``||I - X A||_1 < 1``) against its own input.
A leading block can be singular although A is not (a permutation matrix, for one), and errors
grow with the condition of the blocks; so an assembled inverse that fails its certificate is
first polished by a few Newton-Schulz steps (it is an excellent seed), and any matrix for which
a sub-inverse still fails is inverted whole by the fallback, and labelled so.

Labels: ``block`` (assembled by the recursion), ``lu`` (the whole matrix fell back), and with
a learned base ``block+lu`` for matrices some of whose leaves the learned method itself had to
hand to its fallback (``block`` then means: every leaf came from the network).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._validate import int_at_least
from ..certify import PASS_RATIO, certificate, trusted
from ..errors import InputError
from ..solution import Status
from .base import Method
from .newton_schulz import refine
from .partial import Partial, fill_from, labels, ok_status
from .registry import METHODS, resolve

#: Base size when the base method does not fix one (a learned model fixes its own n).
#: Blocks are padded up to base_size and inverted whole; beyond this that is never meant.
MAX_BASE_SIZE = 4096
DEFAULT_BASE_SIZE = 3


@dataclass(frozen=True)
class Block(Method):
    """Schur-complement recursion down to ``base_size`` blocks inverted by ``base``.

    base:       a method name, a Method, a trained LearnedInverse, or a model directory /
                ``"builtin:NAME"`` (a learned base).
    base_size:  size of the blocks the base inverts; default: the learned model's n, else 3.
    fallback:   exact method for matrices where some sub-inverse fails its certificate.
    polish_iter: Newton-Schulz steps allowed to repair an assembled inverse that misses the
                certificate (0 disables; the sub-inverses are certified either way).
    """

    base: Any = "lu"
    base_size: int | None = None
    fallback: Any = "lu"
    polish_iter: int = 8

    name = "block"

    @property
    def takes_complex(self) -> bool:  # type: ignore[override]
        """Complex input needs a base and a fallback that take it."""
        return bool(self.base.takes_complex and self.fallback.takes_complex)

    def __post_init__(self) -> None:
        base = resolve_base(self.base)
        if isinstance(base, Block):
            raise InputError("the base of method 'block' cannot itself be 'block'")
        model_n = getattr(base, "n", None) if base.name == "learned" else None
        size = self.base_size
        if size is None:
            size = model_n if model_n is not None else DEFAULT_BASE_SIZE
        size = int_at_least("base_size", size, 1)
        if size > MAX_BASE_SIZE:
            raise InputError(
                f"base_size={size} is too large: blocks are inverted whole by the base, so "
                f"base_size must be at most {MAX_BASE_SIZE}"
            )
        if model_n is not None and size != model_n:
            raise InputError(
                f"base_size={size} but the learned base inverts {model_n}x{model_n} matrices; "
                f"leave base_size unset or set it to {model_n}"
            )
        if not any(base.supports(size, dtype) for dtype in (torch.float32, torch.float64)):
            raise InputError(f"base {base.name!r} does not take {size}x{size} blocks; got base_size={size}")
        fallback = resolve(self.fallback)
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "base_size", size)
        object.__setattr__(self, "fallback", fallback)
        int_at_least("polish_iter", self.polish_iter, 0)

    def supports(self, n: int, dtype: torch.dtype, device: torch.device | str = "cpu") -> bool:
        # Any n: blocks are padded to base_size, which the base was checked to take.
        return self.base.supports(self.base_size, dtype, device) and self.fallback.supports(n, dtype, device)

    def _invert(self, A: Tensor) -> Partial:
        B, n = A.shape[0], A.shape[-1]
        b = self.base_size
        N = -(-n // b) * b
        Ap = A
        if N != n:
            Ap = torch.zeros(B, N, N, dtype=A.dtype, device=A.device)
            Ap[:, :n, :n] = A
            Ap[:, n:, n:] = torch.eye(N - n, dtype=A.dtype, device=A.device)
        rec = _Recursion(self.base, b, self.polish_iter)
        X, ok, pure = rec.invert(Ap)
        # A learned base answers some leaves by its own fallback: such matrices are labelled
        # "block+lu", so the labels say which answers came from the network alone.
        names = labels(B, self.name)
        if self.base.name == "learned":
            names[~pure.cpu().numpy()] = f"{self.name}+{self.base.fallback.name}"
        part = Partial(X[:, :n, :n].contiguous(), ok_status(B, A.device), names, stats={})
        part = fill_from(A, part, ~ok, self.fallback, self.name, in_place=True)  # X is ours
        part.stats.update(
            {
                "base": self.base.name,
                "base_size": b,
                "padded_to": N,
                "leaves": dict(sorted(rec.leaves.items())),
                "polished": rec.polished,
                "fallbacks": int((~ok).sum()),
            }
        )
        return part


def resolve_base(base: Any) -> Method:
    """A base method from a name, a Method, a LearnedInverse, or a model directory/builtin."""
    if isinstance(base, os.PathLike) or (isinstance(base, str) and base not in METHODS):
        from .learned import Learned

        if isinstance(base, str) and not (base.startswith("builtin:") or os.path.exists(base)):
            raise InputError(
                f"base {base!r} is neither a method ({', '.join(sorted(METHODS))}) "
                "nor a model directory nor 'builtin:NAME'"
            )
        return Learned(model=base)
    if base == "learned":
        raise InputError("base 'learned' needs a model: pass the model directory or LearnedInverse")
    return resolve(base)


class _Recursion:
    """One block inversion: the base method and what happened at the leaves."""

    def __init__(self, base: Method, b: int, polish_iter: int):
        self.base, self.b, self.polish_iter = base, b, polish_iter
        self.leaves: dict[str, int] = {}
        self.polished = 0

    def invert(self, A: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Inverse of a (B, N, N) batch, N a multiple of b; where it is certified; and where
        every leaf was answered by the base method itself (not by a fallback inside it)."""
        B, N = A.shape[0], A.shape[-1]
        if N == self.b:
            return self._leaf(A)
        k = N // self.b
        m = -(-k // 2) * self.b
        A11, A12, A21, A22 = A[:, :m, :m], A[:, :m, m:], A[:, m:, :m], A[:, m:, m:]
        X = torch.full_like(A, float("nan"))
        ok = torch.zeros(B, dtype=torch.bool, device=A.device)
        pure = torch.zeros(B, dtype=torch.bool, device=A.device)
        X11, ok1, pure1 = self.invert(A11)
        i = ok1.nonzero().squeeze(-1)
        if i.numel() == 0:
            return X, ok, pure
        X11, A12, A21 = X11[i], A12[i], A21[i]
        X11A12 = X11 @ A12
        A21X11 = A21 @ X11
        S = A22[i] - A21 @ X11A12
        Y, ok2, pure2 = self.invert(S)
        j = ok2.nonzero().squeeze(-1)
        if j.numel() == 0:
            return X, ok, pure
        pure[i[j]] = pure1[i[j]] & pure2[j]
        i, X11, X11A12, A21X11, Y = i[j], X11[j], X11A12[j], A21X11[j], Y[j]
        top_right = -X11A12 @ Y
        Xi = torch.empty(i.numel(), N, N, dtype=A.dtype, device=A.device)
        Xi[:, :m, :m] = X11 - top_right @ A21X11
        Xi[:, :m, m:] = top_right
        Xi[:, m:, :m] = -Y @ A21X11
        Xi[:, m:, m:] = Y
        Xi, good = self._certify(A[i], Xi)
        X[i] = Xi
        ok[i] = good
        return X, ok, pure

    def _leaf(self, A: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        part = self.base.kernel(A)
        names = (
            labels(A.shape[0], self.base.name)
            if part.method is None
            else np.asarray(part.method, dtype=object)
        )
        for name, count in zip(*np.unique(names.astype(str), return_counts=True)):
            self.leaves[str(name)] = self.leaves.get(str(name), 0) + int(count)
        # OUT_OF_REGION answers are the fallback's certified ones: usable like OK.
        usable = (part.status == int(Status.OK)) | (part.status == int(Status.OUT_OF_REGION))
        X = part.inverse.to(A.dtype)
        pure = torch.from_numpy(names.astype(str) == self.base.name).to(A.device)
        return X, usable & _passes(A, X), pure

    def _certify(self, A: Tensor, X: Tensor) -> tuple[Tensor, Tensor]:
        good = _passes(A, X)
        bad = (~good).nonzero().squeeze(-1)
        if bad.numel() and self.polish_iter:
            Xb, _, conv = refine(A[bad], X[bad], tol=PASS_RATIO / 3, max_iter=self.polish_iter)
            fixed = conv & _passes(A[bad], Xb)
            X[bad[fixed]] = Xb[fixed]
            good[bad[fixed]] = True
            self.polished += int(fixed.sum())
        return X, good


def _passes(A: Tensor, X: Tensor) -> Tensor:
    """The certificate of :meth:`Method.invert` (``certify.trusted``), for a sub-inverse."""
    finite = torch.isfinite(X).flatten(1).all(1)
    ratio, rc = certificate(A, X)
    return finite & trusted(ratio, rc, A.shape[-1], A.dtype)
