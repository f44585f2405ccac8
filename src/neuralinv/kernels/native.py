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

Threads: the kernels release the GIL; a batch is split over ``torch.get_num_threads()``
threads of a small thread pool owned by this module (the calling thread takes one share), so
the thread count follows torch's setting and nothing runs on top of torch's own threads. numba's
own threading layers are not used, so its fork restrictions do not apply; the pool is created
per process (a forked child, e.g. a DataLoader worker, makes its own on first use).
"""

from __future__ import annotations

import importlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

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
#: thread: a hand-off to the pool costs tens of microseconds (docs/performance.md).
MIN_WORK_PER_THREAD = 1 << 17

_lock = threading.Lock()
_kernels: dict[tuple[str, torch.dtype], Any] = {}
_failures: dict[tuple[str, torch.dtype], str] = {}
_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, workers, pool)


def _after_fork_in_child() -> None:
    # A fork while another thread held the lock (compiling a kernel takes seconds) would leave
    # the child's copy locked forever; the parent's pool threads do not exist in the child.
    global _lock, _pool
    _lock = threading.Lock()
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
_DTYPES = (torch.float32, torch.float64)


def disabled_by_env() -> bool:
    value = os.environ.get(ENV)
    return value is not None and value.strip().lower() in ("0", "false", "off", "no")


def kind(n: int) -> str:
    return "small" if n <= CLOSED_FORM_MAX_N else "gauss_jordan"


def kernel(
    n: int, dtype: torch.dtype, device: torch.device, *, check_env: bool = True
) -> tuple[Any, str]:
    """(compiled kernel, its label) for a (B, n, n) batch, or (None, why not)."""
    if check_env and disabled_by_env():
        return None, f"disabled by {ENV}={os.environ.get(ENV)}"
    if device.type != "cpu":
        return None, f"no native kernel for device {device.type}"
    if not 1 <= n <= MAX_N:
        return None, f"no native kernel for n={n} (1 <= n <= {MAX_N})"
    if dtype not in _DTYPES:
        return None, f"no native kernel for {dtype}"
    key = (kind(n), dtype)
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


def _build(key: tuple[str, torch.dtype]) -> None:
    """Import numba and the kernels, compile (or load from numba's cache) one signature."""
    name, dtype = key
    try:
        K = importlib.import_module(f"{__package__}._numba_kernels")
        fn = getattr(K, name)
        n = 1 if name == "small" else CLOSED_FORM_MAX_N + 1
        # numpy, not torch(...).numpy(): under a torch.func transform no tensor converts.
        A = np.zeros((0, n, n), dtype=np.float32 if dtype == torch.float32 else np.float64)
        fn(A, A.copy(), np.zeros((2, 0), A.dtype), np.zeros(0, np.int8), 0, 0, _EPS[A.dtype.char])
    except Exception as exc:  # ImportError, numba's TypingError/LoweringError, cache errors, ...
        _failures[key] = f"native kernel unavailable: {type(exc).__name__}: {exc}".splitlines()[0]
        return
    _kernels[key] = fn


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


def run(fn: Any, A: np.ndarray, X: np.ndarray, cert: np.ndarray, status: np.ndarray) -> int:
    """Run a kernel over a whole (B, n, n) batch (C-contiguous numpy arrays: A in, X, cert
    (2, B) and status (B,) out), split over torch.get_num_threads() threads; returns how many
    matrices need the fallback."""
    B, n = A.shape[0], A.shape[-1]
    eps = _EPS[A.dtype.char]
    parts = min(torch.get_num_threads(), max(1, (B * n**3) // MIN_WORK_PER_THREAD))
    if parts <= 1:
        return int(fn(A, X, cert, status, 0, B, eps))
    # Shares aligned to 64 matrices (a kernel block), the first one for the calling thread.
    step = -(-B // parts // 64) * 64
    bounds = [(s, min(B, s + step)) for s in range(0, B, step)]
    pool = _executor(len(bounds) - 1)
    futures = [pool.submit(fn, A, X, cert, status, s, e, eps) for s, e in bounds[1:]]
    bad = int(fn(A, X, cert, status, *bounds[0], eps))
    return bad + sum(int(f.result()) for f in futures)


_EPS = {"f": float(np.finfo(np.float32).eps), "d": float(np.finfo(np.float64).eps)}
