"""``neuralinv invert``, ``generate`` and ``verify``: the commands that read and write matrix files."""

from __future__ import annotations

from pathlib import Path

import typer

from .. import errors
from ..errors import InputError
from .app import (
    COMPILE_METHODS,
    METHOD_NAMES,
    app,
    check_memory,
    console,
    fail,
    progress_callback,
    say,
)


@app.command()
def invert(
    input: Path = typer.Argument(..., help="Matrices (..., n, n): .mx, .npy, .npz or .csv"),
    output: Path = typer.Option(
        ..., "-o", "--output", help="Where to write the inverses; format by extension"
    ),
    method: str = typer.Option(
        "auto", "--method", "-m", help=f"{METHOD_NAMES} (learned needs --model; block takes --base)"
    ),
    target: Path | None = typer.Option(
        None, "--target", help="Reference inverses (any format): print MAE/MSE/R2 against them"
    ),
    chunk_size: int = typer.Option(
        65536, "--chunk-size", help="Matrices per chunk: memory is bounded by this, not the file"
    ),
    model: str | None = typer.Option(
        None, "--model", help="Trained model directory or builtin:NAME: certified learned inversion"
    ),
    base: str | None = typer.Option(
        None, "--base", help="--method block: base method name, model directory or builtin:NAME"
    ),
    base_size: int | None = typer.Option(
        None, "--base-size", help="--method block: size of the blocks the base inverts"
    ),
    plot: Path | None = typer.Option(
        None, "--plot", help="Write a PNG of the certificates (ratio vs sigma_min, worst A X - I)"
    ),
    compile_: bool = typer.Option(
        False, "--compile",
        help=f"compile=True for --method {COMPILE_METHODS} (learned: the fused path of small "
        "models such as builtin:ball3-fast): seconds to compile once, faster on large files",
    ),
) -> None:
    """Invert every matrix in a file, chunk by chunk, and certify each answer."""
    from ..files.streaming import invert_file
    from .render import compiled_line, learned_line, stream_summary_line, target_line

    try:
        if chunk_size < 1:  # named as the user wrote it (invert_file would say chunk_size)
            raise InputError(f"--chunk-size must be an integer >= 1, got {chunk_size}")
        method, options = _learned_options(method, model, base, base_size)
        if compile_:
            options["compile"] = _compile_option(method)
        with progress_callback("inverting") as on_progress:
            res = invert_file(
                input, output, method=method, target=target, chunk_size=chunk_size,
                on_progress=on_progress, **options,
            )
    except (InputError, OSError) as exc:
        fail(str(exc))
    except ArithmeticError as exc:  # InversionError's base; the class itself would import torch
        if not errors.is_inversion_error(exc):
            raise
        fail(str(exc))
    say(stream_summary_line(res))
    if method in ("learned", "block"):
        say(learned_line(method, options, res))
    if compile_:
        say(compiled_line(method, res))
    if res.metrics is not None:
        say(target_line(target, res.metrics))

    if plot is not None:
        from ..evaluation.plots import certificate_plot

        try:
            console.print(f"figure: {certificate_plot(input, output, plot)}", highlight=False)
        except (InputError, OSError) as exc:
            fail(str(exc))


def _compile_option(method: str) -> bool:
    """``compile=True`` for ``invert --compile``, or an InputError naming the methods that have it."""
    from ..methods import METHODS, with_option

    having = with_option("compile")
    if method in METHODS and method not in having:
        raise InputError(f"--compile goes with --method {', '.join(having)}, not {method!r}")
    return True


def _learned_options(method: str, model: str | None, base: str | None, base_size: int | None):
    """The method name and options for ``invert --model`` / ``--method block --base``."""
    options: dict = {}
    if model is not None:
        if method == "block":
            if base is not None:
                raise InputError("give the block base once: --base or --model, not both")
            base = model
        elif method in ("auto", "learned"):
            return "learned", {"model": model}
        else:
            raise InputError(f"--model goes with --method learned or block, not {method!r}")
    if (base is not None or base_size is not None) and method != "block":
        raise InputError("--base and --base-size go with --method block")
    if base is not None:
        options["base"] = base
    if base_size is not None:
        options["base_size"] = base_size
    return method, options


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
    from .._validate import int_at_least, random_seed
    from ..files import DEFAULT_CHUNK
    from ..files.datasets import generate as run

    try:
        int_at_least("SIZE", size, 1)
        int_at_least("COUNT", count, 1)
        random_seed("--seed", seed)
        check_memory(
            f"generate {size} {count}", "float64 matrices, inverses, certificate residuals", 3,
            min(count, DEFAULT_CHUNK), size, 8,
        )
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
    from ..files.datasets import verify_files

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


