"""``neuralinv train``: a learned inverter on a region, or on a region fitted to the user's matrices."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from ..errors import InputError
from .app import app, console, fail, say
from .signals import _removed_on_failure


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
    from ..files import read_matrices
    from ..learned.config import TrainConfig, config_from_options
    from ..learned.loop import train as run_training

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
    from ..learned.config import TrainConfig
    from ..regions import fit_files
    from .render import fit_line

    base = base or TrainConfig()
    region = fit_files(files, coverage=0.99 if coverage is None else coverage, k=balls,
                       seed=base.seed if seed is None else seed)
    rep = region.fit_report
    if size is not None and size != region.n:
        raise InputError(f"--size {size} but the --data matrices are {region.n}x{region.n}")
    say(fit_line(region, files))
    changes = {"n": region.n, "region": region, "data": tuple(f["path"] for f in rep.files),
               "data_sha256": tuple(f["sha256"] for f in rep.files),
               "data_share": data_share if data_share is not None else (base.data_share or 0.25)}
    if arch is None and base.model.arch != "correction":
        changes["arch"] = "correction"
    return base.override(**changes), {"region": region.describe()["kind"], **rep.as_dict()}


def _train_with_progress(cfg, out, resume, run_training, fit=None):
    from rich.progress import Progress

    from .render import training_columns, training_header

    console.print(training_header(cfg, out), highlight=False)
    with Progress(*training_columns(), console=console, transient=False) as bar:
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


def _print_training_summary(model, out) -> None:
    from .render import training_summary

    table, lines = training_summary(model, out)
    console.print(table)
    for line in lines:
        console.print(line, highlight=False)
