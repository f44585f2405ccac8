"""DeepMatrixInversion's experiment: train on uniform [-1, 1] 3x3 matrices with |det| > 0.1,
evaluate on its data1/data2/data3 validation sets and singular sets (../shared/data).

Rows: the raw network (what DeepMatrixInversion reports; against the stored 4-decimal target
inverses) and the certified hybrid ``neuralinv.invert(A, method=model)`` (network guess +
Newton-Schulz + exact fallback; against the float64 inverse of the stored matrix, since the
stored targets of ill-conditioned matrices are far from it), on whole sets and on the
|det| > 0.1 subsets (the training distribution). DeepMatrixInversion reports R2 0.9998,
MSE 0.0005, MAE 0.0097 for a 7-layer ResNet ensemble trained for thousands of epochs.

Two phases, one command. (1) What the field knows, at one budget of 1.28M training matrices
each: DeepMatrixInversion's dense_resnet at its default size with MSE, with MSE + its identity
loss ||I - A X||, with 4x the matrices per step, a wider and deeper one, and an ensemble of
three (DeepMatrixInversion's n_repeats) sharing the budget; scored on a validation sample of
the training box. (2) The variant with the lowest validation MAE trained on 12x the matrices
(about 15M; ~20-45 minutes on one core of the development machine, depending on the variant),
then scored on DeepMatrixInversion's own sets, raw and certified.
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
    base = TrainConfig(
        # DeepMatrixInversion's own architecture (a dense-growth ResNet), at its default size.
        n=3, region=box, model=ModelConfig("dense_resnet", width=16 if args.quick else 72, blocks=1 if args.quick else 2),
        steps=40 if args.quick else 5_000,
        batch_size=256, lr=1e-3, val_size=512 if args.quick else 4096, seed=0, tensorboard=False,
    )
    base = base.override(val_every=max(1, base.steps // 10))
    wide = ModelConfig("dense_resnet", width=24 if args.quick else 128, blocks=2 if args.quick else 3)
    variants = {  # name: (config, ensemble members); every variant sees the same number of matrices
        "dense_resnet, MSE": base,
        "dense_resnet, MSE + identity loss": base.override(loss="both"),
        "dense_resnet, MSE, 4x matrices per step": base.override(batch_size=1024, steps=base.steps // 4,
                                                                 val_every=max(1, base.steps // 40)),
        f"dense_resnet {wide.width} units x {wide.blocks} blocks, MSE": base.override(model=wide),
        "ensemble of 3 dense_resnets, MSE": base.override(ensemble=3, steps=base.steps // 3,
                                                          val_every=max(1, base.steps // 30)),
    }
    data: dict = {"reported": REPORTED, "phase1": {}}
    phase1_rows, best_name, best_mae = [], None, float("inf")
    data1 = None
    if SHARED_DATA.is_dir():
        A1 = head(SHARED_DATA / "data1_val_matrix_3x3.mx", 500 if args.quick else None)
        T1 = head(SHARED_DATA / "data1_val_target_inverse_3x3.mx", 500 if args.quick else None)
        keep = np.abs(np.linalg.det(A1)) > 0.1
        data1 = (torch.from_numpy(A1[keep]).float(), T1[keep])
    # One validation sample for every variant (seed 20,000: no training stream, no test set).
    Av = box.sample(base.val_size, generator=torch.Generator().manual_seed(20_000))
    Xv = torch.linalg.inv(Av)
    for name, cfg in variants.items():
        try:
            model = ni.train(cfg, None, resume=False)
        except FloatingPointError as exc:  # a diverging variant is a result, not the end of the run
            data["phase1"][name] = {"config": cfg.to_dict(), "diverged": str(exc)}
            phase1_rows.append([name, "-", f"{cfg.steps} x {cfg.batch_size}", "-", "diverged", "-", "-"])
            continue
        # The ensemble's validation MAE is that of its mean guess, like every other variant's.
        val = float((model.predict(Av.float()).double() - Xv).abs().mean())
        entry = {"config": cfg.to_dict(), "val_mae": val, "train_s": model.metrics["train_seconds"],
                 "parameters": sum(p.numel() for m in model.members for p in m.parameters() if p.requires_grad)}
        if data1 is not None:
            m1, _ = compute(data1[0], model.predict(data1[0]), data1[1], name="data1 |det| > 0.1", method="network")
            entry["data1"] = {"mae": m1.mae, "r2": m1.r2}
        data["phase1"][name] = entry
        phase1_rows.append([name, entry["parameters"], f"{cfg.steps} x {cfg.batch_size}" + (f" x {cfg.ensemble}" if cfg.ensemble > 1 else ""),
                            f"{entry['train_s']:.0f}", f"{val:.4g}",
                            f"{entry['data1']['mae']:.4g}" if data1 is not None else "-",
                            f"{entry['data1']['r2']:.4f}" if data1 is not None else "-"])
        if val < best_mae:  # NaN never wins
            best_name, best_mae = name, val
    if best_name is None:
        raise SystemExit("deepmatrixinversion: every phase-1 variant diverged or gave NaN; see results.json")
    run.table("Phase 1: equal budgets (1.28M training matrices each; quick mode: tiny)",
              ["variant", "parameters", "steps x batch", "train s", "validation MAE (fresh box)", "data1 |det| > 0.1: MAE", "R2"],
              phase1_rows, notes=f"Chosen for phase 2 by validation MAE: **{best_name}**.")
    chosen = variants[best_name]
    factor = 3 if args.quick else 12  # phase 2 trains the chosen variant this many times longer
    cfg = chosen.override(steps=factor * chosen.steps, val_every=max(1, factor * chosen.steps // 60))
    steps = cfg.steps
    data["chosen"], data["phase2_factor"] = best_name, factor
    data["config"] = cfg.to_dict()
    model_dir = args.out / "model"
    model = ni.train(cfg, model_dir, resume=False)
    run.figure(plots.training_curves(model_dir, args.out / "dmi_training.png", title=f"{best_name} on Box(3, -1, 1, |det| > 0.1), {steps} steps"))

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
              + f"Model: {best_name} (units {cfg.model.width}, {cfg.model.blocks} blocks, loss {cfg.loss}), {steps} steps of batch {cfg.batch_size}"
              + f"{f' per member, {cfg.ensemble} members' if cfg.ensemble > 1 else ''}, Adam lr 1e-3, train {model.metrics['train_seconds']:.0f} s"
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
