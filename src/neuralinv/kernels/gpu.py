"""The native path's GPU kernel: invert and certify a batch of n <= 32 matrices in one Triton
kernel (CUDA tensors), with the same statuses as the CPU kernels of :mod:`.native`.

One kernel for every n: unpivoted in-place Gauss-Jordan on ``BLOCK`` matrices per program, each
held as an (NP, NP) tile (NP the power of two >= n, padded with the identity), then the
residual ``I - X A`` and the three 1-norms in float64 from the stored X (float32 input too:
the residual of a float32 answer summed in float32 can be off by about one ratio unit, which
matters at the rcond edge; see ``_numba_kernels._lane_residual``), and the verdict. Per matrix
the status is

* ``0`` (OK): ``certify.trusted`` holds for the kernel's ratio and rcond (ratio < 30, rcond >= eps,
  ratio * n * eps < rcond), with the CPU kernels' margin for unpivoted answers
  (``ratio * n * eps * UNPIVOTED_MARGIN < rcond``, i.e. ``||I - X A||_1 < 1/8``), and every entry
  of X and of the residual finite;
* ``NONFINITE`` (5): A has a NaN or Inf entry; X and cert are NaN;
* ``FALLBACK`` (-1): anything else (a zero or tiny pivot, rounding, overflow); the caller
  recomputes the matrix by pivoted LU and certifies it again (``methods.native``).

The same kernel source runs on CPU tensors under Triton's interpreter (numpy), which is how it
is tested on machines without a GPU (tests/test_gpu_kernel.py); on CPU the numba kernels are
the default path, never this one. Triton is an optional dependency: CUDA builds of PyTorch
bring it; without it :func:`run` answers None and the reason, and ``auto`` takes its torch
path. No GPU figures were measured for this kernel (docs/performance.md, "GPU").
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import torch

try:
    import triton
    import triton.language as tl
except ImportError as _exc:  # CPU builds of torch do not bring triton
    triton = tl = None
    _MISSING = f"triton not installed ({_exc})"

from ..certify import PASS_RATIO
from ..solution import Status
from .native import FALLBACK

#: As ``_numba_kernels.UNPIVOTED_MARGIN`` (a numba module is not imported here; a test checks
#: that the two agree).
UNPIVOTED_MARGIN = 8.0

#: Largest n the kernel serves (as the CPU kernels).
MAX_N = 32
#: Matrix entries per program: BLOCK = max(1, TILE_ENTRIES // NP^2) matrices. Chosen by what
#: ptxas reports for sm_90a (no GPU needed; docs/performance.md, attempt 75): 2048 spilled
#: registers at NP <= 8 (255 registers, 32-348 bytes of spill stores), 512 spills nowhere and
#: uses at most 140 registers per thread. Not timed: no GPU was lent.
TILE_ENTRIES = 512
_DTYPES = (torch.float32, torch.float64)
#: Kernel labels, as the CPU kernels' (``native.NAMES``).
NAME = "triton_gauss_jordan"


def _gauss_jordan_certified(
    A, X, cert, status, B, n, eps,
    NP: tl.constexpr, BLOCK: tl.constexpr, PASS: tl.constexpr, MARGIN: tl.constexpr,
    FALLBACK: tl.constexpr, NONFINITE: tl.constexpr,
):  # fmt: skip
    """Triton source (compiled by :func:`_compiled`): matrices pid*BLOCK .. of the C-contiguous
    (B, n, n) batch A into X (B, n, n), cert (2, B) = (ratio, rcond) and status (B,) int8."""
    pid = tl.program_id(0)
    b = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)  # int64: B * n^2 may pass 2^31
    idx = tl.arange(0, NP)
    b3 = b[:, None, None]
    r3 = idx[None, :, None]
    c3 = idx[None, None, :]
    live = (b3 < B) & (r3 < n) & (c3 < n)
    inside = (r3 < n) & (c3 < n)
    eye = r3 == c3
    offs = b3 * n * n + r3 * n + c3
    a = tl.load(A + offs, mask=live, other=0.0)
    # Padding (entries beyond n, matrices beyond B) is the identity: it stays the identity.
    a = tl.where(live, a, tl.where(eye, 1.0, 0.0).to(a.dtype))
    finite_a = tl.min(tl.min(tl.where((a == a) & (tl.abs(a) < float("inf")), 1, 0), axis=2), axis=1)

    # In-place Gauss-Jordan without pivoting: after step k, column k holds the inverse's.
    m = a
    c2 = idx[None, :]
    for k in range(0, n):
        row = tl.sum(tl.where(r3 == k, m, 0.0), axis=1)  # (BLOCK, NP): row k
        col = tl.sum(tl.where(c3 == k, m, 0.0), axis=2)  # (BLOCK, NP): column k
        p = tl.sum(tl.where(c2 == k, row, 0.0), axis=1)
        row = tl.where(c2 == k, 1.0, row) / p[:, None]
        f = tl.where(c2 == k, 0.0, col)
        m = tl.where(c3 == k, 0.0, m) - f[:, :, None] * row[:, None, :]
        m = tl.where(r3 == k, row[:, None, :], m)

    # The certificate of the stored X, in float64.
    xd = m.to(tl.float64)
    ad = a.to(tl.float64)
    e = tl.where(eye, 1.0, 0.0).to(tl.float64) + tl.zeros_like(xd)
    for k in range(0, n):
        xk = tl.sum(tl.where(c3 == k, xd, 0.0), axis=2)  # column k of X
        ak = tl.sum(tl.where(r3 == k, ad, 0.0), axis=1)  # row k of A
        e = e - xk[:, :, None] * ak[:, None, :]
    finite_x = tl.min(tl.min(tl.where(inside & ((xd != xd) | (tl.abs(xd) == float("inf"))), 0, 1), axis=2), axis=1)
    finite_e = tl.min(tl.min(tl.where(inside & (e != e), 0, 1), axis=2), axis=1)
    na = tl.max(tl.sum(tl.where(inside, tl.abs(ad), 0.0), axis=1), axis=1)
    nx = tl.max(tl.sum(tl.where(inside, tl.abs(xd), 0.0), axis=1), axis=1)
    nu = tl.max(tl.sum(tl.where(inside, tl.abs(e), 0.0), axis=1), axis=1)
    den = n * na * nx * eps
    ratio = nu / den
    ratio = tl.where(((den == 0.0) & (nu > 0.0)) | (den == float("inf")), float("inf"), ratio)
    rc = 1.0 / (na * nx)
    ok = (finite_a > 0) & (finite_x > 0) & (finite_e > 0) & (ratio < PASS) & (rc >= eps)
    ok = ok & (ratio * n * eps * MARGIN < rc)
    st = tl.where(ok, 0, tl.where(finite_a > 0, FALLBACK, NONFINITE))

    nan_rows = (finite_a == 0)[:, None, None]
    out = tl.where(nan_rows, float("nan"), m).to(X.dtype.element_ty)
    tl.store(X + offs, out, mask=live)
    inb = b < B
    bad = finite_a == 0
    tl.store(cert + b, tl.where(bad, float("nan"), ratio).to(cert.dtype.element_ty), mask=inb)
    tl.store(cert + B + b, tl.where(bad, float("nan"), rc).to(cert.dtype.element_ty), mask=inb)
    tl.store(status + b, st.to(tl.int8), mask=inb)


_lock = threading.Lock()
_kernel: list[Any] = []  # the kernel, compiled once per process (a JITFunction)
#: Why a variant of the kernel, (dtype, NP), failed before it ever ran in this process (no CUDA
#: toolchain, an unsupported GPU, ...): later batches of that variant are not sent to it again.
_failures: dict[tuple[torch.dtype, int], str] = {}
#: Variants that ran: a later error of one of these is not a build problem and is raised.
_ran: set[tuple[torch.dtype, int]] = set()


def _compiled() -> Any:
    if not _kernel:
        with _lock:
            if not _kernel:
                _kernel.append(triton.jit(_gauss_jordan_certified))
    return _kernel[0]


def interpreted() -> bool:
    """Whether Triton runs kernels in its interpreter in this process (``TRITON_INTERPRET=1``
    when triton was imported): then the kernel takes CPU tensors."""
    return triton is not None and bool(triton.knobs.runtime.interpret)


def unavailable(A: torch.Tensor) -> str | None:
    """Why the kernel cannot answer the (B, n, n) batch A, or None if it can. CUDA tensors
    compile the kernel; CPU tensors run it in Triton's interpreter, where that is on (tests)."""
    if triton is None:
        return _MISSING
    if A.device.type != ("cpu" if interpreted() else "cuda"):
        return f"no Triton kernel for device {A.device.type}"
    n = A.shape[-1]
    if not 1 <= n <= MAX_N:
        return f"no Triton kernel for n={n} (1 <= n <= {MAX_N})"
    if A.dtype not in _DTYPES:
        return f"no Triton kernel for {A.dtype}"
    return None


