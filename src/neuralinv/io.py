"""Reading and writing batches of square matrices: ``.mx``, ``.npy``, ``.npz``, ``.csv``.

The format is chosen by the file's extension:

``.mx``   DeepMatrixInversion's text format: one comma-separated row per line, a line ``END``
          after each matrix. We write every value with Python's shortest round-trip ``repr``, so
          reading back gives the exact float64 values written. Blank lines are ignored.
``.npy``  NumPy array ``(..., n, n)``; :func:`read_matrices` returns it memory-mapped.
``.npz``  NumPy archive; the matrices are the array named ``"matrices"`` (what we write), or the
          archive's only array when there is no such name.
``.csv``  exactly one matrix, one comma-separated row per line (no ``END``).

Large files are processed in chunks with bounded memory: :func:`open_matrices` (or
:func:`iter_matrices`) yields ``(k, n, n)`` chunks, and :class:`MatrixWriter` appends chunks to
an output. Streaming reads of ``.npy``/``.npz`` use ordinary reads, not a memory map, because
pages of a mapped file count in the process's resident memory until the map is dropped.

Every write is atomic: data goes to a temporary file beside the target, which is fsynced and
then renamed over the target (``os.replace``); on any exception the temporary file is removed,
so an interrupted run never leaves a partial output. Malformed input raises
:class:`~neuralinv.errors.InputError` naming the file, and for text formats the line.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import InputError

FORMATS = (".mx", ".npy", ".npz", ".csv")
#: The array name used in ``.npz`` archives we write (and looked for first when reading).
NPZ_KEY = "matrices"
#: Matrices per chunk when streaming. 65536 3x3 float64 matrices are 4.7 MB.
DEFAULT_CHUNK = 65536

# Bytes reserved for a streamed .npy header (magic + length + dict, space padded): the final
# shape is only known at the end, so the header is rewritten in place. 256 holds any shape.
_NPY_HEADER_BYTES = 256


def format_of(path: str | Path) -> str:
    """The format of a path by its extension (lower-cased), or InputError."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(
            f"{path}: unsupported format {suffix or '(no extension)'!r}; "
            f"use one of {', '.join(FORMATS)}"
        )
    return suffix


# ----------------------------------------------------------------------------------- atomic


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success fsync and rename it over ``path``,
    on any exception remove it. Usable for any output (weights, figures, reports)."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{path}: directory {parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file 0600; give the output the mode a plain open() would.
        umask = os.umask(0o022)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------------- reading


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
            return _iter_mx(self.path, chunk_size)
        if self.fmt == ".npy":
            return _iter_npy(self.path, chunk_size)
        if self.fmt == ".npz":
            return _iter_npz(self.path, chunk_size)
        return iter([_read_csv(self.path)[None]])


