"""Native CPU kernels of the default path (``auto``): invert and certify in one pass, n <= 32.

The kernels (:mod:`neuralinv.kernels._numba_kernels`) are compiled by numba on first use, not
at import, and cached on disk by numba; a later process loads them in a fraction of a second.
numba writes the cache next to the kernels' source (``kernels/__pycache__``) when that is
writable, else to ``$NUMBA_CACHE_DIR`` if set, else to a user cache directory
(``~/.cache/numba``...); with no writable location the kernel counts as unavailable.

Whenever a kernel cannot be used (numba missing, a compile or cache error, a non-CPU tensor,
n > 32, ``NEURALINV_NATIVE=0`` in the environment) :func:`kernel` returns None and a reason,
and ``auto`` answers with its torch path, recording the reason in ``Solution.stats["native"]``.

Answers that fail the kernel's certificate (and only those) are recomputed by pivoted LU
(``methods.lu``) and labelled ``lu``; the kernel's own answers are labelled
``native_closed_form`` (n <= 4) or ``native_gauss_jordan`` (5 <= n <= 32).

Threads: a batch is split over :func:`threads` threads (``torch.get_num_threads()``), and the
threads are torch's own: the kernel's C entry point (a numba ``cfunc``) runs on the team of the OpenMP
runtime torch loaded (``GOMP_parallel``; GNU libgomp in the Linux wheels, LLVM/Intel OpenMP
export the same entry), each thread claiming chunks of the batch from an atomic counter. torch's
OpenMP threads keep spinning for a while after each torch operation; a second pool beside them
would share the cores with those spinning threads (measured: the 3x3 kernel 2x slower when it
ran right after torch.linalg.inv on 2 cores, docs/performance.md attempt 65). Where no such
runtime is found (no ``/proc/self/maps``, another runtime) and in a forked child (GNU OpenMP
hangs in a child whose parent used its team; DataLoader workers, DDP), a small thread pool owned
by this module runs the shares instead (the calling thread takes one; the pool is made per
process). The kernels release the GIL either way; numba's own threading layers are not used.

This module does not import torch: the command line's streaming of a file the kernels answer
(``files.streaming``) runs them on numpy arrays in a process that never loads torch (about a
second of its start). Until torch is loaded there is no team of its to join, so the pool
runs the shares, and the thread count is what torch would choose (:func:`threads`).
"""

from __future__ import annotations

import ctypes
import importlib
import os
import re
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

#: Largest n served by a native kernel.
MAX_N = 32
#: Largest n of the closed-form kernel; Gauss-Jordan above.
CLOSED_FORM_MAX_N = 4
#: Environment switch: "0" (or "false", "off", "no") disables the native kernels.
ENV = "NEURALINV_NATIVE"
#: Status a kernel writes for a matrix whose answer failed its certificate (recomputed by LU).
FALLBACK = -1
NAMES = {"small": "native_closed_form", "gauss_jordan": "native_gauss_jordan"}
#: A batch is split over several threads only from this much work (matrices * n^3) per
#: thread: a hand-off to torch's OpenMP team costs a few microseconds, one to the fallback
#: pool tens of microseconds (docs/performance.md, attempt 65).
MIN_WORK_PER_THREAD = 1 << 16
MIN_WORK_PER_POOL_THREAD = 1 << 17
#: Work (matrices * n^3) per chunk a team thread claims; chunks are whole 64-matrix blocks.
CHUNK_WORK = 1 << 13

_lock = threading.Lock()
#: Compiled kernels and why not, per (kernel, dtype name: "float32" or "float64").
_kernels: dict[tuple[str, str], Any] = {}
_failures: dict[tuple[str, str], str] = {}
_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, workers, pool)
#: torch's OpenMP runtime's GOMP_parallel, looked up once per process: [function or None, why].
_team: list[Any] = []
_forked_child = False
#: Team entry points (address of a ``void (void *)`` cfunc) per (module, function), or why not.
_entries: dict[tuple[str, str], int | str] = {}
#: The numba CFunc objects behind those addresses (kept alive; their cache_hits tell `warm`
#: whether they were loaded from numba's cache).
_cfuncs: dict[tuple[str, str], Any] = {}

