"""Throughput, accuracy and memory of every method next to torch.linalg.inv and numpy.linalg.inv.

Everything is measured in one process on the same inputs: each size gets one batch of
well-conditioned matrices, every approach is warmed up once (not timed), then timed for
``repeats`` rounds. Within a round the approaches run back to back in a rotating order, so the
speed-up of an approach over torch.linalg.inv is the median of per-round ratios: on a shared
machine both sides of a ratio then see the same load. GPU timings synchronise the device.

Approaches:
  ``torch.linalg.inv``, ``numpy.linalg.inv`` (references, uncertified);
  ``<method>`` (the full certified path, ``Method.invert``: validation, certificate, labels);
  ``<method>:compile`` (the same with ``compile=True``, for methods that have that option,
  i.e. ``learned``; the compilation is done before the warm-up and reported as ``setup_s``,
  never timed);
  ``<method>:alone`` (the method's kernel only, ``Method.kernel``, no certificate, except for
  a kernel that computes it as part of its answer).
The methods are those of the registry (``neuralinv.methods.METHODS``); a method is left out of
the sizes it does not take (``Method.supports``).
"""

from __future__ import annotations

import math
import os
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ._validate import int_at_least, one_of, random_seed
from .certify import PASS_RATIO, residual_ratio
from .errors import InputError
from .kernels.compiled import describe

REFERENCES = ("torch.linalg.inv", "numpy.linalg.inv")
DEFAULT_SIZES = (2, 3, 4, 8, 16, 32, 64, 128)
DEFAULT_METHODS = ("auto", "closed_form", "lu")
#: The note that names the requested methods that ran at no size at all.
SKIPPED_EVERYWHERE = "requested but benchmarked at no size: "
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class BenchConfig:
    """What to benchmark.

    batch:        matrices per size, capped so that one batch holds at most ``max_elements``
                  numbers (n = 128 at batch 100,000 would be 6.6 GB per copy); the table
                  reports the batch actually used.
    methods:      registered method names, each built with its defaults (a method that needs
                  arguments is passed built, ``run(extra=...)``); a method is left out of the
                  sizes it does not take (``Method.supports``: closed_form for n > 4).
    alone:        also time each method's kernel without the certificate.
    repeats:      timed rounds per size (after one warm-up round); the median is reported.
    model:        a trained model (directory or ``builtin:NAME``): adds the certified
                  ``learned`` method, and at the model's size every approach gets matrices
                  sampled from the model's region (in-region input) instead. With a model,
                  ``methods`` may name ``learned`` and ``learned:compile`` to choose which.
    """

    sizes: tuple[int, ...] = DEFAULT_SIZES
    batch: int = 100_000
    dtype: str = "float32"
    device: str = "cpu"
    methods: tuple[str, ...] = DEFAULT_METHODS
    alone: bool = True
    references: tuple[str, ...] = REFERENCES
    repeats: int = 5
    max_elements: int = 1 << 26
    seed: int = 0
    model: str | None = None

    def __post_init__(self):
        if not self.sizes:
            raise InputError("sizes must name at least one matrix size")
        for n in self.sizes:
            int_at_least("size", n, 1)
        int_at_least("batch", self.batch, 1)
        int_at_least("repeats", self.repeats, 1)
        int_at_least("max_elements", self.max_elements, 1)
        random_seed("seed", self.seed)
        one_of("dtype", self.dtype, tuple(DTYPES))
        for spec in self.methods:
            if not (_learned(spec) and self.model is not None):
                build(spec)
        for ref in self.references:
            one_of("reference", ref, REFERENCES)
        try:
            dev = torch.device(self.device)
        except RuntimeError as exc:
            raise InputError(f"device {self.device!r} is not a torch device: {exc}") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise InputError(f"device {self.device!r} requested but CUDA is not available")


