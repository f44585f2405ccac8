"""Cholesky inversion for symmetric (Hermitian) positive definite matrices (LAPACK potrf/potri)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .._validate import ratio_tolerance
from ..certify import eps, norm1
from ..solution import Status
from .base import Method
from .partial import Partial


@dataclass(frozen=True)
class Cholesky(Method):
    """Exact inversion of symmetric positive definite (SPD) matrices: ``A = L L^T``, then
    ``A^-1 = L^-T L^-1``. About half the work of LU and symmetric by construction. Complex
    matrices must be Hermitian positive definite (``A = L L^H``; "symmetric" below means
    ``A = A^H`` for them).

    symmetry_tol: a matrix counts as symmetric when ``||A - A^T||_1 <= symmetry_tol * n * eps
                  * ||A||_1`` (eps of the working dtype). Rounding in ``B @ B.T`` and friends
                  leaves asymmetries of a few eps, hence the default of 100; 0 demands exact
                  symmetry. Matrices that are not symmetric, or whose factorisation meets a
                  non-positive pivot, get status NOT_SPD and a NaN inverse: the factorisation
                  only reads the lower triangle, so an answer for them would be silently wrong.
    """

    symmetry_tol: float = 100.0

    name = "cholesky"
    takes_complex = True

    def __post_init__(self):
        ratio_tolerance("symmetry_tol", self.symmetry_tol, allow_zero=True)

    def symmetric(self, A: Tensor) -> Tensor:
        """(B,) mask of the matrices that are symmetric (complex: Hermitian) within
        ``symmetry_tol``."""
        bound = self.symmetry_tol * A.shape[-1] * eps(A.dtype) * norm1(A)
        return norm1(A - A.mH) <= bound

    def _invert(self, A: Tensor) -> Partial:
        L, info = torch.linalg.cholesky_ex(A)
        spd = (info == 0) & self.symmetric(A)
        # Rows that failed hold a partial factor; factor the identity there so that
        # cholesky_inverse never sees a zero or NaN pivot (their answers are discarded).
        L = torch.where(spd[:, None, None], L, torch.eye(A.shape[-1], dtype=A.dtype, device=A.device))
        X = torch.cholesky_inverse(L)
        status = torch.where(spd, int(Status.OK), int(Status.NOT_SPD)).to(torch.int8)
        return Partial(X, status)
