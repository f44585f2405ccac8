"""The ``neuralinv`` command line. The only module that prints."""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console

from .errors import InputError, InversionError
from .methods import METHODS, with_option

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


def check_memory(what: str, arrays: str, copies: int, count: int, n: int, itemsize: int,
                 device: str = "cpu") -> None:
    """Refuse (InputError) a run whose arrays cannot be allocated, before anything is written.

    The rule: ``copies`` arrays of ``count`` n x n matrices of ``itemsize`` bytes each are held
    at once (a lower bound on what the run allocates); more bytes than the machine has available
    (MemAvailable, capped by a cgroup limit; on CUDA the device's free memory) are refused.
    """
    from ._validate import fits_in_memory

    available = None
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            available = torch.cuda.mem_get_info(torch.device(device))[0]
    needed = copies * count * n * n * itemsize
    fits_in_memory(f"{what} ({copies} arrays: {arrays}, of {count:,} {n}x{n} matrices)", needed, available)


#: The registered methods, for help texts (a new method appears here by its registry line).
_METHOD_NAMES = ", ".join(sorted(METHODS))
_COMPILE_METHODS = ", ".join(with_option("compile"))


@app.command()
def invert(
    input: Path = typer.Argument(..., help="Matrices (..., n, n): .mx, .npy, .npz or .csv"),
    output: Path = typer.Option(
        ..., "-o", "--output", help="Where to write the inverses; format by extension"
    ),
    method: str = typer.Option(
        "auto", "--method", "-m", help=f"{_METHOD_NAMES} (learned needs --model; block takes --base)"
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
        help=f"compile=True for --method {_COMPILE_METHODS} (learned: the fused path of small "
        "models such as builtin:ball3-fast): seconds to compile once, faster on large files",
    ),
) -> None:
    """Invert every matrix in a file, chunk by chunk, and certify each answer."""
    from .files.streaming import invert_file

    try:
        method, options = _learned_options(method, model, base, base_size)
        if compile_:
            options["compile"] = _compile_option(method)
        with progress_callback("inverting") as on_progress:
            res = invert_file(
                input, output, method=method, target=target, chunk_size=chunk_size,
                on_progress=on_progress, **options,
            )
    except (InputError, InversionError, OSError) as exc:
        fail(str(exc))
    console.print(stream_summary_line(res), highlight=False, soft_wrap=True)
    if method in ("learned", "block"):
        console.print(_learned_line(method, options, res), highlight=False, soft_wrap=True)
    if compile_:
        line = f"compiled path: {res.compiled} of {res.count} matrices"
        if method == "learned":
            line += f", {res.fused} settled inside the fused kernel"
        if res.compile_error:
            line += f"; not compiled ({res.compile_error}): the eager path answered the rest"
        console.print(line, highlight=False, soft_wrap=True)
    if res.metrics is not None:
        m = res.metrics
        skipped = f" ({m.skipped} with non-finite inverses left out)" if m.skipped else ""
        console.print(
            f"vs {target}: MAE {m.mae:.6g} | MSE {m.mse:.6g} | R2 {m.r2:.6f} "
            f"over {m.compared} matrices{skipped}",
            highlight=False,
            soft_wrap=True,
        )

    if plot is not None:
        from .evaluation.plots import certificate_plot

        try:
            console.print(f"figure: {certificate_plot(input, output, plot)}", highlight=False)
        except (InputError, OSError) as exc:
            fail(str(exc))


def _compile_option(method: str) -> bool:
    """``compile=True`` for ``invert --compile``, or an InputError naming the methods that have it."""
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


def _learned_line(method: str, options: dict, res) -> str:
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
    if base not in METHODS:  # a learned base
        line += f" (every leaf from the network: {pure}, some leaves fell back: {mixed})"
    return line + f" | fell back whole: {sum(whole.values())} ({fallback})"