def _after_fork_in_child() -> None:
    # A fork while another thread held the lock (compiling a kernel takes seconds) would leave
    # the child's copy locked forever; the parent's pool threads do not exist in the child, and
    # GNU OpenMP's team is not usable there once the parent used it.
    global _lock, _pool, _forked_child
    _lock = threading.Lock()
    _pool = None
    _forked_child = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
#: The dtypes of the kernels, by name.
DTYPES = ("float32", "float64")


def dtype_name(dtype: Any) -> str | None:
    """"float32"/"float64" for a torch or numpy float32/float64 dtype (native byte order),
    else None."""
    name = _DTYPE_NAMES.get(dtype)  # 0.15 us instead of 0.5 (a 3x3 call asks once)
    if name is not None:
        return name
    name = str(dtype).removeprefix("torch.")
    if name in DTYPES:  # a torch dtype (this module does not import torch)
        _DTYPE_NAMES[dtype] = name
        return name
    try:
        np_dtype = np.dtype(dtype)
    except TypeError:
        return None
    return np_dtype.name if np_dtype.isnative and np_dtype.name in DTYPES else None


_NUMPY = {name: np.dtype(name) for name in DTYPES}
_DTYPE_NAMES = {np.dtype(name): name for name in DTYPES}
_DTYPE_NAMES.update({np.dtype(name).type: name for name in DTYPES})


def threads() -> int:
    """Threads a batch may use: ``torch.get_num_threads()`` once torch is loaded; before that,
    what torch would start with: ``OMP_NUM_THREADS`` when it is a positive integer, else the
    CPUs this process may run on (torch counts physical cores: on a machine with SMT this may
    be up to twice torch's count, for a process that runs nothing else)."""
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_num_threads"):
        return torch.get_num_threads()
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def disabled_by_env() -> bool:
    value = os.environ.get(ENV)
    return value is not None and value.strip().lower() in ("0", "false", "off", "no")


def disabled_reason() -> str | None:
    """Why the native kernels are off (``NEURALINV_NATIVE``), or None if they are on."""
    return f"disabled by {ENV}={os.environ.get(ENV)}" if disabled_by_env() else None


def kind(n: int) -> str:
    return "small" if n <= CLOSED_FORM_MAX_N else "gauss_jordan"


def kernel(n: int, dtype: Any, device: Any = "cpu", *, check_env: bool = True) -> tuple[Any, str]:
    """(compiled kernel, its label) for a (B, n, n) batch of ``dtype`` (torch or numpy) on
    ``device`` (a torch device or "cpu"), or (None, why not)."""
    why = disabled_reason() if check_env else None
    if why:
        return None, why
    device_type = getattr(device, "type", device)
    if device_type != "cpu":
        return None, f"no native kernel for device {device_type}"
    if not 1 <= n <= MAX_N:
        return None, f"no native kernel for n={n} (1 <= n <= {MAX_N})"
    name = dtype_name(dtype)
    if name is None:
        return None, f"no native kernel for {dtype}"
    key = (kind(n), name)
    k = _kernels.get(key)
    if k is not None:
        return k, NAMES[key[0]]
    if key in _failures:
        return None, _failures[key]
    with _lock:
        if key not in _kernels and key not in _failures:
            _build(key)
    if key in _failures:
        return None, _failures[key]
    return _kernels[key], NAMES[key[0]]


def loading():
    """Context for compiling or loading a numba kernel: SIGINT/SIGTERM/SIGHUP are held back
    until it ends (``files.deferred.signals_deferred``). LLVM calls back into Python through
    ctypes while numba loads or compiles, and Python drops an exception that a signal handler
    raises there (the command line's SIGTERM went unnoticed for the rest of the run)."""
    from ..files.deferred import signals_deferred

    return signals_deferred()


