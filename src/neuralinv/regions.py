"""Regions of matrix space a learned inverter is trained on, and that certificates speak about.

A network can only approximate the inverse on a region that stays away from the singular set
(the inverse is unbounded near it). A region knows how to

* ``sample(batch, generator=...)`` matrices on a device, deterministically for a seeded generator;
* say whether matrices belong to it (``contains``);
* describe itself as a plain, TOML-serialisable dict (``describe`` / ``region_from_description``).

Three regions:

* :class:`Box` -- i.i.d. uniform entries in ``[low, high)``, optionally rejecting matrices with
  ``|det| <= min_abs_det`` or ``sigma_min <= min_sigma``. The DeepMatrixInversion training set
  is ``Box(3, -1, 1, min_abs_det=0.1)``.
* :class:`Ball` -- the paper's region ``{A0 + D : |D_ij| <= r}``. Entrywise ``|D_ij| <= r``
  gives ``||D||_2 <= ||D||_F <= n r``, so ``n r < sigma_min(A0)`` proves that every matrix of
  the ball is invertible (Weyl: ``sigma_min(A0 + D) >= sigma_min(A0) - ||D||_2 > 0``).
  :meth:`Ball.check` enforces exactly that.
* :class:`Balls` -- a union of such balls, each one checked the same way. ``Ball.fit(A)`` and
  ``Balls.fit(A)`` fit them to a user's matrices (:mod:`neuralinv.fitting`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._validate import as_tensor, int_at_least, positive
from .certify import sigma_min as _sigma_min
from .errors import InputError

#: Rejection sampling gives up after this many rounds without filling the batch: the filter
#: is then (almost) never satisfied and the caller should be told, not left waiting.
_MAX_ROUNDS = 200
#: ... and as soon as fewer than 1 in 10^4 of at least 10^5 draws passed (hopeless, and slow).
_GIVE_UP_DRAWS, _MIN_RATE = 100_000, 1e-4
#: :meth:`Ball.default` rounds its radius down to this many significant decimal digits.
DEFAULT_RADIUS_DIGITS = 6


def distance_to_singular(A: Any) -> Tensor:
    """Batched ``sigma_min(A)``: the 2-norm distance from each matrix to the singular set.

    Accepts a tensor or numpy array of shape ``(..., n, n)``; returns a tensor of shape ``(...)``
    in float64 (float32/float64 inputs keep their dtype), on the input's device.
    """
    t, _ = as_tensor(A)
    if t.ndim < 2 or t.shape[-1] != t.shape[-2]:
        raise InputError(f"A must have shape (..., n, n), got shape {tuple(t.shape)}")
    if t.dtype not in (torch.float32, torch.float64):
        t = t.to(torch.float64)
    return _sigma_min(t.detach())


def _resolve_device(generator: torch.Generator | None, device) -> torch.device:
    if device is not None:
        device = torch.device(device)
        if generator is not None and generator.device.type != device.type:
            raise InputError(
                f"generator is on {generator.device} but device={device}; "
                "create the generator on the sampling device"
            )
        return device
    return generator.device if generator is not None else torch.device("cpu")


def _float_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype not in (torch.float32, torch.float64):
        raise InputError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    return dtype


def _finite(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise InputError(f"{name} must be finite, got {value!r}")
    return v


@dataclass(frozen=True)
class Box:
    """Matrices with i.i.d. uniform entries in ``[low, high)``, filtered away from singular.

    min_abs_det: keep only matrices with ``|det A| > min_abs_det`` (DeepMatrixInversion's filter).
    min_sigma:   keep only matrices with ``sigma_min(A) > min_sigma`` (a scale-aware filter:
                 it is the 2-norm distance to the singular set).
    Filters are evaluated in float64 whatever the sampling dtype, so ``sample`` and
    ``contains`` agree.
    """

    n: int
    low: float = -1.0
    high: float = 1.0
    min_abs_det: float | None = None
    min_sigma: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "n", int_at_least("n", self.n, 1))
        low, high = _finite("low", self.low), _finite("high", self.high)
        if not low < high:
            raise InputError(f"low must be < high, got low={self.low!r}, high={self.high!r}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        m = max(abs(low), abs(high))
        if self.min_abs_det is not None:
            d = positive("min_abs_det", self.min_abs_det, allow_zero=True)
            object.__setattr__(self, "min_abs_det", d)
            # Hadamard: |det A| <= prod ||row_i||_2 <= (sqrt(n) m)^n for entries bounded by m.
            bound = (math.sqrt(self.n) * m) ** self.n
            if d >= bound:
                raise InputError(
                    f"min_abs_det={d:g} is unreachable: every matrix with entries in "
                    f"[{low:g}, {high:g}] has |det| <= {bound:.6g} (Hadamard's bound)"
                )
        if self.min_sigma is not None:
            s = positive("min_sigma", self.min_sigma, allow_zero=True)
            object.__setattr__(self, "min_sigma", s)
            # sigma_min <= smallest row norm <= sqrt(n) m.
            bound = math.sqrt(self.n) * m
            if s >= bound:
                raise InputError(
                    f"min_sigma={s:g} is unreachable: every matrix with entries in "
                    f"[{low:g}, {high:g}] has sigma_min <= {bound:.6g}"
                )

    def _keep(self, A: Tensor) -> Tensor:
        """The rejection filter, computed in float64."""
        A64 = A.to(torch.float64)
        keep = torch.ones(A.shape[:-2], dtype=torch.bool, device=A.device)
        if self.min_abs_det is not None:
            keep &= torch.linalg.det(A64).abs() > self.min_abs_det
        if self.min_sigma is not None:
            keep &= _sigma_min(A64) > self.min_sigma
        return keep

    def sample(
        self,
        batch: int,
        *,
        generator: torch.Generator | None = None,
        device=None,
        dtype: torch.dtype = torch.float64,
    ) -> Tensor:
        """``(batch, n, n)`` matrices of the box, on ``device`` (default: the generator's).

        Rejection is vectorised: draw a block sized by the acceptance rate seen so far, keep the
        matrices that pass, repeat. Deterministic for a fixed generator state.
        """
        batch = int_at_least("batch", batch, 0)
        dtype = _float_dtype(dtype)
        device = _resolve_device(generator, device)
        n = self.n
        if self.min_abs_det is None and self.min_sigma is None:
            return self._draw(batch, generator, device, dtype)
        chunks: list[Tensor] = []
        have, drawn, accepted = 0, 0, 0
        for _ in range(_MAX_ROUNDS):
            if have >= batch:
                break
            need = batch - have
            rate = max(accepted / drawn, 0.01) if drawn else 0.5
            m = min(max(int(need / rate * 1.1) + 16, 64), 1 << 20)
            A = self._draw(m, generator, device, dtype)
            keep = self._keep(A)
            kept = A[keep]
            drawn += m
            accepted += kept.shape[0]
            chunks.append(kept[:need])
            have += min(kept.shape[0], need)
            if drawn >= _GIVE_UP_DRAWS and accepted < _MIN_RATE * drawn:
                break
        if have < batch:
            raise InputError(
                f"Box sampling accepted only {accepted} of {drawn} draws "
                f"(n={n}, entries in [{self.low:g}, {self.high:g}], min_abs_det={self.min_abs_det}, "
                f"min_sigma={self.min_sigma}); the filter is too strict for this box"
            )
        return torch.cat(chunks) if chunks else self._draw(0, generator, device, dtype)

    def _draw(self, m: int, generator, device, dtype) -> Tensor:
        u = torch.rand(m, self.n, self.n, generator=generator, device=device, dtype=dtype)
        return self.low + (self.high - self.low) * u

    def contains(self, A: Any) -> Tensor:
        """``(...)`` bool: entries in ``[low, high]`` and the filters pass."""
        t = _square(A, self.n)
        inside = ((t >= self.low) & (t <= self.high)).flatten(-2).all(-1)
        return inside & self._keep(t)

    def describe(self) -> dict:
        d: dict[str, Any] = {"kind": "box", "n": self.n, "low": self.low, "high": self.high}
        if self.min_abs_det is not None:
            d["min_abs_det"] = self.min_abs_det
        if self.min_sigma is not None:
            d["min_sigma"] = self.min_sigma
        return d


@dataclass(frozen=True, eq=False)
class Ball:
    """The paper's region ``{A0 + D : |D_ij| <= radius}`` around ``center = A0``.

    ``center`` is stored as a float64 CPU tensor ``(n, n)``. Construction runs :meth:`check`,
    so a Ball that exists is proven to contain no singular matrix.
    """

    center: Tensor
    radius: float
    _sigma: float = field(init=False, repr=False)
    #: How :meth:`fit` chose this ball (a :class:`neuralinv.fitting.FitReport`); None for a
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
        :func:`neuralinv.fitting.fit_balls` for the options and the refusals. ``fit_report``
        says how it was fitted and the share of ``A`` it actually covers.
        """
        from .fitting import fit_balls

        if "k" in options:
            raise InputError("Ball.fit fits one ball; use Balls.fit(A, k=...) for a union")
        balls = fit_balls(A, coverage=coverage, k=1, **options)
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
        return cls(center, _round_down(s / (2 * n), DEFAULT_RADIUS_DIGITS))

    def sample(
        self,
        batch: int,
        *,
        generator: torch.Generator | None = None,
        device=None,
        dtype: torch.dtype = torch.float64,
    ) -> Tensor:
        """``(batch, n, n)`` matrices ``center + D``, ``D_ij`` uniform in ``[-r, r)``."""
        batch = int_at_least("batch", batch, 0)
        dtype = _float_dtype(dtype)
        device = _resolve_device(generator, device)
        u = torch.rand(batch, self.n, self.n, generator=generator, device=device, dtype=dtype)
        return self.center.to(device=device, dtype=dtype) + self.radius * (2 * u - 1)

    def contains(self, A: Any) -> Tensor:
        """``(...)`` bool: ``max_ij |A_ij - center_ij| <= radius`` (computed in float64)."""
        t = _square(A, self.n)
        d = (t.to(torch.float64) - self.center.to(t.device)).abs()
        return d.flatten(-2).amax(-1) <= self.radius

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
class Balls:
    """A union of certified balls of one size: ``A`` belongs when some ball contains it.

    ``balls``: the :class:`Ball` members (each proven away from the singular set at
    construction, so the union is too). ``weights``: how often :meth:`sample` draws from each
    ball (normalised to sum to 1; default: equal) -- :meth:`fit` sets them to the share of the
    data each ball holds, so training sees the regions the data fill in their proportions.
    """

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
        :func:`neuralinv.fitting.fit_balls`; ``fit_report`` says what was covered."""
        from .fitting import fit_balls

        return fit_balls(A, coverage=coverage, k=k, **options)

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
        t = _square(A, self.n)
        c = self._centers.to(t.device)
        r = self._radii.to(t.device)
        t64 = t.to(torch.float64)
        cols = [(t64 - c[j]).abs().flatten(-2).amax(-1) / r[j] for j in range(self.k)]
        return torch.stack(cols, -1)

    def nearest(self, A: Any) -> Tensor:
        """``(...)`` int64: the ball each matrix is (relatively) nearest to; a matrix inside some
        ball gets one that contains it."""
        return self.distances(A).argmin(-1)

    def contains(self, A: Any) -> Tensor:
        """``(...)`` bool: some ball contains the matrix (each decided as ``Ball.contains``)."""
        t = _square(A, self.n)
        inside = self.balls[0].contains(t)
        for b in self.balls[1:]:
            inside = inside | b.contains(t)
        return inside

    def sample(
        self,
        batch: int,
        *,
        generator: torch.Generator | None = None,
        device=None,
        dtype: torch.dtype = torch.float64,
    ) -> Tensor:
        """``(batch, n, n)``: a ball drawn by ``weights``, then uniformly from it (as Ball.sample)."""
        batch = int_at_least("batch", batch, 0)
        dtype = _float_dtype(dtype)
        device = _resolve_device(generator, device)
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


def _round_down(x: float, digits: int) -> float:
    """``x > 0`` rounded toward zero to ``digits`` significant decimal digits, as the float
    nearest that short decimal (the decimal arithmetic is exact: ``Decimal(x)`` is x's value)."""
    d = Decimal(x)
    step = Decimal(1).scaleb(d.adjusted() - digits + 1)
    return float(d.quantize(step, rounding=ROUND_FLOOR))


def _square(A: Any, n: int) -> Tensor:
    t, _ = as_tensor(A)
    if t.ndim < 2 or t.shape[-2:] != (n, n):
        raise InputError(f"A must have shape (..., {n}, {n}) for this region, got {tuple(t.shape)}")
    return t.detach()


def region_from_description(d: dict) -> Box | Ball | Balls:
    """Inverse of ``describe()``: rebuild a region from its plain dict (e.g. read from TOML)."""
    if not isinstance(d, dict):
        raise InputError(f"region description must be a dict, got {type(d).__name__}")
    kind = d.get("kind")
    if kind == "box":
        allowed = {"kind", "n", "low", "high", "min_abs_det", "min_sigma"}
        _no_extra(d, allowed)
        if "n" not in d:
            raise InputError("box region description needs 'n'")
        return Box(
            d["n"],
            d.get("low", -1.0),
            d.get("high", 1.0),
            min_abs_det=d.get("min_abs_det"),
            min_sigma=d.get("min_sigma"),
        )
    if kind == "ball":
        _no_extra(d, {"kind", "n", "radius", "center"})
        for key in ("center", "radius"):
            if key not in d:
                raise InputError(f"ball region description needs {key!r}")
        try:
            center = np.asarray(d["center"], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"ball 'center' is not a square list of lists of numbers: {exc}") from None
        ball = Ball(torch.from_numpy(center), d["radius"])
        if "n" in d and d["n"] != ball.n:
            raise InputError(f"ball description says n={d['n']!r} but its center is {ball.n}x{ball.n}")
        return ball
    if kind == "balls":
        _no_extra(d, {"kind", "n", "radii", "centers", "weights"})
        for key in ("centers", "radii"):
            if key not in d:
                raise InputError(f"balls region description needs {key!r}")
        centers, radii = d["centers"], d["radii"]
        if not isinstance(centers, list) or not isinstance(radii, list) or len(centers) != len(radii):
            raise InputError("balls 'centers' and 'radii' must be lists of the same length")
        balls = []
        for i, (c, r) in enumerate(zip(centers, radii)):
            try:
                center = np.asarray(c, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise InputError(f"balls 'centers'[{i}] is not a square list of lists of numbers: {exc}") from None
            try:
                balls.append(Ball(torch.from_numpy(center), r))
            except InputError as exc:
                raise InputError(f"balls member {i}: {exc}") from None
        region = Balls(tuple(balls), d.get("weights"))
        if "n" in d and d["n"] != region.n:
            raise InputError(f"balls description says n={d['n']!r} but its centers are {region.n}x{region.n}")
        return region
    raise InputError(f"region 'kind' must be 'box' or 'ball' (or 'balls', a union of balls), got {kind!r}")


def _no_extra(d: dict, allowed: set[str]) -> None:
    extra = sorted(set(d) - allowed)
    if extra:
        raise InputError(
            f"unknown key(s) {', '.join(map(repr, extra))} in {d.get('kind')} region description; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
