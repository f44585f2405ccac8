"""LU with partial pivoting (LAPACK getrf/getri through torch.linalg.inv_ex)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..solution import Status
from .base import Method, Partial

#: From this size on, a CPU batch is inverted one matrix at a time when torch runs more than
#: one thread: torch 2.13's batched CPU LU hangs or returns wrong inverses from n = 150 on
#: (pytorch/pytorch#142815); measurements in docs/performance.md, attempt 40.
PER_MATRIX_FROM = 129


def inverse_ex(A: Tensor) -> tuple[Tensor, Tensor]:
    """``torch.linalg.inv_ex`` of a (..., n, n) batch, around torch's batched CPU LU failure.

    Same LAPACK calls and results; CPU batches of n >= ``PER_MATRIX_FROM`` under several threads
    go one matrix at a time, and a batched call that fails with that failure's pivot error is
    redone one matrix at a time.
    """
    n = A.shape[-1]
    many = A.ndim > 2 and A.numel() > n * n
    if A.device.type == "cpu" and many and n >= PER_MATRIX_FROM and torch.get_num_threads() > 1:
        return _one_at_a_time(A)
    try:
        return torch.linalg.inv_ex(A)
    except RuntimeError as exc:
        if "Pivots given to lu_solve" not in str(exc):
            raise
        return _one_at_a_time(A)


def _one_at_a_time(A: Tensor) -> tuple[Tensor, Tensor]:
    n = A.shape[-1]
    flat = A.reshape(-1, n, n)
    X = torch.empty_like(flat)
    info = torch.empty(flat.shape[0], dtype=torch.int32, device=A.device)
    for i in range(flat.shape[0]):
        X[i], info[i] = torch.linalg.inv_ex(flat[i])
    return X.reshape(A.shape), info.reshape(A.shape[:-2])


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
