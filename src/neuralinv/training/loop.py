"""The training loop: one readable function per concern, nanoGPT style.

Every step draws a fresh batch from the region (no static dataset, so nothing to overfit), the
float64 inverse is the target, and the loss is ``mse``, ``identity`` or ``both``. Every
``val_every`` steps the model is scored on a fixed validation sample (MAE against the float64
inverse, and the fraction of guesses X with ``||I - A X||_2 < 1``, the ones Newton-Schulz is
guaranteed to refine), the best weights are kept, and a checkpoint is written so a killed run
resumes where it stopped. Ensemble members are trained one after the other with their own seeds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..certify import contracts
from ..errors import InputError
from ..methods.lu import inverse_ex
from ..models import build_model
from . import checkpoint as ckpt
from .config import TrainConfig
from .distributed import Context, context, weights_digest

#: Calibration and validation samples use seeds far from the training streams'.
_CALIBRATION_SEED = 1_000_003
_VALIDATION_SEED = 2_000_003
_CALIBRATION_SIZE = 4096


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


# -- data -------------------------------------------------------------------------------------
def _member_seed(config: TrainConfig, member: int, rank: int) -> int:
    return config.seed * 1_000_000 + member * 1_000 + rank


def _generator(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def fixed_sample(config: TrainConfig, seed: int, size: int, device) -> tuple[Tensor, Tensor]:
    """A reproducible float64 sample of the region and its float64 inverses."""
    g = _generator(config.seed * 7919 + seed, torch.device("cpu"))
    A = config.region.sample(size, generator=g, dtype=torch.float64)
    return A.to(device), inverse_ex(A)[0].to(device)


def validation_sample(config: TrainConfig, device=None) -> tuple[Tensor, Tensor]:
    return fixed_sample(config, _VALIDATION_SEED, config.val_size, device or "cpu")


# -- model ------------------------------------------------------------------------------------
def new_member(config: TrainConfig, member: int) -> nn.Module:
    """An initialised, calibrated network. Initialisation is seeded inside a forked RNG so it is
    reproducible without touching the caller's global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_member_seed(config, member, 0))
        model = skeleton(config)
    if config.scaling == "standardize" and hasattr(model, "calibrate"):
        A, X = fixed_sample(config, _CALIBRATION_SEED, _CALIBRATION_SIZE, "cpu")
        model.calibrate(A, X)
    return model.to(dtype=_dtype(config))


def skeleton(config: TrainConfig) -> nn.Module:
    """The architecture of ``config``, in the training dtype, weights not yet meaningful."""
    m = config.model
    model = build_model(
        m.arch, config.region, depth=m.depth, width=m.width, blocks=m.blocks,
        scaling=config.scaling, activation=m.activation,
    )
    return model.to(dtype=_dtype(config))


def _dtype(config: TrainConfig) -> torch.dtype:
    return getattr(torch, config.dtype)


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


def linear_approximation_mae(config: TrainConfig, A: Tensor, X_true: Tensor) -> float | None:
    """MAE of ``C - C D C`` around a Ball's center (the paper's baseline; for Balls around each
    matrix's nearest center); None for a Box."""
    region = config.region
    if hasattr(region, "balls"):
        which = region.nearest(A.cpu()).to(A.device)
        centers = region.centers.to(A)
        C = torch.linalg.inv(centers)[which]
        D = A - centers[which]
        return float((C - C @ D @ C - X_true).abs().mean())
    center = getattr(region, "center", None)
    if center is None:
        return None
    C = torch.linalg.inv(center).to(A)
    D = A - center.to(A)
    return float((C - C @ D @ C - X_true).abs().mean())


#: Data matrices kept for mixing into training batches (a uniform sample of the in-region ones).
MAX_DATA_MATRICES = 200_000


