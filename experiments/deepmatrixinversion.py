"""DeepMatrixInversion's experiment: train on uniform [-1, 1] 3x3 matrices with |det| > 0.1,
evaluate on its data1/data2/data3 validation sets and singular sets (../shared/data).

Rows: the raw network (what DeepMatrixInversion reports; against the stored 4-decimal target
inverses) and the certified hybrid ``neuralinv.invert(A, method=model)`` (network guess +
Newton-Schulz + exact fallback; against the float64 inverse of the stored matrix, since the
stored targets of ill-conditioned matrices are far from it), on whole sets and on the
|det| > 0.1 subsets (the training distribution). DeepMatrixInversion reports R2 0.9998,
MSE 0.0005, MAE 0.0097 for a 7-layer ResNet ensemble with millions of parameters trained for
thousands of epochs; here one dense_resnet (the same kind of network) is trained for a few
CPU-minutes (see results.md).
Figures: its predicted-vs-true figure, error against sigma_min (Theorem 3.7 on real data),
training curves, and A X - I of the raw network on singular matrices.
"""

from __future__ import annotations

import numpy as np
import torch
from _common import SHARED_DATA, Run, parse

import neuralinv as ni
from neuralinv.evaluation import plots
from neuralinv.evaluation.metrics import compute, evaluate_method
from neuralinv.files import iter_matrices
from neuralinv.learned.config import ModelConfig, TrainConfig

REPORTED = {"R2": 0.9998, "MSE": 0.0005, "MAE": 0.0097}
SETS = ("data1", "data2", "data3")
ROLE = {"data1": "validation", "data2": "extrapolation [-2, 2]", "data3": "interpolation"}


def head(path, limit: int | None) -> np.ndarray:
    parts, have = [], 0
    for chunk in iter_matrices(path, chunk_size=limit or 65536):
        parts.append(np.asarray(chunk, dtype=np.float64))
        have += chunk.shape[0]
        if limit is not None and have >= limit:
            break
    A = np.concatenate(parts)
    return A[:limit] if limit else A


def row(label: str, m) -> list:
    f = "-" if m.fell_back is None else f"{m.contracted:.3f} / {m.refined:.3f} / {m.fell_back:.3f}"
    return [label, m.count, f"{m.r2:.4f}", f"{m.mse:.4g}", f"{m.mae:.4g}", f"{m.identity_residual:.3g}", f"{m.pass_fraction:.4f}", f]


