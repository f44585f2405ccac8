"""``neuralinv.bench.run``: every approach at every size, same inputs, same process (the
measurement rules are in the package docstring)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ..certify import PASS_RATIO, residual_ratio
from ..kernels.compiled import describe
from .config import (
    DTYPES,
    SKIPPED_EVERYWHERE,
    BenchConfig,
    _learned,
    build,
    method_spec,
    well_conditioned,
)
from .measure import _peak_memory, _sync, machine_info


@dataclass
class Row:
    """One approach at one size. setup_s: one-off preparation before the warm-up (compilation
    for ``:compile`` methods), not part of any timing."""

    n: int
    batch: int
    approach: str
    certified: bool
    median_s: float
    matrices_per_s: float
    speedup_vs_torch: float | None
    worst_ratio: float
    passing: float
    statuses: dict[str, int]
    peak_bytes: int | None
    times_s: list[float] = field(default_factory=list)
    setup_s: float | None = None


@dataclass
class BenchResult:
    config: dict
    machine: dict
    rows: list[Row]
    notes: list[str]

    def to_json(self) -> dict:
        return {
            "schema": "neuralinv.bench/1",
            "config": self.config,
            "machine": self.machine,
            "rows": [asdict(r) for r in self.rows],
            "notes": self.notes,
        }


@dataclass
class _Approach:
    name: str
    certified: bool
    run: Callable[[], Any]
    # Turns what run() returned into (worst ratio, pass fraction, status counts).
    score: Callable[[Any], tuple[float, float, dict[str, int]]]
    # Run once before the warm-up and timed separately (compilation).
    prepare: Callable[[], Any] | None = None


def _score_inverse(A: torch.Tensor) -> Callable[[Any], tuple[float, float, dict[str, int]]]:
    def score(X) -> tuple[float, float, dict[str, int]]:
        Xt = torch.as_tensor(X, device=A.device)
        r = residual_ratio(A, Xt)
        finite = torch.isfinite(r)
        worst = float(r[finite].max()) if bool(finite.any()) else float("nan")
        return worst, float((r < PASS_RATIO).double().mean()), {}

    return score


def _score_solution(sol) -> tuple[float, float, dict[str, int]]:
    r = torch.as_tensor(sol.residual)
    finite = torch.isfinite(r)
    worst = float(r[finite].max()) if bool(finite.any()) else float("nan")
    return worst, float(torch.as_tensor(sol.ok).double().mean()), sol.counts()


def _score_partial(A: torch.Tensor):
    inner = _score_inverse(A)

    def score(part) -> tuple[float, float, dict[str, int]]:
        worst, passing, _ = inner(part.inverse)
        return worst, passing, {}

    return score


def _not_applicable(method, A: torch.Tensor) -> str | None:
    """Why ``method`` cannot take the batch A (``Method.supports``), or None when it can."""
    n = A.shape[-1]
    if method.supports(n, A.dtype, A.device):
        return None
    return f"{method.name} does not take {n}x{n} {str(A.dtype).removeprefix('torch.')} matrices on {A.device.type}"


def _uses_native(method: Any) -> bool:
    from ..methods.auto import Auto

    return type(method) is Auto and not method.spd


def _load_native(A: torch.Tensor) -> None:
    from ..kernels import native

    native.kernel(A.shape[-1], A.dtype, A.device)


def approaches_for(
    A: torch.Tensor, config: BenchConfig, extra: dict[str, Any], skipped: list[str] | None = None
) -> list[_Approach]:
    """The approaches benchmarked at one size, references first. Methods that cannot take
    this size are left out, each with a line in ``skipped`` saying why."""
    n = A.shape[-1]
    out: list[_Approach] = []
    if "torch.linalg.inv" in config.references:
        out.append(
            _Approach("torch.linalg.inv", False, lambda: torch.linalg.inv(A), _score_inverse(A))
        )
    if "numpy.linalg.inv" in config.references:
        A_np = A.cpu().numpy()
        out.append(
            _Approach("numpy.linalg.inv", False, lambda: np.linalg.inv(A_np), _score_inverse(A))
        )
    # A learned spec comes built, in extra (run() builds it from config.model).
    methods = [(spec, build(spec)) for spec in config.methods if spec not in extra]
    for label, method in methods + list(extra.items()):
        why = _not_applicable(method, A)
        if why is not None:
            if skipped is not None:
                skipped.append(f"n={n}: {label} skipped: {why}")
            continue
        # A compiled method compiles on its first call: done here, on two matrices (the
        # batch dimension is dynamic), so that neither the memory peak nor a timing sees it.
        prepare = (lambda m=method: m.invert(A[:2])) if getattr(method, "compile", False) else None
        if prepare is None and _uses_native(method):
            # auto's native kernel compiles (or loads from numba's cache) on first use: done
            # here, so that setup_s reports it and no timing sees it.
            prepare = lambda: _load_native(A)  # noqa: E731
        elif prepare is None and getattr(method, "_natives", None):
            # the default learned path's numba kernel (and its threaded entry) likewise: one
            # call on the whole batch, so that setup_s has the load and the peak does not.
            prepare = lambda m=method: m.invert(A)  # noqa: E731
        out.append(_Approach(label, True, lambda m=method: m.invert(A), _score_solution, prepare))
        if config.alone:

            def alone(m=method):
                with torch.no_grad():
                    return m.kernel(A)

            out.append(_Approach(f"{label}:alone", False, alone, _score_partial(A), prepare))
    return out


#: Approaches timed in rounds of their own, after the interleaved ones (see the note in run).
OWN_ROUNDS = frozenset({"numpy.linalg.inv"})


def run(
    config: BenchConfig,
    *,
    extra: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Benchmark every approach at every size. ``extra`` maps labels to Method objects (for
    example a learned method built from a trained model) benchmarked next to the named ones."""
    extra = dict(extra or {})
    device = torch.device(config.device)
    dtype = DTYPES[config.dtype]
    learned = None
    if config.model is not None:
        from ..methods.learned import Learned

        learned = Learned(model=config.model)
        learned.model.to(device)  # where the batches are: predict never moves the model itself
        specs = [(spec, method_spec(spec)[1]) for spec in config.methods if _learned(spec)]
        for spec, opts in specs or [("learned", {})]:
            extra[spec] = Learned(model=learned.model, **opts) if opts else learned
    rows: list[Row] = []
    notes = [
        "times are medians over repeats after one warm-up call; speedup_vs_torch is the median "
        "of per-round ratios (same round, same inputs) against torch.linalg.inv",
        "peak_bytes: CUDA max_memory_allocated growth on GPU; on CPU the sampled growth of the "
        "resident set (indicative: allocator reuse hides memory freed by earlier approaches)",
        "numpy.linalg.inv is timed in its own rounds after the others (its speedup is the ratio "
        "of medians): its OpenBLAS threads keep spinning after each call and slowed whatever "
        "ran next on the same cores (torch.linalg.inv of 100,000 4x4 matrices 5.3 -> 11 ms on "
        "2 cores, docs/performance.md attempt 66)",
        "setup_s: one-off preparation before the warm-up, i.e. compilation for NAME:compile "
        "(seconds; the first approach of a kernel pays it, later ones find it built)",
    ]
    ran: set[str] = set()
    for n in config.sizes:
        batch = max(1, min(config.batch, config.max_elements // (n * n)))
        if batch < config.batch:
            notes.append(f"n={n}: batch capped at {batch} (max_elements={config.max_elements})")
        # The sizes the learned method takes (its model's n) get matrices of its region.
        if learned is not None and learned.supports(n, dtype, device):
            region = learned.model.region
            g = torch.Generator().manual_seed(config.seed + 1000 * n)
            A = region.sample(batch, generator=g).to(dtype=dtype, device=config.device)
            notes.append(f"n={n}: inputs sampled from the model's region {region!r}")
        else:
            A = well_conditioned(batch, n, dtype=dtype, device=config.device, seed=config.seed)
        skipped: list[str] = []
        approaches = approaches_for(A, config, extra, skipped)
        notes.extend(skipped)
        if progress:
            for line in skipped:
                progress(line)
            progress(
                f"n={n}: batch {batch}, {len(approaches)} approaches, {config.repeats} repeats"
            )
        scores, peaks, setup = {}, {}, {}
        for ap in approaches:
            if ap.prepare is not None:
                t0 = time.perf_counter()
                ap.prepare()
                _sync(device)
                setup[ap.name] = time.perf_counter() - t0
                if progress and setup[ap.name] > 0.1:
                    progress(f"n={n}: {ap.name} prepared (compiled or loaded) in {setup[ap.name]:.1f} s")
            # Warm-up (not timed), which also gives the answer we score and the memory peak.
            holder: dict[str, Any] = {}

            def first(ap=ap, holder=holder):
                holder["out"] = ap.run()
                _sync(device)

            try:
                peaks[ap.name] = _peak_memory(first, device)
            except RuntimeError as exc:  # e.g. torch's own batched CPU LU, n >= ~150, 2 threads
                notes.append(f"n={n}: {ap.name} failed and is left out: {describe(exc)}")
                if progress:
                    progress(notes[-1])
                continue
            scores[ap.name] = ap.score(holder.pop("out"))
        approaches = [ap for ap in approaches if ap.name in scores]
        ran.update(ap.name for ap in approaches)
        times: dict[str, list[float]] = {ap.name: [] for ap in approaches}
        # Interleaved rounds for all but the OWN_ROUNDS approaches, which run after them.
        shared = [ap for ap in approaches if ap.name not in OWN_ROUNDS]
        for group in (shared, *([ap] for ap in approaches if ap.name in OWN_ROUNDS)):
            for rep in range(config.repeats if group else 0):
                k = rep % len(group)
                for ap in group[k:] + group[:k]:
                    _sync(device)
                    t0 = time.perf_counter()
                    ap.run()
                    _sync(device)
                    times[ap.name].append(time.perf_counter() - t0)
        ref = times.get("torch.linalg.inv")
        for ap in approaches:
            ts = times[ap.name]
            med = float(np.median(ts))
            if ref is None:
                speedup = None
            elif ap.name in OWN_ROUNDS:  # other rounds: the ratio of the medians
                speedup = float(np.median(ref)) / med if med > 0 else float("inf")
            else:
                speedup = float(np.median([r / t for r, t in zip(ref, ts)]))
            worst, passing, statuses = scores[ap.name]
            rows.append(
                Row(
                    n=n,
                    batch=batch,
                    approach=ap.name,
                    certified=ap.certified,
                    median_s=med,
                    matrices_per_s=batch / med if med > 0 else float("inf"),
                    speedup_vs_torch=speedup,
                    worst_ratio=worst,
                    passing=passing,
                    statuses=statuses,
                    peak_bytes=peaks[ap.name],
                    times_s=ts,
                    setup_s=setup.get(ap.name),
                )
            )
        del A
    never = [spec for spec in dict.fromkeys(config.methods) if spec not in ran]
    if never:
        notes.append(f"{SKIPPED_EVERYWHERE}{', '.join(never)} (see the n=... lines for why)")
    cfg = asdict(config)
    return BenchResult(config=cfg, machine=machine_info(config.device), rows=rows, notes=notes)
