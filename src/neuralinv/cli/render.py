"""Everything the ``neuralinv`` command shows: tables, lines and progress columns built from
the data library functions return (library modules never format for a terminal)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich import box
from rich.table import Table

from ..solution import Status

if TYPE_CHECKING:
    from ..demo import MethodRow, MethodsSection, Section
    from ..evaluation.metrics import Metrics

# The demo, evaluation and method modules import torch: each renderer that needs one imports it
# itself, so that ``neuralinv invert``'s lines come without torch (files/streaming.py).

#: Short status names, so that a table of status counts fits a terminal.
SHORT = {
    Status.OK: "OK",
    Status.SINGULAR: "SING",
    Status.ILL_CONDITIONED: "ILL",
    Status.NOT_CONVERGED: "NOCONV",
    Status.OUT_OF_REGION: "OOR",
    Status.NONFINITE: "NONFIN",
    Status.NOT_SPD: "NOTSPD",
}


def _short(name: str) -> str:
    return SHORT[Status[name]]


# -- evaluate, analyze ---------------------------------------------------------------------


def metrics_table(metrics: Sequence[Metrics], title: str | None = None, width: int | None = None) -> Table:
    """One row per (dataset, method) of an evaluation (:func:`neuralinv.evaluation.report.rows`);
    transposed (one column each) when that is wider than ``width``, so a narrow terminal shows
    every number whole instead of cutting them."""
    from ..evaluation.report import rows

    header, body = rows(metrics)
    table = Table(title=title)
    cells = [header, *body]
    natural = sum(max(len(str(r[i])) for r in cells) + 3 for i in range(len(header))) + 1
    if width is not None and natural > width and body:
        table.add_column("metric", justify="left")
        for r in body:
            table.add_column(f"{r[0]}\n{r[1]}", justify="right")
        for i, h in enumerate(header[2:], start=2):
            table.add_row(h, *(str(r[i]) for r in body))
        return table
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i < 2 else "right")
    for r in body:
        table.add_row(*r)
    return table


def analysis_table(a, top: int, linprog: bool) -> Table:
    """The ``top`` activation patterns of :func:`neuralinv.evaluation.runner.analyze_model`."""
    cols = ["pattern", "share", "max |W - L|", "max |b - c|", "MAE vs inverse"]
    if linprog:
        cols.append("max |f - lin| (LP)")
    table = Table(title=f"{len(a.pieces)} activation patterns in {a.samples} samples ({a.hidden} hidden units)")
    for col in cols:
        table.add_column(col, justify="left" if col == "pattern" else "right")
    for p in a.pieces[:top]:
        row = [p.pattern, f"{p.share:.4f}", f"{p.weight_diff:.4g}", f"{p.bias_diff:.4g}", f"{p.mae_vs_inverse:.4g}"]
        if linprog:
            row.append("n/a" if p.max_deviation is None else f"{p.max_deviation:.4g}")
        table.add_row(*row)
    return table


def analysis_line(a, top: int) -> str:
    covered = sum(p.share for p in a.pieces[:top])
    return (
        f"top {min(top, len(a.pieces))} patterns cover {covered:.1%} of the samples | network MAE vs "
        f"inverse {a.network_mae:.4g} | linear approximation MAE {a.linear_mae:.4g}"
    )


# -- invert ----------------------------------------------------------------------------------


def stream_summary_line(res) -> str:
    """One line about a :class:`neuralinv.files.streaming.StreamResult`: counts, labels, worst ratio."""
    counts = ", ".join(f"{k} {v}" for k, v in res.status_counts.items())
    methods = ", ".join(f"{k} {v}" for k, v in res.method_counts.items())
    first = "" if res.first_not_ok is None else f" | first not OK: matrix {res.first_not_ok}"
    return (
        f"{res.count} matrices | method: {methods} | worst residual ratio "
        f"{res.worst_residual:.3g} (pass < 30) | status: {counts}{first}"
    )


def learned_line(method: str, options: dict, res) -> str:
    """How many answers the network (or the block recursion over it) gave, how many fell back."""
    counts = res.method_counts
    if method == "learned":
        own = counts.get(method, 0)
        fallback = ", ".join(f"{k} {v}" for k, v in counts.items() if k != method) or "none"
        return (f"network answers after refinement: {own} of {res.count} | "
                f"fell back: {res.count - own} ({fallback})")
    # block labels: "block" (recursion), "block+lu" (some leaves by the learned base's
    # fallback), anything else: the whole matrix fell back.
    pure = counts.get("block", 0)
    mixed = sum(v for k, v in counts.items() if k.startswith("block+"))
    whole = {k: v for k, v in counts.items() if not k.startswith("block")}
    fallback = ", ".join(f"{k} {v}" for k, v in whole.items()) or "none"
    line = f"block recursion answers: {pure + mixed} of {res.count}"
    base = options.get("base", "lu")
    from ..methods import METHODS

    if base not in METHODS:  # a learned base
        line += f" (every leaf from the network: {pure}, some leaves fell back: {mixed})"
    return line + f" | fell back whole: {sum(whole.values())} ({fallback})"


def compiled_line(method: str, res) -> str:
    """``invert --compile``: how many matrices the compiled path took."""
    line = f"compiled path: {res.compiled} of {res.count} matrices"
    if method == "learned":
        line += f", {res.fused} settled inside the fused kernel"
    if res.compile_error:
        line += f"; not compiled ({res.compile_error}): the eager path answered the rest"
    return line


def target_line(target, m) -> str:
    """``invert --target``: the errors against the reference inverses."""
    skipped = f" ({m.skipped} with non-finite inverses left out)" if m.skipped else ""
    return (f"vs {target}: MAE {m.mae:.6g} | MSE {m.mse:.6g} | R2 {m.r2:.6f} "
            f"over {m.compared} matrices{skipped}")


# -- train -----------------------------------------------------------------------------------


def region_words(region) -> str:
    kind = region.describe()["kind"]
    return f"union of {region.k} ball(s)" if kind == "balls" else kind


def fit_line(region, files) -> str:
    """``train --data``: the balls fitted to the user's matrices."""
    rep = region.fit_report
    return (
        f"fitted {rep.k} ball(s) to {rep.count:,} {region.n}x{region.n} matrices from "
        f"{', '.join(str(f) for f in files)}: covered {100 * rep.covered:.2f}% (asked "
        f"{100 * rep.coverage:.4g}%), {rep.near_singular} near-singular left out, smallest "
        f"margin sigma_min >= {region.margin:.3g} (normalised by ||A||_F/sqrt(n))"
    )