def open_matrices(path: str | Path) -> MatrixSource:
    """Check that ``path`` exists and (for binary formats) holds a square-matrix array."""
    path = Path(path)
    fmt = format_of(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if fmt == ".mx":
        return MatrixSource(path, fmt, None)
    if fmt == ".csv":
        return MatrixSource(path, fmt, _read_csv(path).shape)
    if fmt == ".npy":
        return MatrixSource(path, fmt, _npy_memmap(path).shape)
    with _npz_member(path) as (_, shape, _dtype, _fortran):
        return MatrixSource(path, fmt, shape)


def iter_matrices(path: str | Path, chunk_size: int = DEFAULT_CHUNK) -> Iterator[np.ndarray]:
    """Stream the matrices of a file as ``(k, n, n)`` chunks (bounded memory)."""
    return open_matrices(path).chunks(chunk_size)


def read_matrices(path: str | Path) -> np.ndarray:
    """The whole file as an array: ``.npy`` memory-mapped ``(..., n, n)``; ``.npz`` its array;
    ``.mx`` ``(B, n, n)`` float64; ``.csv`` ``(n, n)`` float64."""
    src = open_matrices(path)
    if src.fmt == ".npy":
        return _npy_memmap(src.path)
    if src.fmt == ".csv":
        return _read_csv(src.path)
    if src.fmt == ".npz":
        with np.load(src.path) as z:
            return np.asarray(z[_npz_key(src.path, z.files)])
    return np.concatenate(list(_iter_mx(src.path, DEFAULT_CHUNK)))


def _check_square(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
    if dtype.kind not in "biuf":
        raise InputError(f"{path}: holds {dtype} values; expected real numbers")
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise InputError(f"{path}: array of shape {shape} is not a batch of square matrices (..., n, n)")


def _npy_memmap(path: Path) -> np.memmap:
    try:
        m = np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: not a valid .npy file ({exc})") from None
    if not isinstance(m, np.ndarray):
        raise InputError(f"{path}: not a .npy array file")
    _check_square(path, m.shape, m.dtype)
    return m


def _iter_npy(path: Path, chunk_size: int) -> Iterator[np.ndarray]:
    m = _npy_memmap(path)
    n = m.shape[-1]
    total = math.prod(m.shape[:-2])
    if not m.flags.c_contiguous or not isinstance(m, np.memmap):
        # Fortran-ordered (or 0-size) arrays: slice the map; rare and still correct.
        flat = m.reshape(total, n, n)
        for i in range(0, total, chunk_size):
            yield np.array(flat[i : i + chunk_size])
        return
    offset, dtype = m.offset, m.dtype
    del m
    per = n * n
    with open(path, "rb") as fh:
        fh.seek(offset)
        for i in range(0, total, chunk_size):
            k = min(chunk_size, total - i)
            a = np.fromfile(fh, dtype=dtype, count=k * per)
            if a.size != k * per:
                raise InputError(f"{path}: file is truncated (matrix {i + a.size // per} of {total})")
            yield a.reshape(k, n, n).astype(dtype.newbyteorder("="), copy=False)


def _npz_key(path: Path, names: list[str]) -> str:
    if NPZ_KEY in names:
        return NPZ_KEY
    if len(names) == 1:
        return names[0]
    raise InputError(
        f"{path}: archive holds {len(names)} arrays ({', '.join(names) or 'none'}) and none is "
        f"named {NPZ_KEY!r}; say which by saving the matrices as {NPZ_KEY!r}"
    )


@contextlib.contextmanager
def _npz_member(path: Path):
    """Open the matrices member of an .npz and parse its .npy header (no data read)."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{path}: not a valid .npz archive ({exc})") from None
    with zf:
        names = [f[:-4] for f in zf.namelist() if f.endswith(".npy")]
        key = _npz_key(path, names)
        with zf.open(key + ".npy") as fh:
            try:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            except ValueError as exc:
                raise InputError(f"{path}: member {key!r} is not a valid .npy array ({exc})") from None
            _check_square(path, shape, dtype)
            yield fh, shape, dtype, fortran


def _iter_npz(path: Path, chunk_size: int) -> Iterator[np.ndarray]:
    with _npz_member(path) as (fh, shape, dtype, fortran):
        n = shape[-1]
        total = math.prod(shape[:-2])
        if fortran:
            # Rare (we never write it): read the whole array rather than transpose a stream.
            with np.load(path) as z:
                flat = np.ascontiguousarray(z[_npz_key(path, z.files)]).reshape(total, n, n)
            for i in range(0, total, chunk_size):
                yield np.array(flat[i : i + chunk_size])
            return
        per = n * n * dtype.itemsize
        for i in range(0, total, chunk_size):
            k = min(chunk_size, total - i)
            buf = fh.read(k * per)
            if len(buf) != k * per:
                raise InputError(f"{path}: archive member is truncated (matrix {i + len(buf) // per})")
            yield np.frombuffer(buf, dtype=dtype).reshape(k, n, n).astype(dtype.newbyteorder("="))


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, stripped text), decoding each line so a bad byte names its line."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                yield lineno, raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise InputError(f"{path}:{lineno}: not UTF-8 text (is this a binary file?)") from None


def _parse_row(path: Path, lineno: int, line: str) -> list[float]:
    cells = line.split(",")
    try:
        return [float(c) for c in cells]
    except ValueError:
        for j, c in enumerate(cells, 1):
            try:
                float(c)
            except ValueError:
                raise InputError(f"{path}:{lineno}: column {j}: {c.strip()!r} is not a number") from None
        raise  # unreachable: some cell failed above


def _iter_mx(path: Path, chunk_size: int) -> Iterator[np.ndarray]:
    n: int | None = None
    rows: list[list[float]] = []
    start = 0  # line of the current matrix's first row
    buf: list[list[list[float]]] = []
    lineno = 0
    for lineno, line in _lines(path):
        if not line:
            continue
        if line == "END":
            if not rows:
                raise InputError(f"{path}:{lineno}: END without a matrix before it")
            if len(rows) != len(rows[0]):
                raise InputError(
                    f"{path}:{lineno}: matrix starting at line {start} has {len(rows)} rows of "
                    f"{len(rows[0])} values; expected a square matrix"
                )
            n = len(rows)
            buf.append(rows)
            rows = []
            if len(buf) == chunk_size:
                yield np.array(buf, dtype=np.float64)
                buf = []
            continue
        row = _parse_row(path, lineno, line)
        if not rows:
            start = lineno
            if n is not None and len(row) != n:
                raise InputError(
                    f"{path}:{lineno}: matrix has {len(row)} columns but earlier matrices in "
                    f"this file are {n}x{n} (mixed sizes)"
                )
        elif len(row) != len(rows[0]):
            raise InputError(
                f"{path}:{lineno}: row has {len(row)} values but the rows above it (from line "
                f"{start}) have {len(rows[0])} (ragged rows)"
            )
        rows.append(row)
        if len(rows) > len(row):
            raise InputError(
                f"{path}:{lineno}: matrix starting at line {start} has more rows than its "
                f"{len(row)} columns (missing END?)"
            )
    if rows:
        raise InputError(
            f"{path}:{lineno}: file ends inside the matrix starting at line {start} (missing final END)"
        )
    if n is None:
        raise InputError(f"{path}:{max(lineno, 1)}: empty file: no matrices")
    if buf:
        yield np.array(buf, dtype=np.float64)


def _read_csv(path: Path) -> np.ndarray:
    rows: list[list[float]] = []
    start = lineno = 0
    for lineno, line in _lines(path):
        if not line:
            continue
        row = _parse_row(path, lineno, line)
        if not rows:
            start = lineno
        elif len(row) != len(rows[0]):
            raise InputError(
                f"{path}:{lineno}: row has {len(row)} values but the rows above it (from line "
                f"{start}) have {len(rows[0])} (ragged rows)"
            )
        rows.append(row)
    if not rows:
        raise InputError(f"{path}:{max(lineno, 1)}: empty file: no matrix")
    if len(rows) != len(rows[0]):
        raise InputError(
            f"{path}:{lineno}: {len(rows)} rows of {len(rows[0])} values; a .csv holds one square matrix"
        )
    return np.array(rows, dtype=np.float64)


# ----------------------------------------------------------------------------------- writing


class MatrixWriter:
    """Append ``(k, n, n)`` chunks to a matrix file, atomically.

    Use as a context manager: the output appears (renamed into place) only when the block
    ends without an exception; otherwise the temporary file is removed.

    shape: optional final shape ``(..., n, n)`` for .npy/.npz (default ``(count, n, n)``);
           checked against what was written.
    """

    def __init__(self, path: str | Path, *, shape: tuple[int, ...] | None = None):
        self.path = Path(path)
        self.fmt = format_of(self.path)
        self.shape = None if shape is None else tuple(int(s) for s in shape)
        self.count = 0
        self.n: int | None = None
        self._dtype: np.dtype | None = None
        self._cm: contextlib.AbstractContextManager | None = None
        self._fh: IO[Any] | None = None
        self._npy_tmp: tempfile._TemporaryFileWrapper | None = None

    def __enter__(self) -> MatrixWriter:
        self._cm = atomic_write(self.path, "wb")
        self._fh = self._cm.__enter__()
        if self.fmt == ".npy":
            self._fh.write(b"\0" * _NPY_HEADER_BYTES)
        elif self.fmt == ".npz":
            # The member's header needs the final shape: stream into a .npy beside the target,
            # then store it in the archive at the end.
            self._npy_tmp = tempfile.NamedTemporaryFile(
                dir=self.path.parent if str(self.path.parent) else ".",
                prefix=f".{self.path.name}.", suffix=".npy.tmp", delete=True,
            )
            self._npy_tmp.write(b"\0" * _NPY_HEADER_BYTES)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        assert self._cm is not None
        try:
            if exc_type is None:
                self._finish()
        except BaseException as err:
            self._close_npz_tmp()
            self._cm.__exit__(type(err), err, err.__traceback__)
            raise
        self._close_npz_tmp()
        return bool(self._cm.__exit__(exc_type, exc, tb))

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
            self._fh.write(_text(a, end=self.fmt == ".mx").encode("ascii"))
        else:
            out = self._fh if self.fmt == ".npy" else self._npy_tmp
            out.write(np.ascontiguousarray(a, dtype=self._dtype).tobytes())
        self.count += a.shape[0]

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
        header = _npy_header(self._final_shape(), self._dtype)
        if self.fmt == ".npy":
            self._fh.seek(0)
            self._fh.write(header)
            return
        tmp = self._npy_tmp
        tmp.seek(0)
        tmp.write(header)
        tmp.flush()
        with zipfile.ZipFile(self._fh, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            zf.write(tmp.name, NPZ_KEY + ".npy")

    def _close_npz_tmp(self) -> None:
        if self._npy_tmp is not None:
            self._npy_tmp.close()
            self._npy_tmp = None


def _npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """A version 1.0 .npy header padded with spaces to exactly _NPY_HEADER_BYTES."""
    d = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    text = repr(d).encode("latin1")
    pad = _NPY_HEADER_BYTES - 10 - len(text) - 1
    if pad < 0:
        raise InputError(f"array shape {shape} is too long for a streamed .npy header")
    body = text + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body


def _text(a: np.ndarray, *, end: bool) -> str:
    """Rows as comma-separated shortest round-trip reprs of the float64 values."""
    lines = []
    for m in a.astype(np.float64).tolist():
        lines.extend(",".join(map(repr, row)) for row in m)
        if end:
            lines.append("END")
    return "\n".join(lines) + "\n"


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
