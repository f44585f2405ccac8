"""A learned inverter for a tracker's innovation covariances, fitted to its own matrices.

A Kalman filter tracking many targets inverts, at every scan and for every target, the
innovation covariance ``S = H P H^T + R`` (the gain is ``K = P H^T S^-1``). Here: targets in 3D
with a constant-velocity model (state: position and velocity, 6 numbers), a sensor measuring
position (``H = [I 0]``, so S is 3x3), per-target scan intervals, manoeuvre noise and sensor
noise (the noise level spans a decade between targets: matrices that differ mostly by a scalar
factor, which the fitted region absorbs by scaling), a vertical axis measured worse than the
horizontal ones, and missed detections (the covariance grows until the next update). Every S
of every scan of every target is one matrix.

The script

1. simulates a fleet of targets and collects their innovation covariances (the data);
2. fits certified balls to them (``neuralinv.Balls.fit``: each ball proven away from the
   singular set, their union covering 99% of the data) and trains a small ``correction``
   model on the union, with a share of every batch taken from the data (what
   ``neuralinv train --data`` does);
3. simulates a *fresh* fleet (another seed, same process) and inverts its matrices with the
   certified learned method: the share answered by the network, the worst certificate, and
   the time against ``torch.linalg.inv`` and neuralinv's exact default (``method="auto"``),
   measured in the same run; one figure.

    python examples/kalman_innovation.py                 # writes docs/figures/kalman_innovation.*
    python examples/kalman_innovation.py --quick --out /tmp/kf   # seconds, for the tests
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import neuralinv as ni
from neuralinv.files import write_bytes
from neuralinv.learned.config import ModelConfig, TrainConfig
from neuralinv.methods.learned import Learned


@dataclass(frozen=True)
class Fleet:
    targets: int
    scans: int
    seed: int
    p_detect: float = 0.9


@dataclass(frozen=True)
class Settings:
    fit: Fleet
    fresh: Fleet
    steps: int
    width: int
    batch_size: int
    data_share: float
    repeats: int


FULL = Settings(Fleet(4000, 30, 1), Fleet(4000, 30, 2), steps=1500, width=32, batch_size=256,
                data_share=0.25, repeats=7)
QUICK = Settings(Fleet(400, 20, 1), Fleet(400, 20, 2), steps=60, width=16, batch_size=128,
                 data_share=0.25, repeats=2)


def innovation_covariances(fleet: Fleet) -> torch.Tensor:
    """``(targets * scans, 3, 3)`` float64: S = H P H^T + R of every scan of every target."""
    g = torch.Generator().manual_seed(fleet.seed)
    T = fleet.targets

    def u(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(T, generator=g, dtype=torch.float64)

    dt = u(0.5, 2.0)  # scan interval (s)
    q = 10 ** u(-1.0, 0.5)  # white-acceleration spectral density (m^2/s^3)
    sigma = 10 ** u(0.0, 1.0)  # sensor noise (m): a decade between targets
    vertical = u(1.5, 3.0)  # z measured this much worse (in standard deviation)
    # Transition F and process noise Q per target (per axis: [[dt^3/3, dt^2/2], [dt^2/2, dt]] q).
    eye3 = torch.eye(3, dtype=torch.float64)
    F = torch.zeros(T, 6, 6, dtype=torch.float64)
    F[:, :3, :3] = eye3
    F[:, 3:, 3:] = eye3
    F[:, :3, 3:] = dt[:, None, None] * eye3
    Q = torch.zeros(T, 6, 6, dtype=torch.float64)
    Q[:, :3, :3] = (q * dt**3 / 3)[:, None, None] * eye3
    Q[:, :3, 3:] = (q * dt**2 / 2)[:, None, None] * eye3
    Q[:, 3:, :3] = Q[:, :3, 3:]
    Q[:, 3:, 3:] = (q * dt)[:, None, None] * eye3
    R = torch.diag_embed(torch.stack([sigma**2, sigma**2, (vertical * sigma) ** 2], -1))
    # Initialised from a first detection: position known to the sensor noise, velocity to 30 m/s.
    P = torch.zeros(T, 6, 6, dtype=torch.float64)
    P[:, :3, :3] = R
    P[:, 3:, 3:] = 900.0 * eye3
    out = []
    for _ in range(fleet.scans):
        P = F @ P @ F.mT + Q  # predict
        S = P[:, :3, :3] + R  # H P H^T + R
        out.append(S)
        K = P[:, :, :3] @ torch.linalg.inv(S)  # gain (what the tracker needs S^-1 for)
        detected = torch.rand(T, generator=g) < fleet.p_detect
        updated = P - K @ P[:, :3, :]
        P = torch.where(detected[:, None, None], updated, P)
        P = (P + P.mT) / 2
    return torch.stack(out, 1).reshape(-1, 3, 3).contiguous()


def best_time(fn, repeats: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def run(settings: Settings, out: Path) -> dict:
    t0 = time.perf_counter()
    data = innovation_covariances(settings.fit)
    region = ni.Balls.fit(data, coverage=0.99)
    rep = region.fit_report
    fit_s = time.perf_counter() - t0
    print(f"data: {len(data):,} innovation covariances (3x3) of {settings.fit.targets:,} targets; "
          f"||S||_F from {float(torch.linalg.matrix_norm(data).min()):.3g} to "
          f"{float(torch.linalg.matrix_norm(data).max()):.3g}")
    print(f"fitted {rep.k} certified ball(s) in {fit_s:.1f} s: covers {100 * rep.covered:.2f}% of the "
          f"data (asked 99%), smallest margin sigma_min >= {region.margin:.3g}, "
          f"{rep.near_singular} near-singular")

    # Train: what `neuralinv train --data FILE --out DIR` does, in memory.
    data_file = out / "kalman_innovation_data.npy"
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, data.numpy())
    write_bytes(data_file, buf.getvalue())
    from neuralinv.regions import sha256_file

    cfg = TrainConfig(
        n=3, region=region, model=ModelConfig(arch="correction", depth=2, width=settings.width),
        steps=settings.steps, batch_size=settings.batch_size, val_every=max(1, settings.steps // 5),
        val_size=2048, tensorboard=False, data=(str(data_file),),
        data_sha256=(sha256_file(data_file),), data_share=settings.data_share,
    )
    t0 = time.perf_counter()
    model = ni.train(cfg)
    train_s = time.perf_counter() - t0
    best = model.metrics["members"][0]["best"]
    lin = model.metrics["validation"]["linear_approximation_mae"]
    print(f"trained {cfg.model.arch} (width {settings.width}, {settings.steps} steps x "
          f"{settings.batch_size}) in {train_s:.1f} s: validation MAE {best['val_mae']:.3g} "
          f"(linear approximation {lin:.3g}), guesses that contract {100 * best['val_contract']:.1f}%")

    # Fresh matrices from the same process.
    fresh = innovation_covariances(settings.fresh)
    method = Learned(model=model)
    sol = ni.invert(fresh, method=method)
    share = sol.method_counts().get("learned", 0) / len(fresh)  # the other labels: the exact path
    ratios = torch.as_tensor(np.asarray(sol.residual, dtype=np.float64))
    statuses = sol.counts()
    ok = statuses.get("OK", 0) + statuses.get("OUT_OF_REGION", 0)
    certified = ok / len(fresh)
    print(f"fresh: {len(fresh):,} matrices of {settings.fresh.targets:,} other targets: network answered "
          f"{100 * share:.2f}% (after Newton-Schulz refinement), the rest went to the exact path; "
          f"certified {100 * certified:.2f}%, worst residual ratio {float(ratios.max()):.3g} "
          f"(pass < 30); status {statuses}")

    t_learned = best_time(lambda: ni.invert(fresh, method=method), settings.repeats)
    t_auto = best_time(lambda: ni.invert(fresh), settings.repeats)
    t_torch = best_time(lambda: torch.linalg.inv(fresh), settings.repeats)
    print(f"time for {len(fresh):,} matrices (float64, {torch.get_num_threads()} thread(s)): learned "
          f"{1e3 * t_learned:.1f} ms, neuralinv auto {1e3 * t_auto:.1f} ms, torch.linalg.inv "
          f"{1e3 * t_torch:.1f} ms (certified methods include the certificate; torch.linalg.inv "
          f"does not)")
    print(f"learned / torch.linalg.inv = {t_learned / t_torch:.2f}x the time; learned / auto = "
          f"{t_learned / t_auto:.2f}x")

    result = {
        "settings": asdict(settings),
        "data": {"count": len(data), "fit_seconds": round(fit_s, 3)},
        "fit": rep.as_dict(),
        "margin": region.margin,
        "train": {"seconds": round(train_s, 2), "val_mae": best["val_mae"],
                  "val_contract": best["val_contract"], "linear_approximation_mae": lin},
        "fresh": {"count": len(fresh), "network_share": share, "certified_share": certified,
                  "worst_ratio": float(ratios.max()), "status": statuses,
                  "iterations_max": int(sol.stats.get("max_iterations", -1)) if sol.stats else None},
        "time_ms": {"learned": 1e3 * t_learned, "auto": 1e3 * t_auto, "torch_linalg_inv": 1e3 * t_torch,
                    "threads": torch.get_num_threads()},
    }
    data_file.unlink(missing_ok=True)
    figure(result, ratios, sol, out / "kalman_innovation.png")
    write_bytes(out / "kalman_innovation.json", (json.dumps(result, indent=1) + "\n").encode())
    return result


def figure(result: dict, ratios: torch.Tensor, sol, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = np.asarray(sol.method).astype(str).ravel()
    r = ratios.numpy().ravel()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    bins = np.logspace(np.log10(max(r.min(), 1e-3)), np.log10(max(r.max(), 1.0)) + 0.1, 40)
    for name in sorted(set(labels)):
        ax.hist(r[labels == name], bins=bins, alpha=0.7, label=f"{name} ({(labels == name).sum():,})")
    ax.axvline(30, color="k", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("certificate: residual ratio (pass < 30)")
    ax.set_ylabel("matrices")
    f = result["fresh"]
    ax.set_title(f"fresh innovation covariances: network {100 * f['network_share']:.1f}%")
    ax.legend(fontsize=8)
    t = result["time_ms"]
    names = ["torch.linalg.inv\n(no certificate)", "neuralinv auto", "neuralinv learned"]
    vals = [t["torch_linalg_inv"], t["auto"], t["learned"]]
    ax2.bar(names, vals, color=["0.6", "tab:blue", "tab:orange"])
    ax2.set_ylabel(f"ms for {f['count']:,} 3x3 matrices")
    ax2.set_title(f"time, {t['threads']} CPU thread(s), same run")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes(path, buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small fleets, few steps (for tests)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "figures")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    run(QUICK if args.quick else FULL, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
