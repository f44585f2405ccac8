"""What a trained 2-layer ReLU network computes: the paper's section 5.3 and appendix E.

A 2-layer ReLU MLP ``f(x) = W2 relu(W1 x + b1) + b2`` (x = the row-major vector of A) is
piecewise affine: on the set of inputs sharing an *activation pattern* s (which hidden units
are positive) it is exactly ``f(x) = W2 D_s W1 x + (W2 D_s b1 + b2)`` with ``D_s = diag(s)``.
Those sets are polytopes ``{x : (2 s - 1) * (W1 x + b1) >= 0}``.

The paper compares each piece with the first-order (linear) approximation of the inverse around
the region's center A0 (its formula 12): with ``P = A0^{-1}``,
``(A0 + D)^{-1} ~ P - P D P = 2 P - P A P``, i.e. in vector form ``y = L x + c`` with
``L[(i,j),(k,l)] = -P_ik P_lj`` and ``c = 2 vec(P)``.

This module samples the region, groups samples by pattern, and reports each pattern's share of
the data, its affine map, and the largest coefficient difference from the linear approximation.
Optionally it bounds ``max |f(x) - (L x + c)|`` over each pattern's polytope intersected with the
region's bounding box by linear programming (scipy.optimize.linprog), the paper's appendix E.2.2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._validate import int_at_least
from ..errors import InputError


@dataclass(frozen=True)
class AffinePiece:
    """One activation pattern of the network and the affine map it computes there."""

    pattern: str  # "1" = active hidden unit, "0" = inactive, unit 0 first
    share: float  # fraction of the samples with this pattern
    count: int
    weight: np.ndarray  # (n^2, n^2): y = weight @ x + bias on this pattern
    bias: np.ndarray  # (n^2,)
    weight_diff: float  # max |weight - L|
    bias_diff: float  # max |bias - c|
    max_deviation: float | None = None  # linprog bound of max |f - linear| over the polytope
    mae_vs_inverse: float = float("nan")  # mean |f(x) - A^{-1}| over this pattern's samples

    @property
    def coefficient_diff(self) -> float:
        return max(self.weight_diff, self.bias_diff)

    @property
    def active_units(self) -> int:
        return self.pattern.count("1")


@dataclass(frozen=True)
class Analysis:
    n: int
    hidden: int
    samples: int
    center: np.ndarray
    linear_weight: np.ndarray
    linear_bias: np.ndarray
    pieces: list[AffinePiece]
    network_mae: float  # mean |f(x) - A^{-1}| over all samples
    linear_mae: float  # mean |(L x + c) - A^{-1}| over all samples
    region: dict = field(default_factory=dict)

    def as_dict(self, *, maps: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "n": self.n,
            "hidden": self.hidden,
            "samples": self.samples,
            "patterns": len(self.pieces),
            "region": self.region,
            "center": self.center.tolist(),
            "network_mae": self.network_mae,
            "linear_approximation_mae": self.linear_mae,
            "linear_approximation": {"weight": self.linear_weight.tolist(), "bias": self.linear_bias.tolist()},
            "pieces": [],
        }
        for p in self.pieces:
            e = {
                "pattern": p.pattern,
                "active_units": p.active_units,
                "share": p.share,
                "count": p.count,
                "weight_diff": p.weight_diff,
                "bias_diff": p.bias_diff,
                "coefficient_diff": p.coefficient_diff,
                "max_deviation": p.max_deviation,
                "mae_vs_inverse": p.mae_vs_inverse,
            }
            if maps:
                e["weight"] = p.weight.tolist()
                e["bias"] = p.bias.tolist()
            d["pieces"].append(e)
        return d


def linear_approximation(center: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(L, c)`` with ``vec((A0 + D)^{-1}) ~ L vec(A) + c`` to first order in D (row-major vec)."""
    A0 = np.asarray(center, dtype=np.float64)
    n = A0.shape[0]
    P = np.linalg.inv(A0)
    # (P A P)_ij = sum_kl P_ik A_kl P_lj  ->  coefficient of A_kl in output ij is P_ik P_lj.
    L = -np.einsum("ik,lj->ijkl", P, P).reshape(n * n, n * n)
    c = 2 * P.reshape(n * n)
    return L, c


