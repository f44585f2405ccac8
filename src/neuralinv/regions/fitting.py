"""Regions fitted to a user's matrices: certified balls covering a stated share of them.

A user with a workload (a tracker's innovation covariances, the normal matrices of rolling
regressions) has matrices, not a center and a radius. :func:`fit_union` (``Ball.fit`` /
``Balls.fit`` / ``neuralinv.regions.fit_balls``) turns them into a
:class:`~neuralinv.regions.Balls` region:

1. **Scale.** With ``scale=True`` (the default) every matrix is divided by ``||A||_F / sqrt(n)``
   (so the identity keeps its scale) before fitting: matrices that differ by a scalar factor
   land on the same point, and the learned method's ``scale`` route brings any positive
   multiple of a covered matrix back into the region at inference (``A^-1 = s (s A)^-1``).
2. **Near-singular matrices.** A ball proven away from the singular set cannot usefully hold a
   matrix whose normalised ``sigma_min / ||A||_2`` is below ``min_rel_sigma`` (default 1e-3):
   such matrices are left out (they go to the exact path) and counted against the coverage.
3. **Clustering.** k-means (k-means++ seeding, a seeded generator, so the same data give the
   same region) on the normalised matrices, for ``k = 1, 2, ...`` until the union covers
   ``coverage`` of the given matrices (or the ``k`` given).
4. **One ball per cluster.** The center starts at the cluster mean and moves to the entrywise
   midrange of the cluster's nearest ``coverage`` share (which minimises the entrywise radius
   needed for them); the radius is the distance that covers that share, capped so that
   ``n r <= max_fill * sigma_min(center)`` (``max_fill`` 0.5 by default, as ``Ball.default``).
   So each ball passes ``Ball.check`` (``n r < sigma_min(center)``) with a margin: every
   matrix in it has ``sigma_min >= (1 - max_fill) sigma_min(center)``, and the linear
   approximation ``C - C D C`` around its center already satisfies
   ``||I - A X||_2 <= max_fill^2`` there (``I - A (C - C D C) = (D C)^2``), so Newton-Schulz
   from it converges.

The share reported (``FitReport.covered``) is measured with the learned method's own routing
test (``Region.scaled_into``, scaling included when ``scale``), i.e. the share of the given matrices
that ``invert(..., method=model)`` would hand to the network. When the coverage cannot be
reached the fit refuses with an :class:`~neuralinv.errors.InputError` saying how far it got,
how many matrices are near-singular and which.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._validate import as_tensor, int_at_least, positive
from ..certify import sigma_min as _sigma_min
from ..errors import InputError

#: Default largest number of balls ``k=None`` tries before refusing.
MAX_BALLS = 32
#: Matrices kept (a uniform random sample) when fitting from files with more than this.
FIT_SAMPLE = 100_000
#: Indices named in a refusal message.
_NAMED = 10


@dataclass(frozen=True)
class FitReport:
    """How a region was fitted, and what it covers of the matrices it was fitted to."""

    count: int  # matrices given
    coverage: float  # share asked for
    covered: float  # share actually covered (by the routing test)
    k: int  # balls
    scale: str | None  # "frobenius": matrices normalised by ||A||_F / sqrt(n); None: as given
    max_fill: float
    min_rel_sigma: float
    near_singular: int  # matrices left out as near-singular
    ball_shares: tuple  # share of the given matrices each ball holds (nearest containing ball)
    seed: int
    fitted_on: int  # matrices the clustering saw (a sample of ``count`` for large files)
    files: tuple = field(default=())  # ({"path", "sha256", "count"}, ...) when fitted from files

    def as_dict(self) -> dict:
        d = asdict(self)
        d["ball_shares"] = list(self.ball_shares)
        d["files"] = [dict(f) for f in self.files]
        return d


# -- the fit ----------------------------------------------------------------------------------
def fit_union(
    union: type,
    A: Any,
    *,
    coverage: float = 0.99,
    k: int | None = None,
    scale: bool = True,
    max_fill: float = 0.5,
    min_rel_sigma: float = 1e-3,
    max_k: int = MAX_BALLS,
    seed: int = 0,
    iterations: int = 50,
) -> Any:
    """Certified balls whose union (a ``union``, i.e. :class:`~neuralinv.regions.Balls`, of
    ``union.MEMBER`` balls) covers ``coverage`` of ``A`` (see the module docstring). The
    classes come in as an argument so that this module needs no import of them (they call it).

    A: ``(..., n, n)`` matrices (at least 2, finite). k: the number of balls, or None for the
    fewest in ``1..max_k`` that reach ``coverage``. Returns a :class:`Balls` whose
    ``fit_report`` (:class:`FitReport`) says what it covers. InputError when the matrices are
    malformed or the coverage cannot be reached with certified balls.
    """
    t, _ = as_tensor(A, "A")
    if t.ndim < 3 or t.shape[-1] != t.shape[-2] or t.shape[-1] == 0:
        raise InputError(f"A must be a batch of square matrices (..., n, n), got shape {tuple(t.shape)}")
    n = int(t.shape[-1])
    X = t.detach().reshape(-1, n, n).to(device="cpu", dtype=torch.float64)
    m = X.shape[0]
    if m < 2:
        raise InputError(f"fitting a region needs at least 2 matrices, got {m}")
    bad = (~torch.isfinite(X).flatten(1).all(1)).nonzero().squeeze(-1)
    if bad.numel():
        raise InputError(f"{bad.numel()} of {m} matrices have NaN or Inf entries (first: matrix "
                         f"{_names(bad)}); remove them before fitting")
    coverage = positive("coverage", coverage, at_most=1.0)
    max_fill = positive("max_fill", max_fill)
    if not max_fill < 1:
        raise InputError(f"max_fill must be < 1 (n r < sigma_min(center)), got {max_fill!r}")
    min_rel_sigma = positive("min_rel_sigma", min_rel_sigma, allow_zero=True)
    max_k = int_at_least("max_k", max_k, 1)
    if k is not None:
        k = int_at_least("k", k, 1)
    seed = int_at_least("seed", seed, 0)

    B, norms = _normalise(X, scale)
    zero = (norms == 0).nonzero().squeeze(-1)
    rel = _sigma_min(B) / torch.linalg.matrix_norm(B, ord=2).clamp_min(1e-300)
    near = (rel <= min_rel_sigma) | (norms == 0)
    usable = (~near).nonzero().squeeze(-1)
    need = math.ceil(coverage * m - 1e-9)
    which = "" if not zero.numel() else f", {zero.numel()} of them zero matrices"
    near_text = (f"{int(near.sum())} of the {m} matrices are near-singular (sigma_min/||A||_2 <= "
                 f"{min_rel_sigma:g}{which}; first: matrix {_names(near.nonzero().squeeze(-1))})")
    if usable.numel() < need:
        raise InputError(
            f"cannot cover {coverage:.4g} of the matrices with balls proven away from the singular "
            f"set: {near_text}, so at most {usable.numel() / m:.4g} can be covered; remove them, "
            f"lower the coverage, or use an exact method for this data"
        )
    P = B[usable]
    gen = torch.Generator().manual_seed(seed)
    tried = [k] if k is not None else range(1, min(max_k, P.shape[0]) + 1)
    best: tuple[float, Any, int] = (-1.0, None, 0)
    q = min(1.0, need / max(1, P.shape[0]))  # share of the usable matrices each ball must hold
    for kk in tried:
        labels = _kmeans(P.flatten(1), kk, gen, iterations)
        balls = [union.MEMBER(*_ball_for(P[labels == j], q, max_fill))
                 for j in range(kk) if bool((labels == j).any())]
        region = union(tuple(balls))
        inside, owner = _covered(region, X, scale)
        covered = int(inside.sum())
        if covered > best[0]:
            best = (covered, region, kk)
        if covered >= need:
            shares = [int(((owner == j) & inside).sum()) / m for j in range(region.k)]
            weights = [max(s, 1e-6) for s in shares]
            report = FitReport(
                count=m, coverage=coverage, covered=covered / m, k=region.k,
                scale="frobenius" if scale else None, max_fill=max_fill,
                min_rel_sigma=min_rel_sigma, near_singular=int(near.sum()),
                ball_shares=tuple(shares), seed=seed, fitted_on=m,
            )
            return union(region.balls, weights, fit_report=report)
    covered, _, kk = best
    asked = f"k={k} ball(s)" if k is not None else f"up to {max_k} balls"
    hint = "more balls (k)" if k is not None else "a larger max_k"
    sing = f"; {near_text}" if int(near.sum()) else ""
    raise InputError(
        f"cannot cover {coverage:.4g} of the {m} matrices with {asked} proven away from the "
        f"singular set (n r <= {max_fill:g} sigma_min(center)): the best, {kk} ball(s), covers "
        f"{covered / m:.4g}{sing}; try {hint}, a lower coverage, or scale=True"
    )


def _names(idx: Tensor) -> str:
    shown = ", ".join(str(int(i)) for i in idx[:_NAMED])
    return shown + (", ..." if idx.numel() > _NAMED else "")


def _normalise(X: Tensor, scale: bool) -> tuple[Tensor, Tensor]:
    """The matrices divided by ``||A||_F / sqrt(n)`` (zero matrices left as they are), and
    those factors (1 where ``scale`` is False)."""
    n = X.shape[-1]
    if not scale:
        return X, torch.ones(X.shape[0], dtype=X.dtype)
    f = torch.linalg.matrix_norm(X, ord="fro") / math.sqrt(n)
    safe = torch.where(f > 0, f, torch.ones_like(f))
    return X / safe[:, None, None], f


def _kmeans(P: Tensor, k: int, gen: torch.Generator, iterations: int) -> Tensor:
    """Lloyd's k-means with k-means++ seeding on the rows of P; the cluster of each row."""
    m = P.shape[0]
    if k == 1:
        return torch.zeros(m, dtype=torch.int64)
    first = int(torch.randint(m, (1,), generator=gen))
    centers = [P[first]]
    d2 = (P - P[first]).pow(2).sum(1)
    for _ in range(1, k):
        total = float(d2.sum())
        if total <= 0:
            break
        nxt = int(torch.multinomial(d2 / total, 1, generator=gen))
        centers.append(P[nxt])
        d2 = torch.minimum(d2, (P - P[nxt]).pow(2).sum(1))
    C = torch.stack(centers)
    labels = torch.cdist(P, C).argmin(1)
    for _ in range(iterations):
        new = torch.zeros_like(C).index_add_(0, labels, P)
        counts = torch.bincount(labels, minlength=C.shape[0]).to(P.dtype)
        keep = counts > 0
        C = torch.where(keep[:, None], new / counts.clamp_min(1)[:, None], C)
        nl = torch.cdist(P, C).argmin(1)
        if torch.equal(nl, labels):
            break
        labels = nl
    return labels


