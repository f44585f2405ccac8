"""Accuracy metrics of approximate inverses, per dataset.

Two questions are kept apart:

* how close is X to *the* inverse (MAE, MSE, R2, relative error), which needs a reference
  inverse: the given targets, else the float64 LU inverse of each matrix. Matrices without a
  trustworthy reference (singular or numerically singular in float64) are left out of those
  four metrics and counted in ``no_reference``;
* is X an inverse of A at all (identity residual ``||A X - I||_F`` and the LAPACK dget03
  certificate ``ratio < 30``), which needs no reference and is defined on singular sets too.

R2 is computed over all compared entries flattened, as scikit-learn's ``r2_score`` on the
flattened arrays does (DeepMatrixInversion's figure reports that number).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._validate import as_tensor
from ..certify import PASS_RATIO, eps, residual_ratio
from ..certify import sigma_min as _sigma_min
from ..errors import InputError
from ..kernels.lapack import inverse_ex
from ..solution import Solution


@dataclass(frozen=True)
class Metrics:
    """One dataset's scores. Error metrics are NaN when no matrix had a reference inverse.

    count:           matrices in the dataset.
    compared:        matrices with a reference inverse and a finite answer (the error metrics
                     are over these).
    no_reference:    matrices without a reference (singular, or cond_2 > 1/(n eps) in float64).
    no_answer:       matrices whose answer has NaN/Inf entries (e.g. SINGULAR: no inverse given).
    mae, mse, r2:    over all entries of the compared matrices.
    relative_error:  median over compared matrices of ``||X - X_ref||_F / ||X_ref||_F``.
    identity_residual: median over all matrices of ``||A X - I||_F`` (inf/NaN answers count as inf).
    pass_fraction:   fraction of all matrices whose dget03 ratio is < 30 in the answer's dtype.
    contracted, refined, fell_back: learned methods only (None otherwise), fractions of all
                     matrices whose network guess contracted under Newton-Schulz, that were
                     refined to the certificate from that guess, and that were answered by the
                     exact fallback.
    seed:            the raw network row of a learned model only (None otherwise):
                     :class:`neuralinv.evaluation.seeds.SeedResidual` as a dict, the
                     ``||I - A X0||_1`` of the seeds the certified method refines (share <= 0.5,
                     quantiles) and the Newton-Schulz steps they need in float32 and float64.
    """

    name: str
    method: str
    count: int
    n: int
    compared: int
    no_reference: int
    no_answer: int
    mae: float
    mse: float
    r2: float
    relative_error: float
    identity_residual: float
    pass_fraction: float
    contracted: float | None = None
    refined: float | None = None
    fell_back: float | None = None
    time_s: float | None = None
    extra: dict = field(default_factory=dict)
    seed: dict | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    # The seed residual's table cells (None without one, so the report drops the columns).
    @property
    def seed_share(self) -> float | None:
        return None if self.seed is None else self.seed["share_good"]

    @property
    def seed_quantiles(self) -> str | None:
        return None if self.seed is None else self._seed().quantile_text()

    @property
    def seed_steps(self) -> str | None:
        return None if self.seed is None else self._seed().steps_text()

    def _seed(self):
        from .seeds import SeedResidual

        return SeedResidual(**self.seed)


@dataclass(frozen=True)
class Details:
    """Per-matrix arrays behind a :class:`Metrics` (what the figures are drawn from), float64 numpy."""

    A: np.ndarray
    X: np.ndarray
    reference: np.ndarray  # NaN where there is no reference inverse
    has_reference: np.ndarray  # (B,) bool
    sigma_min: np.ndarray  # (B,) 2-norm distance of A to the singular set
    abs_error: np.ndarray  # (B,) mean |X - X_ref| per matrix (NaN without reference)
    identity_residual: np.ndarray  # (B,) ||A X - I||_F
    ratio: np.ndarray  # (B,) dget03 ratio in the answer's dtype


def reference_inverse(A: Tensor) -> tuple[Tensor, Tensor]:
    """float64 LU inverses of A and a mask of the matrices where that inverse is trustworthy
    (``sigma_min / sigma_max > n eps``: beyond that, even float64 has no correct digit)."""
    A64 = A.to(torch.float64)
    X, info = inverse_ex(A64)
    n = A.shape[-1]
    s = torch.linalg.svdvals(A64)
    ok = (info == 0) & (s[..., -1] > n * eps(torch.float64) * s[..., 0]) & torch.isfinite(X).all(
        dim=(-2, -1)
    )
    return X, ok


def _batch(A: Any, name: str) -> Tensor:
    t, _ = as_tensor(A, name)
    if t.ndim != 3 or t.shape[-1] != t.shape[-2]:
        raise InputError(f"{name} must have shape (B, n, n), got {tuple(t.shape)}")
    if not t.dtype.is_floating_point:
        t = t.to(torch.float64)
    return t.detach()


def compute(
    A: Any,
    X: Any,
    targets: Any | None = None,
    *,
    name: str = "data",
    method: str = "?",
    time_s: float | None = None,
) -> tuple[Metrics, Details]:
    """Score answers X (B, n, n) for matrices A (B, n, n), against targets or float64 inverses.

    The certificate is computed in the dtype of X (a float32 network answer is judged as float32).
    """
    At, Xt = _batch(A, "A"), _batch(X, "X")
    if At.shape != Xt.shape:
        raise InputError(f"A and X must have the same shape, got {tuple(At.shape)} and {tuple(Xt.shape)}")
    B, n = At.shape[0], At.shape[-1]
    if targets is not None:
        ref = _batch(targets, "targets").to(torch.float64)
        if ref.shape != At.shape:
            raise InputError(
                f"targets must have the shape of A {tuple(At.shape)}, got {tuple(ref.shape)}"
            )
        has_ref = torch.isfinite(ref).all(dim=(-2, -1))
    else:
        ref, has_ref = reference_inverse(At)
    ref = torch.where(has_ref[:, None, None], ref, torch.full_like(ref, float("nan")))
    A64, X64 = At.to(torch.float64), Xt.to(torch.float64)
    answered = torch.isfinite(X64).all(dim=(-2, -1)) if B else has_ref
    scored = has_ref & answered

    diff = (X64 - ref)[scored]
    if diff.numel():
        true = ref[scored]
        mae = float(diff.abs().mean())
        mse = float(diff.square().mean())
        ss_tot = float((true - true.mean()).square().sum())
        r2 = 1.0 - float(diff.square().sum()) / ss_tot if ss_tot > 0 else float("nan")
        rel = torch.linalg.matrix_norm(diff) / torch.linalg.matrix_norm(true)
        rel_err = float(np.median(rel.numpy()))
    else:
        mae = mse = r2 = rel_err = float("nan")

    eye = torch.eye(n, dtype=torch.float64)
    res = torch.linalg.matrix_norm(A64 @ X64 - eye) if B else torch.zeros(0, dtype=torch.float64)
    res = torch.where(torch.isfinite(res), res, torch.full_like(res, float("inf")))
    work = Xt.dtype if Xt.dtype in (torch.float32, torch.float64) else torch.float64
    ratio = residual_ratio(At.to(work), Xt.to(work)).to(torch.float64) if B else res
    passed = (ratio < PASS_RATIO) & torch.isfinite(ratio)

    per_abs = (X64 - ref).abs().mean(dim=(-2, -1))
    details = Details(
        A=A64.numpy(),
        X=X64.numpy(),
        reference=ref.numpy(),
        has_reference=has_ref.numpy(),
        sigma_min=_sigma_min(A64).numpy() if B else np.zeros(0),
        abs_error=per_abs.numpy(),
        identity_residual=res.numpy(),
        ratio=ratio.numpy(),
    )
    metrics = Metrics(
        name=name,
        method=method,
        count=B,
        n=n,
        compared=int(scored.sum()),
        no_reference=int((~has_ref).sum()),
        no_answer=int((~answered).sum()),
        mae=mae,
        mse=mse,
        r2=r2,
        relative_error=rel_err,
        identity_residual=float(np.median(res.numpy())) if B else float("nan"),
        pass_fraction=float(passed.double().mean()) if B else float("nan"),
        time_s=time_s,
    )
    return metrics, details


def learned_fractions(sol: Solution) -> dict[str, float] | None:
    """Fractions contracted / refined / fell back, from a learned method's Solution stats
    (the counts ``contracted``, ``refined`` and ``fallbacks`` that ``method="learned"`` records).

    Returns None for Solutions that carry no such record (non-learned methods).
    """
    stats = sol.stats or {}
    total = int(np.prod(np.shape(sol.status)))
    if "contracted" not in stats or total == 0:
        return None
    return {
        "contracted": int(stats["contracted"]) / total,
        "refined": int(stats.get("refined", 0)) / total,
        "fell_back": int(stats.get("fallbacks", 0)) / total,
    }


def evaluate_method(
    method: Any, A: Any, targets: Any | None = None, *, name: str = "data"
) -> tuple[Metrics, Details, Solution]:
    """Invert A with ``method`` (a name, Method or LearnedInverse) through ``neuralinv.invert``
    and score the certified answers."""
    from ..api import invert

    sol = invert(A, method=method)
    label = _method_label(method, sol)
    m, d = compute(A, sol.inverse, targets, name=name, method=label, time_s=sol.stats.get("time_s"))
    frac = learned_fractions(sol)
    if frac is not None:
        m = _replace(m, **frac)
    counts = sol.method_counts()
    m = _replace(m, extra={"answered_by": counts, "status": sol.counts()})
    return m, d, sol


def _method_label(method: Any, sol: Solution) -> str:
    if isinstance(method, str):
        return method
    return str(sol.stats.get("method", getattr(method, "name", type(method).__name__)))


def _replace(m: Metrics, **changes: Any) -> Metrics:
    d = m.as_dict()
    d.update(changes)
    return Metrics(**d)


def finite_or_none(x: float | None) -> float | None:
    """JSON has no NaN/inf: report them as None."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return x


__all__ = ["Details", "Metrics", "compute", "evaluate_method", "learned_fractions", "reference_inverse"]
