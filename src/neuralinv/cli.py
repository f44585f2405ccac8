"""The ``neuralinv`` command line. The only module that prints."""

from __future__ import annotations

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
    input: Path = typer.Argument(..., help="Matrices (..., n, n): .npy"),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the inverses (.npy)"),
    method: str = typer.Option("auto", "--method", "-m", help="Method name (see `neuralinv methods`)"),
) -> None:
    """Invert every matrix in a file and certify each answer."""
    from . import api
    from .io import read_matrices, write_matrices

    try:
        A = read_matrices(input)
        sol = api.invert(A, method=method)
        write_matrices(output, sol.inverse)
    except (InputError, InversionError, OSError) as exc:
        fail(str(exc))
    console.print(summary_line(sol), highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
