"""``auto``'s native path: the numba kernels of :mod:`neuralinv.kernels.native`, certified
answers in one pass, pivoted LU for every answer whose certificate fails.

Two entry points, both used by :class:`~neuralinv.methods.auto.Auto` and both returning None
when no native kernel applies (``auto`` then runs its torch path):

* :func:`fast_invert` is ``auto``'s ``Method._fast``, called by ``Method.invert`` after its
  validation for the common case (CPU, float32/float64, n <= 32, no autograd): one kernel
  pass that also screens NaN/Inf and computes
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

import numpy as np
import torch
from torch import Tensor

from .._validate import Batch
from ..kernels import native as _native
from ..solution import Solution, Status
from .certified import certify
from .lu import LU
from .partial import Partial, fill_from, labels, same_labels

_NP = _native.NUMPY_DTYPES


def _outputs(shape: tuple[int, ...], n: int, dtype: torch.dtype):
    """numpy outputs in the caller's batch shape (numpy allocation is ~10x cheaper than
    torch.empty for tiny batches; torch.from_numpy shares them without a copy)."""
    d = _NP[dtype]
    return (np.empty(shape + (n, n), d), np.empty((2,) + shape, d), np.empty(shape, np.int8))


def _to_partial(A: Tensor, X, cert, status, bad: int, label: str) -> Partial:
    """The kernel's answers as a Partial (torch views of the arrays); FALLBACK rows
    recomputed by LU (labelled "lu"), their certificate by certify.certificate."""
    B, n = A.shape[0], A.shape[-1]
    Xt = torch.from_numpy(X.reshape(B, n, n))
    ct = torch.from_numpy(cert.reshape(2, B))
    st = torch.from_numpy(status.reshape(B))
    stats = {"primary": label, "fallbacks": 0, "native": True}
    part = Partial(Xt, st, labels(B, label), stats, (ct[0], ct[1]))
    if bad:
        failed = st == _native.FALLBACK
        st.masked_fill_(failed, int(Status.OK))
        part = fill_from(A, part, failed, LU(), label, in_place=True)
    return part


def native_partial(A: Tensor) -> tuple[Partial | None, str | None]:
    """The native answer to ``Method._invert(A)`` (A validated, finite, (B, n, n)), or
    (None, why not)."""
    fn, label = _native.kernel(A.shape[-1], A.dtype, A.device)
    if fn is None:
        return None, label
    A = A.contiguous()
    X, cert, status = _outputs((A.shape[0],), A.shape[-1], A.dtype)
    bad = _native.run(fn, A.numpy(), X, cert, status)
    return _to_partial(A, X, cert, status, bad, label), None


def fast_invert(batch: Batch) -> Solution | None:
    """``Auto().invert`` of a validated batch without autograd (``Method.invert`` sends those
    to its differentiable path, which runs the kernel inside) through a native kernel, or
    None where none applies."""
    if _native.disabled_by_env():
        return None
    start = time.perf_counter()
    Af = batch.flat
    B, n = Af.shape[0], batch.n
    if B == 0:
        return None
    fn, label = _native.kernel(n, Af.dtype, Af.device, check_env=False)
    if fn is None:
        return None
    # The kernel reads a C-contiguous batch: a non-contiguous input is copied once here.
    Af = Af.contiguous()
    X, cert, status = _outputs(batch.batch_shape, n, Af.dtype)
    bad = _native.run(fn, Af.numpy(), X.reshape(B, n, n), cert.reshape(2, B), status.reshape(B))
    if bad == 0 and np.count_nonzero(status) == 0:  # count_nonzero: 1/3 of any()'s cost
        # Every answer certified OK: the Solution straight from the kernel's arrays.
        sol = Solution(
            inverse=_out(batch, X, batch.out_dtype),
            status=_out(batch, status),
            residual=_out(batch, cert[0, ...]),
            rcond=_out(batch, cert[1, ...]),
            method=same_labels(batch.batch_shape, label),
            stats={"primary": label, "fallbacks": 0, "native": True, "method": "auto"},
        )
        # Known all-OK for ni.inv's check (api.inv), without a second scan of the statuses.
        object.__setattr__(sol, "_all_ok", True)
        solve_time = time.perf_counter() - start
    else:
        part = _to_partial(Af, X, cert, status, bad, label)
        solve_time = time.perf_counter() - start
        sol = certify(batch, part, None, "auto")
    sol.stats["solve_time_s"] = solve_time
    sol.stats["time_s"] = time.perf_counter() - start
    return sol


def _out(batch, x: np.ndarray, dtype: torch.dtype | None = None):
    """A kernel output in the caller's array type (and, for the inverse, its dtype)."""
    if batch.numpy_in:
        return x if dtype is None or _NP.get(dtype) is x.dtype.type else torch.from_numpy(x).to(dtype).numpy()
    t = torch.from_numpy(x)  # 0-d for a single matrix, like the torch path
    return t if dtype is None or t.dtype == dtype else t.to(dtype)
