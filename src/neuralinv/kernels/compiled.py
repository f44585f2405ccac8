"""Opt-in compilation of a batch kernel (``Learned(compile=True)``): built once, never fatal.

Compiling costs seconds (docs/performance.md, 2-core CPU: 12-14 s for the first small-n kernel
in a fresh environment, 3.6 s in a later process that finds inductor's on-disk cache, under 1 s
for each further kernel then), so it is only done when a caller asks for it (``compile=True`` on
the learned method). The batch dimension is compiled dynamic, so a new batch size does not
recompile; a batch of one is padded to two, because dynamo specialises sizes 0 and 1. If
compilation fails (no C++ compiler, an unsupported device, a torch bug) the failure is recorded
and the caller runs its eager code instead. :func:`residual_norms` is the dget03 certificate
written entry by entry, for kernels that inductor fuses into one loop.
"""

from __future__ import annotations

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


def compile_kernel(
    kernel: Callable[..., tuple[Tensor, ...]],
    example: Tensor,
    *args: Tensor,
    name: str,
    options: dict | None = None,
) -> CompiledKernel:
    """``kernel(A, *args)`` compiled with a dynamic batch, warmed up on ``example`` (a batch of
    about ``_WARMUP_BATCH`` matrices of the dtype and device it will see). Not cached: the caller
    keeps the result (a learned model keeps its own).
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


def residual_norms(x: list[Tensor], a: list[Tensor], n: int) -> tuple[list[Tensor], Tensor, Tensor, Tensor]:
    """``(E, ||E||_1, ||A||_1, ||X||_1)`` with ``E = I - X A``, from row-major entry lists.

    ``E`` comes back row-major too. Sums run in the order of ``certify._entry_major_norms``:
    each product entry over i in order, then the column sums over rows, then the largest.
    """
    E: list[Tensor | None] = [None] * (n * n)
    num = norm_a = norm_x = None
    for j in range(n):
        col_e = col_a = col_x = None
        for k in range(n):
            # (X A)[k, j] accumulated over i in order, then I - (X A), as the eager certificate.
            s = x[k * n] * a[j]
            for i in range(1, n):
                s = s + x[k * n + i] * a[i * n + j]
            E[k * n + j] = 1.0 - s if k == j else -s
            e = E[k * n + j].abs()
            ak, xk = a[k * n + j].abs(), x[k * n + j].abs()
            col_e = e if col_e is None else col_e + e
            col_a = ak if col_a is None else col_a + ak
            col_x = xk if col_x is None else col_x + xk
        num = col_e if num is None else torch.maximum(num, col_e)
        norm_a = col_a if norm_a is None else torch.maximum(norm_a, col_a)
        norm_x = col_x if norm_x is None else torch.maximum(norm_x, col_x)
    return E, num, norm_a, norm_x
