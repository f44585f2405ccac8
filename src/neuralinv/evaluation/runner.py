"""``neuralinv evaluate`` and ``neuralinv analyze`` as library functions (the CLI only prints).

``evaluate_files`` scores a method or a trained model on matrix files and writes
``metrics.json``, ``report.md`` and figures into an output directory. For a trained model each
dataset gets two rows: the raw network guess (``network``: what the paper and
DeepMatrixInversion measure) and the certified hybrid (``learned``: guess + Newton-Schulz +
exact fallback, what ``neuralinv.invert(A, method=model)`` returns). The network row also
carries the seed residual (:mod:`neuralinv.evaluation.seeds`): ``||I - A X0||_1`` of the guesses
the hybrid refines, and the Newton-Schulz steps they need.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._validate import as_tensor
from ..errors import InputError
from ..files import FORMATS
from . import plots
from .metrics import Details, Metrics, compute, evaluate_method
from .report import write_json, write_report
from .seeds import seed_residual


@dataclass(frozen=True)
class Evaluation:
    metrics: list[Metrics]
    figures: list[Path]
    json_path: Path
    markdown_path: Path


def _dataset_name(path: Path, used: set[str]) -> str:
    name = path.name
    for suffix in FORMATS:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    base, k = name, 2
    while name in used:
        name, k = f"{base}-{k}", k + 1
    used.add(name)
    return name


def evaluate_files(
    data: Sequence[str | Path],
    out: str | Path,
    *,
    method: str | None = None,
    model: str | Path | None = None,
    targets: Sequence[str | Path] | None = None,
    raw: bool = True,
    figures: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Evaluation:
    """Evaluate ``method`` (a registered name) or ``model`` (a model directory) on each data file.

    targets: optional reference-inverse files, one per data file in the same order; without
    them the reference is the float64 LU inverse of each matrix.
    """
    from ..files import read_matrices

    if (method is None) == (model is None):
        raise InputError("give exactly one of --method or --model")
    if not data:
        raise InputError("give at least one --data file")
    targets = list(targets or [])
    if targets and len(targets) != len(data):
        raise InputError(
            f"{len(targets)} --targets file(s) for {len(data)} --data file(s); give one per data file, in order"
        )
    learned = None
    if model is not None:
        from ..learned.inverse import LearnedInverse

        learned = LearnedInverse.load(model)
    else:
        from ..methods import resolve

        resolve(method)  # an unknown method fails here, before any file is read
    # Read everything first: a bad file fails before any (slow) work starts.
    loaded = []
    used: set[str] = set()
    for i, path in enumerate(data):
        A = np.asarray(read_matrices(path), dtype=np.float64)
        if A.ndim == 2:
            A = A[None]
        A = A.reshape(-1, A.shape[-2], A.shape[-1])
        T = None
        if targets:
            T = np.asarray(read_matrices(targets[i]), dtype=np.float64).reshape(-1, A.shape[-2], A.shape[-1])
            if T.shape != A.shape:
                raise InputError(
                    f"{targets[i]}: {T.shape[0]} matrices of {T.shape[1:]} but {path} has "
                    f"{A.shape[0]} of {A.shape[1:]}"
                )
        if learned is not None and A.shape[-1] != learned.n:
            raise InputError(f"{path}: holds {A.shape[-1]}x{A.shape[-1]} matrices; the model inverts {learned.n}x{learned.n}")
        loaded.append((_dataset_name(Path(path), used), A, T))

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[Metrics] = []
    details: dict[str, Details] = {}
    for name, A, T in loaded:
        if progress:
            progress(f"evaluating {name} ({A.shape[0]} matrices)")
        if learned is not None:
            if raw:
                At = as_tensor(A)[0]  # read-only (memory-mapped) data wrap without a warning
                start = time.perf_counter()
                X = learned.predict(At.to(learned.dtype))
                elapsed = time.perf_counter() - start
                m, d = compute(At.to(learned.dtype), X, T, name=name, method="network", time_s=elapsed)
                m = dataclasses.replace(m, seed=seed_residual(learned, At).as_dict())
                rows.append(m)
                details[f"{name} network"] = d
            m, d, _ = evaluate_method(learned, A, T, name=name)
            rows.append(m)
            details[f"{name} learned"] = d
        else:
            m, d, _ = evaluate_method(method, A, T, name=name)
            rows.append(m)
            details[f"{name} {method}"] = d

    figs: list[Path] = []
    if figures:
        figs = _figures(out / "figures", details, model)
    context: dict[str, Any] = {
        "method": method if method is not None else f"model {model}",
        "data": [str(p) for p in data],
        "targets": [str(p) for p in targets] if targets else "float64 LU inverses of the inputs",
    }
    if learned is not None:
        context["model"] = repr(learned)
        context["region"] = learned.region.describe() if learned.region.describe()["kind"] != "ball" else {
            k: v for k, v in learned.region.describe().items() if k != "center"
        }
    j, md = write_report(out, rows, title="neuralinv evaluate", context=context, figures=figs)
    return Evaluation(rows, figs, j, md)


def _figures(fig_dir: Path, details: dict[str, Details], model: str | Path | None) -> list[Path]:
    figs: list[Path] = []
    for key, d in details.items():
        slug = key.replace(" ", "_")
        if d.has_reference.any():
            figs.append(
                plots.predicted_vs_true(
                    d.X[d.has_reference],
                    d.reference[d.has_reference],
                    fig_dir / f"pred_vs_true_{slug}.png",
                    title=f"{key}: predicted vs true inverse entries",
                )
            )
        figs.append(plots.residual_heatmaps(d.A, d.X, fig_dir / f"residual_{slug}.png", title=f"{key}: A X - I"))
    with_ref = {k: d for k, d in details.items() if d.has_reference.any()}
    if with_ref:
        figs.append(
            plots.error_vs_sigma(
                [d.sigma_min[d.has_reference] for d in with_ref.values()],
                [d.abs_error[d.has_reference] for d in with_ref.values()],
                fig_dir / "error_vs_sigma_min.png",
                labels=list(with_ref),
            )
        )
    if model is not None and (Path(str(model)) / "metrics.json").exists():
        try:
            figs.append(plots.training_curves(model, fig_dir / "training_curves.png"))
        except InputError:
            pass  # a model without a recorded history still evaluates
    return figs


def analyze_model(
    model: str | Path,
    *,
    samples: int = 100_000,
    linprog: bool = False,
    member: int = 0,
    seed: int = 0,
    out: str | Path | None = None,
):
    """The section 5.3 analysis of one member of a trained 2-layer ReLU model (see analysis.py);
    with ``out``, also written as ``analysis.json`` there."""
    from ..learned.inverse import LearnedInverse
    from .analysis import analyze_network

    learned = LearnedInverse.load(model)
    if not 0 <= member < len(learned.members):
        raise InputError(f"--member must be in [0, {len(learned.members) - 1}], got {member}")
    arch = learned.config.model
    if arch.arch != "mlp" or arch.depth != 2:
        raise InputError(
            f"analyze needs a 2-layer ReLU MLP (arch mlp, depth 2); {model} is arch {arch.arch!r} depth {arch.depth}"
        )
    result = analyze_network(learned.members[member], learned.region, samples=samples, seed=seed, linprog=linprog)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        write_json(Path(out) / "analysis.json", result.as_dict())
    return result


__all__ = ["Evaluation", "analyze_model", "evaluate_files"]