def stream_summary_line(res) -> str:
    """One line about a :class:`neuralinv.files.streaming.StreamResult`: counts, labels, worst ratio."""
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
    from ._validate import int_at_least, random_seed
    from .files import DEFAULT_CHUNK
    from .files.datasets import generate as run

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
    from .files.datasets import verify_files

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


@app.command()
def train(
    config: Path = typer.Option(None, "--config", help="TOML settings (flags given override them)"),
    size: int = typer.Option(None, "--size", "-n", help="Matrix size n [default: 3]"),
    region: str = typer.Option(None, "--region", help="box | ball [default: ball]"),
    low: float = typer.Option(None, "--low", help="Box: lowest entry [default: -1]"),
    high: float = typer.Option(None, "--high", help="Box: highest entry [default: 1]"),
    min_abs_det: float = typer.Option(None, "--min-abs-det", help="Box: keep |det A| > this"),
    min_sigma: float = typer.Option(None, "--min-sigma", help="Box: keep sigma_min(A) > this"),
    center: Path = typer.Option(None, "--center", help="Ball: center matrix (.npy, n x n)"),
    radius: float = typer.Option(None, "--radius", help="Ball: entrywise radius"),
    arch: str = typer.Option(None, "--arch", help="mlp | dense_resnet | correction [default: mlp]"),
    depth: int = typer.Option(None, "--depth", help="Linear layers of the mlp / of correction's g [2]"),
    width: int = typer.Option(None, "--width", help="Hidden units (dense_resnet: units) [72]"),
    blocks: int = typer.Option(None, "--blocks", help="dense_resnet residual blocks [2]"),
    activation: str = typer.Option(None, "--activation", help="relu | gelu | silu | tanh (mlp, correction's g) [relu]"),
    loss: str = typer.Option(None, "--loss", help="mse | identity | both [mse]"),
    steps: int = typer.Option(None, "--steps", help="Optimizer steps per member [2000]"),
    batch_size: int = typer.Option(None, "--batch-size", help="Fresh matrices per step [128]"),
    lr: float = typer.Option(None, "--lr", help="Peak learning rate [1e-3]"),
    optimizer: str = typer.Option(None, "--optimizer", help="adam | adamw [adam]"),
    schedule: str = typer.Option(None, "--schedule", help="cosine_restarts | one_cycle | constant"),
    ensemble: int = typer.Option(None, "--ensemble", help="Members trained and averaged [1]"),
    val_every: int = typer.Option(None, "--val-every", help="Steps between validations/checkpoints [100]"),
    device: str = typer.Option(None, "--device", help="cpu | cuda [cpu]"),
    seed: int = typer.Option(None, "--seed", help="Random seed [0]"),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue an interrupted run in --out"),
    out: Path = typer.Option(..., "--out", "-o", help="Model directory to write"),
    data: list[Path] = typer.Option(
        None, "--data",
        help="Fit the region to these matrix files (any format; `--data A.npy B.npy` or repeated "
        "--data) and mix their matrices into training; the size comes from the data",
    ),
    coverage: float = typer.Option(None, "--coverage", help="--data: share of the matrices the fitted balls must cover [0.99]"),
    balls: int = typer.Option(None, "--balls", help="--data: number of balls [default: the fewest that reach --coverage]"),
    data_share: float = typer.Option(None, "--data-share", help="--data: share of each batch taken from the data [0.25]"),
    more_data: list[Path] = typer.Argument(None, help="More --data files", show_default=False),
) -> None:
    """Train a learned inverter on a region, or on a region fitted to your matrices with --data
    (also under `torchrun --nproc-per-node N -m neuralinv train`)."""
    import os

    from .files import read_matrices
    from .learned.config import TrainConfig, config_from_options
    from .learned.loop import train as run_training

    main_rank = int(os.environ.get("RANK", "0")) == 0
    files = list(data or []) + list(more_data or [])
    # A failed run that created --out removes it; an interrupted one keeps it (it resumes).
    with _removed_on_failure(out if main_rank else None, keep_when_interrupted=True):
        try:
            if more_data and not data:
                raise InputError(f"unexpected argument(s) {', '.join(map(str, more_data))}: "
                                 "matrix files go after --data")
            if not files and any(v is not None for v in (coverage, balls, data_share)):
                raise InputError("--coverage, --balls and --data-share go with --data")
            base = TrainConfig.load(config) if config is not None else None
            fit = None
            if files:
                region_flags = {"--region": region, "--low": low, "--high": high,
                                "--min-abs-det": min_abs_det, "--min-sigma": min_sigma,
                                "--center": center, "--radius": radius}
                given = [k for k, v in region_flags.items() if v is not None]
                if given:
                    raise InputError(f"--data fits the region to the data; drop {', '.join(given)}")
                base, fit = _fitted_base(base, files, size, coverage, balls, data_share, arch, seed)
                size = None
            cfg = config_from_options(
                base, size=size, region=region, low=low, high=high, min_abs_det=min_abs_det,
                min_sigma=min_sigma, center=None if center is None else read_matrices(center),
                radius=radius, arch=arch, depth=depth, width=width, blocks=blocks,
                activation=activation, loss=loss,
                steps=steps, batch_size=batch_size, lr=lr, optimizer=optimizer, schedule=schedule,
                ensemble=ensemble, val_every=val_every, device=device, seed=seed,
            )
            if not main_rank:
                run_training(cfg, out, None, resume=resume, fit=fit)
                return
            model = _train_with_progress(cfg, out, resume, run_training, fit)
        except (InputError, FloatingPointError, OSError) as exc:
            fail(str(exc))
    _print_training_summary(model, out)