def _ball_for(Q: Tensor, share: float, max_fill: float) -> tuple[Tensor, float]:
    """``(center, radius)`` of the ball of one cluster ``Q`` (j, n, n): covering ``share`` of it,
    capped to stay certified."""
    n = Q.shape[-1]
    j = Q.shape[0]
    keep = max(1, math.ceil(share * j - 1e-9))
    c = Q.mean(0)
    for _ in range(3):
        d = (Q - c).abs().flatten(1).amax(1)
        near = d.argsort()[:keep]
        c = (Q[near].amax(0) + Q[near].amin(0)) / 2
    d = (Q - c).abs().flatten(1).amax(1)
    need = float(d.sort().values[keep - 1])
    s = float(_sigma_min(c))
    cap = max_fill * s / n
    if not cap > 0:  # a singular center: the mean of a degenerate cluster; fall back to a member
        c = Q[near[0]].clone()
        s = float(_sigma_min(c))
        cap = max_fill * s / n
    # A hair more than the k-th distance, so that matrix is not left on the boundary; a floor,
    # so a cluster of (near) scalar multiples of one matrix still gets a ball of positive radius.
    r = min(cap, max(need * (1 + 1e-6), 0.01 * cap))
    return c, r


def _covered(region: Any, X: Tensor, scale: bool) -> tuple[Tensor, Tensor]:
    """Which matrices the learned method's routing hands to the network, and the ball each
    falls in (after scaling)."""
    inside = torch.zeros(X.shape[0], dtype=torch.bool)
    owner = torch.zeros(X.shape[0], dtype=torch.int64)
    step = 65536
    for lo in range(0, X.shape[0], step):
        chunk = X[lo:lo + step]
        ins, s = region.scaled_into(chunk, scale=scale)
        inside[lo:lo + step] = ins
        owner[lo:lo + step] = region.nearest(chunk * s[:, None, None])
    return inside, owner


