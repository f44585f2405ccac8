"""Figures (matplotlib, Agg backend, PNG). Every function writes one file atomically and returns its path."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError

#: Scatter plots draw at most this many points (a fixed-seed subsample): more only adds ink.
MAX_POINTS = 20_000
#: Log-scale plots draw an error of exactly 0 at this value.
ZERO_FLOOR = 1e-18


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    """The figure as a PNG through :func:`neuralinv.files.atomic_write` (creating the directory)."""
    from ..files import atomic_write

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb") as fh:
            fig.savefig(fh, dpi=120, bbox_inches="tight", format="png")
    finally:
        _plt().close(fig)
    return path


def _subsample(n: int, k: int = MAX_POINTS) -> np.ndarray:
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, size=k, replace=False))


def predicted_vs_true(
    predicted: np.ndarray, true: np.ndarray, path: str | Path, *, title: str = "Predicted vs true inverse entries"
) -> Path:
    """Scatter of predicted against true inverse entries, the least-squares regression line, the
    y = x diagonal and a box with R2 / MSE / MAE (over all finite pairs, not just those drawn)."""
    p = np.asarray(predicted, dtype=np.float64).ravel()
    t = np.asarray(true, dtype=np.float64).ravel()
    if p.shape != t.shape:
        raise InputError(f"predicted and true must have the same size, got {p.size} and {t.size}")
    keep = np.isfinite(p) & np.isfinite(t)
    p, t = p[keep], t[keep]
    if p.size < 2:
        raise InputError("need at least two finite (predicted, true) pairs to plot")
    err = p - t
    mse, mae = float(np.mean(err**2)), float(np.mean(np.abs(err)))
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    r2 = 1.0 - float(np.sum(err**2)) / ss_tot if ss_tot > 0 else float("nan")
    slope, intercept = np.polyfit(t, p, 1)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 6))
    idx = _subsample(p.size)
    ax.scatter(t[idx], p[idx], s=3, alpha=0.35, color="tab:blue", label="entries", rasterized=True)
    lo, hi = float(np.min(t)), float(np.max(t))
    xs = np.array([lo, hi])
    ax.plot(xs, xs, "k--", lw=1, label="y = x")
    ax.plot(xs, slope * xs + intercept, color="tab:red", lw=1.5, label=f"fit: y = {slope:.4f} x + {intercept:.2g}")
    ax.text(
        0.04,
        0.96,
        f"R$^2$ = {r2:.5f}\nMSE = {mse:.4g}\nMAE = {mae:.4g}\nentries = {p.size}",
        transform=ax.transAxes,
        va="top",
        bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.9},
    )
    ax.set_xlabel("true inverse entry")
    ax.set_ylabel("predicted inverse entry")
    ax.set_title(title)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def error_vs_sigma(
    sigma: np.ndarray,
    error: np.ndarray,
    path: str | Path,
    *,
    labels: Sequence[str] | None = None,
    title: str = "Error against distance to the singular set",
    ylabel: str = "mean |X - A$^{-1}$| per matrix",
) -> Path:
    """Log-log scatter of an error against sigma_min(A), with the 1/sigma_min line.

    ``||A^{-1}||_2 = 1 / sigma_min``: any bounded approximation's error must grow like that near
    the singular set (the paper's Theorem 3.7). ``sigma``/``error`` may be lists of arrays
    (one series per label).
    """
    series_s = sigma if isinstance(sigma, (list, tuple)) else [sigma]
    series_e = error if isinstance(error, (list, tuple)) else [error]
    labels = list(labels) if labels is not None else [None] * len(series_s)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 5))
    all_s = []
    floored = False
    for s, e, lab in zip(series_s, series_e, labels):
        s, e = np.asarray(s, dtype=np.float64).ravel(), np.asarray(e, dtype=np.float64).ravel()
        keep = np.isfinite(s) & np.isfinite(e) & (s > 0)
        # An exact method can hit 0 error: draw it at the floor rather than drop it.
        s, e = s[keep], e[keep]
        floored = floored or bool((e < ZERO_FLOOR).any())
        e = np.maximum(e, ZERO_FLOOR)
        idx = _subsample(s.size)
        ax.scatter(s[idx], e[idx], s=4, alpha=0.4, label=lab, rasterized=True)
        all_s.append(s)
    if all_s and np.concatenate(all_s).size:
        s_all = np.concatenate(all_s)
        xs = np.geomspace(s_all.min(), s_all.max(), 50)
        ax.plot(xs, 1 / xs, "k--", lw=1, label=r"$1/\sigma_{min}$ = $\|A^{-1}\|_2$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$\sigma_{min}(A)$ (2-norm distance to the nearest singular matrix)")
    ax.set_ylabel(ylabel + (f" (0 drawn at {ZERO_FLOOR:g})" if floored else ""))
    ax.set_title(title)
    ax.legend(loc="upper right", markerscale=3)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


def residual_heatmaps(
    A: np.ndarray, X: np.ndarray, path: str | Path, *, count: int = 4, title: str = "A X - I"
) -> Path:
    """Heatmaps of ``A X - I`` for the first ``count`` matrices, on one symmetric color scale."""
    A = np.asarray(A, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    if A.ndim == 2:
        A, X = A[None], X[None]
    k = min(count, A.shape[0])
    if k == 0:
        raise InputError("no matrices to draw")
    n = A.shape[-1]
    E = A[:k] @ X[:k] - np.eye(n)
    vmax = float(np.abs(E[np.isfinite(E)]).max()) if np.isfinite(E).any() else 1.0
    vmax = vmax if vmax > 0 else 1.0
    plt = _plt()
    fig, axes = plt.subplots(1, k, figsize=(3.2 * k + 1, 3.3), squeeze=False)
    im = None
    for i, ax in enumerate(axes[0]):
        im = ax.imshow(E[i], cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        finite = np.isfinite(E[i])
        label = f"max |.| = {np.abs(E[i][finite]).max():.2g}" if finite.any() else "no answer (NaN)"
        ax.set_title(f"matrix {i}: {label}", fontsize=9)
        ax.set_xticks(range(n) if n <= 10 else [])
        ax.set_yticks(range(n) if n <= 10 else [])
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    fig.suptitle(title)
    return _save(fig, path)


def loss_curves(
    curves: Mapping[str, Sequence[float]],
    path: str | Path,
    *,
    title: str = "Loss",
    xlabel: str = "iteration",
    ylabel: str = "loss",
    x: Mapping[str, Sequence[float]] | None = None,
) -> Path:
    """Several loss curves on one log-y plot."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, ys in curves.items():
        ys = np.asarray(ys, dtype=np.float64)
        xs = np.asarray(x[name]) if x and name in x else np.arange(ys.size)
        ys = np.where(ys > 0, ys, np.nan)
        ax.plot(xs, ys, label=name)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


def bars(
    names: Sequence[str], values: Sequence[float], path: str | Path, *, title: str, ylabel: str, log: bool = True
) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(names) + 2), 4.5))
    ax.bar(range(len(names)), values, color="tab:blue")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=20, ha="right")
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y", which="both")
    return _save(fig, path)


