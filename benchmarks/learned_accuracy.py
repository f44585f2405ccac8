"""Accuracy against training time of the learned inverters (issue 4, "Measure").

Trains every architecture (mlp = the paper's 2-FC ReLU MLP, dense_resnet = DeepMatrixInversion's
network, correction = ours) with both losses (mse, identity) on two 3x3 regions:

* ``Ball.default(3)`` -- the built-in well-conditioned ball (certified: no singular matrix);
* ``Box(3, -1, 1, min_abs_det=0.1)`` -- DeepMatrixInversion's training set.

(correction needs a ball's center, so it has no Box row.) Each model is scored on a held-out
sample of 10,000 matrices of its region: MAE and R^2 against the float64 inverse, and the
fraction of guesses X with ||I - A X||_2 < 1 (those Newton-Schulz provably refines). On the
ball the linear approximation C - C D C is the baseline. Targets (issue 4): on the ball, 100%
of guesses contract and the network's MAE <= 0.1 x the linear approximation's.

    python benchmarks/learned_accuracy.py [--quick] [--scale X] [--out DIR]

Writes DIR/results.json, DIR/results.md and DIR/mae_vs_time.png (default
results/learned_accuracy). The full run takes about 5-8 minutes of one CPU core.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
from pathlib import Path

import torch

import neuralinv as ni
from neuralinv.learned import ModelConfig, TrainConfig
from neuralinv.learned.data import linear_approximation_mae
from neuralinv.learned.loop import evaluate

ROOT = Path(__file__).resolve().parents[1]
TEST_SIZE = 10_000

#: Architectures as benchmarked: the paper's and DeepMatrixInversion's networks as published
#: (ReLU), ours with the smooth activation it is designed around.
ARCHS = {
    "mlp": ModelConfig(arch="mlp", depth=2, width=72),
    "dense_resnet": ModelConfig(arch="dense_resnet", width=64, blocks=2),
    "correction": ModelConfig(arch="correction", depth=3, width=72, activation="silu"),
}
REGIONS = {
    "ball": lambda: ni.Ball.default(3),
    "box": lambda: ni.Box(3, -1, 1, min_abs_det=0.1),
}
LOSSES = ("mse", "identity")
#: Steps per architecture, chosen so each run costs tens of seconds of one core (a
#: dense_resnet step costs about 20x an mlp step).
STEPS = {"mlp": 15000, "dense_resnet": 4000, "correction": 20000}


def run_one(region_name: str, arch: str, loss: str, steps: int, batch: int) -> dict:
    region = REGIONS[region_name]()
    cfg = TrainConfig(
        n=3, region=region, model=ARCHS[arch], loss=loss, steps=steps, batch_size=batch,
        lr=3e-3, val_every=max(1, steps // 20), val_size=4096, seed=0,
    )
    cpu0, wall0 = time.process_time(), time.perf_counter()
    model = ni.train(cfg)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    g = torch.Generator().manual_seed(424242)
    A = region.sample(TEST_SIZE, generator=g)
    X = torch.linalg.inv(A)
    m = evaluate(model.members[0], A, X)
    linear = linear_approximation_mae(cfg, A, X)
    hist = model.metrics["members"][0]["history"]
    return {
        "region": region_name, "arch": arch, "loss": loss, "steps": steps, "batch_size": batch,
        "parameters": sum(p.numel() for p in model.members[0].parameters()),
        "train_cpu_s": round(cpu, 2), "train_wall_s": round(wall, 2),
        "test_mae": m["mae"], "test_r2": m["r2"], "test_contract": m["contract"],
        "linear_mae": linear, "mae_over_linear": None if linear is None else m["mae"] / linear,
        # Every step costs the same, so CPU time at a checkpoint is its share of the total;
        # the wall times in the history are inflated by whatever else the machine runs.
        "history": [{"cpu_s": round(cpu * h["step"] / steps, 3), "wall_s": h["time_s"],
                     "step": h["step"], "val_mae": h["val_mae"], "val_contract": h["val_contract"]}
                    for h in hist],
    }


def linear_row(A, X) -> dict:
    """The untrained baseline on the ball: the linear approximation C - C D C."""
    ball = REGIONS["ball"]()
    C = torch.linalg.inv(ball.center)
    G = C - C @ (A - ball.center) @ C
    err = G - X
    r2 = 1 - err.pow(2).sum() / (X - X.mean(0)).pow(2).sum()
    return {"mae": float(err.abs().mean()), "r2": float(r2),
            "contract": float(ni.certify.contracts(A, G).double().mean())}


def table(rows: list[dict], linear: dict) -> str:
    head = ("| region | arch | loss | params | steps | train CPU s | MAE | MAE / linear | R2 "
            "| contract | val MAE at 1/4 of the steps |\n"
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head, f"| ball | linear C - C D C | (none) | 0 | 0 | 0 | {linear['mae']:.3g} | 1 "
                   f"| {linear['r2']:.4f} | {100 * linear['contract']:.1f}% | |"]
    for r in rows:
        quarter = r["history"][max(0, len(r["history"]) // 4 - 1)]
        ratio = "-" if r["mae_over_linear"] is None else f"{r['mae_over_linear']:.3f}"
        lines.append(
            f"| {r['region']} | {r['arch']} | {r['loss']} | {r['parameters']:,} | {r['steps']} "
            f"| {r['train_cpu_s']:.1f} | {r['test_mae']:.3g} | {ratio} | {r['test_r2']:.4f} "
            f"| {100 * r['test_contract']:.1f}% | {quarter['val_mae']:.3g} ({quarter['cpu_s']:.1f} CPU s) |"
        )
    return "\n".join(lines)


def figure(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, region in zip(axes, REGIONS):
        for r in (r for r in rows if r["region"] == region):
            t = [h["cpu_s"] for h in r["history"]]
            y = [h["val_mae"] for h in r["history"]]
            ax.plot(t, y, marker=".", label=f"{r['arch']} / {r['loss']}")
        lin = next((r["linear_mae"] for r in rows if r["region"] == region and r["linear_mae"]), None)
        if lin:
            ax.axhline(lin, color="k", ls="--", lw=1, label="linear approx. C - C D C")
            ax.axhline(0.1 * lin, color="k", ls=":", lw=1, label="0.1 x linear (target)")
        ax.set_yscale("log")
        ax.set_xlabel("training time (CPU s, one core)")
        ax.set_ylabel("validation MAE")
        ax.set_title({"ball": "Ball.default(3)", "box": "Box(3, -1, 1, min_abs_det=0.1)"}[region])
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    p.add_argument("--scale", type=float, default=None,
                   help="multiply the per-architecture steps (default 1; --quick 0.01)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "learned_accuracy")
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # the machine is shared; timings are one core's
    scale = args.scale if args.scale is not None else (0.01 if args.quick else 1.0)
    args.out.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    rows = []
    for region in REGIONS:
        for arch in ARCHS:
            if arch == "correction" and region != "ball":
                continue
            for loss in LOSSES:
                steps = max(1, round(STEPS[arch] * scale))
                rows.append(run_one(region, arch, loss, steps, args.batch_size))
                r = rows[-1]
                print(f"{region:5s} {arch:13s} {loss:9s} cpu {r['train_cpu_s']:6.1f}s "
                      f"MAE {r['test_mae']:.3g} R2 {r['test_r2']:.4f} contract {r['test_contract']:.3f}",
                      flush=True)
    machine = {
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "torch": torch.__version__, "threads": 1,
        "started_utc": started.isoformat(timespec="seconds"),
        "total_wall_s": round((dt.datetime.now(dt.UTC) - started).total_seconds(), 1),
    }
    g = torch.Generator().manual_seed(424242)  # the ball rows' test set
    A = REGIONS["ball"]().sample(TEST_SIZE, generator=g)
    linear = linear_row(A, torch.linalg.inv(A))
    (args.out / "results.json").write_text(
        json.dumps({"machine": machine, "linear_ball": linear, "rows": rows}, indent=1))
    md = (f"Machine: {machine['platform']}, {machine['processor']}, {machine['cpus']} CPUs, torch "
          f"{machine['torch']}, 1 thread; run {machine['started_utc']}, {machine['total_wall_s']} s "
          f"wall in total (machine shared; CPU times are this process's).\n\n"
          + table(rows, linear) + "\n")
    (args.out / "results.md").write_text(md)
    figure(rows, args.out / "mae_vs_time.png")
    print(md)


if __name__ == "__main__":
    main()
