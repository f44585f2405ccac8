"""``neuralinv evaluate`` and ``analyze``: scores of a method or model, and what a network computes."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import InputError
from .app import METHOD_NAMES, app, console, err_console, fail, say
from .signals import _removed_on_failure


@app.command()
def evaluate(
    data: list[Path] = typer.Option(..., "--data", help="Matrices to evaluate on (repeat for several files)"),
    out: Path = typer.Option(..., "--out", help="Directory for metrics.json, report.md and figures/"),
    model: str | None = typer.Option(None, "--model", help="Trained model directory (or builtin:NAME)"),
    method: str | None = typer.Option(None, "--method", "-m", help=f"A registered method ({METHOD_NAMES}) instead of a model"),
    targets: list[Path] | None = typer.Option(
        None, "--targets", help="Reference inverses, one file per --data file in the same order"
    ),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Draw the PNG figures"),
) -> None:
    """Score a method or a trained model: MAE, MSE, R2, relative error, |AX - I|, LAPACK pass
    fraction (for a model: the raw network next to the certified hybrid)."""
    from ..evaluation.runner import evaluate_files
    from .render import metrics_table

    with _removed_on_failure(out):
        try:
            res = evaluate_files(
                data, out, method=method, model=model, targets=targets, figures=figures,
                progress=lambda msg: err_console.print(msg, highlight=False),
            )
        except (InputError, OSError) as exc:
            fail(str(exc))
    console.print(metrics_table(res.metrics, title="neuralinv evaluate", width=console.width))
    say(f"wrote {res.json_path}, {res.markdown_path} and {len(res.figures)} figures")


@app.command()
def analyze(
    model: str = typer.Option(..., "--model", help="Trained 2-layer ReLU MLP model directory"),
    samples: int = typer.Option(100_000, "--samples", help="Matrices sampled from the model's region"),
    linprog: bool = typer.Option(False, "--linprog", help="Bound |network - linear approx.| on each pattern (scipy)"),
    member: int = typer.Option(0, "--member", help="Which ensemble member to analyse"),
    top: int = typer.Option(10, "--top", help="Patterns to list (by share of the data)"),
    out: Path | None = typer.Option(None, "--out", help="Also write analysis.json (every pattern with its affine map) here"),
) -> None:
    """What a trained 2-layer ReLU network computes (the paper's section 5.3 / appendix E):
    activation patterns, their share of the region, and how far each affine piece is from the
    linear approximation of the inverse around the region's center."""
    from ..evaluation.runner import analyze_model
    from .render import analysis_line, analysis_table

    try:
        a = analyze_model(model, samples=samples, linprog=linprog, member=member, out=out)
    except (InputError, OSError, ImportError) as exc:
        fail(str(exc))
    console.print(analysis_table(a, top, linprog))
    say(analysis_line(a, top))
    if out is not None:
        console.print(f"wrote {Path(out) / 'analysis.json'}", highlight=False)