def method_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"auto"`` -> ("auto", {}); ``"learned:compile"`` -> ("learned", {"compile": True})."""
    from .methods import METHODS, with_option

    name, _, suffix = spec.partition(":")
    if name not in METHODS:
        raise InputError(
            f"unknown method {name!r} in methods; valid: {', '.join(sorted(METHODS))} "
            "(optionally NAME:compile)"
        )
    if not suffix:
        return name, {}
    if suffix != "compile":
        raise InputError(f"methods: {spec!r}: the only suffix is ':compile' (e.g. learned:compile)")
    if name not in with_option("compile"):
        raise InputError(f"methods: {spec!r}: method {name!r} has no compile option")
    return name, {"compile": True}


def _learned(spec: str) -> bool:
    return method_spec(spec)[0] == "learned"


def build(spec: str):
    """The method a spec names, built with its defaults (and ``compile=True`` for
    ``NAME:compile``), or an InputError saying why it cannot be built from a name alone."""
    from .methods import resolve

    name, options = method_spec(spec)
    try:
        return resolve(name, **options)
    except InputError as exc:
        raise InputError(
            f"method {name!r} needs a model or other arguments, so it cannot be benchmarked by "
            f"name alone ({exc}); give learned a model (--model), or pass the method as an "
            "object to neuralinv.bench.run(extra=...)"
        ) from None


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


def well_conditioned(batch: int, n: int, *, dtype: torch.dtype, device: str, seed: int):
    """``2.5 I + G / sqrt(n)``, G standard normal: singular values mostly within 0.5 .. 4.5
    (the spectrum of G / sqrt(n) fills the unit disc), so cond_2 is typically below 10."""
    g = torch.Generator().manual_seed(seed + 1000 * n)
    A = torch.randn(batch, n, n, generator=g, dtype=torch.float64) / math.sqrt(n)
    A.diagonal(dim1=-2, dim2=-1).add_(2.5)
    return A.to(dtype=dtype, device=device)


def machine_info(device: str) -> dict:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": device,
    }
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _RssPeak:
    """Peak resident-set growth during a call, sampled from /proc/self/statm every 0.2 ms.

    Indicative only: memory the allocator reuses from earlier frees does not show up, and a
    spike shorter than the sampling interval can be missed.
    """

    def __init__(self):
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._peak = 0
        self._stop = threading.Event()

    @staticmethod
    def available() -> bool:
        return os.path.exists("/proc/self/statm")

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def measure(self, fn: Callable[[], Any]) -> int:
        base = self._rss()
        self._peak = base

        def sample():
            while not self._stop.is_set():
                self._peak = max(self._peak, self._rss())
                time.sleep(0.0002)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        try:
            fn()
        finally:
            self._stop.set()
            t.join()
            self._stop.clear()
        return max(0, max(self._peak, self._rss()) - base)


def _peak_memory(fn: Callable[[], Any], device: torch.device) -> int | None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before)
    if not _RssPeak.available():
        return None
    return _RssPeak().measure(fn)


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
    from .methods.auto import Auto

    return type(method) is Auto and not method.spd


def _load_native(A: torch.Tensor) -> None:
    from .kernels import native

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
        out.append(_Approach(label, True, lambda m=method: m.invert(A), _score_solution, prepare))
        if config.alone:

            def alone(m=method):
                with torch.no_grad():
                    return m.kernel(A)

            out.append(_Approach(f"{label}:alone", False, alone, _score_partial(A), prepare))
    return out


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
    region = None
    if config.model is not None:
        from .methods.learned import Learned

        learned = Learned(model=config.model)
        learned.model.to(device)  # where the batches are: predict never moves the model itself
        specs = [(spec, method_spec(spec)[1]) for spec in config.methods if _learned(spec)]
        for spec, opts in specs or [("learned", {})]:
            extra[spec] = Learned(model=learned.model, **opts) if opts else learned
        region = (learned.model.n, learned.model.region)
    rows: list[Row] = []
    notes = [
        "times are medians over repeats after one warm-up call; speedup_vs_torch is the median "
        "of per-round ratios (same round, same inputs) against torch.linalg.inv",
        "peak_bytes: CUDA max_memory_allocated growth on GPU; on CPU the sampled growth of the "
        "resident set (indicative: allocator reuse hides memory freed by earlier approaches)",
        "setup_s: one-off preparation before the warm-up, i.e. compilation for NAME:compile "
        "(seconds; the first approach of a kernel pays it, later ones find it built)",
    ]
    ran: set[str] = set()
    for n in config.sizes:
        batch = max(1, min(config.batch, config.max_elements // (n * n)))
        if batch < config.batch:
            notes.append(f"n={n}: batch capped at {batch} (max_elements={config.max_elements})")
        if region is not None and region[0] == n:
            g = torch.Generator().manual_seed(config.seed + 1000 * n)
            A = region[1].sample(batch, generator=g).to(dtype=dtype, device=config.device)
            notes.append(f"n={n}: inputs sampled from the model's region {region[1]!r}")
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
                    progress(f"n={n}: {ap.name} prepared (compiled) in {setup[ap.name]:.1f} s")
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
        for rep in range(config.repeats):
            k = rep % len(approaches)
            for ap in approaches[k:] + approaches[:k]:
                _sync(device)
                t0 = time.perf_counter()
                ap.run()
                _sync(device)
                times[ap.name].append(time.perf_counter() - t0)
        ref = times.get("torch.linalg.inv")
        for ap in approaches:
            ts = times[ap.name]
            med = float(np.median(ts))
            speedup = (
                float(np.median([r / t for r, t in zip(ref, ts)])) if ref is not None else None
            )
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


def rich_table(result: BenchResult):
    """The result as a rich Table (the CLI prints it)."""
    from rich.table import Table

    cfg = result.config
    table = Table(
        title=(
            f"neuralinv bench: {cfg['dtype']} on {cfg['device']}, {result.machine['torch_threads']} "
            f"threads, median of {cfg['repeats']}"
        )
    )
    for col in (
        "n",
        "batch",
        "approach",
        "matrices/s",
        "x torch.inv",
        "worst ratio",
        "pass",
        "peak MB",
    ):
        table.add_column(col, justify="left" if col == "approach" else "right")
    for r in result.rows:
        peak = "n/a" if r.peak_bytes is None else f"{r.peak_bytes / 2**20:.1f}"
        speed = "" if r.speedup_vs_torch is None else f"{r.speedup_vs_torch:.2f}"
        table.add_row(
            str(r.n),
            str(r.batch),
            r.approach,
            f"{r.matrices_per_s:.3g}",
            speed,
            f"{r.worst_ratio:.3g}",
            f"{r.passing:.4f}",
            peak,
        )
    return table


def plot(result: BenchResult, path, *, certified_only: bool = True) -> None:
    """Log-log matrices/s against n, one line per approach (references and certified methods;
    ``certified_only=False`` adds the uncertified kernels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .files import atomic_write

    fig, ax = plt.subplots(figsize=(7, 4.5))
    names = list(dict.fromkeys(r.approach for r in result.rows))
    for name in names:
        rows = [r for r in result.rows if r.approach == name]
        if certified_only and not (rows[0].certified or name in REFERENCES):
            continue
        style = "--" if name in REFERENCES else "-"
        ax.plot(
            [r.n for r in rows], [r.matrices_per_s for r in rows], style, marker="o", label=name
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("matrix size n")
    ax.set_ylabel("matrices per second")
    cfg = result.config
    ax.set_title(f"{cfg['dtype']} on {cfg['device']} ({result.machine['torch_threads']} threads)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120)
    plt.close(fig)


def write_json(result: BenchResult, path) -> None:
    import json

    from .files import atomic_write

    with atomic_write(path, "w") as fh:
        json.dump(result.to_json(), fh, indent=2)


def parse_sizes(text: str) -> tuple[int, ...]:
    """``"2,3,4"`` -> (2, 3, 4), with an InputError naming the bad item."""
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            out.append(int(item))
        except ValueError:
            raise InputError(f"--sizes: {item!r} is not an integer (expected e.g. 2,3,4)") from None
    if not out:
        raise InputError("--sizes must list at least one size, e.g. 2,3,4")
    return tuple(out)


def parse_names(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())
