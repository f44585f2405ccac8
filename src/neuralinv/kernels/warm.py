"""Compile (or load from numba's on-disk cache) every native CPU kernel ahead of first use.

The native kernels are compiled by numba the first time a process needs them and cached on
disk (:mod:`.native`); without a cache that first call pays several seconds per dtype
(docs/performance.md). :func:`warm` pays it up front, once per environment: ``neuralinv warm``
runs it, and ``make install`` runs ``neuralinv warm`` after installing. Later processes load
the cached kernels in a fraction of a second. Nothing here changes what a kernel computes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

import torch

from ..errors import InputError
from . import native

DTYPES = ("float32", "float64")
#: The kernels of one numba module each (see warm_at_once).
PARTS = ("exact", "learned")


@dataclass(frozen=True)
class Warmed:
    """One kernel of :func:`warm`: its name, dtype, how long getting it took, and whether it
    is usable (``ready``), came from numba's cache (``cached``; None when unknown) and why not
    (``detail``: the reason a kernel is unavailable, else where it lives)."""

    kernel: str
    dtype: str
    seconds: float
    ready: bool
    cached: bool | None
    detail: str


def warm(dtypes: tuple[str, ...] = DTYPES, parts: tuple[str, ...] = PARTS) -> tuple[Warmed, ...]:
    """Every native kernel of each dtype in ``dtypes`` (``"float32"``, ``"float64"``) and each
    part in ``parts``, compiled or loaded from cache, in this order per dtype: ``"exact"`` (the
    closed-form and Gauss-Jordan kernels and their team entry points, the certificate norms),
    then ``"learned"`` (the learned kernel and its team entry)."""
    unknown = [d for d in dtypes if d not in DTYPES] + [p for p in parts if p not in PARTS]
    if unknown:
        raise InputError(f"dtypes must be among {DTYPES} and parts among {PARTS}, got {unknown}")
    out: list[Warmed] = []
    for name in dtypes:
        dtype = getattr(torch, name)
        if "exact" in parts:
            for n, label in ((3, "closed forms, n <= 4"), (8, "Gauss-Jordan, 5 <= n <= 32")):
                out.append(_timed(label, name, _exact, n, dtype))
                entry = f"team_{native.kind(n)}_{name}"
                out.append(_timed(f"{label}: threaded entry", name, _entry, "_numba_kernels", entry))
            out.append(_timed("certificate norms, n >= 8", name, _norms, dtype))
        if "learned" in parts:
            out.append(_timed("learned correction models, n = 3", name, _learned, dtype))
            entry = f"team_learned3_{name}"
            out.append(_timed("learned: threaded entry", name, _entry, "_numba_learned", entry))
    return tuple(out)


def warm_at_once(dtypes: tuple[str, ...] = DTYPES, processes: int = 2) -> tuple[Warmed, ...]:
    """:func:`warm`, its parts in up to ``processes`` spawned processes at once (numba compiles
    one function at a time per process). Safe because the parts live in different numba modules:
    numba keeps one cache index per function, and two processes writing the same index would
    keep only the last one's signatures. Same rows, in the same order, as ``warm(dtypes)``."""
    warm(dtypes, ())  # the arguments' errors here, not in a child
    if processes <= 1:
        return warm(dtypes)
    with ProcessPoolExecutor(min(processes, len(PARTS)), mp_context=get_context("spawn")) as pool:
        done = [pool.submit(warm, dtypes, (part,)) for part in PARTS]
        rows = [row for future in done for row in future.result()]
    return tuple(sorted(rows, key=lambda r: dtypes.index(r.dtype)))  # stable: parts in order


def _timed(kernel: str, dtype: str, get: Callable[..., tuple[bool, bool | None, str]], *args) -> Warmed:
    start = time.perf_counter()
    ready, cached, detail = get(*args)
    return Warmed(kernel, dtype, time.perf_counter() - start, ready, cached, detail)


def _hits(dispatcher: Any) -> bool | None:
    stats = getattr(dispatcher, "stats", None)
    return None if stats is None else sum(stats.cache_hits.values()) > 0


def _exact(n: int, dtype: torch.dtype) -> tuple[bool, bool | None, str]:
    fn, label = native.kernel(n, dtype, torch.device("cpu"))
    if fn is None:
        return False, None, label
    return True, _hits(fn), label


def _entry(module: str, function: str) -> tuple[bool, bool | None, str]:
    entry = native.team_entry(module, function)
    if type(entry) is not int:
        return False, None, str(entry)
    compiled = native._cfuncs.get((module, function))
    return True, None if compiled is None else compiled.cache_hits > 0, function


def _norms(dtype: torch.dtype) -> tuple[bool, bool | None, str]:
    kernels = native._norms_kernels(dtype)
    if kernels is None:
        return False, None, native._failures.get(("norms1", native.dtype_name(dtype)), "unavailable")
    return True, _hits(kernels[0]), "norms1"


def _learned(dtype: torch.dtype) -> tuple[bool, bool | None, str]:
    from .native_learned import NativeFused

    fn, why = NativeFused.compile_for(dtype)
    if fn is None:
        return False, None, why
    return True, _hits(fn), "learned_lanes3"
