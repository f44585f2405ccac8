"""Paper Table 2 and section 5.3: linear approximation vs MLPs on the 2x2 SPD ball, plus our
correction network, and what the small 2-FC network learned (activation-pattern analysis).

Dataset: the ball around A0 = [[2, 1], [1, 2]] with r = sigma_min(A0) / (2 n) = 0.25 (the
"2x2 SPD" dataset of paper_table1.py). Models:
  linear approximation  C - C D C, C = A0^-1 (the paper's formula 12), no training
  2-FC small            hidden 2 n^2 = 8 (the paper's appendix C model)
  2-FC, 3-FC            hidden 8 n^2 = 32 (appendix B)
  correction (ours)     C - C D C + s * g(D / r), g a 2-FC MLP of width 32 that starts at zero
Then the section 5.3 / appendix E analysis of the small 2-FC model: group 10^5 samples (the
paper: 10^6) by activation pattern, each pattern's share, its affine map's largest coefficient
difference from the linear approximation, and a linprog bound of
max abs(network - linear approximation) on each pattern's polytope within the ball. The small
model is trained at growing budgets up to the paper's (appendix C: batch 128, 20 epochs of 10^6
matrices = 156,250 steps, Adam lr 5e-5, weight decay 1e-7, warm restarts), with the paper's
learning rate and with ours (1e-3), to show how the pieces move with training; the detailed
pattern table is the paper-budget, paper-lr model (about 5 minutes on one core).
"""

from __future__ import annotations

import torch
from _common import Run, fmt_pm, parse

import neuralinv as ni
from neuralinv.evaluation.analysis import analyze_network
from neuralinv.evaluation.plots import training_curves
from neuralinv.learned.config import ModelConfig, TrainConfig

CENTER = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
MODELS = {  # name: (arch, depth, width)
    "2-FC small (hidden 8)": ("mlp", 2, 8),
    "2-FC (hidden 32)": ("mlp", 2, 32),
    "3-FC (hidden 32)": ("mlp", 3, 32),
    "correction (ours, g: 2-FC 32)": ("correction", 2, 32),
}


