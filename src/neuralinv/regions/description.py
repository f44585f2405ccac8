"""Regions as plain, TOML-serialisable dicts: ``region_from_description`` is the inverse of
``describe()``."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from .balls import Ball, Balls
from .box import Box


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
