"""Training configuration: frozen dataclasses, read from and written to TOML.

A ``config.toml`` holds every setting needed to rebuild a trained model from its directory
(size, region, architecture, scaling) and to repeat or resume its training. Layout::

    n = 3
    steps = 2000
    ...
    [region]    # the region's describe() dict
    [model]     # ModelConfig
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._validate import int_at_least, one_of, positive, random_seed
from ..errors import InputError
from ..regions import Ball, Balls, Box, region_from_description
from .models import ACTIVATIONS, MODELS, build_model

LOSSES = ("mse", "identity", "both")
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("cosine_restarts", "one_cycle", "constant")
SCALINGS = ("standardize", "none")
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture. ``depth``: linear layers of an mlp (2 = the paper's 2-FC) or of
    correction's g; ``width``: hidden units (dense_resnet: ``units``); ``blocks``: residual
    blocks of a dense_resnet; ``activation``: of the mlp and of correction's g (the paper's
    networks are ReLU)."""

    arch: str = "mlp"
    depth: int = 2
    width: int = 72
    blocks: int = 2
    activation: str = "relu"

    def __post_init__(self) -> None:
        one_of("arch", self.arch, tuple(MODELS))
        one_of("activation", self.activation, tuple(ACTIVATIONS))
        int_at_least("depth", self.depth, 1)
        int_at_least("width", self.width, 1)
        int_at_least("blocks", self.blocks, 0)


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs. ``region=None`` means ``Ball.default(n)``.

    loss: ``mse`` (against the float64 inverse, divided by the target scale squared),
    ``identity`` (mean ``||I - A X||_F``) or ``both`` (mse + identity_weight * identity).
    schedule: ``cosine_restarts`` (the paper: CosineAnnealingWarmRestarts; ``restart_period``
    0 picks ``ceil(steps / (1 + m + m^2))`` for ``restart_mult`` m, so the third cycle ends at
    the last step), ``one_cycle`` or ``constant``. ``val_every``: steps between validations, each one a
    checkpoint; the best validation MAE is the model kept.

    data: matrix files the region was fitted to (``neuralinv train --data``), with their
    SHA-256 in ``data_sha256``; each training batch then takes a ``data_share`` of its matrices
    from them (those the model's routing sends to the network, scaled into the region as it
    scales them), the rest fresh from the region. None: region samples only.
    """

    n: int = 3
    region: Box | Ball | Balls | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: str = "mse"
    identity_weight: float = 1.0
    scaling: str = "standardize"
    steps: int = 2000
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 1e-7
    schedule: str = "cosine_restarts"
    restart_period: int = 0
    restart_mult: int = 2
    min_lr_ratio: float = 0.01
    ensemble: int = 1
    val_size: int = 4096
    val_every: int = 100
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    tensorboard: bool = True
    data: tuple | None = None
    data_sha256: tuple | None = None
    data_share: float | None = None

    def __post_init__(self) -> None:
        int_at_least("n", self.n, 1)
        if self.region is None:
            object.__setattr__(self, "region", Ball.default(self.n))
        elif not isinstance(self.region, (Box, Ball, Balls)):
            raise InputError(f"region must be a Box, Ball or Balls, got {type(self.region).__name__}")
        if self.region.n != self.n:
            raise InputError(f"region is for {self.region.n}x{self.region.n} matrices but n={self.n}")
        if not isinstance(self.model, ModelConfig):
            raise InputError(f"model must be a ModelConfig, got {type(self.model).__name__}")
        if self.model.arch == "correction" and not isinstance(self.region, (Ball, Balls)):
            raise InputError("arch 'correction' needs a ball region (it corrects around the center)")
        self._check_data()
        one_of("loss", self.loss, LOSSES)
        positive("identity_weight", self.identity_weight, allow_zero=True)
        one_of("scaling", self.scaling, SCALINGS)
        int_at_least("steps", self.steps, 1)
        int_at_least("batch_size", self.batch_size, 1)
        one_of("optimizer", self.optimizer, OPTIMIZERS)
        positive("lr", self.lr, at_most=1e30, why=" (larger steps overflow the optimizer's float32 update)")
        positive("weight_decay", self.weight_decay, allow_zero=True)
        one_of("schedule", self.schedule, SCHEDULES)
        int_at_least("restart_period", self.restart_period, 0)
        int_at_least("restart_mult", self.restart_mult, 1)
        positive("min_lr_ratio", self.min_lr_ratio, allow_zero=True)
        int_at_least("ensemble", self.ensemble, 1)
        int_at_least("val_size", self.val_size, 1)
        int_at_least("val_every", self.val_every, 1)
        random_seed("seed", self.seed)
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise InputError(f"device must be 'cpu' or 'cuda[:k]', got {self.device!r}")
        one_of("dtype", self.dtype, DTYPES)

    def _check_data(self) -> None:
        for name in ("data", "data_sha256"):
            v = getattr(self, name)
            if v is not None:
                if isinstance(v, str) or not all(isinstance(x, str) for x in v):
                    raise InputError(f"{name} must be a list of strings, got {v!r}")
                object.__setattr__(self, name, tuple(v))
        if self.data is None:
            if self.data_sha256 is not None or self.data_share is not None:
                raise InputError("data_sha256 and data_share go with data (the matrix files)")
            return
        if not self.data:
            raise InputError("data must name at least one matrix file")
        if self.data_sha256 is not None and len(self.data_sha256) != len(self.data):
            raise InputError(f"data_sha256 has {len(self.data_sha256)} entries for {len(self.data)} files")
        share = 0.25 if self.data_share is None else self.data_share
        object.__setattr__(self, "data_share", positive("data_share", share, allow_zero=True, at_most=1.0))

    # -- overrides ---------------------------------------------------------------------------
    def override(self, **changes: Any) -> TrainConfig:
        """A copy with the given fields changed; ``None`` values are ignored (CLI flags left
        unset), model fields (arch, depth, width, blocks) may be given at top level, and a
        new ``n`` without a new region resizes the default ball."""
        changes = {k: v for k, v in changes.items() if v is not None}
        model_keys = {f.name for f in fields(ModelConfig)}
        model_changes = {k: changes.pop(k) for k in list(changes) if k in model_keys}
        known = {f.name for f in fields(TrainConfig)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise InputError(f"unknown training setting(s): {', '.join(unknown)}")
        if model_changes:
            changes["model"] = dataclasses.replace(changes.get("model", self.model), **model_changes)
        if "n" in changes and "region" not in changes and changes["n"] != self.region.n:
            changes["region"] = None
        if "region" in changes and "n" not in changes and changes["region"] is not None:
            changes["n"] = changes["region"].n
        return dataclasses.replace(self, **changes)

    # -- TOML --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for f in fields(self):
            if f.name not in ("region", "model"):
                d[f.name] = getattr(self, f.name)
        d["region"] = self.region.describe()
        d["model"] = dataclasses.asdict(self.model)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "config") -> TrainConfig:
        """Build from a dict as read from TOML; errors name ``source`` (e.g. the file path)."""
        if not isinstance(d, dict):
            raise InputError(f"{source}: expected a table of settings")
        d = dict(d)
        try:
            model_d = d.pop("model", {})
            if not isinstance(model_d, dict):
                raise InputError("[model] must be a table")
            extra = sorted(set(model_d) - {f.name for f in fields(ModelConfig)})
            if extra:
                raise InputError(f"unknown key(s) in [model]: {', '.join(extra)}")
            model = ModelConfig(**model_d)
            region_d = d.pop("region", None)
            region = region_from_description(region_d) if region_d is not None else None
            extra = sorted(set(d) - {f.name for f in fields(cls)})
            if extra:
                raise InputError(f"unknown key(s): {', '.join(extra)}")
            if region is not None and "n" not in d:
                d["n"] = region.n
            return cls(region=region, model=model, **d)
        except InputError as exc:
            raise InputError(f"{source}: {exc}") from None
        except TypeError as exc:
            raise InputError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{path}: not valid TOML ({exc})") from None
        return cls.from_dict(data, source=str(path))

    def to_toml(self) -> str:
        return dumps_toml(self.to_dict())

    @property
    def torch_dtype(self) -> torch.dtype:
        """The training (and weights') dtype as a torch dtype."""
        return getattr(torch, self.dtype)

    def skeleton(self) -> nn.Module:
        """The network this config describes, in its dtype, weights not yet meaningful (training
        initialises them, loading a model directory fills them in)."""
        m = self.model
        model = build_model(
            m.arch, self.region, depth=m.depth, width=m.width, blocks=m.blocks,
            scaling=self.scaling, activation=m.activation,
        )
        return model.to(dtype=self.torch_dtype)

    def resolved_restart_period(self) -> int:
        """T_0 of the cosine restarts: explicit, or chosen so the cycles end at the last step."""
        if self.restart_period:
            return self.restart_period
        cycles = 3
        total = sum(self.restart_mult**i for i in range(cycles))
        return max(1, math.ceil(self.steps / total))


# -- a small TOML writer: scalars, lists (nested) and one level of tables ---------------------
def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)  # shortest round-trip form: reading it back gives the same float
    if isinstance(v, str):
        escaped = v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps_toml(d: dict[str, Any]) -> str:
    """Top-level keys first, then each dict value as a ``[table]`` (None values are left out)."""
    lines = [f"{k} = {_value(v)}" for k, v in d.items() if v is not None and not isinstance(v, dict)]
    for k, v in d.items():
        if isinstance(v, dict):
            lines += ["", f"[{k}]"]
            lines += [f"{kk} = {_value(vv)}" for kk, vv in v.items() if vv is not None]
    return "\n".join(lines) + "\n"


