"""How good a learned model's first guesses are as Newton-Schulz seeds.

Newton-Schulz squares the residual at every step (``I - X_{k+1} A = (I - X_k A)^2``), so the
quality of a seed is the norm of its residual ``||I - A X0||_1``: below 1 it contracts, and the
smaller it is the fewer steps reach the certificate. :func:`seed_residual` measures that norm for
the guesses the certified learned method really refines (the matrices it routes to the network,
in the region or scaled into it, guessed as ``invert`` guesses them), its quantiles, the share
at most :data:`GOOD_SEED` (0.5), and the Newton-Schulz steps each dtype then needs to reach the
method's tolerance. ``neuralinv evaluate --model`` reports it as the "seed residual" of the
network row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

#: A seed whose ``||I - A X0||_1`` is at most this counts as good (issue 15.3's target share).
GOOD_SEED = 0.5
#: The quantiles reported.
QUANTILES = (0.5, 0.9, 0.99, 0.999)


@dataclass(frozen=True)
class SeedResidual:
    """``||I - A X0||_1`` of a model's seeds on one dataset, and the Newton-Schulz steps they need.

    seeded:       matrices the method hands to the network (in the region or scaled into it).
    count:        matrices of the dataset.
    share_good:   share of the seeded matrices with ``||I - A X0||_1 <= GOOD_SEED`` (NaN if none).
    quantiles:    {"50%": ..., "90%": ..., "99%": ..., "99.9%": ...} of ``||I - A X0||_1``, in
                  float64, of the guesses for the float64 input.
    max:          the largest ``||I - A X0||_1``.
    steps:        per dtype name ("float32", "float64"): ``histogram`` (matrices per number of
                  steps, index = steps, converged ones only), ``max`` (most steps a converged
                  matrix took), ``not_converged`` (seeds that did not contract or did not reach
                  the tolerance in ``max_iter`` steps).
    tol, max_iter: the refinement's settings (the learned method's).
    """

    seeded: int
    count: int
    share_good: float
    quantiles: dict
    max: float
    steps: dict
    tol: float
    max_iter: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def quantile_text(self) -> str:
        """``"5.2e-04 / 9.1e-04 / 1.9e-03 / 4.1e-03"`` (the 50/90/99/99.9% quantiles)."""
        return " / ".join(f"{v:.2g}" for v in self.quantiles.values())

    def steps_text(self) -> str:
        """Most Newton-Schulz steps per dtype, e.g. ``"2 / 3"`` (float32 / float64), with ``+k``
        for k seeds that did not converge."""
        parts = []
        for s in self.steps.values():
            t = "-" if s["max"] is None else str(s["max"])
            parts.append(t + (f" (+{s['not_converged']} not conv.)" if s["not_converged"] else ""))
        return " / ".join(parts)

    def summary(self) -> str:
        """One line: share <= 0.5, quantiles, max, steps."""
        q = "/".join(k.rstrip("%") for k in self.quantiles)
        steps = ", ".join(
            f"{dt} {_histogram_text(s['histogram'])}"
            + (f" + {s['not_converged']} not converged" if s["not_converged"] else "")
            for dt, s in self.steps.items()
        )
        return (
            f"seed residual ||I - A X0||_1 over the {self.seeded} of {self.count} matrices the "
            f"network seeds: share <= {GOOD_SEED:g}: {100 * self.share_good:.2f}%, quantiles "
            f"{q}%: {self.quantile_text()}, max {self.max:.2g}; Newton-Schulz steps to ratio < "
            f"{self.tol:g} (matrices per step count): {steps}"
        )


def _histogram_text(hist: Sequence[int]) -> str:
    return "{" + ", ".join(f"{k}: {c}" for k, c in enumerate(hist) if c) + "}"


def residual_norms(A: Tensor, X0: Tensor) -> Tensor:
    """``||I - A X0||_1`` per matrix, computed in float64 (inf where it is not finite)."""
    A64, X64 = A.to(torch.float64), X0.to(torch.float64)
    E = torch.eye(A.shape[-1], dtype=torch.float64, device=A.device) - A64 @ X64
    r = E.abs().sum(dim=-2).amax(dim=-1)
    return torch.where(torch.isfinite(r), r, torch.full_like(r, float("inf")))


def seed_residual(
    model: Any,
    A: Any,
    *,
    dtypes: Sequence[torch.dtype] = (torch.float32, torch.float64),
    **options: Any,
) -> SeedResidual:
    """Measure the seeds of ``model`` (a LearnedInverse, model directory, ``builtin:NAME`` or a
    :class:`~neuralinv.methods.learned.Learned`) on the matrices ``A`` (B, n, n).

    For each dtype the matrices are routed and guessed as the certified method does
    (:meth:`Learned.seed`) and refined from those guesses with its ``tol`` and ``max_iter``
    (``refine_certified`` with the same contraction screen). ``options`` are further
    :class:`Learned` fields when ``model`` is not a Learned already.
    """
    from .._validate import as_tensor
    from ..methods.learned import Learned
    from ..methods.newton_schulz import guess_contracts, refine_certified

    method = model if isinstance(model, Learned) else Learned(model=model, **options)
    t, _ = as_tensor(A, "A")
    t = t.detach().reshape(-1, method.n, method.n)
    B = t.shape[0]
    steps: dict[str, dict] = {}
    norms = None
    for dt in dtypes:
        Ad = t.to(dt)
        rows, X0 = method.seed(Ad)
        As = Ad[rows]
        if dt == torch.float64 or norms is None:
            norms = residual_norms(As, X0)
        r = refine_certified(As, X0, tol=method.tol, max_iter=method.max_iter, screen=guess_contracts)
        done = r.iterations[r.converged].to(torch.int64)
        hist = torch.bincount(done).tolist() if done.numel() else []
        steps[str(dt).removeprefix("torch.")] = {
            "histogram": hist,
            "max": int(done.max()) if done.numel() else None,
            "not_converged": int((~r.converged).sum()),
        }
    r = norms.cpu().numpy()
    if r.size:
        qs = np.quantile(r, QUANTILES)
        share, top = float(np.mean(r <= GOOD_SEED)), float(r.max())
    else:
        qs, share, top = [float("nan")] * len(QUANTILES), float("nan"), float("nan")
    quantiles = {f"{100 * q:g}%": float(v) for q, v in zip(QUANTILES, qs)}
    return SeedResidual(int(r.size), B, share, quantiles, top, steps, float(method.tol), int(method.max_iter))


__all__ = ["GOOD_SEED", "QUANTILES", "SeedResidual", "residual_norms", "seed_residual"]