def training_header(cfg, out) -> str:
    m = cfg.model
    shape = (f"width {m.width}, {m.blocks} blocks" if m.arch == "dense_resnet"
             else f"depth {m.depth}, width {m.width}, {m.activation}")
    return (
        f"training {m.arch} ({shape}) on a {cfg.n}x{cfg.n} "
        f"{region_words(cfg.region)}, loss {cfg.loss}, {cfg.steps} steps x {cfg.batch_size}, "
        f"ensemble {cfg.ensemble}, device {cfg.device} -> {out}"
    )


def training_columns() -> tuple:
    """The progress bar of one ensemble member (its task fields: member, loss, mae, contract)."""
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

    return (
        TextColumn("[bold]member {task.fields[member]}"),
        BarColumn(),
        TextColumn("step {task.completed:>6.0f}/{task.total:.0f}"),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("val MAE {task.fields[mae]}"),
        TextColumn("contract {task.fields[contract]}"),
        TimeElapsedColumn(),
    )


def training_summary(model, out) -> tuple[Table, list[str]]:
    """The table of a trained model's members and the lines under it."""
    metrics = model.metrics
    cfg = model.config
    table = Table(title=f"{cfg.model.arch} on a {cfg.n}x{cfg.n} {region_words(cfg.region)}")
    for col in ("member", "best step", "val MAE", "val R2", "contract"):
        table.add_column(col, justify="right")
    for mem in metrics.get("members", []):
        b = mem.get("best") or {}
        table.add_row(
            f"member-{mem['member']}", str(b.get("step", "-")), f"{b.get('val_mae', float('nan')):.3g}",
            f"{b.get('val_r2', float('nan')):.4f}", f"{100 * b.get('val_contract', float('nan')):.1f}%",
        )
    lines = []
    base = metrics.get("validation", {}).get("linear_approximation_mae")
    if base is not None:
        lines.append(f"linear approximation C - C D C on the same validation set: MAE {base:.3g}")
    lines.append(
        f"trained in {metrics.get('train_seconds', 0):.1f} s; model written to {out} "
        f"(TensorBoard: tensorboard --logdir {out}/runs)"
    )
    return table, lines


