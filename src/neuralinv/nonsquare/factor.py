"""The factorisations behind the routes, shared by the solvers (lstsq, pinv) and the
projection: Householder QR (with its rank screen), the truncated SVD and the float32
refinement step, called on values inside the autograd Functions' forwards; and the ridge QR of
a stacked matrix, plain torch ops that autograd, forward mode and torch.func differentiate
directly (its smallest singular value is at least sqrt(ridge), so that is safe)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..certify import eps

#: Route codes carried in tensors (so that they survive torch.func transforms).
QR_ROUTE, SVD_ROUTE = 0, 1


def default_rtol(m: int, n: int, dtype: torch.dtype) -> float:
    """numpy's and torch's default relative cutoff, ``eps * max(m, n)``."""
    return eps(dtype) * max(m, n)


def qr_factor(A: Tensor) -> tuple[Tensor, Tensor]:
    """Thin QR of A (tall) or of A^H (wide)."""
    return torch.linalg.qr(A if A.shape[-2] >= A.shape[-1] else A.mH)


def qr_solve(A: Tensor, B: Tensor, QR: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Least squares (tall) or minimum norm (wide) solution from one Householder QR."""
    Q, R = qr_factor(A) if QR is None else QR
    if A.shape[-2] >= A.shape[-1]:
        solve = lambda Y: torch.linalg.solve_triangular(R, Q.mH @ Y, upper=True)  # noqa: E731
    else:
        # A = R^H Q^H; minimum-norm X = Q R^-H B
        solve = lambda Y: Q @ torch.linalg.solve_triangular(R.mH, Y, upper=False)  # noqa: E731
    return _refined(A, B, solve)


def _refined(A: Tensor, B: Tensor, solve) -> Tensor:
    """``solve(B)``, plus in float32 one step of mixed-precision iterative refinement:
    ``X + solve(B - A X)`` with the residual formed in float64. numpy computes float32
    problems in float64 throughout (numpy.linalg's ``_commonType``); one refinement step gets
    consistent systems (square, wide, or tall with B in A's range) to that accuracy at float32
    factorisation cost (``[[1, 2], [3, 4]] x = [2, 1]`` with an rcond: 1.7e-6 error before,
    0 after). For inconsistent tall problems the error stays at backward-stable float32 level,
    that of LAPACK's sgelsd. complex64 alike, with a complex128 residual."""
    X = solve(B)
    wide = _WIDER.get(A.dtype)
    if wide is None:
        return X
    R = (B.to(wide) - A.to(wide) @ X.to(wide)).to(A.dtype)
    return X + solve(R)


_WIDER = {torch.float32: torch.float64, torch.complex64: torch.complex128}


def truncated_svd(A: Tensor, rtol: float, atol: Tensor | float = 0.0):
    """U, 1/S on the kept singular values (0 elsewhere), Vh, keep: cutoff max(atol, rtol s_1)."""
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)
    cut = torch.maximum(rtol * S[..., :1], torch.as_tensor(atol, dtype=S.dtype, device=S.device))
    keep = S > cut
    sinv = torch.where(keep, 1.0 / torch.where(keep, S, torch.ones_like(S)), torch.zeros_like(S))
    return U, sinv, Vh, keep


def svd_solve(A: Tensor, B: Tensor, rtol: Any) -> tuple[Tensor, Tensor]:
    U, sinv, Vh, keep = truncated_svd(A, rtol)
    X = _refined(A, B, lambda Y: Vh.mH @ (sinv.unsqueeze(-1) * (U.mH @ Y)))
    return X, keep.sum(-1)


def looks_singular(R: Tensor) -> Tensor:
    """Per element: smallest |r_ii| <= sqrt(eps) * largest, or non-finite. Such elements go to
    the SVD route, which handles full rank as accurately as QR, so a loose screen costs only time.
    R has at least one column (callers answer empty problems before factorising)."""
    d = R.detach().diagonal(dim1=-2, dim2=-1).abs()
    big = d.amax(-1)
    return ~torch.isfinite(d).all(-1) | (d.amin(-1) <= math.sqrt(eps(R.dtype)) * big)


def ridge_solve(A: Tensor, B: Tensor, ridge: float) -> Tensor:
    """``(A^T A + ridge I)^-1 A^T B`` via the QR of a stacked matrix (condition <= that of A).

    Householder QR is safe at any scale (its norms are computed without overflow), so the
    stacked ``[A; sqrt(ridge) I]`` needs no scaling; ridge is in the units of ``A^T A``.
    Non-finite elements give NaN."""
    m, n = A.shape[-2:]
    root = math.sqrt(ridge)
    finite = torch.isfinite(A).all(-1).all(-1) & torch.isfinite(B).all(-1).all(-1)
    if m >= n:
        eye = torch.eye(n, dtype=A.dtype, device=A.device).expand(A.shape[:-2] + (n, n))
        Q, R = torch.linalg.qr(torch.cat([A, root * eye], dim=-2))
        X = torch.linalg.solve_triangular(R, Q[..., :m, :].mH @ B, upper=True)
    else:
        # wide: X = A^T (A A^T + ridge I)^-1 B, with A A^T + ridge I = R^T R
        eye = torch.eye(m, dtype=A.dtype, device=A.device).expand(A.shape[:-2] + (m, m))
        _, R = torch.linalg.qr(torch.cat([A.mH, root * eye], dim=-2))
        Y = torch.linalg.solve_triangular(R.mH, B, upper=False)
        X = A.mH @ torch.linalg.solve_triangular(R, Y, upper=True)
    return torch.where(finite[..., None, None], X, float("nan"))