def coverage_of(region: Any, A: Any, *, scale: bool = True) -> float:
    """The share of the matrices ``A`` the learned method would hand to the network on ``region``."""
    t, _ = as_tensor(A, "A")
    n = region.n
    X = t.detach().reshape(-1, n, n).to(torch.float64)
    if X.shape[0] == 0:
        return float("nan")
    return float(region.scaled_into(X, scale=scale).inside.double().mean())


# -- from files -------------------------------------------------------------------------------
@dataclass(frozen=True)
class FitData:
    """Matrices read from files for fitting: a uniform sample of at most ``FIT_SAMPLE``."""

    sample: Tensor  # (k, n, n) float64
    count: int  # matrices in all files
    files: tuple  # ({"path", "sha256", "count"}, ...)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_fit_data(paths: list, *, limit: int = FIT_SAMPLE, seed: int = 0, chunk_size: int = 65536) -> FitData:
    """Stream the matrices of ``paths`` (any supported format), checking each chunk (square,
    one size over all files, finite), keeping a uniform random sample of at most ``limit``
    (random keys, the smallest kept: exact sampling without replacement, bounded memory).
    Errors name the file and the matrix index in it."""
    from ..files import open_matrices

    if not paths:
        raise InputError("--data needs at least one file")
    limit = int_at_least("limit", limit, 2)
    rng = np.random.default_rng(seed)
    keys = np.empty(0)
    kept = None
    n = None
    total = 0
    files = []
    for p in paths:
        src = open_matrices(p)
        count = 0
        for chunk in src.chunks(chunk_size):
            a = np.asarray(chunk)
            if a.ndim != 3 or a.shape[-1] != a.shape[-2]:
                raise InputError(f"{p}: matrices must be square, got shape {tuple(a.shape[1:])}")
            if n is None:
                n = a.shape[-1]
                first = p
            elif a.shape[-1] != n:
                raise InputError(f"{p}: holds {a.shape[-1]}x{a.shape[-1]} matrices but {first} holds "
                                 f"{n}x{n}; all --data files must have one size")
            if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
                raise InputError(f"{p}: matrices must be real numbers, got dtype {a.dtype}")
            a = a.astype(np.float64, copy=False)
            fin = np.isfinite(a).reshape(a.shape[0], -1).all(1)
            if not fin.all():
                i = int(np.argmin(fin))
                raise InputError(f"{p}: matrix {count + i} has NaN or Inf entries "
                                 f"({int((~fin).sum())} such in this chunk); remove them before fitting")
            k = rng.random(a.shape[0])
            if kept is None:
                kept = a.copy()
                keys = k
            else:
                kept = np.concatenate([kept, a])
                keys = np.concatenate([keys, k])
            if kept.shape[0] > limit:
                sel = np.argpartition(keys, limit - 1)[:limit]
                sel.sort()
                kept, keys = kept[sel], keys[sel]
            count += a.shape[0]
        files.append({"path": str(Path(p).resolve()), "name": Path(p).name, "sha256": sha256_file(p), "count": count})
        total += count
    if kept is None or total < 2:
        raise InputError(f"{', '.join(map(str, paths))}: fitting a region needs at least 2 matrices, "
                         f"got {total}")
    return FitData(torch.from_numpy(np.ascontiguousarray(kept)), total, tuple(files))


