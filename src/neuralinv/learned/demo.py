"""The data of ``neuralinv demo``'s learned part: train a small network on the default 3x3 ball,
then invert a held-out batch with it, certified, and count who answered what.

Returns data only (:func:`run`); :mod:`neuralinv.demo` makes it a section and the CLI
(:mod:`neuralinv.cli.render`) draws it. The held-out batch has four groups, so every path of
the learned method shows: fresh matrices of the ball (answered by the network after
Newton-Schulz refinement), multiples of matrices of the ball (scaled back into it first, as
DeepMatrixInversion scales its inputs), matrices with entries uniform in [-1, 1] (far outside
the ball: the exact fallback answers them), and exactly rank-deficient matrices (no inverse
exists; the fallback reports it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from ..regions import Ball, Box
from ..solution import Status
from .config import ModelConfig, TrainConfig
from .inverse import LearnedInverse
from .loop import train

#: Seed of the held-out batch: far from the training (seed * 10^6 + ...) and validation streams.
HELD_OUT_SEED = 5_000_011


#: Training steps of the demo's model (its time: docs/learned-inference.md, "make demo").
DEMO_STEPS = 12_000


def demo_config(steps: int = DEMO_STEPS, seed: int = 0) -> TrainConfig:
    """The paper's 2-FC ReLU network (one hidden layer, 256 units) on ``Ball.default(3)``,
    trained on ``steps`` batches of 256 fresh matrices of the ball."""
    return TrainConfig(
        n=3,
        region=Ball.default(3),
        model=ModelConfig(arch="mlp", depth=2, width=256),
        loss="mse",
        lr=3e-3,
        steps=steps,
        batch_size=256,
        val_every=500,
        val_size=4096,
        tensorboard=False,
        seed=seed,
    )


@dataclass(frozen=True)
class Group:
    """What happened to one group of the held-out batch."""

    name: str
    count: int
    network: int  # answered by the network after refinement
    scaled: int  # ... of which after scaling into the region
    fell_back: int  # answered (or declared singular) by the exact fallback
    status: dict[str, int]
    worst_residual: float  # over the answers that exist (NaN if none)
    max_error: float  # max |X - inv64(A)| over certified answers (NaN if none)
    mean_iterations: float  # Newton-Schulz steps per network answer (NaN if none)


@dataclass(frozen=True)
class LearnedDemo:
    """The held-out batch's groups and how the model did; ``config`` and ``train_seconds``
    describe its training (None for a model trained elsewhere)."""

    groups: list[Group]
    raw_mae: float  # the network alone (no refinement) on the in-ball group, vs float64 inverse
    linear_mae: float  # the linear approximation C - C D C on the same matrices
    seconds: float  # certified learned inversion of the whole batch
    config: TrainConfig | None = None
    train_seconds: float | None = None


def held_out_batch(region: Ball, count: int = 10_000, seed: int = HELD_OUT_SEED) -> dict:
    """The four groups, float64, deterministic for a seed."""
    g = torch.Generator().manual_seed(seed)
    n = region.n
    inside = region.sample(count, generator=g)
    outside = Box(n, -1.0, 1.0).sample(max(count // 10, 1), generator=g)
    # Out of the ball, but a positive multiple of a matrix in it: scaled back in, then answered.
    multiples = 3.0 * region.sample(max(count // 10, 1), generator=g)
    # Integer entries and an exact dependency (last row = sum of the others): exactly singular.
    k = max(count // 1000, 1)
    singular = torch.randint(-3, 4, (k, n, n), generator=g).to(torch.float64)
    singular[:, -1] = singular[:, :-1].sum(dim=1)
    return {
        "in the ball (held out)": inside,
        "3 x a matrix of the ball": multiples,
        "entries uniform in [-1, 1]": outside,
        "singular": singular,
    }


def run_learned_demo(model: LearnedInverse, batch: dict | None = None) -> LearnedDemo:
    """Invert ``held_out_batch(model.region)`` (or ``batch``) with ``model`` and summarise."""
    from ..api import invert  # the certified entry point sits above this package

    batch = held_out_batch(model.region) if batch is None else batch
    names = list(batch)
    A = torch.cat([batch[k] for k in names])
    sol = invert(A, method=model)
    ref = torch.linalg.inv_ex(A)[0]
    labels = np.asarray(sol.method).astype(str)
    iters = sol.stats["iterations"].cpu().numpy()
    # A network answer for an input outside the region was scaled into it first.
    scaled = ~model.region.contains(A).cpu().numpy()
    groups, start = [], 0
    for name in names:
        sl = slice(start, start + batch[name].shape[0])
        start = sl.stop
        net = labels[sl] == "learned"
        status = sol.status[sl]
        # Certified answers: the network's (OK) and the fallback's for out-of-region inputs.
        ok = ((status == int(Status.OK)) | (status == int(Status.OUT_OF_REGION))).cpu().numpy()
        res = sol.residual[sl]
        res = res[torch.isfinite(res)]
        err = (sol.inverse[sl] - ref[sl]).abs().flatten(1).amax(1)[torch.from_numpy(ok)]
        values, counts = np.unique(status.cpu().numpy(), return_counts=True)
        groups.append(
            Group(
                name=name,
                count=int(net.size),
                network=int(net.sum()),
                scaled=int((net & scaled[sl]).sum()),
                fell_back=int((~net).sum()),
                status={Status(int(v)).name: int(c) for v, c in zip(values, counts)},
                worst_residual=float(res.max()) if res.numel() else float("nan"),
                max_error=float(err.max()) if err.numel() else float("nan"),
                mean_iterations=float(iters[sl][net].mean()) if net.any() else float("nan"),
            )
        )
    inside = batch[names[0]]
    raw = model.predict(inside)
    C = torch.linalg.inv(model.region.center)
    linear = C - C @ (inside - model.region.center) @ C
    exact = torch.linalg.inv(inside)
    return LearnedDemo(
        groups=groups,
        raw_mae=float((raw - exact).abs().mean()),
        linear_mae=float((linear - exact).abs().mean()),
        seconds=float(sol.stats["time_s"]),
    )


def run(*, steps: int = DEMO_STEPS, count: int = 10_000, seed: int = 0) -> LearnedDemo:
    """Train :func:`demo_config` for ``steps``, then invert the held-out batch of ``count``."""
    cfg = demo_config(steps=steps, seed=seed)
    # A 9 -> 256 -> 9 network on batches of 256 gains nothing from intra-op threads, and on a
    # busy machine they fight over the cores (docs/learned-inference.md), so the demo trains on
    # one thread, and restores the setting.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = train(cfg)
    finally:
        torch.set_num_threads(threads)
    demo = run_learned_demo(model, held_out_batch(cfg.region, count=count))
    seconds = model.metrics.get("train_seconds")
    return dataclasses.replace(
        demo, config=cfg, train_seconds=float(seconds) if isinstance(seconds, (int, float)) else None
    )


__all__ = ["DEMO_STEPS", "HELD_OUT_SEED", "Group", "LearnedDemo", "demo_config", "held_out_batch",
           "run", "run_learned_demo"]