def _build(key: tuple[str, str]) -> None:
    """Import numba and the kernels, compile (or load from numba's cache) one signature."""
    name, dtype = key
    try:
        with loading():
            K = importlib.import_module(f"{__package__}._numba_kernels")
            fn = getattr(K, name)
            n = 1 if name == "small" else CLOSED_FORM_MAX_N + 1
            # numpy, not torch(...).numpy(): under a torch.func transform no tensor converts.
            A = np.zeros((0, n, n), dtype)
            fn(A, A.copy(), np.zeros((2, 0), A.dtype), np.zeros(0, np.int8), 0, 0, _EPS[A.dtype.char])
    except Exception as exc:  # ImportError, numba's TypingError/LoweringError, cache errors, ...
        _failures[key] = f"native kernel unavailable: {type(exc).__name__}: {exc}".splitlines()[0]
        return
    _kernels[key] = fn


def team_entry(module: str, function: str) -> int | str:
    """Address of the team entry point ``function`` of the numba module ``module`` (of this
    package) compiled as a ``void (void *)`` cfunc, or why there is none. Built on the first
    batch big enough for several threads, not with the kernel: the cfunc links the compiled
    kernel and optimises it again (~1 s on top of the kernel's 2-4 s); cached by numba."""
    key = (module, function)
    entry = _entries.get(key)
    if entry is None:
        with _lock:
            if key not in _entries:
                try:
                    from numba import cfunc, types

                    fn = getattr(importlib.import_module(f"{__package__}.{module}"), function)
                    with loading():
                        compiled = cfunc(types.void(types.voidptr), nogil=True, cache=True)(fn)
                    _cfuncs[key] = compiled  # its code lives as long as this object
                    _entries[key] = compiled.address
                except Exception as exc:  # as in _build
                    _entries[key] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        entry = _entries[key]
    return entry