def _fitted_base(base, files, size, coverage, balls, data_share, arch, seed):
    """The training config with the region fitted to ``files`` (and the data recorded), and
    the fit record for fit.json. The architecture defaults to ``correction`` (each matrix
    corrected around its nearest ball's center)."""
    from .learned.config import TrainConfig
    from .regions import fit_files

    base = base or TrainConfig()
    region = fit_files(files, coverage=0.99 if coverage is None else coverage, k=balls,
                       seed=base.seed if seed is None else seed)
    rep = region.fit_report
    if size is not None and size != region.n:
        raise InputError(f"--size {size} but the --data matrices are {region.n}x{region.n}")
    console.print(
        f"fitted {rep.k} ball(s) to {rep.count:,} {region.n}x{region.n} matrices from "
        f"{', '.join(str(f) for f in files)}: covered {100 * rep.covered:.2f}% (asked "
        f"{100 * rep.coverage:.4g}%), {rep.near_singular} near-singular left out, smallest "
        f"margin sigma_min >= {region.margin:.3g} (normalised by ||A||_F/sqrt(n))",
        highlight=False, soft_wrap=True,
    )
    changes = {"n": region.n, "region": region, "data": tuple(f["path"] for f in rep.files),
               "data_sha256": tuple(f["sha256"] for f in rep.files),
               "data_share": data_share if data_share is not None else (base.data_share or 0.25)}
    if arch is None and base.model.arch != "correction":
        changes["arch"] = "correction"
    return base.override(**changes), {"region": region.describe()["kind"], **rep.as_dict()}


@contextmanager
def _removed_on_failure(directory: Path | None, *, keep_when_interrupted: bool = False):
    """Remove ``directory`` when the block fails and the directory did not exist before it
    (a failed run leaves no empty or partial output directory). A directory that existed is
    never removed. ``keep_when_interrupted``: an interrupted (Ctrl-C, SIGTERM, SIGHUP)
    training keeps its directory, which resumes."""
    import shutil

    existed = directory is None or os.path.lexists(directory)
    try:
        yield
    except BaseException as exc:
        interrupted = isinstance(exc, (KeyboardInterrupt, _Terminated))
        if not existed and os.path.isdir(directory) and not (keep_when_interrupted and interrupted):
            shutil.rmtree(directory, ignore_errors=True)
        raise


