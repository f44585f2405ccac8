"""The ``neuralinv`` command line. The only module that prints."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import typer
from rich.console import Console

from .errors import InputError, InversionError

app = typer.Typer(
    help="Certified batched matrix inversion: exact, iterative, gradient-descent and learned.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    """One-line error on stderr and a non-zero exit."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def summary_line(sol) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in sol.counts().items())
    methods = ", ".join(f"{k} {v}" for k, v in sol.method_counts().items())
    return (
        f"{int(np.prod(np.shape(sol.status)))} matrices | method: {methods} | "
        f"worst residual ratio {sol.worst_residual:.3g} (pass < 30) | status: {counts}"
    )


@app.command()
def invert(
    input: Path = typer.Argument(..., help="Matrices (..., n, n): .mx, .npy, .npz or .csv"),
    output: Path = typer.Option(
        ..., "-o", "--output", help="Where to write the inverses; format by extension"
    ),
    method: str = typer.Option("auto", "--method", "-m", help="Method name (see `neuralinv methods`)"),
    target: Path | None = typer.Option(
        None, "--target", help="Reference inverses (any format): print MAE/MSE/R2 against them"
    ),
    chunk_size: int = typer.Option(
        65536, "--chunk-size", help="Matrices per chunk: memory is bounded by this, not the file"
    ),
) -> None:
    """Invert every matrix in a file, chunk by chunk, and certify each answer."""
    from .streaming import invert_file

    try:
        with progress_callback("inverting") as on_progress:
            res = invert_file(
                input, output, method=method, target=target, chunk_size=chunk_size,
                on_progress=on_progress,
            )
    except (InputError, InversionError, OSError) as exc:
        fail(str(exc))
    console.print(stream_summary_line(res), highlight=False, soft_wrap=True)
    if res.metrics is not None:
        m = res.metrics
        skipped = f" ({m.skipped} with non-finite inverses left out)" if m.skipped else ""
        console.print(
            f"vs {target}: MAE {m.mae:.6g} | MSE {m.mse:.6g} | R2 {m.r2:.6f} "
            f"over {m.compared} matrices{skipped}",
            highlight=False,
        soft_wrap=True,
        )


def stream_summary_line(res) -> str:
    """summary_line for a :class:`neuralinv.streaming.StreamResult`."""
    counts = ", ".join(f"{k} {v}" for k, v in res.status_counts.items())
    methods = ", ".join(f"{k} {v}" for k, v in res.method_counts.items())
    first = "" if res.first_not_ok is None else f" | first not OK: matrix {res.first_not_ok}"
    return (
        f"{res.count} matrices | method: {methods} | worst residual ratio "
        f"{res.worst_residual:.3g} (pass < 30) | status: {counts}{first}"
    )


@contextmanager
def progress_callback(description: str):
    """A rich progress bar on stderr (only when it is a terminal), as an ``on_progress(done,
    total)`` callback for library functions that never print."""
    if not err_console.is_terminal:
        yield None
        return
    from rich.progress import Progress

    with Progress(console=err_console, transient=True) as bar:
        task = bar.add_task(description, total=None)

        def on_progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield on_progress


@app.command()
def generate(
    size: int = typer.Argument(..., help="Matrix size n"),
    count: int = typer.Argument(..., help="Number of matrices"),
    output: str = typer.Option(
        ..., "-o", "--output", help="PREFIX: writes PREFIX_matrices_NxN.EXT and PREFIX_matrices_inverted_NxN.EXT"
    ),
    low: float = typer.Option(-1.0, "--low", help="Smallest entry"),
    high: float = typer.Option(1.0, "--high", help="Largest entry"),
    min_abs_det: float | None = typer.Option(
        None, "--min-abs-det", help="Reject matrices with |det| <= D (DeepMatrixInversion trains with 0.1)"
    ),
    min_sigma: float | None = typer.Option(None, "--min-sigma", help="Reject matrices with sigma_min <= S"),
    singular: bool = typer.Option(False, "--singular", help="Singular matrices and their pseudo-inverses"),
    max_rank: int | None = typer.Option(
        None, "--max-rank", help="With --singular: ranks drawn uniformly from 1..R (default n-1)"
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed (the files are a function of it)"),
    fmt: str = typer.Option("mx", "--format", help="mx (DeepMatrixInversion text), npy or npz"),
) -> None:
    """Write a DeepMatrixInversion-style dataset: matrices and their (pseudo-)inverses."""
    from .datasets import generate as run

    try:
        with progress_callback("generating") as on_progress:
            res = run(
                output, size, count, low=low, high=high, min_abs_det=min_abs_det,
                min_sigma=min_sigma, singular=singular, max_rank=max_rank, seed=seed,
                fmt="." + fmt.lstrip("."), on_progress=on_progress,
            )
    except (InputError, OSError) as exc:
        fail(str(exc))
    kind = "pseudo-inverses" if singular else "inverses"
    rejected = f"; {res.rejected} sampled matrices without a certified inverse were redrawn" if res.rejected else ""
    console.print(
        f"wrote {res.count} {size}x{size} matrices to {res.matrices} and their {kind} to "
        f"{res.inverses} (worst deviation {res.worst_deviation:.3g} n*eps{rejected})",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def verify(
    matrices: Path = typer.Argument(..., help="Matrices file (.mx, .npy, .npz, .csv)"),
    inverses: Path = typer.Argument(..., help="Their claimed inverses, same order"),
    kind: str = typer.Option(
        "invertible", "--kind", help="invertible: X Y = I; singular: the four Penrose conditions"
    ),
    tol: float = typer.Option(30.0, "--tol", help="Largest accepted deviation, in units of n*eps"),
) -> None:
    """Check that INVERSES inverts MATRICES; exit 1 naming the first bad matrix."""
    from .datasets import verify_files

    try:
        res = verify_files(matrices, inverses, kind=kind, tol=tol)
    except (InputError, OSError) as exc:
        fail(str(exc))
    what = "|X Y - I|" if res.kind == "invertible" else "|X Y X - X|"
    console.print(
        f"{res.count} matrices ({res.kind}): worst deviation {res.worst:.3g} n*eps at matrix "
        f"{res.worst_index} (tol {res.tol:g}); largest entry of {what}: {res.worst_abs:.3g}",
        highlight=False,
        soft_wrap=True,
    )
    if res.bad:
        fail(
            f"{res.bad} of {res.count} matrices fail; first bad matrix: index {res.first_bad} "
            f"(deviation {res.first_bad_deviation:.3g} n*eps > tol {res.tol:g})",
            code=1,
        )
    console.print("OK", highlight=False, soft_wrap=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
