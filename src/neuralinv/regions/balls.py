"""The Ball region (the paper's ``{A0 + D : |D_ij| <= r}``) and a union of balls (Balls),
each proven away from the singular set at construction; fitted to data by
:mod:`neuralinv.regions.fitting`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from .._validate import as_tensor, int_at_least, positive
from ..certify import sigma_min as _sigma_min
from ..errors import InputError
from . import fitting
from .base import DEFAULT_RADIUS_DIGITS, Region, round_down, square


@dataclass(frozen=True, eq=False)
class Ball(Region):
    """The paper's region ``{A0 + D : |D_ij| <= radius}`` around ``center = A0``.

    ``center`` is stored as a float64 CPU tensor ``(n, n)``. Construction runs :meth:`check`,
    so a Ball that exists is proven to contain no singular matrix.
    """

    center: Tensor
    radius: float
    _sigma: float = field(init=False, repr=False)
    #: How :meth:`fit` chose this ball (a :class:`neuralinv.regions.fitting.FitReport`); None for a
    #: ball written down or read back. Not part of equality or of :meth:`describe`.
    fit_report: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        c, _ = as_tensor(self.center, "center")
        if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] == 0:
            raise InputError(f"center must be a non-empty square (n, n) matrix, got {tuple(c.shape)}")
        c = c.detach().to(device="cpu", dtype=torch.float64).clone()
        if not torch.isfinite(c).all():
            raise InputError("center has non-finite entries")
        object.__setattr__(self, "center", c)
        object.__setattr__(self, "radius", positive("radius", self.radius))
        object.__setattr__(self, "_sigma", float(_sigma_min(c)))
        self.check()

    @property
    def n(self) -> int:
        return int(self.center.shape[0])

    @property
    def sigma_min_center(self) -> float:
        """``sigma_min(center)``: the ball is certified invertible while ``n r`` stays below it."""
        return self._sigma

    @property
    def margin(self) -> float:
        """``sigma_min(center) - n r``: a lower bound on sigma_min of every matrix in the ball."""
        return self._sigma - self.n * self.radius

    def check(self) -> None:
        """Raise :class:`InputError` unless ``n r < sigma_min(center)`` (the ball misses the
        singular set); the message says by how much it fails and the largest safe radius."""
        n, r, s = self.n, self.radius, self._sigma
        if not n * r < s:
            raise InputError(
                f"Ball may contain singular matrices: n*radius = {n}*{r:g} = {n * r:.6g} >= "
                f"sigma_min(center) = {s:.6g} (over by {n * r - s:.6g}); "
                f"use radius < {s / n:.6g}"
            )

    @classmethod
    def fit(cls, A: Any, coverage: float = 0.99, **options: Any) -> Ball:
        """One certified ball covering ``coverage`` of the matrices ``A`` (..., n, n).

        ``Balls.fit(A, k=1, ...)`` returned as a single :class:`Ball`; see
        :func:`neuralinv.regions.fitting.fit_union` for the options and the refusals. ``fit_report``
        says how it was fitted and the share of ``A`` it actually covers.
        """
        if "k" in options:
            raise InputError("Ball.fit fits one ball; use Balls.fit(A, k=...) for a union")
        balls = Balls.fit(A, coverage=coverage, k=1, **options)
        ball = balls.balls[0]
        object.__setattr__(ball, "fit_report", balls.fit_report)
        return ball

    @classmethod
    def default(cls, n: int) -> Ball:
        """The documented default ball for size ``n``, the same on every machine.

        center = ``I + 0.25 * U / n`` with ``U`` uniform in ``[-1, 1)^{n x n}`` drawn from
        ``torch.Generator().manual_seed(n)`` in float64. Since ``||0.25 U / n||_2 <= 0.25``,
        ``sigma_min(center) >= 0.75``: a well-conditioned, non-trivial (not diagonal) center.
        It is bit-for-bit portable: torch's CPU generator gives the same 53-bit uniforms
        everywhere, ``2 u - 1`` and ``0.25 *`` are exact, and ``/ n`` and ``I +`` are single
        correctly rounded IEEE operations (no BLAS, no summation order).

        radius = ``sigma_min(center) / (2 n)`` rounded *down* to :data:`DEFAULT_RADIUS_DIGITS`
        significant decimal digits (0.151467 for n = 3): at most half the largest radius
        :meth:`check` accepts, so every matrix of the ball has ``sigma_min >= sigma_min(center)
        / 2 >= 0.375``. ``sigma_min`` comes from an SVD whose last bits depend on the CPU and
        BLAS; rounding to a short decimal (about 1e-5 relative, far coarser than the SVD's
        ~1e-15) makes the radius, and so ``Ball.default(n) ==`` a stored ball, the same wherever
        the SVD rounds differently.
        """
        n = int_at_least("n", n, 1)
        g = torch.Generator().manual_seed(n)
        U = 2 * torch.rand(n, n, generator=g, dtype=torch.float64) - 1
        center = torch.eye(n, dtype=torch.float64) + 0.25 * U / n
        s = float(_sigma_min(center))
        return cls(center, round_down(s / (2 * n), DEFAULT_RADIUS_DIGITS))

    def _sample(self, batch: int, generator: torch.Generator | None, device: torch.device,
                dtype: torch.dtype) -> Tensor:
        """Matrices ``center + D``, ``D_ij`` uniform in ``[-r, r)``."""
        u = torch.rand(batch, self.n, self.n, generator=generator, device=device, dtype=dtype)
        return self.center.to(device=device, dtype=dtype) + self.radius * (2 * u - 1)

    def contains(self, A: Any, *, work: dict | None = None) -> Tensor:
        """``(...)`` bool: ``max_ij |A_ij - center_ij| <= radius``, decided as in float64.

        A float32 batch is decided mostly in float32, without a float64 copy of the batch
        (docs/performance.md, attempt 31): ``d = |fl(A - fl(center))|`` is within ``u d + delta`` of
        the exact distance (u: a few units of float32 rounding, delta: the largest rounding of
        the center to float32), so a matrix whose largest d is below the radius by more than
        that margin is inside, one above it by more is outside, exactly as in float64; only
        those in the thin band between (none, typically) are decided in float64. ``work``: a
        dict whose buffer for ``A - center`` is reused across calls (chunks of one batch).
        """
        t = square(A, self.n)
        if t.dtype != torch.float32 or t.numel() == 0:
            return self._contains64(t)
        c64 = self.center.to(t.device)
        c = c64.to(t.dtype)
        delta = float((c.to(torch.float64) - c64).abs().max())
        u = 8 * torch.finfo(t.dtype).eps  # generous: subtraction, comparison and threshold roundings
        r = float(self.radius)
        if work is None:
            diff = t - c
        else:
            buf = work.get("region")
            if buf is None or buf.numel() < t.numel() or buf.dtype != t.dtype or buf.device != t.device:
                buf = work["region"] = torch.empty(t.numel(), dtype=t.dtype, device=t.device)
            diff = torch.sub(t, c, out=buf[: t.numel()].view(t.shape))
        d = diff.abs_().flatten(-2).amax(-1)
        inside = d < (r * (1 - u) - delta) / (1 + u)
        unsure = ~inside & (d <= (r * (1 + u) + delta) / (1 - u))
        if bool(unsure.any()):
            inside[unsure] = self._contains64(t[unsure])
        return inside

    def _contains64(self, t: Tensor) -> Tensor:
        d = (t.to(torch.float64) - self.center.to(t.device)).abs()
        return d.flatten(-2).amax(-1) <= self.radius

    def candidate_scale(self, A: Tensor) -> Tensor:
        """The s closest to the center along the ray, in Frobenius norm (``<A, A0> / <A, A>``),
        clamped into the interval of s with every ``|s a_ij - c_ij| <= r`` (the intersection of
        one interval per entry; empty means no scaling reaches the ball): float64, NaN: none."""
        return ball_scale(self.center, float(self.radius), A)

    def describe(self) -> dict:
        return {
            "kind": "ball",
            "n": self.n,
            "radius": self.radius,
            "center": self.center.tolist(),
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ball):
            return NotImplemented
        return self.radius == other.radius and torch.equal(self.center, other.center)

    def __hash__(self) -> int:
        return hash((self.radius, tuple(self.center.flatten().tolist())))



@dataclass(frozen=True, eq=False)
class Balls(Region):
    """A union of certified balls of one size: ``A`` belongs when some ball contains it.

    ``balls``: the :class:`Ball` members (each proven away from the singular set at
    construction, so the union is too). ``weights``: how often :meth:`sample` draws from each
    ball (normalised to sum to 1; default: equal) -- :meth:`fit` sets them to the share of the
    data each ball holds, so training sees the regions the data fill in their proportions.
    """

    #: What :mod:`.fitting` builds the members of a fitted union with.
    MEMBER: ClassVar[type] = Ball

    balls: tuple
    weights: tuple | None = None
    fit_report: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        balls = tuple(self.balls) if not isinstance(self.balls, Ball) else (self.balls,)
        if not balls:
            raise InputError("Balls needs at least one ball")
        for i, b in enumerate(balls):
            if not isinstance(b, Ball):
                raise InputError(f"Balls: member {i} is a {type(b).__name__}, not a Ball")
        sizes = sorted({b.n for b in balls})
        if len(sizes) > 1:
            raise InputError(f"Balls: all balls must have one size, got sizes {sizes}")
        object.__setattr__(self, "balls", balls)
        w = self.weights
        if w is None:
            w = [1.0] * len(balls)
        w = [positive(f"weights[{i}]", x) for i, x in enumerate(w)]
        if len(w) != len(balls):
            raise InputError(f"Balls: {len(w)} weights for {len(balls)} balls")
        total = math.fsum(w)
        object.__setattr__(self, "weights", tuple(x / total for x in w))
        object.__setattr__(self, "_centers", torch.stack([b.center for b in balls]))
        object.__setattr__(self, "_radii", torch.tensor([b.radius for b in balls], dtype=torch.float64))

    @classmethod
    def fit(cls, A: Any, coverage: float = 0.99, k: int | None = None, **options: Any) -> Balls:
        """Certified balls whose union covers ``coverage`` of the matrices ``A`` (..., n, n);
        ``k=None`` picks the number of balls (the fewest that reach the coverage). See
        :func:`neuralinv.regions.fitting.fit_union`; ``fit_report`` says what was covered."""
        return fitting.fit_union(cls, A, coverage=coverage, k=k, **options)

    @property
    def n(self) -> int:
        return self.balls[0].n

    @property
    def k(self) -> int:
        return len(self.balls)

    @property
    def centers(self) -> Tensor:
        """``(k, n, n)`` float64 CPU tensor of the centers."""
        return self._centers

    @property
    def radii(self) -> Tensor:
        """``(k,)`` float64 CPU tensor of the radii."""
        return self._radii

    @property
    def margin(self) -> float:
        """The smallest ball margin: a lower bound on sigma_min of every matrix of the union."""
        return min(b.margin for b in self.balls)

    def check(self) -> None:
        for b in self.balls:
            b.check()

    def distances(self, A: Any) -> Tensor:
        """``(..., k)`` float64: ``max_ij |A_ij - center_ij| / radius`` to each ball (<= 1: inside)."""
        t = square(A, self.n)
        c = self._centers.to(t.device)
        r = self._radii.to(t.device)
        t64 = t.to(torch.float64)
        cols = [(t64 - c[j]).abs().flatten(-2).amax(-1) / r[j] for j in range(self.k)]
        return torch.stack(cols, -1)

    def nearest(self, A: Any) -> Tensor:
        """``(...)`` int64: the ball each matrix is (relatively) nearest to; a matrix inside some
        ball gets one that contains it."""
        return self.distances(A).argmin(-1)

    def contains(self, A: Any, *, work: dict | None = None) -> Tensor:
        """``(...)`` bool: some ball contains the matrix (each decided as ``Ball.contains``)."""
        t = square(A, self.n)
        inside = self.balls[0].contains(t)
        for b in self.balls[1:]:
            inside = inside | b.contains(t)
        return inside

    def candidate_scale(self, A: Tensor) -> Tensor:
        """First ``sqrt(n) / ||A||_F``, the normalisation :meth:`fit` fits with; where that
        misses every ball, each ball's own candidate, keeping per matrix the one that lands
        deepest inside its ball (float64; NaN where none lands inside)."""
        # One scalar per matrix, and where it lands inside some ball (typically all of a fitted
        # workload) the per-ball intervals are not needed.
        nan = torch.full(A.shape[:1], float("nan"), dtype=torch.float64, device=A.device)
        n = A.shape[-1]
        norm = torch.linalg.matrix_norm(A, ord="fro")
        s0 = torch.where(norm > 0, n**0.5 / norm, nan)
        shrink = 1 - 1e-6  # the ball test is <= r: leave room for the rounding of s A
        rel0 = self.distances(A * s0.nan_to_num(0.0)[:, None, None]).amin(-1)
        best = torch.where(torch.isfinite(s0) & (rel0 <= shrink), s0, nan)
        rest = (~torch.isfinite(best)).nonzero().squeeze(-1)
        if rest.numel() == 0:
            return best
        best[rest] = self._deepest_scale(A[rest])
        return best

    def _deepest_scale(self, A: Tensor) -> Tensor:
        best = torch.full(A.shape[:1], float("nan"), dtype=torch.float64, device=A.device)
        depth = torch.full_like(best, float("inf"))
        for ball in self.balls:
            sb = ball.candidate_scale(A)
            c = ball.center.to(device=A.device, dtype=torch.float64)
            rel = (A * sb.nan_to_num(0.0)[:, None, None] - c).abs().flatten(1).amax(1) / ball.radius
            better = torch.isfinite(sb) & (rel <= 1) & (rel < depth)
            best = torch.where(better, sb, best)
            depth = torch.where(better, rel, depth)
        return best

    def _sample(self, batch: int, generator: torch.Generator | None, device: torch.device,
                dtype: torch.dtype) -> Tensor:
        """A ball drawn by ``weights``, then uniformly from it (as Ball.sample)."""
        w = torch.tensor(self.weights, dtype=torch.float64, device=device)
        which = torch.multinomial(w, batch, replacement=True, generator=generator) if batch else (
            torch.zeros(0, dtype=torch.int64, device=device))
        u = torch.rand(batch, self.n, self.n, generator=generator, device=device, dtype=dtype)
        c = self._centers.to(device=device, dtype=dtype)[which]
        r = self._radii.to(device=device, dtype=dtype)[which][:, None, None]
        return c + r * (2 * u - 1)

    def describe(self) -> dict:
        return {
            "kind": "balls",
            "n": self.n,
            "radii": [b.radius for b in self.balls],
            "weights": list(self.weights),
            "centers": [b.center.tolist() for b in self.balls],
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Balls):
            return NotImplemented
        return self.balls == other.balls and self.weights == other.weights

    def __hash__(self) -> int:
        return hash((self.balls, self.weights))

    def __len__(self) -> int:
        return self.k



def ball_scale(center: Tensor, r: float, A: Tensor) -> Tensor:
    """:meth:`Ball.candidate_scale` for the ball ``{center + D : |D_ij| <= r}``."""
    nan = torch.full(A.shape[:1], float("nan"), dtype=torch.float64, device=A.device)
    c = center.to(device=A.device, dtype=torch.float64).flatten()
    a = A.flatten(1)
    inf = torch.full_like(a, float("inf"))
    # |s a - c| <= r  <=>  (c - r) <= s a <= (c + r): one interval of s per entry.
    lo = torch.where(a > 0, (c - r) / a, torch.where(a < 0, (c + r) / a, -inf))
    up = torch.where(a > 0, (c + r) / a, torch.where(a < 0, (c - r) / a, inf))
    # A zero entry is admissible for every s iff |c| <= r; otherwise for none.
    zero_bad = ((a == 0) & (c.abs() > r)).any(1)
    s_lo, s_hi = lo.amax(1).clamp_min(0), up.amin(1)
    # Stay inside against rounding: s * A is formed in the input's dtype (float32 rounds
    # by ~6e-8 relative), so the margin is relative to s as well as to the interval.
    shrink = torch.minimum((s_hi - s_lo) / 4, 1e-6 * (s_hi - s_lo) + 1e-6 * s_hi.abs())
    aa = (a * a).sum(1)
    proj = torch.where(aa > 0, (a * c).sum(1) / aa, nan)
    s = torch.minimum(torch.maximum(proj, s_lo + shrink), s_hi - shrink)
    ok = (s_hi > s_lo) & (s > 0) & ~zero_bad & torch.isfinite(s)
    return torch.where(ok, s, nan)


def fit_balls(A: Any, **options: Any) -> Balls:
    """``Balls.fit(A, **options)``: certified balls covering a share of the matrices ``A``
    (:func:`neuralinv.regions.fitting.fit_union`)."""
    return fitting.fit_union(Balls, A, **options)


def fit_files(paths: list, **options: Any) -> Balls:
    """Balls fitted to the matrices of files (:func:`neuralinv.regions.fitting.fit_files`)."""
    return fitting.fit_files(Balls, paths, **options)
