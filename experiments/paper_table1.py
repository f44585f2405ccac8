"""Paper Table 1: 2-FC and 3-FC ReLU MLPs on balls around nonsingular centers.

Datasets (the seed text lost the paper's own centers and radii; ours are stated here):
  2x2 SPD      center [[2, 1], [1, 2]]  (symmetric positive definite, sigma_min 1)
  2x2 general  center [[2, -1], [1, 3]] (non-symmetric)
  3x3          center [[3, 1, -1], [0, 2, 1], [1, -1, 3]]
  16x16        center uniform [0, 1) entries from torch.Generator().manual_seed(16)
Each ball is {A0 + D : |D_ij| <= r} with r = sigma_min(A0) / (2 n): half the largest radius
Ball.check accepts, so every matrix of the ball has sigma_min >= sigma_min(A0) / 2.

Reported: mean absolute error of the raw network against the float64 inverse on 10,000 fresh
test matrices, mean ± std over 3 seeds, next to the linear approximation C - C D C (C = A0^-1)
and, for 16x16, the best affine map fitted by least squares (the floor of any network that
learns only an affine function: beating the linear approximation by more than that needs the
curvature of the inverse). Widths are the paper's 8 n^2 (32, 72, 2048). The 16x16 networks
train 20,000 (2-FC) and 5,000 (3-FC, a 2048x2048 hidden layer) steps per seed, about 20 and 35
minutes for the three seeds on one core of the development machine; their validation curves are
the figure ``table1_16x16_curves.png``.
"""

from __future__ import annotations

import torch
from _common import Run, fmt_pm, parse

import neuralinv as ni
from neuralinv.evaluation.plots import loss_curves
from neuralinv.learned.config import ModelConfig, TrainConfig


def centers() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(16)
    return {
        "2x2 SPD": torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64),
        "2x2 general": torch.tensor([[2.0, -1.0], [1.0, 3.0]], dtype=torch.float64),
        "3x3": torch.tensor([[3.0, 1.0, -1.0], [0.0, 2.0, 1.0], [1.0, -1.0, 3.0]], dtype=torch.float64),
        "16x16": torch.rand(16, 16, generator=g, dtype=torch.float64),
    }


def ball_for(center: torch.Tensor) -> ni.Ball:
    n = center.shape[0]
    return ni.Ball(center, float(ni.sigma_min(center)) / (2 * n))


def test_set(ball: ni.Ball, count: int, seed: int = 10_000) -> tuple[torch.Tensor, torch.Tensor]:
    """The fresh test matrices of a ball and their float64 inverses (every score uses these)."""
    A = ball.sample(count, generator=torch.Generator().manual_seed(seed))
    return A, torch.linalg.inv(A)


def test_mae(model, test: tuple[torch.Tensor, torch.Tensor]) -> float:
    A, truth = test
    X = model.predict(A.to(model.dtype)).to(torch.float64)
    return float((X - truth).abs().mean())


def linear_mae(ball: ni.Ball, test: tuple[torch.Tensor, torch.Tensor]) -> float:
    A, truth = test
    C = torch.linalg.inv(ball.center)
    return float((C - C @ (A - ball.center) @ C - truth).abs().mean())


def affine_floor_mae(ball: ni.Ball, test: tuple[torch.Tensor, torch.Tensor], fit_count: int, seed: int = 10_001) -> float:
    """Test MAE of the least-squares affine map vec(A) -> A^-1 fitted on ``fit_count`` fresh
    samples: about what a network that learns only an affine function reaches (least squares
    minimises the squared error, so this is near, not exactly, the best affine MAE)."""
    n = ball.n
    fit = ball.sample(fit_count, generator=torch.Generator().manual_seed(seed))

    def features(A):
        D = (A - ball.center).reshape(-1, n * n) / ball.radius
        return torch.cat([D, torch.ones(A.shape[0], 1, dtype=A.dtype)], 1)

    W = torch.linalg.lstsq(features(fit), torch.linalg.inv(fit).reshape(-1, n * n)).solution
    A, truth = test
    return float((features(A) @ W - truth.reshape(-1, n * n)).abs().mean())


