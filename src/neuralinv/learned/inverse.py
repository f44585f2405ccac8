"""The learned inverter object (:class:`LearnedInverse`): its config, its region, its ensemble of networks.

A model directory holds ``config.toml`` (everything needed to rebuild the networks),
``member-K.safetensors`` (weights, including the input/target scaling as buffers) and
``metrics.json`` (validation history), ``fit.json`` for a region fitted to data (how: the data
files, their SHA-256, the coverage asked and reached, the number of balls), and ``manifest.json`` (written last: the SHA-256 of those
files, so a directory mixing two models refuses to load); training adds ``runs/``
(TensorBoard) and ``training-state.pt`` (for resuming). :meth:`LearnedInverse.load` needs all
but the last two.
``builtin:NAME`` loads a model shipped inside the package (``builtin:ball3``).
"""

from __future__ import annotations

import json
import math
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as st_save
from torch import nn

from .._validate import as_tensor
from ..errors import InputError, PartialModelWarning
from ..files import write_bytes
from . import checkpoint as ckpt
from .config import TrainConfig
from .models.cast import LOW_PRECISION, low_precision
from .models.dense_resnet import SUBLAYERS

BUILTIN_PREFIX = "builtin:"
#: How a fitted region was fitted (written by ``neuralinv train --data``).
FIT_FILE = "fit.json"


