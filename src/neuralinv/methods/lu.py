"""LU with partial pivoting (LAPACK getrf/getri through torch.linalg.inv_ex)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..solution import Status
from .base import Method, Partial

#: From this size on, a CPU batch is inverted one matrix at a time when torch runs more than
#: one thread. torch 2.13's batched CPU LU runs LAPACK getrf on several matrices at once from
#: n > ~14 (pytorch/pytorch#142815, and the open fix #181570: MKL's getrf is not safe to call
#: concurrently there). Measured here with 2 threads, float32, 8-64 matrices per batch: correct
#: up to n = 149 in every run; at n = 150 torch.linalg.inv_ex never returned (a hang); from
#: n = 152 every inverse was silently wrong (dget03 ratio ~1e3), or it raised "RuntimeError:
#: Pivots given to lu_solve must all be greater or equal to 1" after MKL printed "Parameter 6
#: was incorrect on entry to SLASWP" once per matrix. One matrix per call (MKL threads inside
#: it) was correct at every size tried, and faster than the batched call on one thread (n = 192:
#: 137 vs 186 ms for 128 matrices; n = 512: 69 vs 119 ms for 8), but 1.5x slower than the
#: batched call at n = 128 (303 vs 199 ms for 512), where that call was always correct; the
#: threshold keeps a margin below the first failure on this CPU (docs/performance.md, attempt 40).
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
