"""Reports of evaluation results: table rows (data), JSON and markdown files.

The terminal table is built from :func:`rows` by the CLI (:mod:`neuralinv.cli.render`); files
are written atomically.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..files import write_text
from .metrics import Metrics

#: (column title, Metrics attribute, format) in table order.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("dataset", "name", "s"),
    ("method", "method", "s"),
    ("count", "count", "d"),
    ("MAE", "mae", ".4g"),
    ("MSE", "mse", ".4g"),
    ("R2", "r2", ".6g"),
    ("rel. err", "relative_error", ".3g"),
    ("‖AX−I‖_F", "identity_residual", ".3g"),
    ("pass", "pass_fraction", ".4f"),
    ("contracted", "contracted", ".4f"),
    ("refined", "refined", ".4f"),
    ("fell back", "fell_back", ".4f"),
    ("time s", "time_s", ".3g"),
    ("seed ≤ 0.5", "seed_share", ".4f"),
    ("seed ‖I−AX0‖₁ q50/90/99/99.9%", "seed_quantiles", "s"),
    ("max NS steps f32 / f64", "seed_steps", "s"),
)


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if spec == "s":
        return str(value)
    return format(value, spec)


def rows(metrics: Sequence[Metrics]) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows; columns that are empty in every row (e.g. the learned
    fractions for exact methods) are dropped."""
    keep = [
        (title, attr, spec)
        for title, attr, spec in COLUMNS
        if any(getattr(m, attr) is not None for m in metrics)
    ]
    header = [t for t, _, _ in keep]
    body = [[_fmt(getattr(m, attr), spec) for _, attr, spec in keep] for m in metrics]
    return header, body


def markdown_table(header: Sequence[str], body: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in body]
    return "\n".join(lines) + "\n"


def metrics_markdown(metrics: Sequence[Metrics]) -> str:
    header, body = rows(metrics)
    return markdown_table(header, body)


def _clean(x: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and callable(x.item) and getattr(x, "ndim", 1) == 0:
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_json(path: str | Path, data: Any) -> Path:
    """``data`` as strict JSON (NaN/inf as null) through :func:`neuralinv.files.write_text`;
    the directory must exist."""
    return write_text(path, json.dumps(_clean(data), indent=2, sort_keys=False) + "\n")


def write_report(
    out_dir: str | Path,
    metrics: Sequence[Metrics],
    *,
    title: str,
    context: dict | None = None,
    figures: Sequence[str | Path] = (),
) -> tuple[Path, Path]:
    """``metrics.json`` and ``report.md`` in out_dir (created if missing); figures are linked
    relative to it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = {"title": title, "context": context or {}, "results": [m.as_dict() for m in metrics]}
    data["figures"] = [str(Path(f).relative_to(out)) if Path(f).is_relative_to(out) else str(f) for f in figures]
    j = write_json(out / "metrics.json", data)
    md = [f"# {title}\n"]
    for k, v in (context or {}).items():
        md.append(f"- {k}: {v}")
    if context:
        md.append("")
    md.append(metrics_markdown(metrics))
    seeds = [m for m in metrics if m.seed is not None]
    if seeds:
        md.append("## Seed residual\n")
        md += [f"- {m.name}: {m._seed().summary()}" for m in seeds]
        md.append("")
    for f in data["figures"]:
        md.append(f"![{Path(f).stem}]({f})\n")
    m = write_text(out / "report.md", "\n".join(md))
    return j, m


__all__ = [
    "COLUMNS",
    "markdown_table",
    "metrics_markdown",
    "rows",
    "write_json",
    "write_report",
]
