"""Atomic files of a model directory: member weights, the training state, JSON and TOML.

Every write goes through :func:`neuralinv.io.atomic_write` (an unnamed file in the target's
directory, fsynced and renamed over the target), so a run killed at any moment, by any signal,
leaves either the old file or the new one, never half of one, and no temporary file. Every read that fails raises an InputError naming the file.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from ..errors import InputError
from ..io import write_bytes

STATE_FILE = "training-state.pt"
CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.json"


def member_file(k: int) -> str:
    return f"member-{k}.safetensors"


def atomic_write(path: str | Path, data: bytes) -> None:
    """``data`` to ``path`` through :func:`neuralinv.io.atomic_write` (the one atomic writer:
    fsync, rename, directory fsync, 0o644; the directory must exist)."""
    write_bytes(path, data)


def cpu_state(module_or_state: nn.Module | dict) -> dict[str, torch.Tensor]:
    """A detached, contiguous CPU copy of a state dict (what safetensors and checkpoints hold)."""
    sd = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in sd.items()}


def save_weights(path: str | Path, state: dict[str, torch.Tensor]) -> None:
    atomic_write(path, st_save(cpu_state(state)))


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: missing weights file")
    try:
        return st_load(path.read_bytes())
    except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
        raise InputError(f"{path}: not a valid safetensors file ({exc})") from None


def load_into(
    module: nn.Module, state: dict[str, torch.Tensor], source: str | Path, config: str | Path = "config.toml"
) -> None:
    """Load weights, turning any mismatch with the architecture described by ``config`` into an
    InputError naming ``source`` and ``config``."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise InputError(
            f"{source}: weights do not match the architecture in {config} "
            f"(missing {missing[:4]}, unexpected {extra[:4]})"
        )
    for key, value in state.items():
        if tuple(own[key].shape) != tuple(value.shape):
            raise InputError(
                f"{source}: tensor {key!r} has shape {tuple(value.shape)} but the model of "
                f"{config} needs {tuple(own[key].shape)}"
            )
        if not torch.isfinite(value).all():
            raise InputError(f"{source}: tensor {key!r} holds non-finite values")
    module.load_state_dict(state)


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(path, buf.getvalue())


def load_state(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged pickle/zip
        raise InputError(f"{path}: unreadable training state ({type(exc).__name__}: {exc}); "
                         "delete it or train with --no-resume") from None


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write(path, (json.dumps(obj, indent=1) + "\n").encode())


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: missing file")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None


def write_text(path: str | Path, text: str) -> None:
    atomic_write(path, text.encode())


__all__ = [
    "CONFIG_FILE",
    "METRICS_FILE",
    "STATE_FILE",
    "atomic_write",
    "cpu_state",
    "load_into",
    "load_state",
    "load_weights",
    "member_file",
    "read_json",
    "save_state",
    "save_weights",
    "write_json",
    "write_text",
]
