"""Opt-in compilation of a batch kernel: built once per (kernel, n, dtype, device), never fatal.

Compiling costs seconds (docs/performance.md, 2-core CPU: 12-14 s for the first small-n kernel
in a fresh environment, 3.6 s in a later process that finds inductor's on-disk cache, under 1 s
for each further kernel then), so it is only done when a caller asks for it (``compile=True`` on
a method). The batch dimension is
compiled dynamic, so a new batch size does not recompile; a batch of one is padded to two,
because dynamo specialises sizes 0 and 1. If compilation fails (no C++ compiler, an unsupported
device, a torch bug) the failure is recorded and the caller runs its eager code instead.
"""

from __future__ import annotations

import functools
import time
import types
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

#: compile_threads: inductor otherwise starts a pool of compile worker processes; on a 2-core
#: machine their start-up competed with the caller's own work for seconds after the first call
#: (measured: torch.linalg.inv 1.2e6 instead of 1.7e7 3x3 matrices/s right after a compile).
#: cpp.enable_tiling_heuristics: the heuristic refuses to vectorise loops with the strided
#: (stride n*n) reads of a (B, n, n) batch; vectorised anyway (AVX-512 here) the n = 3 and 4
#: kernels ran 20-30% faster, n = 2 the same, with bit-identical results (docs/performance.md).
_OPTIONS = {"compile_threads": 1, "cpp.enable_tiling_heuristics": False}

#: Matrices in the warm-up batch that triggers compilation. Inductor sizes its loops by the
#: first batch it sees: from a batch of 2 it emitted a single-threaded loop (4.8e7 3x3/s), from
#: 8,192 an OpenMP-parallel one (9.4e7/s on 2 threads). It also decides by the thread count at
#: compile time (torch.get_num_threads()), which is part of inductor's cache key.
_WARMUP_BATCH = 8192


@dataclass(frozen=True)
class CompiledKernel:
    """A kernel compiled for one (n, dtype, device), or the reason it could not be.

    compiled:  whether ``fn`` is the compiled kernel.
    reason:    why compilation failed (None if it did not).
    compile_s: seconds spent building it (once per process).
    args:      fixed tensor arguments passed after the batch on every call (weights).
    """

    fn: Callable[..., tuple[Tensor, ...]]
    compiled: bool
    reason: str | None
    compile_s: float
    args: tuple[Tensor, ...] = ()

    def __call__(self, A: Tensor) -> tuple[tuple[Tensor, ...] | None, str | None]:
        """``(outputs, None)``, or ``(None, reason)`` if the compiled kernel failed on A."""
        if not self.compiled:
            return None, self.reason
        A = A.contiguous()
        pad = A.shape[0] == 1
        try:
            with torch.no_grad():
                out = self.fn(A.expand(2, *A.shape[1:]).contiguous() if pad else A, *self.args)
        except Exception as exc:  # a failed recompile must not lose the caller's answer
            return None, describe(exc)
        return (tuple(o[:1] for o in out) if pad else out), None


@functools.cache
def compiled_kernel(
    kernel: Callable[[Tensor], tuple[Tensor, ...]], n: int, dtype: torch.dtype, device: torch.device
) -> CompiledKernel:
    """``kernel`` compiled for (B, n, n) batches of ``dtype`` on ``device`` (any B), warmed up."""
    example = torch.eye(n, dtype=dtype, device=device).repeat(_WARMUP_BATCH, 1, 1)
    return compile_kernel(kernel, example, name=f"{kernel.__name__}_n{n}")


def compile_kernel(
    kernel: Callable[..., tuple[Tensor, ...]],
    example: Tensor,
    *args: Tensor,
    name: str,
    options: dict | None = None,
) -> CompiledKernel:
    """``kernel(A, *args)`` compiled with a dynamic batch, warmed up on ``example`` (a batch of
    about ``_WARMUP_BATCH`` matrices of the dtype and device it will see). Not cached: the caller
    keeps the result (``compiled_kernel`` caches per key; a learned model keeps its own).
    ``options``: inductor options added to ``_OPTIONS``."""
    start = time.perf_counter()
    try:
        # A private code object per kernel: dynamo keeps compiled variants per code object and
        # stops compiling one after recompile_limit (8) variants, which n x dtype x device (or
        # several models' kernels made by one factory) would reach.
        code = kernel.__code__.replace(co_name=name)
        copy = types.FunctionType(
            code, kernel.__globals__, name, kernel.__defaults__, kernel.__closure__
        )
        fn = torch.compile(copy, dynamic=True, options={**_OPTIONS, **(options or {})})
        with torch.no_grad():
            fn(example, *args)
    except Exception as exc:  # no compiler, unsupported device, ...: the caller runs eagerly
        return CompiledKernel(kernel, False, describe(exc), time.perf_counter() - start, args)
    return CompiledKernel(fn, True, None, time.perf_counter() - start, args)


def describe(exc: Exception) -> str:
    """The first line of an exception, with its type, at most 300 characters."""
    text = f"{type(exc).__name__}: {exc}".strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:300]