def main(argv=None) -> None:
    args = parse("paper_table2", __doc__, argv)
    run = Run("paper_table2", "Paper Table 2 and section 5.3: what a small network learns", args)
    ball = ni.Ball(CENTER, float(ni.sigma_min(CENTER)) / 4)
    seeds = [0] if args.quick else [0, 1, 2]
    steps = 40 if args.quick else 3000
    test = ball.sample(500 if args.quick else 10_000, generator=torch.Generator().manual_seed(10_000))
    truth = torch.linalg.inv(test)
    C = torch.linalg.inv(CENTER)
    lin = float((C - C @ (test - CENTER) @ C - truth).abs().mean())
    rows = [["linear approximation", "-", "0", f"{lin:.3e}"]]
    data: dict = {"radius": ball.radius, "steps": steps, "linear approximation": lin}
    small_dir = args.out / "model_small"  # the section 5.3 model at the paper's budget
    for name, (arch, depth, width) in MODELS.items():
        maes = []
        for s in seeds:
            cfg = TrainConfig(
                n=2, region=ball, model=ModelConfig(arch, depth, width), steps=steps, batch_size=128,
                lr=1e-3, val_every=max(1, steps // 10), val_size=1000, seed=s, tensorboard=False,
            )
            model = ni.train(cfg, None, resume=False)
            X = model.predict(test.to(model.dtype)).to(torch.float64)
            maes.append(float((X - truth).abs().mean()))
        params = sum(p.numel() for p in model.members[0].parameters() if p.requires_grad)
        data[name] = maes
        rows.append([name, f"{width}", f"{params}", fmt_pm(maes)])
    run.table(
        "Mean absolute error on the 2x2 SPD ball (test set, mean ± std over seeds)",
        ["model", "hidden width", "trainable parameters", "MAE"],
        rows,
        notes=f"{len(seeds)} seed(s), {steps} steps of batch 128 each (the paper: 20 epochs of 10^6 matrices = 156,250 steps), "
        f"Adam lr 1e-3, cosine warm restarts; {test.shape[0]} test matrices.",
    )
    # Section 5.3: the small 2-FC network at growing budgets, with ours and the paper's lr.
    budgets = [(1e-3, 40), (5e-5, 80)] if args.quick else [(1e-3, 3000), (1e-3, 20_000), (1e-3, 156_250), (5e-5, 20_000), (5e-5, 156_250)]
    samples = 2_000 if args.quick else 100_000
    trend, analyses = [], {}
    for lr, n_steps in budgets:
        cfg = TrainConfig(n=2, region=ball, model=ModelConfig("mlp", 2, 8), steps=n_steps, batch_size=128, lr=lr,
                          val_every=max(1, n_steps // 50), val_size=1000, seed=0, tensorboard=False)
        paper_budget = (lr, n_steps) == budgets[-1]
        model = ni.train(cfg, small_dir if paper_budget else None, resume=False)
        # Seed 10,000: held-out samples (a seed-0 analysis would replay the seed-0 model's training batches).
        a = analyze_network(model.members[0], ball, samples=samples, seed=10_000, linprog=True)
        analyses[f"lr {lr:g}, {n_steps} steps"] = a
        top2 = a.pieces[:2]
        trend.append([f"{lr:g}", f"{n_steps}", f"{a.network_mae:.3g}", f"{a.linear_mae:.3g}", f"{len(a.pieces)}",
                      f"{sum(p.share for p in top2):.1%}", f"{max(p.weight_diff for p in top2):.3g}",
                      f"{max(p.bias_diff for p in top2):.3g}",
                      "n/a" if any(p.max_deviation is None for p in top2) else f"{max(p.max_deviation for p in top2):.3g}",
                      f"{model.metrics['train_seconds']:.0f}"])
    run.table(
        "Section 5.3: the small 2-FC network (hidden 8) with training",
        ["Adam lr", "steps", "network MAE", "linear approx. MAE", "patterns", "top-2 share",
         "top-2: max weight diff from L", "top-2: max bias diff from c", "top-2: LP bound max abs(f − linear)", "train s"],
        trend,
        notes=(f"Seed 0, batch 128, cosine warm restarts ending at the last step, best validation checkpoint; "
               f"{samples} held-out samples per analysis. The paper's budget is 156,250 steps at lr 5e-5 over a fixed set of 10^6 matrices "
               "(20 epochs); here every step draws fresh matrices (the same number seen, 2*10^7, none twice)."),
    )
    run.figure(training_curves(small_dir, args.out / "table2_training_small.png",
                               title=f"2-FC small (hidden 8), lr {budgets[-1][0]:g}, {budgets[-1][1]} steps: training history"))
    data["section_5_3_trend"] = {k: {"network_mae": a.network_mae, "linear_mae": a.linear_mae, "patterns": len(a.pieces),
                                     "top2": a.as_dict(maps=False)["pieces"][:2]} for k, a in analyses.items()}
    a = analyses[f"lr {budgets[-1][0]:g}, {budgets[-1][1]} steps"]
    data["analysis"] = a.as_dict(maps=False)
    top = a.pieces[:8]
    run.table(
        f"Section 5.3: activation patterns at the paper's budget (lr {budgets[-1][0]:g}, {budgets[-1][1]} steps; largest shares)",
        ["pattern (hidden units 0..7)", "share of samples", "largest weight difference from L", "largest bias difference from c", "MAE vs inverse", "LP bound on the pattern: max abs(f − linear)"],
        [[p.pattern, f"{p.share:.4f}", f"{p.weight_diff:.3g}", f"{p.bias_diff:.3g}", f"{p.mae_vs_inverse:.3g}",
          "n/a" if p.max_deviation is None else f"{p.max_deviation:.3g}"] for p in top],
        notes=(f"{len(a.pieces)} patterns occur in {a.samples} samples; the {len(top)} listed cover "
               f"{sum(p.share for p in top):.1%}. Network MAE vs the inverse on these samples {a.network_mae:.3g}, "
               f"linear approximation {a.linear_mae:.3g}. L, c: the linear approximation y = L vec(A) + c around A0."),
    )
    run.data = data
    wall = run.finish()
    print(f"paper_table2: wrote {args.out} in {wall:.1f} s")


if __name__ == "__main__":
    main()
