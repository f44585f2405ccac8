"""``neuralinv demo``: every registered method on a built-in collection of matrices.

Library only: it returns :class:`Section` tables and never prints (``cli.py`` prints them).
A section is a titled table plus notes; :func:`run_demo` concatenates what every builder in
:data:`SECTIONS` returns, so another part of the demo (e.g. training a small learned model) is
one more builder appended there.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import InputError
from .methods import METHODS, resolve
from .solution import Status

#: The collection's kinds, in display order.
KINDS = ("random", "SPD", "ill-conditioned", "singular")

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


@dataclass(frozen=True)
class DemoConfig:
    """sizes: matrix sizes, one section each; count: matrices of each kind; methods: names to
    run (None: every registered method that builds with its default options); learned_steps:
    train a small model on the default ball for this many steps and invert a held-out batch
    with it (0: no learned section; see :mod:`neuralinv.learned.demo`)."""

    sizes: tuple[int, ...] = (4, 16)
    count: int = 32
    seed: int = 0
    methods: tuple[str, ...] | None = None
    learned_steps: int = 0


@dataclass(frozen=True)
class MethodRow:
    """One method on one size of the collection."""

    method: str
    n: int
    matrices_per_s: float  # all kinds in one batch, wall clock of the invert call
    worst_residual: float  # over the random and SPD kinds (the invertible, well-posed ones)
    statuses: dict[str, dict[str, int]]  # kind -> status name -> count
    methods_used: dict[str, int]  # what answered, over all kinds (fallbacks show here)


@dataclass(frozen=True)
class Section:
    """A titled table: ``columns`` head ``rows`` of display cells; ``data`` keeps the numbers."""

    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]
    notes: list[str] = field(default_factory=list)
    data: list = field(default_factory=list)


def collection(n: int, count: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """float64 batches (count, n, n) of each kind, deterministic for a seed.

    random:          Gaussian entries scaled by 1/sqrt(n) (condition numbers of tens to thousands).
    SPD:             ``M M^T / n + I``: symmetric positive definite, well conditioned.
    ill-conditioned: ``U diag(s) V^T`` with condition numbers 1e8 .. 1e18 across the batch,
                     so the rcond certificate flags the end beyond 1 / eps.
    singular:        integer entries with the last row the sum of the others (exactly rank n-1).
    """
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    random = torch.randn(count, n, n, generator=g, dtype=f64) / math.sqrt(n)
    M = torch.randn(count, n, n, generator=g, dtype=f64)
    spd = M @ M.mT / n + torch.eye(n, dtype=f64)
    spd = (spd + spd.mT) / 2
    U = torch.linalg.qr(torch.randn(count, n, n, generator=g, dtype=f64))[0]
    V = torch.linalg.qr(torch.randn(count, n, n, generator=g, dtype=f64))[0]
    log_cond = torch.linspace(8, 18, count, dtype=f64)[:, None]
    s = 10.0 ** (-log_cond * torch.linspace(0, 1, n, dtype=f64)[None, :])
    ill = (U * s[:, None, :]) @ V.mT
    singular = torch.randint(-3, 4, (count, n, n), generator=g).to(f64)
    singular[:, -1] = singular[:, :-1].sum(dim=1)
    return {"random": random, "SPD": spd, "ill-conditioned": ill, "singular": singular}


def method_rows(n: int, count: int, seed: int, names: tuple[str, ...]) -> tuple[list, list[str]]:
    """Run each named method on the collection of size n; (rows, notes on methods not run).

    The four kinds go through one ``invert`` call, as a caller's mixed batch would, so the
    iterative methods' step counts and the rate are those of one batch."""
    data = collection(n, count, seed)
    batch = torch.cat([data[kind] for kind in KINDS])
    rows, notes = [], []
    for name in names:
        try:
            method = resolve(name)
        except InputError as exc:  # needs options the demo cannot give (learned: a model)
            notes.append(f"{name}: not run ({exc})")
            continue
        if not method.supports(n, batch.dtype, batch.device):
            notes.append(f"{name}: not run (it does not take {n}x{n} {batch.dtype} matrices)")
            continue
        try:  # warms up on a matrix every method solves at once
            method.invert(torch.eye(n, dtype=batch.dtype)[None])
        except InputError as exc:  # a size the method refuses but its supports() did not say
            notes.append(f"{name}: not run ({exc})")
            continue
        sol, seconds = _timed(lambda m=method: m.invert(batch))
        status = sol.status.numpy().reshape(len(KINDS), count)
        residual = sol.residual.numpy().reshape(len(KINDS), count)
        statuses = {
            kind: {
                SHORT[Status(int(v))]: int(c)
                for v, c in zip(*np.unique(status[k], return_counts=True))
            }
            for k, kind in enumerate(KINDS)
        }
        worst = float(np.nanmax(residual[:2]))  # random and SPD
        rows.append(MethodRow(name, n, batch.shape[0] / seconds, worst, statuses, sol.method_counts()))
    return rows, notes


