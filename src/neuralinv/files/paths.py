"""What a matrix file's name says (its format) and whether a path can be read or written."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import InputError

FORMATS = (".mx", ".npy", ".npz", ".csv")
#: Matrices per chunk when streaming. 65536 3x3 float64 matrices are 4.7 MB.
DEFAULT_CHUNK = 65536


def format_of(path: str | Path) -> str:
    """The format of a path by its extension (lower-cased), or InputError."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(
            f"{path}: unsupported format {suffix or '(no extension)'!r}; "
            f"use one of {', '.join(FORMATS)}"
        )
    return suffix


def check_output_path(path: str | Path, what: str = "output") -> Path:
    """InputError unless ``path`` can be an output file: its directory exists, and it is not
    itself a directory (or a FIFO or device, which a rename would replace)."""
    path = Path(path)
    parent = path.parent
    if path.is_dir():
        raise InputError(f"{path}: the {what} is a directory; give a file name (e.g. {path / 'out'}{path.suffix})")
    if path.exists() and not path.is_file():
        raise InputError(f"{path}: the {what} exists and is not a regular file (a FIFO or device?)")
    if not parent.exists():
        raise InputError(f"{path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise InputError(f"{path}: {parent} is not a directory")
    return path


def check_input_path(path: str | Path, what: str = "input") -> Path:
    """``path`` if it is a readable regular file, else an InputError saying what it is: missing,
    a directory, a FIFO, a device, inside something that is not a directory, unreadable."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except NotADirectoryError:
        raise InputError(f"{path}: no such file ({_first_non_directory(path)} is not a directory)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    _check_kind(path, st.st_mode, what)
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    return path


def check_not_special(path: Path, what: str = "input") -> None:
    """InputError if ``path`` exists and is not a regular file (whatever its name says)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # missing or unreadable: check_input_path says which
    _check_kind(path, mode, what)


def _check_kind(path: Path, mode: int, what: str) -> None:
    kind = _file_kind(mode)
    if kind == "directory":
        raise InputError(f"{path}: the {what} is a directory, not a file")
    if kind != "file":
        raise InputError(f"{path}: the {what} is a {kind}, not a regular file")


def _file_kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def _first_non_directory(path: Path) -> Path:
    for p in reversed(path.parents):
        if p.exists() and not p.is_dir():
            return p
    return path.parent