def train_one(ball: ni.Ball, depth: int, width: int, steps: int, seed: int, val_size: int):
    cfg = TrainConfig(
        n=ball.n,
        region=ball,
        model=ModelConfig("mlp", depth, width),
        steps=steps,
        batch_size=128,
        lr=1e-3,
        val_every=max(1, steps // (5 if ball.n <= 3 else 25)),
        val_size=val_size,
        seed=seed,
        tensorboard=False,
    )
    return ni.train(cfg)


def main(argv=None) -> None:
    args = parse("paper_table1", __doc__, argv)
    run = Run("paper_table1", "Paper Table 1: MLPs on balls around nonsingular centers", args)
    seeds = [0] if args.quick else [0, 1, 2]
    test_count = 500 if args.quick else 10_000
    rows, data = [], {}
    for name, center in centers().items():
        ball = ball_for(center)
        n = ball.n
        # The paper's widths, 8 n^2 (32, 72, 2048); the quick mode's 16x16 networks are narrow.
        width = 8 * n * n if n <= 3 or not args.quick else 128
        test = test_set(ball, test_count)
        lin = linear_mae(ball, test)
        entry = {"center": center.tolist() if n <= 3 else "uniform [0,1) seed 16", "radius": ball.radius,
                 "sigma_min_center": ball.sigma_min_center, "width": width, "steps": {},
                 "linear_approximation_mae": lin}
        if n > 3:
            entry["best_affine_mae"] = affine_floor_mae(ball, test, 2_000 if args.quick else 40_000)
        for depth in (2, 3):
            steps = (40 if args.quick else 1500) if n <= 3 else (10 if args.quick else (20_000 if depth == 2 else 5_000))
            entry["steps"][f"{depth}-FC"] = steps
            maes = []
            for s in seeds:
                model = train_one(ball, depth, width, steps, s, 1000 if not args.quick else 256)
                maes.append(test_mae(model, test))
                if n > 3:
                    h = model.metrics["members"][0]["history"]
                    entry.setdefault("curves", {})[f"{depth}-FC seed {s}"] = {
                        key: [e[key] for e in h] for key in ("step", "val_mae", "time_s")}
            entry[f"{depth}-FC"] = maes
        data[name] = entry
        step_text = "/".join(str(v) for v in dict.fromkeys(entry["steps"].values()))
        rows.append([name, f"{ball.radius:.4g}", f"{width}", step_text, fmt_pm(entry["2-FC"]), fmt_pm(entry["3-FC"]),
                     f"{lin:.3e}", f"{entry['best_affine_mae']:.3e}" if "best_affine_mae" in entry else "-"])
        if n > 3:
            curves = {k: c["val_mae"] for k, c in entry["curves"].items()} | {"linear approximation": [lin, lin]}
            xs = {k: c["step"] for k, c in entry["curves"].items()}
            xs["linear approximation"] = [1, max(max(v) for v in xs.values())]
            run.figure(loss_curves(curves, args.out / "table1_16x16_curves.png", x=xs,
                                   title=f"16x16 ball: validation MAE of the MLPs (width {width})",
                                   xlabel="training step", ylabel="validation MAE"))
    run.data = data
    run.table(
        "Mean absolute error on the test set (mean ± std over seeds)",
        ["dataset", "radius r", "hidden width", "steps (2-FC/3-FC)", "2-FC MLP", "3-FC MLP", "linear approx.", "best affine map"],
        rows,
        notes=(f"{len(seeds)} seed(s); {test_count} test matrices per dataset; batch 128, Adam lr 1e-3, "
               "cosine warm restarts, MSE loss on standardised targets, best validation checkpoint."),
    )
    wall = run.finish()
    print(f"paper_table1: wrote {args.out} in {wall:.1f} s")


if __name__ == "__main__":
    main()
