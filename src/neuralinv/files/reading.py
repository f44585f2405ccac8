"""Reading matrix files whole or in bounded-memory chunks, the format chosen by the extension."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .atomic import clean_directory
from .npy import iter_npy, iter_npz, npy_memmap, npz_member, read_npz
from .paths import DEFAULT_CHUNK, check_input_path, check_not_special, format_of
from .text import iter_mx, read_csv


@dataclass(frozen=True)
class MatrixSource:
    """A validated matrix file, ready to stream.

    shape: the full array shape ``(..., n, n)`` when the header gives it (.npy, .npz, .csv);
           None for .mx, whose size is only known once read.
    """

    path: Path
    fmt: str
    shape: tuple[int, ...] | None

    @property
    def count(self) -> int | None:
        """Number of matrices, when known without reading the file."""
        return None if self.shape is None else math.prod(self.shape[:-2])

    def chunks(self, chunk_size: int = DEFAULT_CHUNK) -> Iterator[np.ndarray]:
        """``(k, n, n)`` arrays, ``k == chunk_size`` except for the last chunk."""
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise InputError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
        if self.fmt == ".mx":
            return iter_mx(self.path, chunk_size)
        if self.fmt == ".npy":
            return iter_npy(self.path, chunk_size)
        if self.fmt == ".npz":
            return iter_npz(self.path, chunk_size)
        return iter([read_csv(self.path)[None]])


def open_matrices(path: str | Path) -> MatrixSource:
    """Check that ``path`` exists and (for binary formats) holds a square-matrix array."""
    path = Path(path)
    check_not_special(path)  # a directory or FIFO says so, whatever its name
    fmt = format_of(path)
    path = check_input_path(path)
    clean_directory(path.parent)  # finish an interrupted pair commit before reading
    if fmt == ".mx":
        return MatrixSource(path, fmt, None)
    if fmt == ".csv":
        return MatrixSource(path, fmt, read_csv(path).shape)
    if fmt == ".npy":
        return MatrixSource(path, fmt, npy_memmap(path).shape)
    with npz_member(path) as (_, shape, _dtype, _fortran):
        return MatrixSource(path, fmt, shape)


def iter_matrices(path: str | Path, chunk_size: int = DEFAULT_CHUNK) -> Iterator[np.ndarray]:
    """Stream the matrices of a file as ``(k, n, n)`` chunks (bounded memory)."""
    return open_matrices(path).chunks(chunk_size)


def read_matrices(path: str | Path) -> np.ndarray:
    """The whole file as an array: ``.npy`` memory-mapped ``(..., n, n)``; ``.npz`` its array;
    ``.mx`` ``(B, n, n)`` float64; ``.csv`` ``(n, n)`` float64."""
    src = open_matrices(path)
    if src.fmt == ".npy":
        return npy_memmap(src.path)
    if src.fmt == ".csv":
        return read_csv(src.path)
    if src.fmt == ".npz":
        return read_npz(src.path)
    return np.concatenate(list(iter_mx(src.path, DEFAULT_CHUNK)))


def paired_chunks(
    first: MatrixSource, second: MatrixSource, chunk_size: int = DEFAULT_CHUNK
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream two files in lockstep (matrix i of one beside matrix i of the other); InputError
    when they hold different numbers or sizes of matrices."""
    if first.count is not None and second.count is not None and first.count != second.count:
        raise InputError(
            f"{second.path} holds {second.count} matrices but {first.path} holds {first.count}"
        )
    done = 0
    for a, b in itertools.zip_longest(first.chunks(chunk_size), second.chunks(chunk_size)):
        if a is None or b is None or a.shape[0] != b.shape[0]:
            na = done + (0 if a is None else a.shape[0])
            nb = done + (0 if b is None else b.shape[0])
            raise InputError(
                f"{first.path} and {second.path} hold different numbers of matrices "
                f"(at least {na} and {nb})"
            )
        if a.shape[1:] != b.shape[1:]:
            raise InputError(
                f"matrix {done}: {first.path} has {a.shape[1]}x{a.shape[2]} matrices but "
                f"{second.path} has {b.shape[1]}x{b.shape[2]}"
            )
        yield a, b
        done += a.shape[0]