# -- bench -----------------------------------------------------------------------------------


def bench_table(result) -> Table:
    """A :class:`neuralinv.bench.BenchResult` as a table: one row per approach and size."""
    cfg = result.config
    table = Table(
        title=(
            f"neuralinv bench: {cfg['dtype']} on {cfg['device']}, {result.machine['torch_threads']} "
            f"threads, median of {cfg['repeats']}"
        )
    )
    for col in ("n", "batch", "approach", "matrices/s", "x torch.inv", "worst ratio", "pass", "peak MB"):
        table.add_column(col, justify="left" if col == "approach" else "right")
    for r in result.rows:
        peak = "n/a" if r.peak_bytes is None else f"{r.peak_bytes / 2**20:.1f}"
        speed = "" if r.speedup_vs_torch is None else f"{r.speedup_vs_torch:.2f}"
        table.add_row(
            str(r.n), str(r.batch), r.approach, f"{r.matrices_per_s:.3g}", speed,
            f"{r.worst_ratio:.3g}", f"{r.passing:.4f}", peak,
        )
    return table


def warm_table(rows, wall: float) -> Table:
    """The kernels of :func:`neuralinv.kernels.warm.warm` as a table: one row per kernel;
    ``wall``: the seconds the whole run took (parts may run at once)."""
    total = sum(r.seconds for r in rows)
    table = Table(title=f"neuralinv warm: native CPU kernels ({total:.1f} s of compiling or loading, {wall:.1f} s wall)")
    for col in ("dtype", "kernel", "seconds", "from", "detail"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for r in rows:
        source = "unavailable" if not r.ready else {True: "cache", False: "compiled", None: "?"}[r.cached]
        table.add_row(r.dtype, r.kernel, f"{r.seconds:.2f}", source, r.detail)
    return table


# -- demo ------------------------------------------------------------------------------------

def method_columns() -> tuple[str, ...]:
    from ..demo import KINDS

    return ("method", "matrices/s", "worst ratio", *KINDS)


LEARNED_COLUMNS = ("matrices", "count", "network", "scaled", "fell back", "status", "worst ratio",
                   "max error", "NS steps")


def method_cells(row: MethodRow) -> tuple[str, ...]:
    """One row of a methods section: rate, worst ratio, status counts per kind."""
    from ..demo import KINDS

    return (
        row.method,
        f"{row.matrices_per_s:,.0f}",
        f"{row.worst_residual:.3g}",
        *(" ".join(f"{v} {_short(k)}" for k, v in row.statuses[kind].items()) for kind in KINDS),
    )


def _answered_by(row: MethodRow) -> str | None:
    if set(row.methods_used) == {row.method}:
        return None
    used = ", ".join(f"{k} {v}" for k, v in row.methods_used.items())
    return f"{row.method} answers came from: {used}"


def methods_notes(section: MethodsSection) -> list[str]:
    """What the columns mean, who answered where a method fell back, which methods did not run."""
    return [
        f"{section.count} float64 matrices of each kind, inverted as one batch per method; "
        "worst ratio: the largest LAPACK ratio ||I - XA||_1 / (n ||A||_1 ||X||_1 eps) on "
        "the random and SPD kinds (< 30 passes); "
        + ", ".join(f"{v} = {k.name}" for k, v in SHORT.items() if v != k.name),
        *(note for note in map(_answered_by, section.rows) if note),
        *(f"{name}: not run ({why})" for name, why in section.skipped),
    ]


def learned_cells(demo) -> list[tuple[str, ...]]:
    """One row per group of a :class:`neuralinv.learned.demo.LearnedDemo`."""

    def num(x: float, fmt: str) -> str:
        return "-" if x != x else format(x, fmt)

    return [
        (g.name, str(g.count), str(g.network), str(g.scaled), str(g.fell_back),
         ", ".join(f"{_short(k)} {v}" for k, v in g.status.items()),
         num(g.worst_residual, ".3g"),
         num(g.max_error, ".2g"), num(g.mean_iterations, ".1f"))
        for g in demo.groups
    ]


def learned_notes(demo) -> list[str]:
    """How the demo's model was trained, how it did alone, who answered, what the columns mean."""
    total = sum(g.count for g in demo.groups)
    network = sum(g.network for g in demo.groups)
    notes = []
    cfg = demo.config
    if cfg is not None:
        m, region = cfg.model, cfg.region
        notes.append(
            f"trained a {m.depth}-layer ReLU MLP (width {m.width}) on Ball.default(3) (radius "
            f"{region.radius:.3g}, sigma_min(center) {region.sigma_min_center:.3g}) for {cfg.steps} "
            f"steps x {cfg.batch_size} fresh matrices"
            + (f" in {demo.train_seconds:.1f} s" if demo.train_seconds is not None else "")
        )
    notes += [
        f"the network alone on the held-out ball matrices: MAE {demo.raw_mae:.3g} vs the linear "
        f"approximation C - C D C's {demo.linear_mae:.3g} "
        f"({demo.raw_mae / demo.linear_mae:.2f}x)",
        f"{network} of {total} answers came from the network after Newton-Schulz refinement; "
        f"{total - network} fell back to exact LU (out of region or singular)",
        "network: the network's guess refined by Newton-Schulz (NS steps: mean per answer) "
        "until its certificate held; scaled: multiplied into the ball first; OOR = "
        "OUT_OF_REGION: answered exactly by LU; SING / ILL: no trusted inverse exists; worst "
        "ratio: LAPACK's ||I - XA||_1 / (n ||A||_1 ||X||_1 eps) (< 30 passes); max error: "
        "max |X - torch.linalg.inv(A)| in float64 (the same LU as the fallback: 0 there)",
    ]
    return notes


def demo_table(section: Section) -> tuple[Table, list[str]]:
    """A section of :func:`neuralinv.demo.run_demo` as a table and the notes printed under it."""
    from ..demo import LearnedSection, MethodsSection

    if isinstance(section, MethodsSection):
        title, columns = f"Every method on {section.n}x{section.n} matrices", method_columns()
        cells, notes = [method_cells(r) for r in section.rows], methods_notes(section)
    elif isinstance(section, LearnedSection):
        title = "Learned inversion: network guess + Newton-Schulz, exact fallback"
        columns, cells, notes = LEARNED_COLUMNS, learned_cells(section.demo), learned_notes(section.demo)
    else:
        raise TypeError(f"no table for a demo section of type {type(section).__name__}")
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for i, column in enumerate(columns):
        table.add_column(column, justify="right" if i in (1, 2) else "left", no_wrap=i == 0)
    for row in cells:
        table.add_row(*row)
    return table, notes


__all__ = [
    "analysis_line", "analysis_table", "bench_table", "compiled_line", "demo_table", "fit_line",
    "learned_cells", "learned_line", "learned_notes", "method_cells", "method_columns", "methods_notes",
    "metrics_table", "region_words", "stream_summary_line", "target_line", "training_columns",
    "training_header", "training_summary", "warm_table",
]