def data_matrices(config: TrainConfig, device=None) -> Tensor | None:
    """The matrices of ``config.data`` that the learned method would hand to the network, as
    the network sees them (scaled into the region as routing scales them), float64 on
    ``device``; at most :data:`MAX_DATA_MATRICES` (a seeded uniform sample). None without data.
    InputError when a file's SHA-256 differs from ``config.data_sha256`` (the data changed
    since the region was fitted) or no data matrix lies in the region."""
    if not config.data:
        return None
    from ..fitting import read_fit_data, sha256_file
    from ..methods.learned import into_region

    if config.data_sha256 is not None:
        for path, digest in zip(config.data, config.data_sha256):
            got = sha256_file(path) if Path(path).is_file() else None
            if got != digest:
                raise InputError(
                    f"{path}: {'missing' if got is None else 'changed'} since the region was fitted "
                    f"(SHA-256 {digest[:12]}..., now {got[:12] + '...' if got else 'none'}); "
                    "fit and train again (--no-resume)"
                )
    data = read_fit_data(list(config.data), limit=MAX_DATA_MATRICES, seed=config.seed)
    A = data.sample
    inside, s = into_region(config.region, A, scale=True)
    kept = (A * s[:, None, None])[inside]
    if kept.shape[0] == 0:
        raise InputError(f"{', '.join(config.data)}: no matrix lies in the model's region (even scaled)")
    return kept.to(device or "cpu")


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
):
    """Train ``config.ensemble`` members on ``config.region``; return a LearnedInverse.

    With ``out``, the model directory is written there (config.toml, member-K.safetensors,
    metrics.json, runs/ for TensorBoard, training-state.pt for resuming) and, with ``resume``,
    an interrupted run in ``out`` continues from its last checkpoint. Under torchrun the work
    is data-parallel over the ranks and only rank 0 writes. ``fit``: how the region was fitted
    to data (written to the directory's fit.json).
    """
    from ..learned_inverse import LearnedInverse, check_architecture

    if not isinstance(config, TrainConfig):
        raise InputError(f"config must be a TrainConfig, got {type(config).__name__}")
    check_architecture(config, "the training config", [])  # before any network is built
    out = Path(out) if out is not None else None
    with context(config.device) as ctx:
        state = _prepare_out(config, out, resume, ctx)
        fit = _fit_record(config, out, fit, ctx)
        run = _Run(config, out, progress, ctx, state)
        members = run.all_members()
        metrics = run.metrics()
        model = LearnedInverse(config, members, metrics, fit)
        if out is not None and ctx.is_main:
            model.save(out)
            run.save_state(finished=True)
        ctx.barrier()
    return model


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
            ckpt.write_text(config_path, config.to_toml())
    ctx.barrier()
    if state is None and resume and state_path.is_file():
        state = ckpt.load_state(state_path)
    return state


def _fit_record(config: TrainConfig, out: Path | None, fit: dict | None, ctx: Context) -> dict | None:
    """The fit.json record: written into ``out`` at the start (so an interrupted run keeps it),
    or, resuming a data-fitted run without one (``--config DIR/config.toml``), read back."""
    from ..learned_inverse import FIT_FILE

    if out is None or not config.data:
        return fit
    path = out / FIT_FILE
    if fit is None:
        got = ckpt.read_json(path) if path.is_file() else None
        return got if isinstance(got, dict) else None
    if ctx.is_main:
        import json

        ckpt.write_text(path, json.dumps(fit, indent=1) + "\n")
    return fit


def _diff(a: dict, b: dict) -> str:
    keys = [k for k in a if a.get(k) != b.get(k)]
    return ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys[:4]) or "?"


