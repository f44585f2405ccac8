"""The training loop, nanoGPT style: :func:`train` reads top to bottom.

Every step draws a fresh batch from the region (no static dataset, so nothing to overfit), the
float64 inverse is the target, and the loss is ``mse``, ``identity`` or ``both``. Every
``val_every`` steps the model is scored on a fixed validation sample (MAE against the float64
inverse, and the fraction of guesses X with ``||I - A X||_2 < 1``, the ones Newton-Schulz is
guaranteed to refine), the best weights are kept, and a checkpoint is written so a killed run
resumes where it stopped. Ensemble members are trained one after the other with their own seeds.

What a run keeps from member to member (best weights, histories, digests, time) is a handful
of local variables of :func:`train`; the checkpoint dict is built in :func:`train_member` right
where it is saved, from them and the member's live model, optimizer, scheduler and sampler.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..certify import contracts
from ..errors import InputError
from ..files import write_text
from ..kernels.lapack import inverse_ex
from . import checkpoint as ckpt
from .config import TrainConfig
from .data import (
    CALIBRATION_SEED,
    CALIBRATION_SIZE,
    batch,
    data_matrices,
    fixed_sample,
    generator,
    linear_approximation_mae,
    member_seed,
    validation_sample,
)
from .distributed import Context, context, weights_digest
from .inverse import FIT_FILE, LearnedInverse, check_architecture


@dataclass(frozen=True)


class Progress:
    """What the progress callback receives after every step (rank 0 only)."""

    member: int
    members: int
    step: int
    steps: int
    loss: float
    lr: float
    val_mae: float | None
    val_contract: float | None
    best_val_mae: float | None
    elapsed_s: float
    resumed_from: int | None


ProgressFn = Callable[[Progress], None]


def new_member(config: TrainConfig, member: int) -> nn.Module:
    """An initialised, calibrated network. Initialisation is seeded inside a forked RNG so it is
    reproducible without touching the caller's global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(member_seed(config, member, 0))
        model = config.skeleton()
    if config.scaling == "standardize" and hasattr(model, "calibrate"):
        A, X = fixed_sample(config, CALIBRATION_SEED, CALIBRATION_SIZE, "cpu")
        model.calibrate(A, X)
    return model.to(dtype=config.torch_dtype)


def _target_scale(model: nn.Module) -> float:
    scale = getattr(model, "target_scale", None)
    return 1.0 if scale is None else float(scale)


# -- loss and metrics ------------------------------------------------------------------------
def loss_fn(config: TrainConfig, A: Tensor, X_pred: Tensor, X_true: Tensor | None, scale: float) -> Tensor:
    terms = []
    if config.loss in ("mse", "both"):
        terms.append(((X_pred - X_true) / scale).pow(2).mean())
    if config.loss in ("identity", "both"):
        R = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device) - A @ X_pred
        weight = config.identity_weight if config.loss == "both" else 1.0
        terms.append(weight * torch.linalg.matrix_norm(R).mean())
    return sum(terms)


@torch.no_grad()
def evaluate(model: nn.Module, A: Tensor, X_true: Tensor, chunk: int = 8192) -> dict[str, float]:
    """MAE against the float64 inverse, R^2, and the fraction of guesses that contract."""
    dtype = next(model.parameters()).dtype
    preds = [model(A[i : i + chunk].to(dtype)).to(torch.float64) for i in range(0, len(A), chunk)]
    X = torch.cat(preds)
    err = X - X_true
    ss_res = err.pow(2).sum()
    ss_tot = (X_true - X_true.mean(0)).pow(2).sum()
    return {
        "mae": float(err.abs().mean()),
        "r2": float(1 - ss_res / ss_tot) if ss_tot > 0 else float("nan"),
        "contract": float(contracts(A, X).double().mean()),
    }


# -- optimisation -----------------------------------------------------------------------------
def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(config: TrainConfig, opt: torch.optim.Optimizer):
    if config.schedule == "cosine_restarts":
        return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            opt,
            T_0=config.resolved_restart_period(),
            T_mult=config.restart_mult,
            eta_min=config.lr * config.min_lr_ratio,
        )
    if config.schedule == "one_cycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=config.steps)
    return torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)