def fit_files(union: type, paths: list, *, coverage: float = 0.99, k: int | None = None,
              seed: int = 0, **options: Any) -> Any:
    """:func:`fit_union` on the matrices of ``paths`` (streamed; a sample of at most
    ``FIT_SAMPLE`` for the clustering), with the covered share measured over *all* matrices
    of the files and the files (path, SHA-256, count) recorded in ``fit_report``."""
    from ..files import open_matrices

    data = read_fit_data(paths, seed=seed)
    try:
        region = fit_union(union, data.sample, coverage=coverage, k=k, seed=seed, **options)
    except InputError as exc:
        where = ", ".join(str(p) for p in paths)
        raise InputError(f"{where}: {exc}") from None
    rep = region.fit_report
    covered = rep.covered * rep.count
    if data.count > data.sample.shape[0]:  # a second pass: the share of every matrix
        covered = 0
        for p in paths:
            for chunk in open_matrices(p).chunks(65536):
                covered += coverage_of(region, torch.from_numpy(np.asarray(chunk, dtype=np.float64)),
                                       scale=rep.scale is not None) * len(chunk)
    report = FitReport(**{**asdict(rep), "count": data.count, "covered": covered / data.count,
                          "fitted_on": int(data.sample.shape[0]), "files": data.files,
                          "ball_shares": rep.ball_shares})
    return union(region.balls, region.weights, fit_report=report)


__all__ = ["FIT_SAMPLE", "MAX_BALLS", "FitData", "FitReport", "coverage_of", "fit_files", "fit_union",
           "read_fit_data", "sha256_file"]
