"""Rich rendering of library results for the ``neuralinv`` command (the CLI layer).

Library modules return data (dataclasses, lists of rows); the tables the terminal shows are
built here. When ``cli.py`` becomes a ``cli/`` package this module is its ``render.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from .evaluation.metrics import Metrics
from .evaluation.report import rows


def metrics_table(metrics: Sequence[Metrics], title: str | None = None, width: int | None = None) -> Table:
    """One row per (dataset, method) of an evaluation (:func:`neuralinv.evaluation.report.rows`);
    transposed (one column each) when that is wider than ``width``, so a narrow terminal shows
    every number whole instead of cutting them."""
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


__all__ = ["metrics_table"]
