"""DeepMatrixInversion's regression examples, solved with certified learned inversion.

1. A 3-parameter OLS, y = 5 + 2 x1 - 3 x2 + N(0, 0.5^2) noise, 50 samples with x uniform in
   [-1, 1] (numpy default_rng(42)): the 3x3 normal equations (X^T X) b = X^T y, inverted by a
   3x3 learned model (certified: network guess + Newton-Schulz + exact fallback), next to
   numpy.linalg.inv, and next to the raw (uncertified) network guess as DeepMatrixInversion
   uses it (input scaled into the training box, answer scaled back).
2. Box and Draper (2007), example 11.3, a consecutive chemical system: yield against time,
   catalyst and temperature (19 runs; the data as listed in DeepMatrixInversion's
   examples/mlr_box_draper.py), coded to [-1, 1] and expanded to the full second-order
   model (10 terms). The 10x10 normal equations are inverted by ``method="block"`` over the
   same 3x3 learned base (Schur-complement recursion, identity padding to 12x12, every
   sub-inverse certified), next to numpy.

The 3x3 model is trained here on DeepMatrixInversion's distribution, Box(3, -1, 1, |det| > 0.1).
"""

from __future__ import annotations

import numpy as np
import torch
from _common import Run, parse

import neuralinv as ni
from neuralinv.evaluation import plots
from neuralinv.learned.config import ModelConfig, TrainConfig

#: Box & Draper (2007) example 11.3: time, catalyst, temperature, yield.
BOX_DRAPER = np.array([
    [5.0, 25.0, 162.0, 45.9], [8.0, 25.0, 162.0, 53.3], [5.0, 30.0, 162.0, 57.5],
    [8.0, 30.0, 162.0, 58.8], [5.0, 25.0, 172.0, 60.6], [8.0, 25.0, 172.0, 58.0],
    [5.0, 30.0, 172.0, 58.6], [8.0, 30.0, 172.0, 52.4], [6.5, 27.5, 167.0, 56.9],
    [6.5, 27.5, 177.0, 55.4], [6.5, 27.5, 157.0, 46.9], [6.5, 32.5, 167.0, 57.5],
    [6.5, 22.5, 167.0, 55.0], [9.5, 27.5, 167.0, 58.9], [3.5, 27.5, 167.0, 50.3],
    [6.5, 20.0, 177.0, 61.1], [6.5, 20.0, 177.0, 62.9], [7.5, 34.0, 160.0, 60.0],
    [7.5, 34.0, 160.0, 60.6],
])
TERMS = ["b0", "b1", "b2", "b3", "b12", "b13", "b23", "b11", "b22", "b33"]


def second_order(x: np.ndarray) -> np.ndarray:
    x1, x2, x3 = x.T
    return np.column_stack([np.ones(len(x)), x1, x2, x3, x1 * x2, x1 * x3, x2 * x3, x1**2, x2**2, x3**2])


def describe(sol) -> str:
    return f"{', '.join(f'{k} {v}' for k, v in sol.counts().items())}; ratio {float(np.max(sol.residual)):.3g}"


def main(argv=None) -> None:
    args = parse("regression", __doc__, argv)
    run = Run("regression", "DeepMatrixInversion's regression examples, certified", args)
    steps = 40 if args.quick else 2000
    cfg = TrainConfig(n=3, region=ni.Box(3, -1.0, 1.0, min_abs_det=0.1), model=ModelConfig("mlp", 3, 64 if args.quick else 256),
                      steps=steps, batch_size=256, lr=1e-3, val_every=max(1, steps // 5), val_size=512, seed=0, tensorboard=False)
    model = ni.train(cfg)

    # 1. Simple OLS.
    rng = np.random.default_rng(42)
    x = rng.uniform(-1, 1, size=(50, 2))
    y = 5 + 2 * x[:, 0] - 3 * x[:, 1] + rng.normal(0, 0.5, 50)
    X = np.column_stack([np.ones(50), x])
    XtX, Xty = X.T @ X, X.T @ y
    beta_np = np.linalg.inv(XtX) @ Xty
    sol = ni.invert(XtX, method=model)
    beta_cert = sol.inverse @ Xty
    s = 1.0 / np.abs(XtX).max()  # the raw network only knows entries in [-1, 1]
    raw = s * model.predict(torch.from_numpy(s * XtX)).numpy()
    beta_raw = raw @ Xty
    rows = [[t, f"{a:.10f}", f"{b:.10f}", f"{abs(a - b):.2e}", f"{c:.6f}", f"{abs(a - c):.2e}"]
            for t, a, b, c in zip(["intercept", "b1 (x1)", "b2 (x2)"], beta_np, beta_cert, beta_raw)]
    run.table("OLS with 3 parameters: coefficients", ["term", "numpy", "neuralinv (certified learned)",
              "abs diff", "raw network (uncertified)", "abs diff"], rows,
              notes=(f"cond_2(X^T X) = {np.linalg.cond(XtX):.3g}. Certified answer: {describe(sol)}, answered by "
                     f"{sol.method_counts()}, Newton-Schulz contracted {sol.stats.get('contracted')}, fell back {sol.stats.get('fallbacks')}."))

    # 2. Box-Draper 10x10 by the block method over the learned 3x3 base.
    raw_x, yd = BOX_DRAPER[:, :3], BOX_DRAPER[:, 3]
    lo, hi = raw_x.min(0), raw_x.max(0)
    Xd = second_order(2 * (raw_x - lo) / (hi - lo) - 1)
    M, My = Xd.T @ Xd, Xd.T @ yd
    beta_np2 = np.linalg.inv(M) @ My
    sol2 = ni.invert(M, method="block", base=model)
    beta_blk = sol2.inverse @ My
    rows2 = [[t, f"{a:.8f}", f"{b:.8f}", f"{abs(a - b):.2e}"] for t, a, b in zip(TERMS, beta_np2, beta_blk)]
    run.table("Box-Draper second-order model (10x10 normal equations): coefficients",
              ["term", "numpy", "neuralinv block over learned 3x3 (certified)", "abs diff"], rows2,
              notes=(f"cond_2(X^T X) = {np.linalg.cond(M):.3g}. Certificate: {describe(sol2)}; answered by {sol2.method_counts()}; "
                     f"block leaves answered by {sol2.stats.get('leaves')}, padded to {sol2.stats.get('padded_to')}, "
                     f"polished {sol2.stats.get('polished')}, whole-matrix fallbacks {sol2.stats.get('fallbacks')}. "
                     f"Max abs difference of the inverses {float(np.abs(sol2.inverse - np.linalg.inv(M)).max()):.2e}."))
    run.figure(plots.bars(TERMS, np.abs(beta_blk - beta_np2) + 1e-18, args.out / "regression_box_draper_diff.png",
                          title="Box-Draper: |beta(neuralinv block) - beta(numpy)|", ylabel="absolute difference"))
    run.data = {
        "ols": {"numpy": beta_np.tolist(), "certified": beta_cert.tolist(), "raw_network": beta_raw.tolist(),
                "status": sol.counts(), "answered_by": sol.method_counts()},
        "box_draper": {"numpy": beta_np2.tolist(), "block": beta_blk.tolist(), "status": sol2.counts(),
                       "leaves": sol2.stats.get("leaves"), "residual": float(np.max(sol2.residual))},
    }
    wall = run.finish()
    print(f"regression: wrote {args.out} in {wall:.1f} s")


if __name__ == "__main__":
    main()
