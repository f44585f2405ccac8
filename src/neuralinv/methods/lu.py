"""LU with partial pivoting (LAPACK getrf/getri through torch.linalg.inv_ex)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..kernels.lapack import PER_MATRIX_FROM, inverse_ex  # noqa: F401  (re-exported)
from ..solution import Status
from .base import Method
from .partial import Partial


@dataclass(frozen=True)
class LU(Method):
    """Exact inversion by LU factorisation with partial pivoting.

    An exactly zero pivot marks the matrix SINGULAR; the certificate's rcond flags near-singular
    ones as ILL_CONDITIONED.
    """

    name = "lu"
    takes_complex = True

    def _invert(self, A: Tensor) -> Partial:
        X, info = inverse_ex(A)
        status = torch.where(info > 0, int(Status.SINGULAR), int(Status.OK)).to(torch.int8)
        return Partial(X, status)
