"""``auto``'s native path: the numba kernels of :mod:`neuralinv.kernels.native` (CPU) or the
Triton kernel of :mod:`neuralinv.kernels.gpu` (CUDA tensors), certified answers in one pass,
pivoted LU for every answer whose certificate fails.

Two entry points, both used by :class:`~neuralinv.methods.auto.Auto` and both returning None
when no native kernel applies (``auto`` then runs its torch path):

* :func:`fast_invert` is ``auto``'s ``Method._fast``, called by ``Method.invert`` after its
  validation for the common case (float32/float64, n <= 32, no autograd): one kernel
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
from .partial import Partial, fill_from, labels

#: numpy counterparts of the kernels' torch dtypes.
_NP = {torch.float32: np.float32, torch.float64: np.float64}


def _to_partial(A: Tensor, X, cert, status, bad: int, label: str) -> Partial:
    """The kernel's answers (numpy arrays of the CPU kernels or tensors of the GPU kernel) as a
    Partial; FALLBACK rows recomputed by LU (labelled "lu"), their certificate by
    certify.certificate."""
    B, n = A.shape[0], A.shape[-1]
    Xt, ct, st = (torch.as_tensor(v) for v in (X, cert, status))  # numpy: shared, no copy
    Xt, ct, st = Xt.reshape(B, n, n), ct.reshape(2, B), st.reshape(B)
    stats = {"primary": label, "fallbacks": 0, "native": True}
    part = Partial(Xt, st, labels(B, label), stats, (ct[0], ct[1]))
    if bad:
        failed = st == _native.FALLBACK
        st.masked_fill_(failed, int(Status.OK))
        part = fill_from(A, part, failed, LU(), label, in_place=True)
    return part


def _on_gpu(A: Tensor) -> bool:
    """Whether the batch ``A`` goes to the Triton kernel (kernels/gpu.py) rather than the numba
    kernels: any device but the CPU. Tests that run the Triton kernel in its interpreter on CPU
    replace this. (``is_cpu``: ``device.type`` costs 0.6 us, a fortieth of a 3x3 call.)"""
    return not A.is_cpu


def _gpu_answers(A: Tensor) -> tuple[tuple | None, str]:
    """((X, cert, status, fallbacks, not OK), label) of the Triton kernel for the (B, n, n)
    batch A, the two counts in one device-to-host copy, or (None, why not). Imported on first
    use: triton is optional (CUDA builds of torch bring it)."""
    from ..kernels import gpu

    out, label = gpu.invert(A.contiguous())
    if out is None:
        return None, label
    X, cert, status = out
    bad, not_ok = torch.stack([torch.count_nonzero(status == _native.FALLBACK),
                               torch.count_nonzero(status)]).tolist()  # fmt: skip
    return (X, cert, status, bad, not_ok), label


def native_partial(A: Tensor) -> tuple[Partial | None, str | None]:
    """The native answer to ``Method._invert(A)`` (A validated, finite, (B, n, n)), or
    (None, why not)."""
    if _on_gpu(A):
        why = _native.disabled_reason()
        out, label = (None, why) if why else _gpu_answers(A)
        if out is None:
            return None, label
        X, cert, status, bad, _ = out
        return _to_partial(A, X, cert, status, bad, label), None
    fn, label = _native.kernel(A.shape[-1], A.dtype, A.device)
    if fn is None:
        return None, label
    A = A.contiguous()
    X, cert, status = _native.outputs((A.shape[0],), A.shape[-1], A.dtype)
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
    if _on_gpu(Af):
        return _gpu_fast_invert(batch, start)
    fn, label = _native.kernel(n, Af.dtype, "cpu", check_env=False)  # not on a GPU: the CPU
    if fn is None:
        return None
    # The kernel reads a C-contiguous batch: a non-contiguous input is copied once here.
    Af = Af.contiguous()
    X, cert, status = _native.outputs(batch.batch_shape, n, Af.dtype)
    bad = _native.run(fn, Af.numpy(), X.reshape(B, n, n), cert.reshape(2, B), status.reshape(B))
    all_ok = bad == 0 and np.count_nonzero(status) == 0  # count_nonzero: 1/3 of any()'s cost
    return _solution(batch, Af, (X, cert, status), bad, all_ok, label, start)


def _gpu_fast_invert(batch: Batch, start: float) -> Solution | None:
    """fast_invert's answer by the Triton kernel (one device-to-host copy, for the counts)."""
    out, label = _gpu_answers(batch.flat)
    if out is None:
        return None  # Method.invert goes on to _invert, which records why in the stats
    X, cert, status, bad, not_ok = out
    shape = batch.batch_shape
    answers = (X.reshape(shape + (batch.n, batch.n)), cert.reshape((2,) + shape), status.reshape(shape))
    return _solution(batch, batch.flat.contiguous(), answers, bad, not_ok == 0, label, start)


def _solution(batch: Batch, Af: Tensor, answers, bad: int, all_ok: bool, label: str, start: float) -> Solution:
    """The Solution of a kernel's answers ``(X, cert, status)`` in the caller's batch shape
    (numpy arrays or tensors): built straight from them when every answer is OK, else through a
    Partial whose FALLBACK rows LU recomputes (``Af``: the flat contiguous batch) and certify."""
    X, cert, status = answers
    if all_ok:
        sol = Solution.native(
            _out(batch, X, batch.out_dtype), _out(batch, status), _out(batch, cert[0, ...]),
            _out(batch, cert[1, ...]), label, batch.batch_shape,
        )
        solve_time = time.perf_counter() - start
    else:
        part = _to_partial(Af, X, cert, status, bad, label)
        solve_time = time.perf_counter() - start
        sol = certify(batch, part, None, "auto")
    sol.stats["solve_time_s"] = solve_time
    sol.stats["time_s"] = time.perf_counter() - start
    return sol


def _out(batch, x, dtype: torch.dtype | None = None):
    """A kernel output in the caller's array type (and, for the inverse, its dtype)."""
    if batch.numpy_in:
        if isinstance(x, Tensor):  # the Triton kernel's (interpreted on CPU in tests)
            x = x.numpy()
        return x if dtype is None or _NP.get(dtype) is x.dtype.type else torch.from_numpy(x).to(dtype).numpy()
    # numpy: shared (from_numpy: a third of as_tensor's 1.5 us, four times per call); 0-d for
    # a single matrix, like the torch path.
    t = torch.from_numpy(x) if type(x) is np.ndarray else x
    return t if dtype is None or t.dtype == dtype else t.to(dtype)
