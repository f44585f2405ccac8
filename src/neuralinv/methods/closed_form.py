"""Closed-form inverses of 1x1 .. 4x4 matrices: adjugate over determinant, vectorised over the batch.

For tiny matrices LAPACK spends most of its time on per-matrix call overhead; written out as a
handful of elementwise expressions over the whole batch, the inverse costs a few passes over
memory instead. The entries are laid out entry-major, (n*n, B), so that every expression works
on contiguous rows of length B.

float32 input is computed in float64: every 2x2 minor of float32 numbers is then exact before
its one subtraction, so the only rounding that matters is the final cast back to float32. That
keeps the LAPACK residual ratio of the answer at rounding level for every matrix whose float64
inverse is accurate (cond well below 1e15), i.e. as good as LU, at the price of two casts.
complex64 input is computed in complex128 alike; the formulas are the same for complex entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..certify import certificate
from ..errors import InputError
from ..kernels.adjugate import FORMULAS
from ..solution import Solution, Status
from .base import Method
from .newton_schulz import refine
from .partial import Partial

#: Largest size with a closed form here (the 4x4 formula is 2x2 minors; 5x5 would not pay).
MAX_N = 4

#: Newton steps at most for an answer whose ratio is above _REFINE_ABOVE (each squares
#: I - X A); refining from 10, not 30, leaves the answers a margin below the pass ratio.
_REFINE_STEPS = 2
_REFINE_ABOVE = 10.0

#: Matrices per chunk: 16,384 float64 rows are 128 KiB, cache-sized.
_CHUNK = 16384


@dataclass(frozen=True)
class ClosedForm(Method):
    """Adjugate / determinant formulas for n <= 4.

    An exactly zero determinant marks a matrix SINGULAR (its inverse is NaN); one that only
    underflowed (float64 entries of 1e-100 and below: the determinant has degree n) is not
    final: ``Method.invert`` computes such a matrix again from ``2^-e A``
    (:func:`neuralinv.methods.certified.rescale_extreme_failures`). The adjugate is
    not backward stable for n >= 3 (in float64, 4x4 matrices of cond 1e6 gave ratios up to 180):
    answers whose ratio is above 10 get up to two Newton steps ``X <- X + (I - X A) X``, each squaring
    the residual, which brings every answer of a matrix with rcond above eps back under the
    ratio 30 (``stats["refined"]`` counts them). A tiny nonzero determinant still ends
    ILL_CONDITIONED by the certificate.
    """

    name = "closed_form"
    takes_complex = True

    def supports(self, n: int, dtype: torch.dtype, device: torch.device | str = "cpu") -> bool:
        return n <= MAX_N and super().supports(n, dtype, device)

    def invert(self, A: Any) -> Solution:
        # Refuse a size without a formula before any conversion or work, even for empty batches.
        shape = getattr(A, "shape", None)
        if shape is not None and len(shape) >= 2 and shape[-1] == shape[-2]:
            dtype = A.dtype if isinstance(A, Tensor) else torch.float64
            if not self.supports(int(shape[-1]), dtype):
                _check_size(int(shape[-1]))
        return super().invert(A)

    def _invert(self, A: Tensor) -> Partial:
        X, det = closed_form_inverse(A)
        status = torch.where(det == 0, int(Status.SINGULAR), int(Status.OK)).to(torch.int8)
        return _refine_failed(A, Partial(X, status, certificate=certificate(A, X)))


def _refine_failed(A: Tensor, part: Partial) -> Partial:
    """Newton steps for the answers whose certificate fails (rare: ill-conditioned input), so
    that only matrices with no trustworthy answer are left failing; the rest pay nothing."""
    ratio, rc = part.certificate
    part.stats["refined"] = 0
    todo = (part.status == int(Status.OK)) & ~(ratio < _REFINE_ABOVE)
    if not bool(todo.any()):
        return part
    idx = todo.nonzero().squeeze(1)
    part.stats["refined"] = int(idx.numel())
    Ai = A[idx]
    Xi, _, _ = refine(Ai, part.inverse[idx], tol=_REFINE_ABOVE, max_iter=_REFINE_STEPS)
    r, c = certificate(Ai, Xi)
    # Keep a step only where it helped (a singular-looking matrix can get worse).
    better = r < ratio[idx]
    keep = idx[better]
    part.inverse[keep] = Xi[better]
    ratio[keep], rc[keep] = r[better], c[better]
    return part


def closed_form_inverse(A: Tensor) -> tuple[Tensor, Tensor]:
    """Inverse and determinant of a (B, n, n) batch, n <= 4, in A's dtype.

    Where the determinant is exactly zero the returned inverse holds inf/NaN; callers decide.
    """
    n = A.shape[-1]
    _check_size(n)
    B = A.shape[0]
    work = {torch.float32: torch.float64, torch.complex64: torch.complex128}.get(A.dtype, A.dtype)
    X = torch.empty((B, n * n), dtype=A.dtype, device=A.device)
    det = torch.empty(B, dtype=work, device=A.device)
    flat = A.reshape(B, n * n)
    # Chunks keep the ~50-130 temporaries per chunk in cache: 2-3x faster than whole-batch
    # passes at a million matrices, about equal at 100,000 (docs/performance.md).
    for start in range(0, B, _CHUNK):
        stop = min(B, start + _CHUNK)
        # A fresh entry-major copy (row k = entry k of every matrix; float64 for float32
        # input), never a view of A: its rows may be scaled in place below.
        a = torch.empty((n * n, stop - start), dtype=work, device=A.device)
        a.copy_(flat[start:stop].T)
        entries, d = FORMULAS[n](a)
        inv_det = 1.0 / d
        out = torch.empty((n * n, stop - start), dtype=A.dtype, device=A.device)
        for k, e in enumerate(entries):
            torch.mul(e, inv_det, out=e)
            out[k].copy_(e)
        X[start:stop].copy_(out.T)
        det[start:stop] = d
    return X.reshape(B, n, n), det


def _check_size(n: int) -> None:
    if n > MAX_N:
        raise InputError(
            f"closed_form inverts matrices up to {MAX_N}x{MAX_N}; got n={n} "
            "(use method='lu' or 'auto')"
        )