def _train_with_progress(cfg, out, resume, run_training, fit=None):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    m = cfg.model
    shape = (f"width {m.width}, {m.blocks} blocks" if m.arch == "dense_resnet"
             else f"depth {m.depth}, width {m.width}, {m.activation}")
    console.print(
        f"training {m.arch} ({shape}) on a {cfg.n}x{cfg.n} "
        f"{_region_words(cfg.region)}, loss {cfg.loss}, {cfg.steps} steps x {cfg.batch_size}, "
        f"ensemble {cfg.ensemble}, device {cfg.device} -> {out}",
        highlight=False,
    )
    columns = (
        TextColumn("[bold]member {task.fields[member]}"),
        BarColumn(),
        TextColumn("step {task.completed:>6.0f}/{task.total:.0f}"),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("val MAE {task.fields[mae]}"),
        TextColumn("contract {task.fields[contract]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        tasks: dict[int, int] = {}

        def update(p) -> None:
            if p.member not in tasks:
                tasks[p.member] = bar.add_task(
                    "", total=p.steps, completed=p.step - 1, member=f"{p.member + 1}/{p.members}",
                    loss="-", mae="-", contract="-",
                )
                if p.resumed_from:
                    console.print(f"resumed member {p.member + 1} from step {p.resumed_from}")
            fields = {"loss": f"{p.loss:.3g}"}
            if p.val_mae is not None:
                fields.update(mae=f"{p.val_mae:.3g}", contract=f"{100 * p.val_contract:.1f}%")
            bar.update(tasks[p.member], completed=p.step, **fields)

        return run_training(cfg, out, update, resume=resume, fit=fit)


def _region_words(region) -> str:
    kind = region.describe()["kind"]
    return f"union of {region.k} ball(s)" if kind == "balls" else kind


def _print_training_summary(model, out) -> None:
    from rich.table import Table

    metrics = model.metrics
    cfg = model.config
    table = Table(title=f"{cfg.model.arch} on a {cfg.n}x{cfg.n} {_region_words(cfg.region)}")
    for col in ("member", "best step", "val MAE", "val R2", "contract"):
        table.add_column(col, justify="right")
    for mem in metrics.get("members", []):
        b = mem.get("best") or {}
        table.add_row(
            f"member-{mem['member']}", str(b.get("step", "-")), f"{b.get('val_mae', float('nan')):.3g}",
            f"{b.get('val_r2', float('nan')):.4f}", f"{100 * b.get('val_contract', float('nan')):.1f}%",
        )
    console.print(table)
    base = metrics.get("validation", {}).get("linear_approximation_mae")
    if base is not None:
        console.print(f"linear approximation C - C D C on the same validation set: MAE {base:.3g}")
    console.print(
        f"trained in {metrics.get('train_seconds', 0):.1f} s; model written to {out} "
        f"(TensorBoard: tensorboard --logdir {out}/runs)",
        highlight=False,
    )


@app.command()
def evaluate(
    data: list[Path] = typer.Option(..., "--data", help="Matrices to evaluate on (repeat for several files)"),
    out: Path = typer.Option(..., "--out", help="Directory for metrics.json, report.md and figures/"),
    model: str | None = typer.Option(None, "--model", help="Trained model directory (or builtin:NAME)"),
    method: str | None = typer.Option(None, "--method", "-m", help=f"A registered method ({_METHOD_NAMES}) instead of a model"),
    targets: list[Path] | None = typer.Option(
        None, "--targets", help="Reference inverses, one file per --data file in the same order"
    ),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Draw the PNG figures"),
) -> None:
    """Score a method or a trained model: MAE, MSE, R2, relative error, |AX - I|, LAPACK pass
    fraction (for a model: the raw network next to the certified hybrid)."""
    from .cli_render import metrics_table
    from .evaluation.runner import evaluate_files

    with _removed_on_failure(out):
        try:
            res = evaluate_files(
                data, out, method=method, model=model, targets=targets, figures=figures,
                progress=lambda msg: err_console.print(msg, highlight=False),
            )
        except (InputError, OSError) as exc:
            fail(str(exc))
    console.print(metrics_table(res.metrics, title="neuralinv evaluate", width=console.width))
    console.print(
        f"wrote {res.json_path}, {res.markdown_path} and {len(res.figures)} figures",
        highlight=False, soft_wrap=True,
    )


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
    from rich.table import Table

    from .evaluation.runner import analyze_model

    try:
        a = analyze_model(model, samples=samples, linprog=linprog, member=member, out=out)
    except (InputError, OSError, ImportError) as exc:
        fail(str(exc))
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
    console.print(table)
    covered = sum(p.share for p in a.pieces[:top])
    console.print(
        f"top {min(top, len(a.pieces))} patterns cover {covered:.1%} of the samples | network MAE vs "
        f"inverse {a.network_mae:.4g} | linear approximation MAE {a.linear_mae:.4g}",
        highlight=False, soft_wrap=True,
    )
    if out is not None:
        console.print(f"wrote {Path(out) / 'analysis.json'}", highlight=False)


@app.command()
def demo(
    sizes: str = typer.Option("4,16", "--sizes", help="Matrix sizes, comma-separated: one table each"),
    count: int = typer.Option(32, "--count", help="Matrices of each kind (random, SPD, ...)"),
    seed: int = typer.Option(0, "--seed", help="Seed of the built-in collection"),
    learned_steps: int = typer.Option(
        12_000, "--learned-steps", help="Train a small model on the default ball this many steps "
        "and invert a held-out batch with it (0: skip)"
    ),
) -> None:
    """Every method on a built-in collection (random, SPD, ill-conditioned, singular): speed,
    worst residual and statuses, as tables; then a small learned model, trained on the default
    ball, inverting a held-out batch: how many answers came from the network, how many fell back."""
    from rich import box
    from rich.table import Table

    from .demo import DemoConfig, run_demo

    try:
        size_list = tuple(int(v) for v in sizes.split(","))
    except ValueError:
        fail(f"--sizes must be comma-separated integers, got {sizes!r}")
    if any(v < 1 for v in size_list) or count < 1:
        fail(f"--sizes and --count must be >= 1, got --sizes {sizes} --count {count}")
    if learned_steps < 0:
        fail(f"--learned-steps must be >= 0, got {learned_steps}")
    from ._validate import random_seed

    try:
        random_seed("--seed", seed)
        for n in size_list:
            check_memory(
                f"demo --sizes {n} --count {count}",
                "float64 random, SPD, ill-conditioned and singular matrices, inverses", 5, count, n, 8,
            )
    except InputError as exc:
        fail(str(exc))
    config = DemoConfig(sizes=size_list, count=count, seed=seed, learned_steps=learned_steps)
    with err_console.status("running the demo", spinner="dots"):
        sections = run_demo(config)
    # Piped output (a log, a README) gets room for the whole table instead of 80 columns.
    out = console if console.is_terminal else Console(width=max(console.width, 120))
    for section in sections:
        table = Table(title=section.title, title_justify="left", box=box.SIMPLE_HEAD)
        for i, column in enumerate(section.columns):
            table.add_column(column, justify="right" if i in (1, 2) else "left", no_wrap=i == 0)
        for row in section.rows:
            table.add_row(*row)
        out.print(table)
        for note in section.notes:
            out.print(f"  {note}", highlight=False, soft_wrap=True)
        out.print()


@app.command()
def bench(
    sizes: str = typer.Option("2,3,4,8,16,32,64,128", "--sizes", help="Comma-separated matrix sizes n"),
    batch: int = typer.Option(100_000, "--batch", help="Matrices per size (capped by --max-elements)"),
    dtype: str = typer.Option("float32", "--dtype", help="float32 or float64"),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, ..."),
    methods: str = typer.Option(
        "auto,closed_form,lu", "--methods",
        help=f"Comma-separated registered methods ({_METHOD_NAMES}; learned needs --model); "
        f"NAME:compile benches compile=True ({_COMPILE_METHODS})",
    ),
    repeats: int = typer.Option(5, "--repeats", help="Timed rounds per size (median reported)"),
    max_elements: int = typer.Option(
        1 << 26, "--max-elements", help="Cap on batch * n * n per size (memory bound)"
    ),
    alone: bool = typer.Option(True, "--alone/--no-alone", help="Also time each kernel without its certificate"),
    threads: int | None = typer.Option(None, "--threads", help="torch.set_num_threads for the run"),
    json_path: Path | None = typer.Option(None, "--json", help="Write every measurement here (JSON)"),
    plot_path: Path | None = typer.Option(None, "--plot", help="Write a log-log matrices/s vs n plot (PNG)"),
    model: str | None = typer.Option(
        None, "--model", help="Also bench the certified learned method of this model (DIR or builtin:NAME) on its region (--methods learned:compile for its compiled path)"
    ),
) -> None:
    """Throughput (matrices/s), worst LAPACK ratio and peak memory of every method next to
    torch.linalg.inv and numpy.linalg.inv: same inputs, same process, warm-up excluded."""
    import torch

    from .bench import (
        DTYPES,
        SKIPPED_EVERYWHERE,
        BenchConfig,
        parse_names,
        parse_sizes,
        plot,
        rich_table,
        run,
        write_json,
    )

    try:
        config = BenchConfig(
            sizes=parse_sizes(sizes), batch=batch, dtype=dtype, device=device,
            methods=parse_names(methods), repeats=repeats, max_elements=max_elements, alone=alone,
            model=model,
        )
        for n in config.sizes:  # the batch bench.run uses for size n: capped by max_elements
            check_memory(
                f"bench --sizes {n}", f"{dtype} matrices, inverses, certificate residuals", 3,
                max(1, min(config.batch, config.max_elements // (n * n))), n,
                DTYPES[config.dtype].itemsize, config.device,
            )
        if threads is not None:
            if threads < 1:
                raise InputError(f"--threads must be an integer >= 1, got {threads}")
            torch.set_num_threads(threads)
        result = run(config, progress=lambda msg: err_console.print(msg, highlight=False))
        # Piped output (a log, docs) gets the whole table instead of 80 columns.
        out = console if console.is_terminal else Console(width=max(console.width, 110))
        out.print(rich_table(result))
        for note in result.notes:
            if note.startswith(SKIPPED_EVERYWHERE):
                err_console.print(f"note: {note}", highlight=False, soft_wrap=True)
        if json_path is not None:
            write_json(result, json_path)
            console.print(f"wrote {json_path}", highlight=False)
        if plot_path is not None:
            plot(result, plot_path)
            console.print(f"wrote {plot_path}", highlight=False)
    except (InputError, OSError) as exc:
        fail(str(exc))


class _Terminated(BaseException):
    """Raised in the main thread by SIGTERM/SIGHUP so that ``finally`` blocks and the atomic
    writers' cleanup run, as they do for SIGINT's KeyboardInterrupt. A BaseException, so no
    ``except Exception`` swallows it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum, frame) -> None:
    # A second signal while cleaning up must not cut the cleanup short.
    for sig in _TERMINATING:
        signal.signal(sig, signal.SIG_IGN)
    raise _Terminated(signum)


_TERMINATING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def main() -> None:
    """The console entry point: the CLI with SIGTERM and SIGHUP turned into an orderly exit
    (outputs of the interrupted command are left as they were, no temporary files). The process
    then ends by the same signal, so its parent sees how it stopped. Library code installs no
    handlers; this is the only place."""
    installed = []
    if threading.current_thread() is threading.main_thread():
        for sig in _TERMINATING:
            if signal.getsignal(sig) is signal.SIG_DFL:
                signal.signal(sig, _on_signal)
                installed.append(sig)
    try:
        app()
    except _Terminated as stop:
        signal.signal(stop.signum, signal.SIG_DFL)
        os.kill(os.getpid(), stop.signum)
        raise SystemExit(128 + stop.signum) from None  # where the signal does not end us


if __name__ == "__main__":
    main()
