"""A trained learned inverter: its config, its region, its ensemble of networks.

A model directory holds ``config.toml`` (everything needed to rebuild the networks),
``member-K.safetensors`` (weights, including the input/target scaling as buffers) and
``metrics.json`` (validation history); training adds ``runs/`` (TensorBoard) and
``training-state.pt`` (for resuming). :meth:`LearnedInverse.load` needs only the first three.
``builtin:NAME`` loads a model shipped inside the package (``builtin:ball3``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .errors import InputError
from .training import checkpoint as ckpt
from .training.config import TrainConfig

BUILTIN_PREFIX = "builtin:"


class LearnedInverse:
    """An ensemble of networks mapping (B, n, n) matrices of ``region`` to inverse guesses."""

    def __init__(self, config: TrainConfig, members: list[nn.Module], metrics: dict | None = None):
        if not members:
            raise InputError("a LearnedInverse needs at least one member network")
        self.config = config
        self.members = [m.eval() for m in members]
        self.metrics = metrics or {}

    @property
    def region(self):
        return self.config.region

    @property
    def n(self) -> int:
        return self.config.n

    @property
    def dtype(self) -> torch.dtype:
        return next(self.members[0].parameters()).dtype

    def __repr__(self) -> str:
        m = self.config.model
        return (
            f"LearnedInverse(n={self.n}, arch={m.arch!r}, members={len(self.members)}, "
            f"region={self.region.describe()['kind']})"
        )

    # -- prediction --------------------------------------------------------------------------
    def predict(self, A: Tensor) -> Tensor:
        """The raw ensemble-mean guess for ``A`` (..., n, n), in A's dtype and on A's device.

        Input and target scaling live inside the member networks. No certificate and no
        refinement: use ``neuralinv.invert(A, method=model)`` for a certified answer.
        """
        if not isinstance(A, Tensor):
            raise InputError(f"A must be a torch.Tensor, got {type(A).__name__}")
        if A.ndim < 2 or tuple(A.shape[-2:]) != (self.n, self.n):
            raise InputError(
                f"A must have shape (..., {self.n}, {self.n}) for this {self.n}x{self.n} model, "
                f"got {tuple(A.shape)}"
            )
        out_dtype = A.dtype if A.dtype in (torch.float32, torch.float64) else torch.float64
        work = self.dtype
        flat = A.detach().reshape(-1, self.n, self.n).to(work)
        with torch.no_grad():
            total = None
            for m in self.members:
                if next(m.parameters()).device != A.device:
                    m.to(A.device)
                y = m(flat)
                total = y if total is None else total + y
            X = total / len(self.members)
        return X.reshape(A.shape).to(out_dtype)

    def as_method(self, **options: Any):
        """This model as a certified inversion method (refinement and exact fallback)."""
        from .methods.learned import Learned

        return Learned(model=self, **options)

    # -- files -------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write config.toml, member-K.safetensors and metrics.json (each atomically)."""
        d = Path(directory)
        if d.exists() and not d.is_dir():
            raise InputError(f"{d}: exists and is not a directory")
        d.mkdir(parents=True, exist_ok=True)
        if self.config.ensemble != len(self.members):
            raise InputError(
                f"config says ensemble={self.config.ensemble} but the model has "
                f"{len(self.members)} members"
            )
        ckpt.write_text(d / ckpt.CONFIG_FILE, self.config.to_toml())
        for k, m in enumerate(self.members):
            ckpt.save_weights(d / ckpt.member_file(k), ckpt.cpu_state(m))
        ckpt.write_json(d / ckpt.METRICS_FILE, self.metrics)
        return d

    @classmethod
    def load(cls, directory: str | Path) -> LearnedInverse:
        """Rebuild the exact model from a directory (or ``builtin:NAME``)."""
        d = _resolve(directory)
        if not d.is_dir():
            raise InputError(f"{d}: no such model directory")
        config_path = d / ckpt.CONFIG_FILE
        config = TrainConfig.load(config_path)
        from .training.loop import skeleton

        members = []
        for k in range(config.ensemble):
            path = d / ckpt.member_file(k)
            model = skeleton(config)
            ckpt.load_into(model, ckpt.load_weights(path), path, config_path)
            members.append(model)
        extra = sorted(p.name for p in d.glob("member-*.safetensors")
                       if p.name not in {ckpt.member_file(k) for k in range(config.ensemble)})
        if extra:
            raise InputError(
                f"{config_path}: says ensemble={config.ensemble} but {d} also holds {', '.join(extra)}"
            )
        metrics = ckpt.read_json(d / ckpt.METRICS_FILE)
        if not isinstance(metrics, dict):
            raise InputError(f"{d / ckpt.METRICS_FILE}: expected a JSON object")
        return cls(config, members, metrics)


def builtin_models() -> list[str]:
    root = resources.files("neuralinv") / "pretrained"
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def _resolve(directory: str | Path) -> Path:
    s = str(directory)
    if s.startswith(BUILTIN_PREFIX):
        name = s[len(BUILTIN_PREFIX):]
        names = builtin_models()
        if name not in names:
            raise InputError(f"unknown built-in model {s!r}; available: {', '.join(names) or 'none'}")
        return Path(str(resources.files("neuralinv") / "pretrained" / name))
    return Path(directory)


__all__ = ["BUILTIN_PREFIX", "LearnedInverse", "builtin_models"]