# -- the run ----------------------------------------------------------------------------------
def train(
    config: TrainConfig,
    out: str | Path | None = None,
    progress: ProgressFn | None = None,
    *,
    resume: bool = True,
    fit: dict | None = None,
) -> LearnedInverse:
    """Train ``config.ensemble`` members on ``config.region``; return a LearnedInverse.

    With ``out``, the model directory is written there (config.toml, member-K.safetensors,
    metrics.json, runs/ for TensorBoard, training-state.pt for resuming) and, with ``resume``,
    an interrupted run in ``out`` continues from its last checkpoint. Under torchrun the work
    is data-parallel over the ranks and only rank 0 writes. ``fit``: how the region was fitted
    to data (written to the directory's fit.json).
    """
    if not isinstance(config, TrainConfig):
        raise InputError(f"config must be a TrainConfig, got {type(config).__name__}")
    check_architecture(config, "the training config", [])  # before any network is built
    out = Path(out) if out is not None else None
    with context(config.device) as ctx:
        state = _prepare_out(config, out, resume, ctx)  # the checkpoint to resume from, or None
        fit = _fit_record(config, out, fit, ctx)
        val = validation_sample(config, ctx.device)
        data = data_matrices(config, ctx.device)

        # What the run keeps from member to member (restored from the checkpoint when resuming).
        run = {
            "best": list(state["best"]) if state else [],  # each member's best weights (CPU)
            "best_mae": list(state["best_mae"]) if state else [],
            "history": [list(h) for h in state["history"]] if state else [],
            "resumed_from": list(state.get("resumed_from", [])) if state else [],
            "digests": list(state.get("digests", [])) if state else [],  # per member, per rank
            "elapsed": float(state["elapsed"]) if state else 0.0,
            # Time spent on the member being trained: what its validation history is timed by.
            "member_elapsed": float(state.get("member_elapsed", 0.0)) if state else 0.0,
        }
        finished = bool(state and state["finished"])
        first = config.ensemble if finished else int(state["member"]) if state else 0
        if state and not finished:
            run["resumed_from"].append({"member": first, "step": int(state["step"])})
        for k in range(first, config.ensemble):
            resumed = state if state is not None and k == first and int(state["step"]) > 0 else None
            train_member(config, k, run, resumed, val, data, out, progress, ctx)

        members = []
        for k in range(config.ensemble):
            net = config.skeleton()
            ckpt.load_into(net, run["best"][k], f"training state member {k}")
            members.append(net.to(ctx.device).eval())  # the model stays where it was trained
        metrics = {
            "train_seconds": round(run["elapsed"], 3),
            "world_size": ctx.world_size,
            "validation": {"size": config.val_size,
                           "linear_approximation_mae": linear_approximation_mae(config, *val)},
            **({"data_matrices": int(data.shape[0])} if data is not None else {}),
            "members": [{"member": k, "best": min(h, key=lambda e: e["val_mae"]) if h else None,
                         "history": h} for k, h in enumerate(run["history"])],
            "resumed_from": run["resumed_from"],
            "rank_digests": run["digests"],
        }
        model = LearnedInverse(config, members, metrics, fit)
        if out is not None and ctx.is_main:
            model.save(out)
            # A finished run reports its last member and step, so a later resume reads naturally.
            done = {**run, "finished": True, "member": config.ensemble, "step": config.steps,
                    "rng": []}
            ckpt.save_state(out / ckpt.STATE_FILE, done)
        ctx.barrier()
    return model


