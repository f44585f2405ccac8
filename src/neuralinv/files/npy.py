"""The NumPy formats: ``.npy`` (an array ``(..., n, n)``) and ``.npz`` (an archive of them).

In an ``.npz`` the matrices are the array named ``"matrices"`` (what we write), or the
archive's only array when there is no such name. Streaming reads use ordinary reads, not a
memory map, because pages of a mapped file count in the process's resident memory until the
map is dropped. A streamed ``.npy`` gets a fixed-size header that is rewritten at the end, when
the final shape is known.
"""

from __future__ import annotations

import contextlib
import math
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError

#: The array name used in ``.npz`` archives we write (and looked for first when reading).
NPZ_KEY = "matrices"

# Bytes reserved for a streamed .npy header (magic + length + dict, space padded): the final
# shape is only known at the end, so the header is rewritten in place. 256 holds any shape.
NPY_HEADER_BYTES = 256


def check_square(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
    if dtype.kind not in "biuf":
        raise InputError(f"{path}: holds {dtype} values; expected real numbers")
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise InputError(f"{path}: array of shape {shape} is not a batch of square matrices (..., n, n)")


def npy_memmap(path: Path) -> np.memmap:
    """The array of a ``.npy`` file, memory-mapped read-only and checked to be square matrices."""
    try:
        m = np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: not a valid .npy file ({exc})") from None
    if not isinstance(m, np.ndarray):
        raise InputError(f"{path}: not a .npy array file")
    check_square(path, m.shape, m.dtype)
    return m


def iter_npy(path: Path, chunk_size: int) -> Iterator[np.ndarray]:
    m = npy_memmap(path)
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


def npz_key(path: Path, names: list[str]) -> str:
    if NPZ_KEY in names:
        return NPZ_KEY
    if len(names) == 1:
        return names[0]
    raise InputError(
        f"{path}: archive holds {len(names)} arrays ({', '.join(names) or 'none'}) and none is "
        f"named {NPZ_KEY!r}; say which by saving the matrices as {NPZ_KEY!r}"
    )


@contextlib.contextmanager
def npz_member(path: Path):
    """Open the matrices member of an .npz and parse its .npy header (no data read): yields
    ``(file, shape, dtype, fortran_order)``."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{path}: not a valid .npz archive ({exc})") from None
    with zf:
        names = [f[:-4] for f in zf.namelist() if f.endswith(".npy")]
        key = npz_key(path, names)
        with zf.open(key + ".npy") as fh:
            try:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            except ValueError as exc:
                raise InputError(f"{path}: member {key!r} is not a valid .npy array ({exc})") from None
            check_square(path, shape, dtype)
            yield fh, shape, dtype, fortran


def read_npz(path: Path) -> np.ndarray:
    with np.load(path) as z:
        return np.asarray(z[npz_key(path, z.files)])


def iter_npz(path: Path, chunk_size: int) -> Iterator[np.ndarray]:
    with npz_member(path) as (fh, shape, dtype, fortran):
        n = shape[-1]
        total = math.prod(shape[:-2])
        if fortran:
            # Rare (we never write it): read the whole array rather than transpose a stream.
            flat = np.ascontiguousarray(read_npz(path)).reshape(total, n, n)
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


def npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """A version 1.0 .npy header padded with spaces to exactly NPY_HEADER_BYTES."""
    d = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    text = repr(d).encode("latin1")
    pad = NPY_HEADER_BYTES - 10 - len(text) - 1
    if pad < 0:
        raise InputError(f"array shape {shape} is too long for a streamed .npy header")
    body = text + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body
