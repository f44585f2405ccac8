"""Invert a matrix file of any size chunk by chunk, with memory bounded by the chunk size.

:func:`invert_file` reads ``(k, n, n)`` chunks (:mod:`neuralinv.files.reading`), inverts and
certifies each with one resolved method (so a learned model is loaded once), appends the inverses
to an atomic :class:`~neuralinv.files.writing.MatrixWriter`, and folds per-chunk results into a :class:`StreamResult`:
status and method counts, the worst residual ratio, and, against a target file, MAE, MSE and R2.

The default method (``"auto"`` with no options) first gives each chunk to the native kernels
directly, on the numpy arrays the reader made (:func:`_native_chunk`); a chunk whose every
answer they certify needs nothing else, and a process whose chunks are all like that never
imports torch (about a second of the command line's start: docs/performance.md, attempt 77).
Any other chunk (a matrix not OK, no kernel for its n or dtype) is inverted by ``auto``
itself, torch and all, so the results are those of ``neuralinv.invert`` either way.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..kernels import native
from ..solution import Solution, Status
from .paths import DEFAULT_CHUNK, check_output_path
from .reading import open_matrices, paired_chunks
from .writing import MatrixWriter


@dataclass(frozen=True)
class TargetMetrics:
    """Errors of the computed inverses against given ones, over all entries of the matrices
    where both are finite (R2 over the flattened entries, as scikit-learn's ``r2_score`` on
    flattened arrays; the convention of :mod:`neuralinv.evaluation.metrics`)."""

    compared: int  # matrices compared
    skipped: int  # matrices left out: a non-finite computed or target inverse
    mae: float
    mse: float
    r2: float


class _ErrorMoments:
    """Streaming sums for MAE/MSE and the target's variance (Chan et al.'s pairwise merge, so
    10^7 matrices lose no accuracy to a naive sum of squares)."""

    def __init__(self) -> None:
        self.matrices = self.skipped = 0
        self.entries = 0
        self.abs_sum = self.sq_sum = 0.0
        self.mean = self.m2 = 0.0

    def add(self, X: np.ndarray, T: np.ndarray) -> None:
        X = X.astype(np.float64, copy=False)
        T = T.astype(np.float64, copy=False)
        fin = np.isfinite(X).all(axis=(1, 2)) & np.isfinite(T).all(axis=(1, 2))
        self.skipped += int((~fin).sum())
        if not fin.any():
            return
        X, T = X[fin], T[fin]
        self.matrices += X.shape[0]
        d = X - T
        self.abs_sum += float(np.abs(d).sum())
        self.sq_sum += float((d * d).sum())
        k = T.size
        mean_b = float(T.mean())
        m2_b = float(((T - mean_b) ** 2).sum())
        total = self.entries + k
        delta = mean_b - self.mean
        self.m2 += m2_b + delta * delta * self.entries * k / total
        self.mean += delta * k / total
        self.entries = total

    def result(self) -> TargetMetrics:
        if self.entries == 0:
            nan = float("nan")
            return TargetMetrics(0, self.skipped, nan, nan, nan)
        mse = self.sq_sum / self.entries
        r2 = 1.0 - self.sq_sum / self.m2 if self.m2 > 0 else float("nan")
        return TargetMetrics(self.matrices, self.skipped, self.abs_sum / self.entries, mse, r2)


@dataclass(frozen=True)
class StreamResult:
    """What :func:`invert_file` did, summed over all chunks."""

    count: int
    n: int | None
    chunks: int
    status_counts: dict[str, int] = field(default_factory=dict)
    method_counts: dict[str, int] = field(default_factory=dict)
    worst_residual: float = float("nan")  # largest finite dget03 ratio
    first_not_ok: int | None = None  # index of the first matrix whose status is not OK
    metrics: TargetMetrics | None = None
    compiled: int = 0  # matrices in chunks a compiled kernel answered (compile=True)
    fused: int = 0  # of those, settled inside the fused learned kernel
    compile_error: str | None = None  # why a compiled kernel could not be used, if it could not

    @property
    def all_ok(self) -> bool:
        return self.first_not_ok is None


def invert_file(
    input: str | Path,
    output: str | Path,
    *,
    method: Any = "auto",
    target: str | Path | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    on_progress: Callable[[int, int | None], None] | None = None,
    **options: Any,
) -> StreamResult:
    """Invert every matrix of ``input`` into ``output`` (formats by extension), chunk by chunk.

    ``method``/``options`` are as for :func:`neuralinv.invert` (a name, a Method, a trained
    model); ``target``: a file of reference inverses to score against. ``on_progress(done,
    total)`` is called after each chunk (``total`` is None when unknown before reading, .mx).
    The output appears only if every chunk succeeded (atomic write).
    """
    check_output_path(output)  # before any work: a directory or a missing folder says so
    default = isinstance(method, str) and method == "auto" and not options
    inverter = None if default else _resolve(method, options)
    src = open_matrices(input)
    chunks = (
        ((a, None) for a in src.chunks(chunk_size))
        if target is None
        else paired_chunks(src, open_matrices(target), chunk_size)
    )
    status: Counter[str] = Counter()
    methods: Counter[str] = Counter()
    moments = _ErrorMoments() if target is not None else None
    worst = -math.inf
    first_not_ok = None
    done = nchunks = compiled = fused = 0
    compile_error = None
    n = None
    with MatrixWriter(output, shape=src.shape) as out:
        for A, T in chunks:
            sol = _native_chunk(A) if default else None
            if sol is None:
                inverter = inverter or _resolve(method, options)
                sol = inverter.invert(A)
            out.write(sol.inverse)
            status.update(sol.counts())
            methods.update(sol.method_counts())
            chunk_worst = sol.worst_residual
            if not math.isnan(chunk_worst):
                worst = max(worst, chunk_worst)
            if first_not_ok is None:
                bad = np.flatnonzero(np.asarray(sol.status) != int(Status.OK))
                if bad.size:
                    first_not_ok = done + int(bad[0])
            if moments is not None:
                moments.add(np.asarray(sol.inverse), T)
            if sol.stats.get("compiled"):
                compiled += A.shape[0]
            fused += int(sol.stats.get("fused", 0))
            compile_error = compile_error or sol.stats.get("compile_error")
            n = A.shape[-1]
            done += A.shape[0]
            nchunks += 1
            if on_progress is not None:
                on_progress(done, src.count)
    return StreamResult(
        count=done,
        n=n,
        chunks=nchunks,
        status_counts=dict(status),
        method_counts=dict(methods),
        worst_residual=worst if worst > -math.inf else float("nan"),
        first_not_ok=first_not_ok,
        metrics=None if moments is None else moments.result(),
        compiled=compiled,
        fused=fused,
        compile_error=compile_error,
    )


def _resolve(method: Any, options: dict[str, Any]) -> Any:
    from ..methods import resolve  # imports torch

    return resolve(method, **options)


def _native_chunk(A: np.ndarray) -> Solution | None:
    """``auto``'s answer to a (k, n, n) chunk when the native kernel certifies all of it, from
    numpy arrays and without torch; None when it does not apply or some answer is not OK (the
    caller then runs ``auto``, which recomputes those by LU and certifies them)."""
    if A.ndim != 3 or A.shape[0] == 0 or native.disabled_by_env():
        return None
    fn, label = native.kernel(A.shape[-1], A.dtype)
    if fn is None:
        return None
    A = np.ascontiguousarray(A)
    if not A.flags.writeable:  # a read-only array is another signature for numba: a compile
        A = A.copy()
    B = A.shape[0]
    X, cert, status = native.outputs((B,), A.shape[-1], A.dtype)
    if native.run(fn, A, X, cert, status) or np.count_nonzero(status):
        return None
    return Solution.native(X, status, cert[0], cert[1], label, (B,))