def two_layer_weights(net: nn.Module) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(W1, b1, W2, b2)`` of a Linear -> ReLU -> Linear network (float64 numpy), acting on raw
    matrices: a :class:`neuralinv.learned.models.Scaled` wrapper's input/output standardisation is
    folded into the weights, so the affine pieces are those of the map A -> X itself.

    Accepts any module whose Linear layers are exactly two, separated by a ReLU (e.g.
    :class:`neuralinv.learned.models.mlp.MLP` with depth 2); anything else raises InputError.
    """
    scaling = [getattr(net, k, None) for k in ("in_shift", "in_scale", "out_shift", "out_scale")]
    if all(isinstance(t, Tensor) for t in scaling) and isinstance(getattr(net, "net", None), nn.Module):
        W1, b1, W2, b2 = two_layer_weights(net.net)
        in_shift, in_scale, out_shift, out_scale = (t.detach().cpu().double().numpy() for t in scaling)
        # net((x - s_in) / k_in) scaled: W1 (x - s_in)/k_in + b1 and s_out + k_out (W2 h + b2).
        b1 = b1 - W1 @ in_shift.reshape(-1) / float(in_scale)
        W1 = W1 / float(in_scale)
        b2 = out_shift.reshape(-1) + float(out_scale) * b2
        W2 = float(out_scale) * W2
        return W1, b1, W2, b2
    mods = [m for m in net.modules() if not list(m.children())]
    linears = [m for m in mods if isinstance(m, nn.Linear)]
    others = [m for m in mods if not isinstance(m, (nn.Linear, nn.ReLU, nn.Identity, nn.Flatten))]
    relus = [m for m in mods if isinstance(m, nn.ReLU)]
    if len(linears) != 2 or len(relus) != 1 or others:
        raise InputError(
            "analysis needs a 2-layer ReLU MLP (Linear -> ReLU -> Linear); got a network with "
            f"{len(linears)} Linear layer(s), {len(relus)} ReLU(s) and other layers "
            f"{sorted({type(m).__name__ for m in others})}"
        )
    l1, l2 = linears
    if l2.in_features != l1.out_features or l1.in_features != l2.out_features:
        raise InputError(
            f"layer shapes do not chain as an n^2 -> h -> n^2 network: {l1} then {l2}"
        )

    def arr(p):
        return p.detach().cpu().to(torch.float64).numpy() if p is not None else None

    b1 = arr(l1.bias) if l1.bias is not None else np.zeros(l1.out_features)
    b2 = arr(l2.bias) if l2.bias is not None else np.zeros(l2.out_features)
    return arr(l1.weight), b1, arr(l2.weight), b2


def analyze_two_layer(
    W1: np.ndarray,
    b1: np.ndarray,
    W2: np.ndarray,
    b2: np.ndarray,
    *,
    center: np.ndarray,
    samples: np.ndarray | Tensor,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
    linprog: bool = False,
    region: dict | None = None,
) -> Analysis:
    """Group ``samples`` (S, n, n) by activation pattern and describe every pattern's affine map.

    W1 (h, n^2), b1 (h,), W2 (n^2, h), b2 (n^2,) act on row-major vectors of the matrices (put any
    input/output scaling the model applies into these weights first). ``bounds`` = (lower, upper)
    (n^2,) arrays bounding the region entrywise; needed for ``linprog``.
    """
    W1, b1, W2, b2 = (np.asarray(v, dtype=np.float64) for v in (W1, b1, W2, b2))
    h, m = W1.shape
    n = int(round(m**0.5))
    if n * n != m or b1.shape != (h,) or W2.shape != (m, h) or b2.shape != (m,):
        raise InputError(
            f"weights must be W1 (h, n^2), b1 (h,), W2 (n^2, h), b2 (n^2,); got {W1.shape}, "
            f"{b1.shape}, {W2.shape}, {b2.shape}"
        )
    S = np.asarray(samples.detach().cpu() if isinstance(samples, Tensor) else samples, dtype=np.float64)
    if S.ndim != 3 or S.shape[1:] != (n, n) or S.shape[0] == 0:
        raise InputError(f"samples must have shape (S, {n}, {n}) with S >= 1, got {S.shape}")
    if linprog and bounds is None:
        raise InputError("linprog needs the region's entrywise bounds")
    x = S.reshape(-1, m)
    pre = x @ W1.T + b1
    act = pre > 0
    y = np.maximum(pre, 0) @ W2.T + b2
    truth = np.linalg.inv(S).reshape(-1, m)
    L, c = linear_approximation(center)
    y_lin = x @ L.T + c
    keys = np.packbits(act, axis=1) if h else np.zeros((x.shape[0], 1), dtype=np.uint8)
    uniq, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    pieces = []
    for u in np.argsort(-counts, kind="stable"):
        rows_u = inverse == u
        s = act[np.argmax(rows_u)]
        Wp = (W2 * s) @ W1
        bp = (W2 * s) @ b1 + b2
        dev = _lp_bound(W1, b1, s, Wp - L, bp - c, bounds) if linprog else None
        pieces.append(
            AffinePiece(
                pattern="".join("1" if v else "0" for v in s),
                share=float(counts[u]) / x.shape[0],
                count=int(counts[u]),
                weight=Wp,
                bias=bp,
                weight_diff=float(np.abs(Wp - L).max()),
                bias_diff=float(np.abs(bp - c).max()),
                max_deviation=dev,
                mae_vs_inverse=float(np.abs(y[rows_u] - truth[rows_u]).mean()),
            )
        )
    return Analysis(
        n=n,
        hidden=h,
        samples=int(x.shape[0]),
        center=np.asarray(center, dtype=np.float64),
        linear_weight=L,
        linear_bias=c,
        pieces=pieces,
        network_mae=float(np.abs(y - truth).mean()),
        linear_mae=float(np.abs(y_lin - truth).mean()),
        region=region or {},
    )


def _lp_bound(W1, b1, s, dW, db, bounds) -> float:
    """max over the pattern polytope (within the box ``bounds``) of ``|dW x + db|``, all outputs.

    The polytope: active units ``W1_k x + b1_k >= 0``, inactive ``<= 0``; two LPs per output.
    Returns NaN if the polytope is empty within the box (only possible through rounding, since
    the pattern was seen on a sample) or an LP fails.
    """
    from scipy.optimize import linprog

    sign = np.where(s, -1.0, 1.0)  # active: -(W1 x + b1) <= 0 ; inactive: W1 x + b1 <= 0
    A_ub = sign[:, None] * W1
    b_ub = -sign * b1
    lo, hi = bounds
    box = list(zip(np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)))
    worst = 0.0
    for i in range(dW.shape[0]):
        for direction in (1.0, -1.0):
            res = linprog(-direction * dW[i], A_ub=A_ub, b_ub=b_ub, bounds=box, method="highs")
            if res.status != 0:
                return float("nan")
            worst = max(worst, abs(float(dW[i] @ res.x + db[i])))
    return worst


def _check_fold(net: nn.Module, weights, S: Tensor) -> None:
    """The extracted affine pieces must reproduce the network itself (guards the folding of
    any input/output scaling): compare on a few samples, in the network's own dtype."""
    W1, b1, W2, b2 = weights
    x = S.reshape(S.shape[0], -1).numpy()
    mine = np.maximum(x @ W1.T + b1, 0) @ W2.T + b2
    dtype = next(net.parameters()).dtype
    with torch.no_grad():
        try:  # the library's networks take (B, n, n) matrices; a bare Sequential takes vectors
            out = net(S.to(dtype))
        except RuntimeError:
            out = net(S.to(dtype).reshape(S.shape[0], -1))
        theirs = out.reshape(S.shape[0], -1).double().numpy()
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    gap = float(np.abs(mine - theirs).max()) if x.size else 0.0
    scale = max(1.0, float(np.abs(theirs).max())) if x.size else 1.0
    if gap > tol * scale:
        raise InputError(
            f"the network is not the plain 2-layer ReLU map A -> X this analysis reads off its "
            f"weights (largest output mismatch {gap:.3g}); it has layers or scaling it cannot fold"
        )


