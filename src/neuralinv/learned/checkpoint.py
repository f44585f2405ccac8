"""Atomic files of a model directory: member weights, the training state, JSON and TOML.

Every write goes through :func:`neuralinv.files.atomic_write` (an unnamed file in the target's
directory, fsynced and renamed over the target), so a run killed at any moment, by any signal,
leaves either the old file or the new one, never half of one, and no temporary file. Every read that fails raises an InputError naming the file.
"""

from __future__ import annotations

import hashlib
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
from ..files import write_bytes

STATE_FILE = "training-state.pt"
CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.json"
#: Written first ("training" / "writing") and last ("complete", with the SHA-256 of every file
#: of the model): a directory whose manifest is not complete is never loaded as a finished model.
MANIFEST_FILE = "manifest.json"
MANIFEST_SCHEMA = "neuralinv.model/1"
#: The largest safetensors header we parse (a real one is a few kB).
_MAX_HEADER = 1 << 24


def member_file(k: int) -> str:
    return f"member-{k}.safetensors"


def cpu_state(module_or_state: nn.Module | dict) -> dict[str, torch.Tensor]:
    """A detached, contiguous CPU copy of a state dict (what safetensors and checkpoints hold)."""
    sd = module_or_state.state_dict() if isinstance(module_or_state, nn.Module) else module_or_state
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in sd.items()}


def save_weights(path: str | Path, state: dict[str, torch.Tensor]) -> None:
    write_bytes(path, st_save(cpu_state(state)))


def load_weights_and_digest(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of a safetensors file and the SHA-256 of its bytes (read once)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: missing weights file")
    try:
        data = path.read_bytes()
        return st_load(data), sha256(data)
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
    write_bytes(path, buf.getvalue())


def load_state(path: str | Path) -> dict[str, Any]:
    """The training state, checked for the fields and types the loop uses (InputError naming
    the file otherwise: a state ``torch.load`` accepts can still be junk)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged pickle/zip
        raise InputError(f"{path}: unreadable training state ({type(exc).__name__}: {exc}); "
                         "delete it or train with --no-resume") from None
    check_state(state, path)
    return state


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_weights(x: Any) -> bool:
    return isinstance(x, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in x.items())


def check_state(state: Any, path: str | Path) -> None:
    """InputError naming ``path`` and the field unless ``state`` has the shape of a training
    state (see ``training.loop._Run.save_state``)."""

    def bad(what: str) -> InputError:
        return InputError(f"{path}: not a valid training state ({what}); delete it or train with --no-resume")

    if not isinstance(state, dict):
        raise bad(f"a {type(state).__name__}, expected a dict")
    required = {"finished": bool, "member": _is_int, "step": _is_int, "elapsed": _is_number,
                "best": list, "best_mae": list, "history": list}
    for key, kind in required.items():
        if key not in state:
            raise bad(f"no {key!r}")
        ok = isinstance(state[key], kind) if isinstance(kind, type) else kind(state[key])
        if not ok:
            raise bad(f"{key!r} is a {type(state[key]).__name__}")
    if state["member"] < 0 or state["step"] < 0:
        raise bad("negative member or step")
    if not all(_is_weights(b) for b in state["best"]):
        raise bad("'best' must be a list of weight dicts")
    if not all(_is_number(v) for v in state["best_mae"]) or len(state["best_mae"]) != len(state["best"]):
        raise bad("'best_mae' must hold one number per entry of 'best'")
    hist = state["history"]
    if len(hist) != len(state["best"]) or not all(
        isinstance(h, list) and all(isinstance(e, dict) for e in h) for h in hist
    ):
        raise bad("'history' must hold one list of dicts per entry of 'best'")
    for key in ("resumed_from", "digests", "rng"):
        if key in state and not isinstance(state[key], list):
            raise bad(f"{key!r} is a {type(state[key]).__name__}")
    if not all(isinstance(r, torch.Tensor) and r.dtype == torch.uint8 for r in state.get("rng", [])):
        raise bad("'rng' must be a list of uint8 generator states")
    if "member_elapsed" in state and not _is_number(state["member_elapsed"]):
        raise bad("'member_elapsed' is not a number")
    if not state["finished"] and state["step"] > 0:
        if state["member"] >= len(state["best"]):
            raise bad(f"member {state['member']} has no best weights")
        if not _is_weights(state.get("model")):
            raise bad("no model weights to resume from")
        opt = state.get("optimizer")
        if not (isinstance(opt, dict) and isinstance(opt.get("state"), dict)
                and isinstance(opt.get("param_groups"), list)):
            raise bad("no optimizer state to resume from")
        if not isinstance(state.get("scheduler"), dict):
            raise bad("no scheduler state to resume from")


def write_json(path: str | Path, obj: Any) -> None:
    write_bytes(path, (json.dumps(obj, indent=1) + "\n").encode())


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: missing file")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_manifest(directory: str | Path, state: str, files: dict[str, str] | None = None) -> None:
    """``manifest.json``: ``state`` is "training" (a run is writing the directory), "writing"
    (a model is being saved) or "complete" (with ``files``: name -> SHA-256)."""
    body: dict[str, Any] = {"schema": MANIFEST_SCHEMA, "state": state}
    if files is not None:
        body["files"] = files
    write_json(Path(directory) / MANIFEST_FILE, body)


def read_manifest(directory: str | Path) -> dict[str, Any] | None:
    """The manifest, None when the directory has none (written before manifests existed)."""
    path = Path(directory) / MANIFEST_FILE
    if not path.exists():
        return None
    m = read_json(path)
    if not (isinstance(m, dict) and m.get("state") in ("training", "writing", "complete")
            and (m["state"] != "complete" or isinstance(m.get("files"), dict))):
        raise InputError(f"{path}: not a neuralinv model manifest")
    return m


def safetensors_header(path: str | Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{tensor name: (dtype, shape)}`` from a safetensors header, reading only the header."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: missing weights file")
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) != 8:
                raise ValueError("shorter than a header")
            n = int.from_bytes(head, "little")
            if n > min(size - 8, _MAX_HEADER):
                raise ValueError(f"header length {n} does not fit the file")
            header = json.loads(fh.read(n))
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            out[name] = (str(info["dtype"]), tuple(int(d) for d in info["shape"]))
        return out
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, OSError) as exc:
        raise InputError(f"{path}: not a valid safetensors file ({exc})") from None


__all__ = [
    "CONFIG_FILE",
    "MANIFEST_FILE",
    "METRICS_FILE",
    "STATE_FILE",
    "check_state",
    "cpu_state",
    "load_into",
    "load_state",
    "member_file",
    "read_json",
    "read_manifest",
    "safetensors_header",
    "save_state",
    "save_weights",
    "sha256",
    "write_json",
    "write_manifest",
]
