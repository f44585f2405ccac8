"""What every region shares: argument checks, the distance to the singular set, and
:meth:`Region.scaled_into` (which matrices lie in the region, possibly after multiplying them by
a positive scalar: the learned method's routing test, and the coverage of a fitted region)."""

from __future__ import annotations

import math
from decimal import ROUND_FLOOR, Decimal
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .._validate import as_tensor, int_at_least
from ..certify import sigma_min as _sigma_min
from ..errors import InputError

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


class ScaledInto(NamedTuple):
    """``inside``: which matrices lie in the region once multiplied by ``s`` (a positive scalar
    per matrix, 1 for matrices already inside)."""

    inside: Tensor
    s: Tensor


class Region:
    """What Box, Ball and Balls share: ``sample``'s checks and the routing. A subclass defines
    ``_sample`` (the draw, arguments checked), ``contains(A, *, work)`` and ``candidate_scale(A)`` (the scalar that best brings each matrix in, float64, NaN where
    none can)."""

    def sample(
        self,
        batch: int,
        *,
        generator: torch.Generator | None = None,
        device=None,
        dtype: torch.dtype = torch.float64,
    ) -> Tensor:
        """``(batch, n, n)`` matrices of the region, on ``device`` (default: the generator's),
        deterministic for a seeded generator."""
        batch = int_at_least("batch", batch, 0)
        dtype = float_dtype(dtype)
        device = resolve_device(generator, device)
        return self._sample(batch, generator, device, dtype)

    def candidate_scale(self, A: Tensor) -> Tensor:
        return torch.full(A.shape[:1], float("nan"), dtype=torch.float64, device=A.device)

    def scaled_into(self, A: Tensor, *, scale: bool = True, work: dict | None = None) -> ScaledInto:
        """Which matrices of the (B, n, n) batch ``A`` the region holds, and the positive scalar
        each is multiplied by first (1 for matrices already in it; with ``scale=False`` none is
        scaled). ``s A`` is checked with ``contains`` on exactly the tensor a network would see,
        so a scaled input counts only where it really lies in the region. ``work``: a dict of
        buffers reused across calls (the chunks of one batch)."""
        inside = self.contains(A, work=work).to(A.device)
        s = torch.ones(A.shape[0], dtype=A.dtype, device=A.device)
        if not scale:
            return ScaledInto(inside, s)
        out = (~inside).nonzero().squeeze(-1)
        if out.numel() == 0:
            return ScaledInto(inside, s)
        cand = self.candidate_scale(A[out].to(torch.float64)).to(A.dtype)
        usable = torch.isfinite(cand) & (cand > 0)
        cand = torch.where(usable, cand, torch.ones_like(cand))
        fits = usable & self.contains(A[out] * cand[:, None, None]).to(A.device)
        s[out[fits]] = cand[fits]
        inside[out[fits]] = True
        return ScaledInto(inside, s)


def resolve_device(generator: torch.Generator | None, device) -> torch.device:
    if device is not None:
        device = torch.device(device)
        if generator is not None and generator.device.type != device.type:
            raise InputError(
                f"generator is on {generator.device} but device={device}; "
                "create the generator on the sampling device"
            )
        return device
    return generator.device if generator is not None else torch.device("cpu")


def float_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype not in (torch.float32, torch.float64):
        raise InputError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    return dtype


def finite(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise InputError(f"{name} must be finite, got {value!r}")
    return v


def round_down(x: float, digits: int) -> float:
    """``x > 0`` rounded toward zero to ``digits`` significant decimal digits, as the float
    nearest that short decimal (the decimal arithmetic is exact: ``Decimal(x)`` is x's value)."""
    d = Decimal(x)
    step = Decimal(1).scaleb(d.adjusted() - digits + 1)
    return float(d.quantize(step, rounding=ROUND_FLOOR))


def square(A: Any, n: int) -> Tensor:
    t, _ = as_tensor(A)
    if t.ndim < 2 or t.shape[-2:] != (n, n):
        raise InputError(f"A must have shape (..., {n}, {n}) for this region, got {tuple(t.shape)}")
    return t.detach()