def team_chunk(B: int, threads: int, at_least: int, multiple: int) -> int:
    """Matrices per chunk a team thread claims: about four chunks per thread, at least
    ``at_least``, a multiple of ``multiple`` (a kernel block)."""
    chunk = max(-(-B // (4 * threads)), at_least)
    return -(-chunk // multiple) * multiple


def team_runtime() -> tuple[Any, str]:
    """(GOMP_parallel of the OpenMP runtime torch loaded, its library) for this process, or
    (None, why not): what runs a batch's shares on torch's own threads."""
    if _forked_child:
        return None, "forked child: the parent's OpenMP team is not usable here"
    if not hasattr(sys.modules.get("torch"), "get_num_threads"):  # not remembered: torch
        return None, "torch is not loaded: no OpenMP team of its"  # may be loaded later
    if not _team:
        with _lock:
            if not _team:
                _team.extend(_find_team_runtime())
    return _team[0], _team[1]


def _find_team_runtime() -> tuple[Any, str]:
    try:
        with open("/proc/self/maps") as maps:
            fields = [line.split(None, 5) for line in maps]
        paths = {f[5].strip() for f in fields if len(f) == 6}
    except OSError as exc:
        return None, f"loaded libraries unknown ({exc})"
    torch_dir = os.path.dirname(sys.modules["torch"].__file__)
    found = sorted(
        (not p.startswith(torch_dir), p)
        for p in paths
        if re.match(r"lib(gomp|iomp5|omp)\b", os.path.basename(p))
    )
    for _, path in found:
        try:
            fn = ctypes.CDLL(path).GOMP_parallel
        except (OSError, AttributeError):
            continue
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        fn.restype = None
        return fn, path
    return None, "no OpenMP runtime with GOMP_parallel loaded"


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool
    pid = os.getpid()
    pool = _pool
    if pool is None or pool[0] != pid or pool[1] < workers:
        # A forked child inherits the parent's pool object but not its threads: make a new one.
        with _lock:
            pool = _pool
            if pool is None or pool[0] != pid or pool[1] < workers:
                # The old pool is left to the garbage collector, not shut down: another
                # thread may be about to submit to it.
                pool = (pid, workers, ThreadPoolExecutor(workers, "neuralinv-native"))
                _pool = pool
    return pool[2]


def outputs(shape: tuple[int, ...], n: int, dtype: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A kernel's outputs (X, cert, status) for a batch of ``shape`` of n x n matrices of
    ``dtype`` (a kernel dtype, torch or numpy): numpy arrays (numpy allocation is ~10x cheaper
    than torch.empty for tiny batches; torch.from_numpy shares them without a copy)."""
    d = _NUMPY[dtype_name(dtype)]  # a dtype object: np.empty parses a name each time
    return np.empty(shape + (n, n), d), np.empty((2,) + shape, d), np.empty(shape, np.int8)


def run(fn: Any, A: np.ndarray, X: np.ndarray, cert: np.ndarray, status: np.ndarray) -> int:
    """Run a kernel over a whole (B, n, n) batch (C-contiguous numpy arrays: A in, X, cert
    (2, B) and status (B,) out), split over threads() threads; returns how many matrices need
    the fallback."""
    B, n = A.shape[0], A.shape[-1]
    eps = _EPS[A.dtype.char]
    work = B * n**3
    count = 1 if work < 2 * MIN_WORK_PER_THREAD else min(threads(), work // MIN_WORK_PER_THREAD)
    if count <= 1:
        return int(fn(A, X, cert, status, 0, B, eps))
    parallel, _ = team_runtime()
    name = f"team_{kind(n)}_{A.dtype.name}"
    entry = team_entry("_numba_kernels", name) if parallel is not None else None
    if type(entry) is int:
        return _run_team(parallel, entry, A, X, cert, status, count, eps)
    return _run_pool(fn, A, X, cert, status, min(count, work // MIN_WORK_PER_POOL_THREAD), eps)


def _run_team(parallel, entry: int, A, X, cert, status, threads, eps) -> int:
    """The batch on ``threads`` threads of torch's OpenMP team: chunks of whole 64-matrix
    blocks, at least CHUNK_WORK each and about four per thread, claimed in turn."""
    B, n = A.shape[0], A.shape[-1]
    block = np.zeros(_TEAM_SLOTS, np.int64)  # see _numba_kernels._team_views
    block[:7] = (A.ctypes.data, X.ctypes.data, cert.ctypes.data, status.ctypes.data, B, n,
                 team_chunk(B, threads, CHUNK_WORK // n**3, 64))
    block.view(np.float64)[9] = eps
    parallel(entry, block.ctypes.data, threads, 0)  # ctypes releases the GIL
    return int(block[_TEAM_BAD])


def split(call: Any, B: int, work_per_matrix: int, min_work: int) -> list:
    """``call(start, stop)`` over matrices 0:B on the module's pool, in as many 64-aligned
    shares as threads() allows with at least ``min_work`` each (see _shares); ``call`` must
    release the GIL. The calls' results, in order."""
    parts = min(threads(), max(1, B * work_per_matrix // min_work))
    return _shares(call, B, parts if B >= 128 else 1)


def _shares(call: Any, B: int, parts: int) -> list:
    """``call(start, stop)`` on ``parts`` shares of 0:B aligned to 64 matrices (a kernel
    block), the first on the calling thread, the others on the module's pool."""
    if parts <= 1:
        return [call(0, B)]
    step = -(-B // parts // 64) * 64
    bounds = [(s, min(B, s + step)) for s in range(0, B, step)]
    pool = _executor(len(bounds) - 1)
    futures = [pool.submit(call, s, e) for s, e in bounds[1:]]
    first = call(*bounds[0])
    return [first] + [f.result() for f in futures]


def _run_pool(fn, A, X, cert, status, parts, eps) -> int:
    def share(start: int, stop: int) -> int:
        return int(fn(A, X, cert, status, start, stop, eps))

    return sum(_shares(share, A.shape[0], parts))


#: Bytes of the residual product's buffer in certificate_norms (a chunk stays in L2 for the norms).
RESIDUAL_CHUNK_BYTES = 1 << 20


def certificate_norms(A: Any, X: Any) -> tuple[Any, ...] | None:
    """``(||I - X A||_1, ||A||_1, ||X||_1)`` per matrix of two CPU float32/float64 batches of
    the same shape, as :func:`neuralinv.certify.certificate` forms them (working precision),
    without its batch-sized temporaries: the product in chunks of RESIDUAL_CHUNK_BYTES by
    torch.bmm into one buffer, every norm by the numba kernel ``norms1`` in one pass. None
    where it does not apply (other devices or dtypes, autograd, torch.func, the kernels
    disabled or unavailable); the caller then uses torch."""
    import torch  # A and X are tensors: torch is loaded

    _wrapped = torch._C._functorch.is_functorch_wrapped_tensor
    if (
        A.device.type != "cpu" or dtype_name(A.dtype) is None or X.dtype != A.dtype
        or A.shape != X.shape or A.requires_grad or X.requires_grad
        or _wrapped(A) or _wrapped(X) or disabled_by_env()
    ):
        return None
    kernels = _norms_kernels(A.dtype)
    if kernels is None:
        return None
    fn, fn_t = kernels
    n = A.shape[-1]
    B = A.numel() // (n * n)
    A3, X3 = A.reshape(B, n, n), X.reshape(B, n, n)
    num, nA, nX = (np.empty(B, dtype_name(A.dtype)) for _ in range(3))
    for M, out in ((A3, nA), (X3, nX)):
        if M.is_contiguous() or not M.mT.is_contiguous():
            fn(M.contiguous().numpy(), out, 0, B, False)
        else:  # stored column-major (torch.linalg.inv's result): no copy
            fn_t(M.mT.numpy(), out, 0, B)
    chunk = max(1, min(B, RESIDUAL_CHUNK_BYTES // (n * n * A.element_size())))
    buf = torch.empty((chunk, n, n), dtype=A.dtype)
    E = buf.numpy()
    for s in range(0, B, chunk):
        e = min(B, s + chunk)
        torch.bmm(X3[s:e], A3[s:e], out=buf[: e - s])
        fn(E, num[s:e], 0, e - s, True)
    shape = A.shape[:-2]
    return tuple(torch.from_numpy(v).reshape(shape) for v in (num, nA, nX))


def _norms_kernels(dtype: Any) -> tuple[Any, Any] | None:
    """(norms1, norms1_transposed) compiled for ``dtype`` (torch or numpy), or None."""
    key = ("norms1", dtype_name(dtype))
    if key not in _kernels and key not in _failures:
        with _lock:
            if key not in _kernels and key not in _failures:
                try:
                    with loading():
                        K = importlib.import_module(f"{__package__}._numba_kernels")
                        M = np.zeros((0, 1, 1), key[1])
                        K.norms1(M, np.zeros(0, M.dtype), 0, 0, True)
                        K.norms1_transposed(M, np.zeros(0, M.dtype), 0, 0)
                    _kernels[key] = (K.norms1, K.norms1_transposed)
                except Exception as exc:  # as in _build
                    _failures[key] = f"native kernel unavailable: {type(exc).__name__}: {exc}"
    return _kernels.get(key)


#: Mirrors _numba_kernels.TEAM_SLOTS / TEAM_BAD (checked by tests/test_native.py).
_TEAM_SLOTS = 10
_TEAM_BAD = 8
_EPS = {"f": float(np.finfo(np.float32).eps), "d": float(np.finfo(np.float64).eps)}