class LearnedInverse:
    """An ensemble of networks mapping (B, n, n) matrices of ``region`` to inverse guesses."""

    def __init__(self, config: TrainConfig, members: list[nn.Module], metrics: dict | None = None,
                 fit: dict | None = None):
        if not members:
            raise InputError("a LearnedInverse needs at least one member network")
        self.config = config
        self.members = [m.eval() for m in members]
        self.metrics = metrics or {}
        #: How the region was fitted to data (fit.json), or None.
        self.fit = fit

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

    @property
    def device(self) -> torch.device:
        """Where the member networks are (see :meth:`to`)."""
        return next(self.members[0].parameters()).device

    def to(self, device: torch.device | str) -> LearnedInverse:
        """Move the member networks to ``device`` (in place, as ``nn.Module.to``); returns self."""
        for m in self.members:
            m.to(device)
        self.__dict__.pop("_low", None)  # low-precision copies are made again where needed
        return self

    # -- prediction --------------------------------------------------------------------------
    def predict(self, A: Any, *, guess_dtype: torch.dtype | str | None = None) -> Any:
        """The raw ensemble-mean guess for ``A`` (..., n, n), in A's dtype (float64 for other
        dtypes); a numpy array in gives a numpy array out.

        Input and target scaling live inside the member networks. No certificate and no
        refinement: use ``neuralinv.invert(A, method=model)`` for a certified answer. A tensor
        on another device than the model raises InputError: the model is moved only by
        :meth:`to`, never as a side effect of a call (another thread may be using it).

        guess_dtype: ``"bfloat16"`` or ``"float16"`` runs each member's learned part in that
        precision (:func:`neuralinv.learned.models.low_precision`: a correction model's ``g``,
        a scaled model's inner network; the linear approximation and the scaling stay in the
        model's dtype); None (default) runs the members as they are.
        """
        low = low_precision_dtype(guess_dtype)
        if low is not None and low != self.dtype:
            return self._predict(A, self._low_members(low))
        return self._predict(A, self.members)

    def _low_members(self, dtype: torch.dtype) -> list[nn.Module]:
        """Low-precision copies of the members, made once per (dtype, device) and kept."""
        key = (dtype, self.device)
        cache = self.__dict__.setdefault("_low", {})
        members = cache.get(key)
        if members is None:
            members = cache[key] = [low_precision(m, dtype) for m in self.members]
        return members

    def _predict(self, A: Any, members: list[nn.Module]) -> Any:
        t, was_numpy = as_tensor(A)
        if t.ndim < 2 or tuple(t.shape[-2:]) != (self.n, self.n):
            raise InputError(
                f"A must have shape (..., {self.n}, {self.n}) for this {self.n}x{self.n} model, "
                f"got {tuple(t.shape)}"
            )
        if t.device != self.device:
            raise InputError(
                f"A is on {t.device} but the model is on {self.device}; move one of them first "
                f"(model.to({str(t.device)!r}) or A.to({str(self.device)!r}))"
            )
        out_dtype = t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float64
        flat = t.detach().reshape(-1, self.n, self.n).to(self.dtype)
        with torch.no_grad():
            total = None
            for m in members:
                y = m(flat)
                total = y if total is None else total + y
            X = (total / len(members)).reshape(t.shape).to(out_dtype)
        return X.numpy() if was_numpy else X

    # -- files -------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write config.toml, member-K.safetensors and metrics.json (each atomically), then
        ``manifest.json`` with their SHA-256. The manifest says "writing" while the files are
        replaced, so a save killed half-way leaves a directory that refuses to load instead of
        one that mixes two models."""
        d = Path(directory)
        if d.exists() and not d.is_dir():
            raise InputError(f"{d}: exists and is not a directory")
        if self.config.ensemble != len(self.members):
            raise InputError(
                f"config says ensemble={self.config.ensemble} but the model has "
                f"{len(self.members)} members"
            )
        d.mkdir(parents=True, exist_ok=True)
        ckpt.write_manifest(d, "writing")
        files: dict[str, str] = {}

        def put(name: str, data: bytes) -> None:
            write_bytes(d / name, data)
            files[name] = ckpt.sha256(data)

        put(ckpt.CONFIG_FILE, self.config.to_toml().encode())
        for k, m in enumerate(self.members):
            put(ckpt.member_file(k), st_save(ckpt.cpu_state(m)))
        put(ckpt.METRICS_FILE, (json.dumps(self.metrics, indent=1) + "\n").encode())
        if self.fit is not None:
            put(FIT_FILE, (json.dumps(self.fit, indent=1) + "\n").encode())
        else:
            (d / FIT_FILE).unlink(missing_ok=True)
        for extra in _extra_members(d, self.config.ensemble):
            extra.unlink(missing_ok=True)  # members of an earlier, larger ensemble
        ckpt.write_manifest(d, "complete", files)
        return d

    @classmethod
    def load(cls, directory: str | Path) -> LearnedInverse:
        """Rebuild the exact model from a directory (or ``builtin:NAME``).

        A directory whose ``manifest.json`` is complete must match it (InputError naming the
        file that differs). One left by an interrupted training run loads its best weights so
        far with a :class:`PartialModelWarning`, or, when some member has no weights yet,
        raises an InputError saying how to finish the run. Directories without a manifest
        (written before manifests existed, and the built-in models) load as they are."""
        d = _resolve(directory)
        if not d.is_dir():
            raise InputError(f"{d}: no such model directory")
        config_path = d / ckpt.CONFIG_FILE
        config = TrainConfig.load(config_path)
        manifest = ckpt.read_manifest(d)
        complete = manifest is not None and manifest["state"] == "complete"
        interrupted = (manifest is not None and not complete) or (
            manifest is None and not (d / ckpt.METRICS_FILE).exists() and (d / ckpt.STATE_FILE).is_file()
        )
        if interrupted:
            return cls._load_partial(d, config, manifest)
        members, digests = _load_members(d, config)
        metrics_path = d / ckpt.METRICS_FILE
        metrics = ckpt.read_json(metrics_path)
        if not isinstance(metrics, dict):
            raise InputError(f"{metrics_path}: expected a JSON object")
        fit_path = d / FIT_FILE
        fit = None
        if fit_path.is_file():
            fit = ckpt.read_json(fit_path)
            if not isinstance(fit, dict):
                raise InputError(f"{fit_path}: expected a JSON object")
        if complete:
            digests[ckpt.CONFIG_FILE] = ckpt.sha256(config_path.read_bytes())
            digests[ckpt.METRICS_FILE] = ckpt.sha256(metrics_path.read_bytes())
            if fit is not None:
                digests[FIT_FILE] = ckpt.sha256(fit_path.read_bytes())
            recorded = manifest["files"]
            for name in sorted(set(recorded) | set(digests)):
                if recorded.get(name) != digests.get(name):
                    raise InputError(
                        f"{d / name}: does not match {d / ckpt.MANIFEST_FILE} (the file was "
                        f"changed or replaced after the model was written, or a write into {d} "
                        f"was interrupted); train it again, e.g. `neuralinv train --config "
                        f"{config_path} --out {d} --no-resume`"
                    )
        return cls(config, members, metrics, fit)

    @classmethod
    def _load_partial(cls, d: Path, config: TrainConfig, manifest: dict | None) -> LearnedInverse:
        config_path = d / ckpt.CONFIG_FILE
        state_path = d / ckpt.STATE_FILE
        finish = (f"finish it with `neuralinv train --config {config_path} --out {d}` "
                  "(it resumes from the last checkpoint)")
        if not state_path.is_file():
            if manifest is not None and manifest["state"] == "writing":
                raise InputError(
                    f"{d}: a model was being written here when it was interrupted "
                    f"({d / ckpt.MANIFEST_FILE} says \"writing\"); save or train it again"
                )
            raise InputError(f"{d}: training was interrupted before its first checkpoint; "
                             f"start it again with `neuralinv train --config {config_path} --out {d}`")
        state = ckpt.load_state(state_path)
        where = (f"member {min(state['member'], config.ensemble - 1) + 1} of {config.ensemble}, "
                 f"step {state['step']} of {config.steps}")
        missing = [ckpt.member_file(k) for k in range(config.ensemble)
                   if not (d / ckpt.member_file(k)).is_file()]
        if missing:
            raise InputError(f"{d}: training was interrupted ({where}) before "
                             f"{', '.join(missing)} had weights; {finish}")
        members, _ = _load_members(d, config)
        warnings.warn(
            PartialModelWarning(
                f"{d}: training was interrupted ({where}); loaded the best weights so far, not "
                f"a finished model; {finish}"
            ),
            stacklevel=3,
        )
        history = state["history"]
        metrics = {
            "partial": True,
            "members": [{"member": k, "best": min(h, key=lambda e: e.get("val_mae", math.inf)) if h else None,
                         "history": h} for k, h in enumerate(history)],
            "resumed_from": state.get("resumed_from", []),
            "train_seconds": state["elapsed"],
        }
        return cls(config, members, metrics)


#: The most numbers (parameters and buffers) one member network may hold: checked from
#: config.toml before anything is built, and against each member's safetensors header before
#: its data is read. 5e7 numbers are 200 MB in float32.
MAX_MEMBER_NUMBERS = 50_000_000


def low_precision_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """``guess_dtype`` as a torch dtype: None, bfloat16 or float16 (also by name);
    InputError for anything else."""
    if dtype is None:
        return None
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype.removeprefix("torch."), dtype)
    if dtype not in LOW_PRECISION:
        raise InputError(f"guess_dtype must be None, 'bfloat16' or 'float16', got {dtype!r}")
    return dtype


def member_numbers(config: TrainConfig) -> int:
    """How many numbers (parameters and buffers) one member of ``config`` holds, computed from
    the architecture alone (nothing is allocated)."""
    n2 = config.n * config.n
    m = config.model

    def linear(a: int, b: int) -> int:
        return a * b + b

    def mlp() -> int:
        dims = [n2] + [m.width] * (m.depth - 1) + [n2]
        return sum(linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    scaled = 2 * n2 + 2 if config.scaling == "standardize" else 0
    if m.arch == "mlp":
        return mlp() + scaled
    if m.arch == "dense_resnet":
        u, g = m.width, 2 * m.width
        block = sum(linear(u + i * g, g) for i in range(SUBLAYERS)) + linear(u + SUBLAYERS * g, u)
        return linear(n2, u) + m.blocks * block + linear(u, n2) + scaled
    if m.arch == "correction":  # per ball: g, center, center inverse, in and out scale
        return getattr(config.region, "k", 1) * (mlp() + 2 * n2 + 2)
    return 0  # build_model names the unknown arch


def check_architecture(config: TrainConfig, config_path: str | Path, members: list[Path]) -> None:
    """InputError before any memory is allocated when ``config`` asks for a member larger than
    :data:`MAX_MEMBER_NUMBERS` or when a member file's header does not hold what it needs."""
    size = member_numbers(config)
    m = config.model
    if size > MAX_MEMBER_NUMBERS:
        raise InputError(
            f"{config_path}: its {m.arch} model (n {config.n}, depth {m.depth}, width {m.width}, "
            f"blocks {m.blocks}) would hold {size:.3g} numbers per member, more than the limit "
            f"of {MAX_MEMBER_NUMBERS:.3g} (neuralinv.learned.inverse.MAX_MEMBER_NUMBERS)"
        )
    for path in members:
        header = ckpt.safetensors_header(path)
        held = sum(math.prod(shape) for _, shape in header.values())
        if held != size:
            raise InputError(
                f"{path}: holds {held} numbers in {len(header)} tensors but the model of "
                f"{config_path} needs {size}: the tensor shapes do not match the architecture"
            )