class _Run:
    """State shared by the members of one run: validation data, histories, best weights."""

    def __init__(self, config: TrainConfig, out: Path | None, progress, ctx: Context, state: dict | None):
        self.config, self.out, self.progress, self.ctx = config, out, progress, ctx
        self.device = ctx.device
        self.val_A, self.val_X = validation_sample(config, self.device)
        self.baseline = linear_approximation_mae(config, self.val_A, self.val_X)
        self.data = data_matrices(config, self.device)
        self.state = state
        self.best: list[dict] = list(state["best"]) if state else []
        self.best_mae: list[float] = list(state["best_mae"]) if state else []
        self.history: list[list[dict]] = [list(h) for h in state["history"]] if state else []
        self.resumed_from: list[dict] = list(state.get("resumed_from", [])) if state else []
        self.digests: list[list[str]] = list(state.get("digests", [])) if state else []
        self.elapsed = float(state["elapsed"]) if state else 0.0
        # Time spent on the member being trained: what the validation history is plotted against.
        self.member_elapsed = float(state.get("member_elapsed", 0.0)) if state else 0.0
        self.member, self.step = (int(state["member"]), int(state["step"])) if state else (0, 0)
        self._live: dict[str, Any] | None = None
        self.writer = None

    # -- members -------------------------------------------------------------------------
    def all_members(self) -> list[nn.Module]:
        config = self.config
        finished = bool(self.state and self.state.get("finished"))
        if self.state and not finished:
            self.resumed_from.append({"member": self.member, "step": self.step})
        start = config.ensemble if finished else self.member
        for k in range(start, config.ensemble):
            self._train_member(k, resume_step=self.step if k == self.member else 0)
        members = []
        for k in range(config.ensemble):
            model = skeleton(config)
            ckpt.load_into(model, self.best[k], f"training state member {k}")
            members.append(model.eval())
        return members

    def _train_member(self, k: int, resume_step: int) -> None:
        config, ctx, device = self.config, self.ctx, self.device
        model = new_member(config, k).to(device)
        opt = make_optimizer(config, model)
        sched = make_scheduler(config, opt)
        gen = _generator(_member_seed(config, k, ctx.rank), device)
        if resume_step > 0 and self.state is not None:
            source = self.out / ckpt.STATE_FILE if self.out is not None else "training state"
            ckpt.load_into(model, self.state["model"], source)
            try:
                opt.load_state_dict(self.state["optimizer"])
                sched.load_state_dict(self.state["scheduler"])
                rng = self.state.get("rng", [])
                if len(rng) == ctx.world_size:
                    gen.set_state(rng[ctx.rank])
                else:  # resumed with another number of ranks: fresh but distinct streams
                    gen.manual_seed(_member_seed(config, k, ctx.rank) + 7 * resume_step)
            except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as exc:
                raise InputError(
                    f"{source}: the optimizer, scheduler or RNG state cannot be restored "
                    f"({type(exc).__name__}: {exc}); delete it or train with --no-resume"
                ) from None
        else:
            resume_step = 0
            if len(self.best) > k:  # a restarted member drops what the killed one had
                del self.best[k:], self.best_mae[k:], self.history[k:]
            self.best.append(ckpt.cpu_state(model))
            self.best_mae.append(math.inf)
            self.history.append([])
            self.member_elapsed = 0.0
        self.writer = self._tensorboard(k, resume_step)
        net = ctx.wrap(model)
        scale = _target_scale(model)
        dtype = _dtype(config)
        clock = time.perf_counter()
        base_elapsed, base_member = self.elapsed, self.member_elapsed
        last_val: dict[str, float] | None = None
        net.train()
        for step in range(resume_step + 1, config.steps + 1):
            A = self._batch(gen)
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
            self.elapsed, self.member_elapsed = base_elapsed + spent, base_member + spent
            lr = opt.param_groups[0]["lr"]
            if step % config.val_every == 0 or step == config.steps:
                last_val = self._validate(k, step, model, loss_value, lr)
                self.member, self.step = k, step
                self._live = {"model": model, "opt": opt, "sched": sched, "gen": gen}
                self.save_state(finished=False)
                net.train()
            if self.progress is not None and ctx.is_main:
                self.progress(
                    Progress(
                        member=k,
                        members=config.ensemble,
                        step=step,
                        steps=config.steps,
                        loss=loss_value,
                        lr=lr,
                        val_mae=None if last_val is None else last_val["mae"],
                        val_contract=None if last_val is None else last_val["contract"],
                        best_val_mae=self.best_mae[k] if math.isfinite(self.best_mae[k]) else None,
                        elapsed_s=self.elapsed,
                        resumed_from=resume_step or None,
                    )
                )
        self.digests = self.digests[:k] + [ctx.gather(weights_digest(model))]
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.member, self.step = k + 1, 0
        self._live = None

    def _batch(self, gen: torch.Generator) -> Tensor:
        """A float64 training batch: fresh region samples, with ``data_share`` of it drawn (with
        replacement) from the data matrices when the config has data."""
        config, device = self.config, self.device
        take = 0 if self.data is None else round(config.batch_size * config.data_share)
        A = config.region.sample(config.batch_size - take, generator=gen, device=device, dtype=torch.float64)
        if take:
            idx = torch.randint(self.data.shape[0], (take,), generator=gen, device=device)
            A = torch.cat([A, self.data[idx]])
        return A

    def _validate(self, k: int, step: int, model: nn.Module, loss: float, lr: float) -> dict:
        model.eval()
        val = evaluate(model, self.val_A, self.val_X)
        self.history[k].append(
            {"step": step, "time_s": round(self.member_elapsed, 4), "loss": loss, "lr": lr,
             "val_mae": val["mae"], "val_r2": val["r2"], "val_contract": val["contract"]}
        )
        if val["mae"] < self.best_mae[k]:
            self.best_mae[k] = val["mae"]
            self.best[k] = ckpt.cpu_state(model)
        if self.writer is not None:
            for name, value in (("train/loss", loss), ("train/lr", lr), ("val/mae", val["mae"]),
                                ("val/r2", val["r2"]), ("val/contract_fraction", val["contract"])):
                self.writer.add_scalar(name, value, step)
        return val

    def _tensorboard(self, k: int, resume_step: int):
        if self.out is None or not self.ctx.is_main or not self.config.tensorboard:
            return None
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events a killed run logged after its last checkpoint.
        return SummaryWriter(str(self.out / "runs" / f"member-{k}"), purge_step=resume_step or None)

    # -- files ---------------------------------------------------------------------------
    def save_state(self, *, finished: bool) -> None:
        live = self._live
        rng = self.ctx.gather(live["gen"].get_state().cpu()) if live else []
        if self.out is None or not self.ctx.is_main:
            return
        state = {
            "finished": finished,
            # A finished run reports its last step, so the count reads naturally on resume.
            "member": self.config.ensemble if finished else self.member,
            "step": self.config.steps if finished else self.step,
            "elapsed": self.elapsed,
            "member_elapsed": self.member_elapsed,
            "best": self.best,
            "best_mae": self.best_mae,
            "history": self.history,
            "resumed_from": self.resumed_from,
            "digests": self.digests,
            "rng": rng,
        }
        if live:
            state["model"] = ckpt.cpu_state(live["model"])
            state["optimizer"] = live["opt"].state_dict()
            state["scheduler"] = live["sched"].state_dict()
        ckpt.save_state(self.out / ckpt.STATE_FILE, state)
        # The best weights so far are usable (and inspectable) while training goes on.
        k = self.member if live else self.member - 1
        if 0 <= k < len(self.best):
            ckpt.save_weights(self.out / ckpt.member_file(k), self.best[k])

    def metrics(self) -> dict[str, Any]:
        members = []
        for k, hist in enumerate(self.history):
            best = min(hist, key=lambda h: h["val_mae"]) if hist else None
            members.append({"member": k, "best": best, "history": hist})
        return {
            "train_seconds": round(self.elapsed, 3),
            "world_size": self.ctx.world_size,
            "validation": {"size": self.config.val_size, "linear_approximation_mae": self.baseline},
            **({"data_matrices": int(self.data.shape[0])} if self.data is not None else {}),
            "members": members,
            "resumed_from": self.resumed_from,
            "rank_digests": self.digests,
        }


__all__ = ["Progress", "evaluate", "linear_approximation_mae", "loss_fn", "train", "validation_sample"]