def invert(A: torch.Tensor) -> tuple[tuple[torch.Tensor, ...] | None, str]:
    """((X, cert, status), NAME) for a C-contiguous (B, n, n) batch (see :func:`run`), or
    (None, why not): :func:`unavailable`'s reasons, or the error of a kernel variant that could
    not be compiled or launched the first time (remembered for the process). Out of memory is
    raised, never remembered: it says nothing about the kernel."""
    why = unavailable(A)
    key = (A.dtype, constants(A.shape[-1])["NP"]) if why is None else None
    why = why or _failures.get(key)
    if why is not None:
        return None, why
    try:
        out = run(A)
    except torch.OutOfMemoryError:
        raise
    except Exception as exc:  # triton's CompilationError, a missing CUDA toolchain, ...
        if key in _ran:
            raise  # this variant worked before: not a build problem
        with _lock:
            _failures[key] = f"Triton kernel unavailable: {type(exc).__name__}: {exc}".splitlines()[0]
        return None, _failures[key]
    _ran.add(key)
    return out, NAME


def run(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """X (B, n, n), cert (2, B) and status (B,) int8 of a C-contiguous (B, n, n) batch on
    A's device (see the module docstring); :func:`unavailable` must have said None."""
    B, n = A.shape[0], A.shape[-1]
    X = torch.empty_like(A)
    cert = torch.empty((2, B), dtype=A.dtype, device=A.device)
    status = torch.empty(B, dtype=torch.int8, device=A.device)
    if B == 0:
        return X, cert, status
    consts = constants(n)
    eps = float(torch.finfo(A.dtype).eps)  # a power of two: exact in any precision
    grid = (-(-B // consts["BLOCK"]),)
    # Triton launches on the current CUDA device and its current stream: make that A's device.
    # Multiply-adds may fuse, as in the CPU kernels (numba's "contract").
    with torch.cuda.device(A.device) if A.is_cuda else contextlib.nullcontext():
        _compiled()[grid](A, X, cert, status, B, n, eps, enable_fp_fusion=True, **consts)
    return X, cert, status


def constants(n: int) -> dict[str, Any]:
    """The kernel's compile-time arguments for matrices of size n (one compiled variant per
    tile size NP and dtype: 1, 2, 4, 8, 16, 32)."""
    NP = max(2, 1 << (n - 1).bit_length())  # noqa: N806  (the power of two >= n)
    return {"NP": NP, "BLOCK": max(1, TILE_ENTRIES // (NP * NP)), "PASS": PASS_RATIO,
            "MARGIN": UNPIVOTED_MARGIN, "FALLBACK": FALLBACK, "NONFINITE": int(Status.NONFINITE)}  # fmt: skip
