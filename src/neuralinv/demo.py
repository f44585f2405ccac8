"""``neuralinv demo``: every registered method on a built-in collection of matrices.

Library only: it returns :class:`Section` data and never prints or formats; the CLI
(:mod:`neuralinv.cli.render`) draws each section as a table with its notes. :func:`run_demo`
concatenates what every builder in :data:`SECTIONS` returns, so another part of the demo is one
more builder appended there (and one more section kind drawn by the CLI).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from .errors import InputError
from .methods import METHODS, resolve
from .solution import Status

if TYPE_CHECKING:
    from .learned.demo import LearnedDemo

#: The collection's kinds, in display order.
KINDS = ("random", "SPD", "ill-conditioned", "singular")


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
    statuses: dict[str, dict[str, int]]  # kind -> Status name -> count
    methods_used: dict[str, int]  # what answered, over all kinds (fallbacks show here)


@dataclass(frozen=True)
class Section:
    """One part of the demo, as data; the CLI draws each kind as a table
    (:func:`neuralinv.cli.render.demo_table`)."""


@dataclass(frozen=True)
class MethodsSection(Section):
    """Every method on one size of the collection (``count`` matrices of each kind); ``skipped``:
    (method, why it was not run) for the methods that did not run."""

    n: int
    count: int
    rows: list[MethodRow]
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class LearnedSection(Section):
    """The learned part: a small model trained on the default ball, inverting a held-out batch."""

    demo: LearnedDemo


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


def method_rows(
    n: int, count: int, seed: int, names: tuple[str, ...]
) -> tuple[list[MethodRow], list[tuple[str, str]]]:
    """Run each named method on the collection of size n; (rows, (method, why) of those not run).

    The four kinds go through one ``invert`` call, as a caller's mixed batch would, so the
    iterative methods' step counts and the rate are those of one batch."""
    data = collection(n, count, seed)
    batch = torch.cat([data[kind] for kind in KINDS])
    rows, skipped = [], []
    for name in names:
        try:
            method = resolve(name)
        except InputError as exc:  # needs options the demo cannot give (learned: a model)
            skipped.append((name, str(exc)))
            continue
        if not method.supports(n, batch.dtype, batch.device):
            skipped.append((name, f"it does not take {n}x{n} {batch.dtype} matrices"))
            continue
        # Warm-up, on a matrix every method solves at once (supports() said it takes n).
        method.invert(torch.eye(n, dtype=batch.dtype)[None])
        sol, seconds = _timed(lambda m=method: m.invert(batch))
        status = sol.status.numpy().reshape(len(KINDS), count)
        residual = sol.residual.numpy().reshape(len(KINDS), count)
        statuses = {
            kind: {
                Status(int(v)).name: int(c)
                for v, c in zip(*np.unique(status[k], return_counts=True))
            }
            for k, kind in enumerate(KINDS)
        }
        worst = float(np.nanmax(residual[:2]))  # random and SPD
        rows.append(MethodRow(name, n, batch.shape[0] / seconds, worst, statuses, sol.method_counts()))
    return rows, skipped


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


def methods_sections(config: DemoConfig) -> list[MethodsSection]:
    """One section per size: every method on the four kinds of matrices."""
    names = config.methods if config.methods is not None else tuple(METHODS)
    sections = []
    for n in config.sizes:
        rows, skipped = method_rows(n, config.count, config.seed, names)
        sections.append(MethodsSection(n=n, count=config.count, rows=rows, skipped=skipped))
    return sections


def learned_sections(config: DemoConfig) -> list[LearnedSection]:
    """Train on the default ball, invert a held-out batch: who answered (the data:
    :func:`neuralinv.learned.demo.run`)."""
    if not config.learned_steps:
        return []
    from .learned import demo as learned_demo

    return [LearnedSection(learned_demo.run(steps=config.learned_steps, seed=config.seed))]


#: The demo's parts, in order: each maps the config to its sections.
SECTIONS: list[Callable[[DemoConfig], list[Section]]] = [methods_sections, learned_sections]


def run_demo(config: DemoConfig | None = None) -> list[Section]:
    """Every section of the demo, in order."""
    config = config or DemoConfig()
    return [section for build in SECTIONS for section in build(config)]
