"""Writing matrix files, whole or chunk by chunk, always atomically (:mod:`.atomic`).

``.npy``/``.npz`` keep the batch shape and float dtype; ``.mx``/``.csv`` are float64 text.
Two outputs that must change together (a dataset's matrices and inverses) are written with
:func:`matrix_pair_writer`, which publishes both with :func:`.together.commit_together`.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import InputError
from ._pause import pause_point
from .atomic import AtomicFile, scratch_file
from .npy import NPY_HEADER_BYTES, NPZ_KEY, npy_header
from .paths import DEFAULT_CHUNK, format_of
from .text import format_rows
from .together import commit_together


class MatrixWriter:
    """Append ``(k, n, n)`` chunks to a matrix file, atomically.

    Use as a context manager: the output appears (renamed into place) only when the block
    ends without an exception; otherwise the temporary file is removed.

    shape: optional final shape ``(..., n, n)`` for .npy/.npz (default ``(count, n, n)``);
           checked against what was written.
    """

    def __init__(self, path: str | Path, *, shape: tuple[int, ...] | None = None, commit: bool = True):
        self.path = Path(path)
        self.fmt = format_of(self.path)
        self.shape = None if shape is None else tuple(int(s) for s in shape)
        self.count = 0
        self.n: int | None = None
        self._dtype: np.dtype | None = None
        # commit=False: the caller publishes ``self.file`` itself (see matrix_pair_writer).
        self._commit = commit
        self.file: AtomicFile | None = None
        self._fh: IO[Any] | None = None
        self._npy_tmp: IO[bytes] | None = None

    def __enter__(self) -> MatrixWriter:
        self.file = AtomicFile(self.path, "wb")
        self._fh = self.file.file
        try:
            if self.fmt == ".npy":
                self._fh.write(b"\0" * NPY_HEADER_BYTES)
            elif self.fmt == ".npz":
                # The member's header needs the final shape: stream into a scratch .npy beside
                # the target (gone on any kill), then store it in the archive at the end.
                self._npy_tmp = scratch_file(self.path)
                self._npy_tmp.write(b"\0" * NPY_HEADER_BYTES)
        except BaseException:
            self.file.discard()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        assert self.file is not None
        try:
            if exc_type is None:
                self._finish()
                if self._commit:
                    self.file.commit()
                else:
                    self.file.stage()
                return False
        except BaseException:
            self._close_npz_tmp()
            self.file.discard()
            raise
        self._close_npz_tmp()
        self.file.discard()
        return False

    def write(self, X: Any) -> None:
        """Append a chunk ``(k, n, n)`` (a single ``(n, n)`` matrix is also accepted)."""
        if self._fh is None:
            raise RuntimeError("MatrixWriter.write outside its `with` block")
        a = np.asarray(X)
        if a.ndim == 2:
            a = a[None]
        if a.ndim != 3 or a.shape[1] != a.shape[2]:
            raise InputError(f"{self.path}: can only write (k, n, n) chunks, got shape {a.shape}")
        if a.dtype.kind not in "biuf":
            raise InputError(f"{self.path}: cannot write {a.dtype} values")
        if a.dtype.kind != "f":
            a = a.astype(np.float64)
        if self.n is None:
            self.n, self._dtype = a.shape[1], a.dtype
        elif a.shape[1] != self.n:
            raise InputError(f"{self.path}: chunk of {a.shape[1]}x{a.shape[1]} matrices after {self.n}x{self.n} ones")
        if self.fmt == ".csv" and self.count + a.shape[0] > 1:
            raise InputError(f"{self.path}: a .csv holds one matrix; use .mx, .npy or .npz for batches")
        if self.fmt in (".mx", ".csv"):
            self._fh.write(format_rows(a, end=self.fmt == ".mx").encode("ascii"))
        else:
            out = self._fh if self.fmt == ".npy" else self._npy_tmp
            out.write(np.ascontiguousarray(a, dtype=self._dtype).tobytes())
        self.count += a.shape[0]
        pause_point(f"chunk:{self.path.name}")

    def _final_shape(self) -> tuple[int, ...]:
        if self.n is None:
            if self.shape is not None and math.prod(self.shape[:-2]) == 0 and len(self.shape) >= 2:
                self.n, self._dtype = self.shape[-1], np.dtype(np.float64)
            else:
                raise InputError(f"{self.path}: no matrices were written")
        shape = self.shape if self.shape is not None else (self.count, self.n, self.n)
        if math.prod(shape[:-2]) != self.count or tuple(shape[-2:]) != (self.n, self.n):
            raise InputError(
                f"{self.path}: wrote {self.count} {self.n}x{self.n} matrices, "
                f"which do not fill the declared shape {shape}"
            )
        return shape

    def _finish(self) -> None:
        if self.fmt in (".mx", ".csv"):
            if self.count == 0:
                raise InputError(f"{self.path}: no matrices were written ({self.fmt} cannot be empty)")
            return
        header = npy_header(self._final_shape(), self._dtype)
        if self.fmt == ".npy":
            self._fh.seek(0)
            self._fh.write(header)
            return
        tmp = self._npy_tmp
        tmp.seek(0)
        tmp.write(header)
        tmp.flush()
        tmp.seek(0)
        with zipfile.ZipFile(self._fh, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            info = zipfile.ZipInfo(NPZ_KEY + ".npy", date_time=time.localtime()[:6])
            info.compress_type = zipfile.ZIP_STORED
            with zf.open(info, "w", force_zip64=True) as member:
                shutil.copyfileobj(tmp, member, 1 << 20)
        self._close_npz_tmp()

    def _close_npz_tmp(self) -> None:
        if self._npy_tmp is not None:
            self._npy_tmp.close()
            self._npy_tmp = None


def write_matrices(path: str | Path, X: Any, *, chunk_size: int = DEFAULT_CHUNK) -> None:
    """Write a batch ``(..., n, n)`` (``.csv``: one ``(n, n)`` matrix), format by extension,
    atomically. ``.npy``/``.npz`` keep X's shape and float dtype."""
    a = np.asarray(X)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise InputError(f"{path}: can only write square matrices (..., n, n), got shape {a.shape}")
    n = a.shape[-1]
    flat = a.reshape(-1, n, n)
    with MatrixWriter(path, shape=a.shape) as w:
        for i in range(0, flat.shape[0], chunk_size):
            w.write(flat[i : i + chunk_size])


@contextlib.contextmanager
def matrix_pair_writer(
    first: str | Path, second: str | Path, *, shape: tuple[int, ...] | None = None
) -> Iterator[tuple[MatrixWriter, MatrixWriter]]:
    """Two :class:`MatrixWriter` whose files are published together (:func:`commit_together`):
    a reader never sees the new ``second`` beside the old ``first``. Both paths must share a
    directory."""
    first, second = Path(first), Path(second)
    if first.parent != second.parent:
        raise InputError(f"{first} and {second} must be in the same directory to be written together")
    wa = MatrixWriter(first, shape=shape, commit=False)
    wb = MatrixWriter(second, shape=shape, commit=False)
    with contextlib.ExitStack() as stack:
        stack.enter_context(wa)
        stack.enter_context(wb)
        try:
            yield wa, wb
        except BaseException:
            wa.file.discard()
            wb.file.discard()
            raise
        # Success: finish and stage both (their __exit__ with commit=False), then publish.
        stack.pop_all().close()
        try:
            commit_together([wa.file, wb.file])
        except BaseException:
            wa.file.discard()
            wb.file.discard()
            raise
