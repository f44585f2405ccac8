"""LAPACK inversion of a batch through torch (getrf/getri by ``torch.linalg.inv_ex``), around
torch 2.13's batched CPU LU failure.

Its own module, below ``methods`` and ``learned``: the LU method, the training loop (its float64
targets) and the evaluation metrics all invert with it, and none of them needs the others.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: From this size on, a CPU batch is inverted one matrix at a time when torch runs more than
#: one thread: torch 2.13's batched CPU LU calls MKL getrf concurrently, which hangs or returns
#: wrong inverses from n ~ 150 (pytorch/pytorch#142815, #181570). The measurements behind the
#: threshold: docs/performance.md, attempt 40.
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