def train_member(config: TrainConfig, k: int, run: dict, resumed: dict | None,
                 val: tuple[Tensor, Tensor], data: Tensor | None, out: Path | None,
                 progress: ProgressFn | None, ctx: Context) -> None:
    """Train member ``k`` (from the checkpoint ``resumed`` when given), updating ``run``: its
    best weights and validation history, the time spent, its weights' digest on every rank."""
    device = ctx.device
    model = new_member(config, k).to(device)
    opt = make_optimizer(config, model)
    sched = make_scheduler(config, opt)
    gen = generator(member_seed(config, k, ctx.rank), device)
    source = out / ckpt.STATE_FILE if out is not None else "training state"
    start = 0
    if resumed is not None:
        start = int(resumed["step"])
        _restore(config, k, resumed, model, opt, sched, gen, source, ctx)
    else:  # a fresh member; a restarted one drops what the killed one had
        del run["best"][k:], run["best_mae"][k:], run["history"][k:]
        run["best"].append(ckpt.cpu_state(model))
        run["best_mae"].append(math.inf)
        run["history"].append([])
        run["member_elapsed"] = 0.0
    writer = _tensorboard(config, out, k, start, ctx)
    net = ctx.wrap(model)
    scale = _target_scale(model)
    dtype = config.torch_dtype
    clock = time.perf_counter()
    base_elapsed, base_member = run["elapsed"], run["member_elapsed"]
    last_val: dict[str, float] | None = None
    net.train()
    for step in range(start + 1, config.steps + 1):
        A = batch(config, data, gen, device)
        X_true = inverse_ex(A)[0].to(dtype) if config.loss != "identity" else None
        A = A.to(dtype)
        loss = loss_fn(config, A, net(A), X_true, scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise FloatingPointError(
                f"training diverged at member {k} step {step} (loss {loss_value}); lower --lr"
            )
        spent = time.perf_counter() - clock
        run["elapsed"], run["member_elapsed"] = base_elapsed + spent, base_member + spent
        lr = opt.param_groups[0]["lr"]
        if step % config.val_every == 0 or step == config.steps:
            model.eval()
            last_val = evaluate(model, *val)
            run["history"][k].append(
                {"step": step, "time_s": round(run["member_elapsed"], 4), "loss": loss_value, "lr": lr,
                 "val_mae": last_val["mae"], "val_r2": last_val["r2"],
                 "val_contract": last_val["contract"]}
            )
            if last_val["mae"] < run["best_mae"][k]:
                run["best_mae"][k] = last_val["mae"]
                run["best"][k] = ckpt.cpu_state(model)
            if writer is not None:
                for name, value in (("train/loss", loss_value), ("train/lr", lr),
                                    ("val/mae", last_val["mae"]), ("val/r2", last_val["r2"]),
                                    ("val/contract_fraction", last_val["contract"])):
                    writer.add_scalar(name, value, step)
            rng = ctx.gather(gen.get_state().cpu())  # every rank takes part in the gather
            if out is not None and ctx.is_main:
                checkpoint = {
                    **run, "finished": False, "member": k, "step": step, "rng": rng,
                    "model": ckpt.cpu_state(model), "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                }
                ckpt.save_state(out / ckpt.STATE_FILE, checkpoint)
                # The best weights so far are usable (and inspectable) while training goes on.
                ckpt.save_weights(out / ckpt.member_file(k), run["best"][k])
            net.train()
        if progress is not None and ctx.is_main:
            best = run["best_mae"][k]
            progress(
                Progress(
                    member=k, members=config.ensemble, step=step, steps=config.steps,
                    loss=loss_value, lr=lr,
                    val_mae=None if last_val is None else last_val["mae"],
                    val_contract=None if last_val is None else last_val["contract"],
                    best_val_mae=best if math.isfinite(best) else None,
                    elapsed_s=run["elapsed"], resumed_from=start or None,
                )
            )
    run["digests"] = run["digests"][:k] + [ctx.gather(weights_digest(model))]
    if writer is not None:
        writer.close()


def _restore(config: TrainConfig, k: int, state: dict, model: nn.Module, opt, sched,
             gen: torch.Generator, source, ctx: Context) -> None:
    """Member ``k``'s model, optimizer, scheduler and sampler as the checkpoint left them."""
    ckpt.load_into(model, state["model"], source)
    try:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        rng = state.get("rng", [])
        if len(rng) == ctx.world_size:
            gen.set_state(rng[ctx.rank])
        else:  # resumed with another number of ranks: fresh but distinct streams
            gen.manual_seed(member_seed(config, k, ctx.rank) + 7 * int(state["step"]))
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as exc:
        raise InputError(
            f"{source}: the optimizer, scheduler or RNG state cannot be restored "
            f"({type(exc).__name__}: {exc}); delete it or train with --no-resume"
        ) from None


def _tensorboard(config: TrainConfig, out: Path | None, k: int, start: int, ctx: Context):
    if out is None or not ctx.is_main or not config.tensorboard:
        return None
    from torch.utils.tensorboard import SummaryWriter

    # purge_step drops events a killed run logged after its last checkpoint.
    return SummaryWriter(str(out / "runs" / f"member-{k}"), purge_step=start or None)


def _prepare_out(config: TrainConfig, out: Path | None, resume: bool, ctx: Context) -> dict | None:
    """Check (or create) the model directory; return the checkpoint to resume from, if any."""
    if out is None:
        return None
    state_path = out / ckpt.STATE_FILE
    config_path = out / ckpt.CONFIG_FILE
    state = None
    if ctx.is_main:
        if out.exists() and not out.is_dir():
            raise InputError(f"{out}: exists and is not a directory")
        if resume and state_path.is_file():
            saved = TrainConfig.load(config_path)
            if saved != config:
                diff = _diff(saved.to_dict(), config.to_dict())
                raise InputError(
                    f"{config_path}: the interrupted run in {out} used different settings "
                    f"({diff}); pass the same settings, another --out, or --no-resume"
                )
            state = ckpt.load_state(state_path)
            if not state["finished"]:
                ckpt.write_manifest(out, "training")
        else:
            out.mkdir(parents=True, exist_ok=True)
            # Starting afresh: first say so (the manifest stops claiming a complete model),
            # then drop the files of any earlier run, then write the new settings. Killed at
            # any point, the directory either refuses to load or loads the earlier model whole.
            ckpt.write_manifest(out, "training")
            for stale in [state_path, out / ckpt.METRICS_FILE, *sorted(out.glob("member-*.safetensors"))]:
                stale.unlink(missing_ok=True)
            write_text(config_path, config.to_toml())
    ctx.barrier()
    if state is None and resume and state_path.is_file():
        state = ckpt.load_state(state_path)
    return state


def _fit_record(config: TrainConfig, out: Path | None, fit: dict | None, ctx: Context) -> dict | None:
    """The fit.json record: written into ``out`` at the start (so an interrupted run keeps it),
    or, resuming a data-fitted run without one (``--config DIR/config.toml``), read back."""
    if out is None or not config.data:
        return fit
    path = out / FIT_FILE
    if fit is None:
        got = ckpt.read_json(path) if path.is_file() else None
        return got if isinstance(got, dict) else None
    if ctx.is_main:
        import json

        write_text(path, json.dumps(fit, indent=1) + "\n")
    return fit


def _diff(a: dict, b: dict) -> str:
    keys = [k for k in a if a.get(k) != b.get(k)]
    return ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys[:4]) or "?"


__all__ = ["Progress", "evaluate", "loss_fn", "new_member", "train", "train_member"]
