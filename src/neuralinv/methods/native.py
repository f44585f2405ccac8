"""``auto``'s native path: the numba kernels of :mod:`neuralinv.kernels.native`, certified
answers in one pass, pivoted LU for every answer whose certificate fails.

Two entry points, both used by :class:`~neuralinv.methods.auto.Auto` and both returning None
when no native kernel applies (``auto`` then runs its torch path):

* :func:`fast_invert` replaces ``Method.invert`` for the common case (CPU, float32/float64,
  n <= 32, no autograd): validation, one kernel pass that also screens NaN/Inf and computes
  the certificate and the statuses, and, if every status is OK, the Solution built directly
  (no finiteness pre-pass, no second certificate, no status bookkeeping).
* :func:`native_partial` is the same kernel as a ``Method._invert`` answer (a Partial carrying
  its certificate), for the inputs ``fast_invert`` declines (autograd) and for ``auto:alone``.

Same statuses as the torch path: NONFINITE for a NaN/Inf input (NaN inverse and certificate);
OK where ``certify.trusted`` holds; everything else is answered by LU and certified by
``certify.certificate`` exactly as ``auto``'s LU fallback always was (SINGULAR for an exactly
zero pivot, ILL_CONDITIONED where LU's certificate fails too).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from .._validate import square_batch
from ..kernels import native as _native
from ..solution import Solution, Status
from .base import Partial, certify, fill_from, labels
from .lu import LU


def _kernel_partial(A: Tensor, fn: Any, label: str) -> tuple[Partial, bool]:
    """Run the kernel on a contiguous (B, n, n) batch; (Partial, whether every status is OK)."""
    B, n = A.shape[0], A.shape[-1]
    X = torch.empty((B, n, n), dtype=A.dtype)
    cert = torch.empty((2, B), dtype=A.dtype)
    status = torch.empty(B, dtype=torch.int8)
    bad = _native.run(fn, A, X, cert, status)
    stats = {"primary": label, "fallbacks": 0, "native": True}
    part = Partial(X, status, stats=stats, certificate=(cert[0], cert[1]))
    if bad == 0:
        return part, not bool(status.any())
    # FALLBACK rows: recomputed by LU (labels "lu"), their certificate by certify.certificate.
    failed = status == _native.FALLBACK
    status.masked_fill_(failed, int(Status.OK))
    part = fill_from(A, part, failed, LU(), label, in_place=True)
    return part, False


def native_partial(A: Tensor) -> tuple[Partial | None, str | None]:
    """The native answer to ``Method._invert(A)`` (A validated, finite, (B, n, n)), or
    (None, why not)."""
    fn, label = _native.kernel(A.shape[-1], A.dtype, A.device)
    if fn is None:
        return None, label
    part, _ = _kernel_partial(A.contiguous(), fn, label)
    if part.method is None:
        part.method = labels(A.shape[0], label)
    return part, None


def fast_invert(A: Any) -> Solution | None:
    """``Auto().invert(A)`` through a native kernel, or None where none applies."""
    if _native.disabled_by_env():
        return None
    batch = square_batch(A)
    start = time.perf_counter()
    Af = batch.flat
    if Af.shape[0] == 0 or batch.tensor.requires_grad:
        return None
    fn, label = _native.kernel(batch.n, Af.dtype, Af.device)
    if fn is None:
        return None
    # The kernel reads a C-contiguous batch: a non-contiguous input is copied once here.
    part, all_ok = _kernel_partial(Af.contiguous(), fn, label)
    if all_ok:
        solve_time = time.perf_counter() - start
        stats = dict(part.stats, method="auto")
        ratio, rc = part.certificate
        sol = Solution(
            inverse=batch.to_output(part.inverse, matrices=True),
            status=batch.to_output(part.status, matrices=False),
            residual=batch.to_output(ratio, matrices=False),
            rcond=batch.to_output(rc, matrices=False),
            method=labels(batch.batch_shape, label),
            stats=stats,
        )
    else:
        solve_time = time.perf_counter() - start
        sol = certify(batch, part, None, "auto")
    sol.stats["solve_time_s"] = solve_time
    sol.stats["time_s"] = time.perf_counter() - start
    return sol