def main(argv=None) -> None:
    args = parse("deepmatrixinversion", __doc__, argv)
    run = Run("deepmatrixinversion", "DeepMatrixInversion: 3x3 box |det| > 0.1", args)
    box = ni.Box(3, -1.0, 1.0, min_abs_det=0.1)
    steps = 40 if args.quick else 20_000
    cfg = TrainConfig(
        # DeepMatrixInversion's own architecture (a dense-growth ResNet), at its default size.
        n=3, region=box, model=ModelConfig("dense_resnet", width=16 if args.quick else 72, blocks=1 if args.quick else 2),
        steps=steps,
        batch_size=256, lr=1e-3, val_every=max(1, steps // 10), val_size=512 if args.quick else 4096,
        seed=0, tensorboard=False,
    )
    model_dir = args.out / "model"
    model = ni.train(cfg, model_dir, resume=False)
    run.figure(plots.training_curves(model_dir, args.out / "dmi_training.png", title="dense_resnet on Box(3, -1, 1, |det| > 0.1)"))
    data: dict = {"config": cfg.to_dict(), "reported": REPORTED}

    # The training distribution itself (no shared data needed).
    fresh = box.sample(500 if args.quick else 10_000, generator=torch.Generator().manual_seed(10_000))
    m_raw, d_raw = compute(fresh.float(), model.predict(fresh.float()), name="fresh box", method="network")
    m_hyb, _, _ = evaluate_method(model, fresh, name="fresh box")
    rows = [["DeepMatrixInversion (reported, set not stated)", "-", f"{REPORTED['R2']}", f"{REPORTED['MSE']}", f"{REPORTED['MAE']}", "-", "-", "-"],
            row("fresh Box samples: network", m_raw), row("fresh Box samples: certified hybrid", m_hyb)]
    data["fresh"] = {"network": m_raw.as_dict(), "hybrid": m_hyb.as_dict()}

    limit = 500 if args.quick else None
    sing_rows, series_s, series_e, labels = [], [], [], []
    available = SHARED_DATA.is_dir()
    for name in SETS if available else ():
        A = head(SHARED_DATA / f"{name}_val_matrix_3x3.mx", limit)
        T = head(SHARED_DATA / f"{name}_val_target_inverse_3x3.mx", limit)
        keep = np.abs(np.linalg.det(A)) > 0.1
        for subset, mask in (("all", np.ones(len(A), bool)), ("|det| > 0.1", keep)):
            As, Ts = A[mask], T[mask]
            At = torch.from_numpy(As)
            m_n, d_n = compute(At.float(), model.predict(At.float()), Ts, name=f"{name} {subset}", method="network")
            m_h, _, _ = evaluate_method(model, As, name=f"{name} {subset}")
            rows.append(row(f"{name} ({ROLE[name]}) {subset}: network vs stored targets", m_n))
            rows.append(row(f"{name} ({ROLE[name]}) {subset}: certified hybrid vs float64 inverse", m_h))
            data[f"{name} {subset}"] = {"network": m_n.as_dict(), "hybrid": m_h.as_dict()}
            if subset == "all":
                ok = d_n.has_reference
                series_s.append(d_n.sigma_min[ok])
                series_e.append(d_n.abs_error[ok])
                labels.append(f"{name} ({ROLE[name]})")
            if name == "data1" and subset == "|det| > 0.1":
                run.figure(plots.predicted_vs_true(
                    d_n.X[d_n.has_reference], d_n.reference[d_n.has_reference], args.out / "dmi_pred_vs_true.png",
                    title="data1 validation, |det| > 0.1: network vs stored inverse"))
        S = head(SHARED_DATA / f"{name}_sing_matrix_3x3.mx", limit)
        St = torch.from_numpy(S)
        m_n, d_n = compute(St.float(), model.predict(St.float()), name=f"{name} singular", method="network")
        m_h, _, sol = evaluate_method(model, S, name=f"{name} singular")
        counts = sol.counts()
        sing_rows.append([f"{name} singular", m_n.count, f"{m_n.identity_residual:.3g}", f"{m_n.pass_fraction:.4f}",
                          f"{m_h.pass_fraction:.4f}", ", ".join(f"{k} {v}" for k, v in counts.items()),
                          ", ".join(f"{k} {v}" for k, v in sol.method_counts().items())])
        data[f"{name} singular"] = {"network": m_n.as_dict(), "hybrid": m_h.as_dict(), "status": counts}
        if name == "data1":
            run.figure(plots.residual_heatmaps(d_n.A, d_n.X, args.out / "dmi_singular_residuals.png",
                                               title="network on singular matrices (data1): A X - I"))
    if series_s:
        run.figure(plots.error_vs_sigma(series_s, series_e, args.out / "dmi_error_vs_sigma.png", labels=labels,
                                        title="Raw network error against distance to the singular set"))
    header = ["evaluation", "matrices", "R2", "MSE", "MAE", "median ‖AX−I‖_F", "LAPACK pass", "contracted / refined / fell back"]
    run.table("Network and certified hybrid on DeepMatrixInversion's sets", header, rows,
              notes=("" if available else f"**{SHARED_DATA} is absent: only fresh samples were evaluated.** ")
              + f"Model: dense_resnet (DeepMatrixInversion's network) units {cfg.model.width}, {cfg.model.blocks} blocks, {steps} steps of batch 256 (Adam lr 1e-3)"
              + (", first 500 matrices of each file (quick mode)." if args.quick else "."))
    if sing_rows:
        run.table("Singular sets (no inverse exists; stored values are rounded to 4 decimals)",
                  ["set", "matrices", "network: median ‖AX−I‖_F", "network: LAPACK pass", "hybrid: LAPACK pass", "hybrid: status", "hybrid: answered by"],
                  sing_rows)
    run.data = data
    wall = run.finish()
    print(f"deepmatrixinversion: wrote {args.out} in {wall:.1f} s")


if __name__ == "__main__":
    main()