def _extra_members(d: Path, ensemble: int) -> list[Path]:
    keep = {ckpt.member_file(k) for k in range(ensemble)}
    return sorted(p for p in d.glob("member-*.safetensors") if p.name not in keep)


def _load_members(d: Path, config: TrainConfig) -> tuple[list[nn.Module], dict[str, str]]:
    """The member networks of ``d`` and the SHA-256 of their files."""
    config_path = d / ckpt.CONFIG_FILE
    paths = [d / ckpt.member_file(k) for k in range(config.ensemble)]
    check_architecture(config, config_path, paths)
    members, digests = [], {}
    for path in paths:
        model = config.skeleton()
        weights, digests[path.name] = ckpt.load_weights_and_digest(path)
        ckpt.load_into(model, weights, path, config_path)
        members.append(model)
    extra = [p.name for p in _extra_members(d, config.ensemble)]
    if extra:
        raise InputError(
            f"{config_path}: says ensemble={config.ensemble} but {d} also holds {', '.join(extra)}"
        )
    return members, digests


def builtin_models() -> list[str]:
    root = resources.files("neuralinv.learned") / "pretrained"
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def _resolve(directory: str | Path) -> Path:
    s = str(directory)
    if s.startswith(BUILTIN_PREFIX):
        name = s[len(BUILTIN_PREFIX):]
        names = builtin_models()
        if name not in names:
            raise InputError(f"unknown built-in model {s!r}; available: {', '.join(names) or 'none'}")
        return Path(str(resources.files("neuralinv.learned") / "pretrained" / name))
    return Path(directory)


__all__ = [
    "BUILTIN_PREFIX",
    "MAX_MEMBER_NUMBERS",
    "LearnedInverse",
    "PartialModelWarning",
    "builtin_models",
    "check_architecture",
    "member_numbers",
]