__all__ = ["DTYPES", "LOSSES", "OPTIMIZERS", "SCHEDULES", "ModelConfig", "TrainConfig", "dumps_toml"]


def config_from_options(
    base: TrainConfig | None = None,
    *,
    size: int | None = None,
    region: str | None = None,
    low: float | None = None,
    high: float | None = None,
    min_abs_det: float | None = None,
    min_sigma: float | None = None,
    center: Any = None,
    radius: float | None = None,
    **settings: Any,
) -> TrainConfig:
    """A config from command-line style options layered over ``base`` (a config file or the
    defaults). Options left at None keep the base's value. The region is rebuilt when any
    region option is given: a box from low/high/filters, a ball from ``center`` (an (n, n)
    array) or ``Ball.default(size)``, with ``radius`` if given."""
    base = base or TrainConfig()
    n = base.n if size is None else int_at_least("size", size, 1)
    old = base.region.describe()
    kind = region or old["kind"]
    region_opts = (low, high, min_abs_det, min_sigma, center, radius)
    if region is None and all(v is None for v in region_opts) and n == base.n:
        return base.override(**settings)  # the base's region (a fitted union included)
    one_of("region", kind, ("box", "ball"))
    if kind == "box":
        if center is not None or radius is not None:
            raise InputError("--center and --radius describe a ball; use --region ball")
        keep = old if old["kind"] == "box" else {}
        new_region = Box(
            n,
            keep.get("low", -1.0) if low is None else low,
            keep.get("high", 1.0) if high is None else high,
            min_abs_det=keep.get("min_abs_det") if min_abs_det is None else min_abs_det,
            min_sigma=keep.get("min_sigma") if min_sigma is None else min_sigma,
        )
    else:
        if any(v is not None for v in (low, high, min_abs_det, min_sigma)):
            raise InputError("--low/--high/--min-abs-det/--min-sigma describe a box; use --region box")
        if center is not None:
            import numpy as np
            import torch

            c = torch.from_numpy(np.array(center, dtype=np.float64))  # a writable copy
            if size is not None and c.shape != (n, n):
                raise InputError(f"--center is {tuple(c.shape)} but --size is {n}")
            default_radius = None
        elif old["kind"] == "ball" and n == base.n:
            c, default_radius = base.region.center, base.region.radius
        else:
            d = Ball.default(n)
            c, default_radius = d.center, d.radius
        r = radius if radius is not None else default_radius
        if r is None:
            raise InputError("a ball with --center needs --radius")
        new_region = Ball(c, r)
    return base.override(n=new_region.n, region=new_region, **settings)


__all__ += ["config_from_options"]
