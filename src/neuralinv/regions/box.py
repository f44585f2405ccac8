"""The Box region: i.i.d. uniform entries, optionally filtered away from the singular set."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._validate import int_at_least, positive
from ..certify import sigma_min as _sigma_min
from ..errors import InputError
from .base import (
    _GIVE_UP_DRAWS,
    _MAX_ROUNDS,
    _MIN_RATE,
    Region,
    finite,
    square,
)


@dataclass(frozen=True)
class Box(Region):
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
        low, high = finite("low", self.low), finite("high", self.high)
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

    def _sample(self, batch: int, generator: torch.Generator | None, device: torch.device,
                dtype: torch.dtype) -> Tensor:
        """Matrices of the box. Rejection is vectorised: draw a block sized by the acceptance rate seen so far, keep the
        matrices that pass, repeat. Deterministic for a fixed generator state.
        """
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

    def contains(self, A: Any, *, work: dict | None = None) -> Tensor:
        """``(...)`` bool: entries in ``[low, high]`` and the filters pass (``work``: unused,
        for the signature every region shares)."""
        t = square(A, self.n)
        inside = ((t >= self.low) & (t <= self.high)).flatten(-2).all(-1)
        return inside & self._keep(t)

    def candidate_scale(self, A: Tensor) -> Tensor:
        """The largest s keeping every entry of ``s A`` in ``[low, high]`` (float64; NaN where
        none does), a hair below the bound so rounding stays inside. The filters
        (``|det| > min_abs_det``, ``sigma_min > min_sigma``) grow with s (as s^n and s), so if
        any admissible s passes them this one does."""
        nan = torch.full(A.shape[:1], float("nan"), dtype=torch.float64, device=A.device)
        a = A.flatten(1)
        inf = torch.full_like(a, float("inf"))
        # Upper limits on s from each entry; a zero entry imposes none.
        up = torch.where(a > 0, self.high / a, torch.where(a < 0, self.low / a, inf))
        lo = torch.where(a > 0, self.low / a, torch.where(a < 0, self.high / a, -inf))
        s_hi, s_lo = up.amin(1), lo.amax(1)
        s = s_hi * (1 - 1e-6)
        return torch.where((s_hi > 0) & torch.isfinite(s_hi) & (s >= s_lo), s, nan)

    def describe(self) -> dict:
        d: dict[str, Any] = {"kind": "box", "n": self.n, "low": self.low, "high": self.high}
        if self.min_abs_det is not None:
            d["min_abs_det"] = self.min_abs_det
        if self.min_sigma is not None:
            d["min_sigma"] = self.min_sigma
        return d

