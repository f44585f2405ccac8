"""Reading and writing batches of matrices. (.npy for now; .mx/.npz/.csv come with datasets.)"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import InputError


def read_matrices(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.suffix != ".npy":
        raise InputError(f"{path}: unsupported format {path.suffix!r} (expected .npy)")
    try:
        return np.load(path, mmap_mode="r")
    except ValueError as exc:
        raise InputError(f"{path}: not a valid .npy file ({exc})") from None


def write_matrices(path: str | Path, X) -> None:
    """Atomic: written to a temporary file beside the target, then renamed over it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, np.asarray(X))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