def read_training_history(model_dir: str | Path) -> dict:
    """The per-member validation histories of a model directory's ``metrics.json``.

    Returns ``{"members": [{"member": k, "history": [{"step", "loss", "val_mae", ...}, ...]}],
    "linear_approximation_mae": float | None}`` as written by ``neuralinv train``.
    """
    path = Path(model_dir) / "metrics.json"
    if not path.exists():
        raise InputError(f"{path}: no such file (not a trained model directory?)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    members = data.get("members") if isinstance(data, dict) else None
    if not isinstance(members, list) or not any(m.get("history") for m in members if isinstance(m, dict)):
        raise InputError(f"{path}: no 'members' with a validation 'history' in it")
    base = (data.get("validation") or {}).get("linear_approximation_mae")
    return {"members": members, "linear_approximation_mae": base}


def training_curves(model_dir: str | Path, path: str | Path, *, title: str | None = None) -> Path:
    """Training loss (left) and validation MAE against the float64 inverse (right), per ensemble
    member, against the training step; the right panel also shows the linear approximation's
    validation MAE when the trainer recorded it."""
    hist = read_training_history(model_dir)
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    for m in hist["members"]:
        h = m.get("history") or []
        steps = [r["step"] for r in h]
        k = m.get("member", "?")
        if all("loss" in r for r in h):
            ax1.plot(steps, [r["loss"] if r["loss"] and r["loss"] > 0 else np.nan for r in h], label=f"member {k}")
        if all("val_mae" in r for r in h):
            ax2.plot(steps, [r["val_mae"] for r in h], marker=".", label=f"member {k}")
    base = hist["linear_approximation_mae"]
    if base:
        ax2.axhline(base, color="k", ls="--", lw=1, label=f"linear approximation ({base:.3g})")
    for ax, ylabel in ((ax1, "training loss"), (ax2, "validation MAE")):
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.suptitle(title or f"Training history: {Path(model_dir).name}")
    return _save(fig, path)


def certificate_plot(input_path: str | Path, inverse_path: str | Path, path: str | Path, *, limit: int = 10_000) -> Path:
    """For ``neuralinv invert --plot``: the LAPACK ratio of each answer against sigma_min(A)
    (first ``limit`` matrices of the files, pass line at 30), and ``A X - I`` of the matrix with
    the worst ratio among them."""
    import torch

    from ..certify import PASS_RATIO, residual_ratio, sigma_min
    from ..files import iter_matrices

    def head(p):
        parts, have = [], 0
        for chunk in iter_matrices(p, chunk_size=min(limit, 65536)):
            chunk = np.asarray(chunk, dtype=np.float64).reshape(-1, chunk.shape[-2], chunk.shape[-1])
            parts.append(chunk[: limit - have])
            have += parts[-1].shape[0]
            if have >= limit:
                break
        return np.concatenate(parts) if parts else np.zeros((0, 0, 0))

    A, X = head(input_path), head(inverse_path)
    if A.shape != X.shape or A.shape[0] == 0:
        raise InputError(f"{input_path} and {inverse_path} do not hold matching matrices to plot")
    At, Xt = torch.from_numpy(A), torch.from_numpy(X)
    ratio = residual_ratio(At, Xt).numpy()
    sig = sigma_min(At).numpy()
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [1.6, 1]})
    good = np.isfinite(ratio) & (sig > 0)
    passed = good & (ratio < PASS_RATIO)
    idx = _subsample(A.shape[0])
    sel_p, sel_f = passed[idx], (good & ~passed)[idx]
    r_plot = np.maximum(ratio, 1e-3)
    ax1.scatter(sig[idx][sel_p], r_plot[idx][sel_p], s=4, alpha=0.5, label=f"pass ({int(passed.sum())})")
    ax1.scatter(sig[idx][sel_f], r_plot[idx][sel_f], s=6, alpha=0.7, color="tab:red", label=f"fail ({int((good & ~passed).sum())})")
    ax1.axhline(PASS_RATIO, color="k", ls="--", lw=1, label="pass threshold 30")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel(r"$\sigma_{min}(A)$ (distance to the singular set)")
    ax1.set_ylabel(r"LAPACK ratio $\|I - XA\|_1 / (n \|A\|_1 \|X\|_1 \epsilon)$")
    ax1.set_title(f"Certificates of {min(limit, A.shape[0])} answers")
    ax1.legend(markerscale=3)
    ax1.grid(alpha=0.3, which="both")
    worst = int(np.nanargmax(np.where(np.isfinite(ratio), ratio, -np.inf))) if good.any() else 0
    E = A[worst] @ X[worst] - np.eye(A.shape[-1])
    vmax = float(np.nanmax(np.abs(E))) if np.isfinite(E).any() else 1.0
    im = ax2.imshow(E, cmap="RdBu_r", vmin=-(vmax or 1.0), vmax=vmax or 1.0)
    n = A.shape[-1]
    ax2.set_xticks(range(n) if n <= 10 else [])
    ax2.set_yticks(range(n) if n <= 10 else [])
    ax2.set_title(f"A X - I of matrix {worst}\n(worst ratio {ratio[worst]:.3g})", fontsize=10)
    fig.colorbar(im, ax=ax2, shrink=0.8)
    return _save(fig, path)


__all__ = [
    "bars",
    "certificate_plot",
    "error_vs_sigma",
    "loss_curves",
    "predicted_vs_true",
    "read_training_history",
    "residual_heatmaps",
    "training_curves",
]