def region_bounds(region: Any) -> tuple[np.ndarray, np.ndarray]:
    """Entrywise (lower, upper) bounds of a Ball or Box, as row-major (n^2,) arrays."""
    desc = region.describe()
    n = desc["n"]
    if desc["kind"] == "ball":
        c = np.asarray(desc["center"], dtype=np.float64).reshape(-1)
        return c - desc["radius"], c + desc["radius"]
    if desc["kind"] == "box":
        return np.full(n * n, desc["low"], dtype=np.float64), np.full(n * n, desc["high"], dtype=np.float64)
    raise InputError(f"no entrywise bounds for region kind {desc['kind']!r}")


def region_center(region: Any) -> np.ndarray:
    """The point the linear approximation is taken around: a Ball's center; for a Box, the box
    center if it is invertible, else the identity scaled to the box (stated in the report)."""
    desc = region.describe()
    if desc["kind"] == "ball":
        return np.asarray(desc["center"], dtype=np.float64)
    n = desc["n"]
    mid = (desc["low"] + desc["high"]) / 2
    half = (desc["high"] - desc["low"]) / 2
    return mid * np.ones((n, n)) + half * np.eye(n)


def analyze_network(
    net: nn.Module,
    region: Any,
    *,
    samples: int = 100_000,
    seed: int = 0,
    linprog: bool = False,
    center: np.ndarray | None = None,
) -> Analysis:
    """Sample ``region`` (a Ball or Box) and analyse the 2-layer ReLU network ``net`` that maps
    a (B, n, n) matrix batch to its inverse guess directly (no input scaling)."""
    samples = int_at_least("samples", samples, 1)
    W1, b1, W2, b2 = two_layer_weights(net)
    g = torch.Generator().manual_seed(seed)
    S = region.sample(samples, generator=g, dtype=torch.float64)
    c = region_center(region) if center is None else np.asarray(center, dtype=np.float64)
    _check_fold(net, (W1, b1, W2, b2), S[:256])
    return analyze_two_layer(
        W1,
        b1,
        W2,
        b2,
        center=c,
        samples=S,
        bounds=region_bounds(region) if linprog else None,
        linprog=linprog,
        region=region.describe(),
    )


__all__ = [
    "AffinePiece",
    "Analysis",
    "analyze_network",
    "analyze_two_layer",
    "linear_approximation",
    "region_bounds",
    "two_layer_weights",
]