def _timed(run: Callable, budget_s: float = 0.2, max_runs: int = 20):
    """(result, best wall time): fast calls are repeated within a small time budget, so the
    rate of a sub-millisecond call is not one noisy sample; slow calls run once."""
    best, spent, runs = float("inf"), 0.0, 0
    while runs < max_runs and (runs == 0 or spent < budget_s):
        start = time.perf_counter()
        result = run()
        elapsed = time.perf_counter() - start
        best, spent, runs = min(best, elapsed), spent + elapsed, runs + 1
    return result, best


def _cells(row: MethodRow) -> tuple[str, ...]:
    return (
        row.method,
        f"{row.matrices_per_s:,.0f}",
        f"{row.worst_residual:.3g}",
        *(" ".join(f"{v} {k}" for k, v in row.statuses[kind].items()) for kind in KINDS),
    )


def _answered_by(row: MethodRow) -> str | None:
    if set(row.methods_used) == {row.method}:
        return None
    used = ", ".join(f"{k} {v}" for k, v in row.methods_used.items())
    return f"{row.method} answers came from: {used}"


def methods_sections(config: DemoConfig) -> list[Section]:
    """One table per size: every method on the four kinds of matrices."""
    names = config.methods if config.methods is not None else tuple(METHODS)
    columns = ("method", "matrices/s", "worst ratio", *KINDS)
    sections = []
    for n in config.sizes:
        rows, notes = method_rows(n, config.count, config.seed, names)
        notes = [
            f"{config.count} float64 matrices of each kind, inverted as one batch per method; "
            "worst ratio: the largest LAPACK ratio ||I - XA||_1 / (n ||A||_1 ||X||_1 eps) on "
            "the random and SPD kinds (< 30 passes); "
            + ", ".join(f"{v} = {k.name}" for k, v in SHORT.items() if v != k.name),
            *(note for note in map(_answered_by, rows) if note),
            *notes,
        ]
        sections.append(
            Section(f"Every method on {n}x{n} matrices", columns, [_cells(r) for r in rows], notes, rows)
        )
    return sections


def learned_sections(config: DemoConfig) -> list[Section]:
    """Train on the default ball, invert a held-out batch: who answered (the data:
    :func:`neuralinv.learned.demo.run`), as one table."""
    if not config.learned_steps:
        return []
    from .learned import demo as learned_demo

    return [learned_section(learned_demo.run(steps=config.learned_steps, seed=config.seed))]


def learned_section(demo) -> Section:
    """The table of a :class:`neuralinv.learned.demo.LearnedDemo`: one row per group."""
    columns = ("matrices", "count", "network", "scaled", "fell back", "status", "worst ratio",
               "max error", "NS steps")

    def num(x: float, fmt: str) -> str:
        return "-" if x != x else format(x, fmt)

    rows = [
        (g.name, str(g.count), str(g.network), str(g.scaled), str(g.fell_back),
         ", ".join(f"{SHORT[Status[k]]} {v}" for k, v in g.status.items()),
         num(g.worst_residual, ".3g"),
         num(g.max_error, ".2g"), num(g.mean_iterations, ".1f"))
        for g in demo.groups
    ]
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
    return Section("Learned inversion: network guess + Newton-Schulz, exact fallback", columns,
                   rows, notes, [demo])


#: The demo's parts, in order: each maps the config to its sections.
SECTIONS: list[Callable[[DemoConfig], list[Section]]] = [methods_sections, learned_sections]


def run_demo(config: DemoConfig | None = None) -> list[Section]:
    """Every section of the demo, in order."""
    config = config or DemoConfig()
    return [section for build in SECTIONS for section in build(config)]
