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

Every write is atomic (:func:`atomic_write`, the one writer every neuralinv output uses): the
data goes to an unnamed file beside the target, which is fsynced and then renamed over the
target; a run killed at any moment, by any signal, leaves the old output or the complete new
one and no temporary file (see the comment at :class:`AtomicFile`). Malformed input raises
:class:`~neuralinv.errors.InputError` naming the file, and for text formats the line.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import math
import os
import re
import secrets
import shutil
import signal
import stat
import tempfile
import threading
import time
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
#
# One writer for every file neuralinv produces (matrices, weights, training states, JSON,
# reports, figures). The data goes to an *unnamed* file in the target's directory (Linux
# O_TMPFILE): a process killed by any signal, SIGKILL included, leaves nothing behind, because
# the kernel frees an unnamed file when its last descriptor closes. On commit the file is
# fsynced, linked to a temporary name ``.NAME.<pid>.<random>.tmp`` and renamed over the target
# (``os.replace``, atomic on POSIX), then the directory is fsynced. Where O_TMPFILE is not
# available (some filesystems, no /proc) the data is written under that temporary name from
# the start. Either way a temporary name carries the writer's pid, and every later writer (or
# reader of matrix files) in the same directory removes the ones whose process is gone: a kill
# in the milliseconds between link and rename, or any kill in the fallback mode, leaves litter
# only until the next run there.
#
# Two files that must change together (a generated dataset's matrices and inverses) are
# committed with a journal, see :func:`commit_together`.

#: ``.NAME.<pid>.<8 hex>.tmp`` (a temporary file) or ``.NAME.<pid>.<8 hex>.pair`` (a journal).
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?P<rand>[0-9a-f]{8})\.(?P<kind>tmp|pair)$")
#: ``NEURALINV_TMPFILE=named`` writes under a temporary name instead of an unnamed file (the
#: fallback, for diagnosis and tests).
_ENV_TMPFILE = "NEURALINV_TMPFILE"
#: Test hook: a process whose environment has ``NEURALINV_TEST_PAUSE=POINT`` creates the file
#: named by ``NEURALINV_TEST_PAUSE_FILE`` when it reaches POINT and then sleeps, so a test can
#: kill it at exactly that moment (``POINT#K``: the K-th time it gets there). Points: ``chunk:NAME`` (a MatrixWriter wrote a chunk of
#: NAME), ``commit:NAME`` (NAME's data is complete, before it is renamed into place),
#: ``pair:NAME`` (a pair commit renamed its first file, NAME).
_ENV_PAUSE = "NEURALINV_TEST_PAUSE"
FILE_MODE = 0o644


_PAUSE_SEEN: dict[str, int] = {}


def _pause_point(point: str) -> None:
    want = os.environ.get(_ENV_PAUSE)
    if not want:
        return
    name, _, nth = want.partition("#")  # POINT#K: the K-th time POINT is reached
    if name != point:
        return
    _PAUSE_SEEN[point] = _PAUSE_SEEN.get(point, 0) + 1
    if _PAUSE_SEEN[point] != (int(nth) if nth else 1):
        return
    marker = os.environ.get(_ENV_PAUSE + "_FILE")
    if marker:
        Path(marker).write_text(str(os.getpid()))
    # Until killed (signals still run their handlers), or, inside a section that holds
    # signals back (_signals_deferred), until one arrives: the section then runs to its end.
    while not (_HELD and _HELD[-1]):
        time.sleep(0.05)


def _temp_path(path: Path, kind: str = "tmp") -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.{kind}")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def fsync_dir(directory: str | Path) -> None:
    """Make renames and unlinks in ``directory`` durable (no-op where directories cannot be
    opened, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def clean_directory(directory: str | Path) -> list[Path]:
    """Finish what killed writers left in ``directory``: complete the pair commits whose journal
    is there (:func:`commit_together`) and remove the temporary files of processes that no
    longer run. Returns the paths removed or completed. Called by every writer and by
    :func:`open_matrices`; a live writer's files are never touched."""
    directory = Path(directory)
    try:
        entries = [e.name for e in os.scandir(directory) if e.name.startswith(".")]
    except OSError:
        return []
    done: list[Path] = []
    matches = [(name, m) for name in entries if (m := _TEMP_RE.match(name))]
    for name, m in matches:
        if m["kind"] == "pair":
            done.extend(_roll_forward(directory / name))
    for name, m in matches:
        if m["kind"] == "tmp" and not _pid_alive(int(m["pid"])):
            try:
                (directory / name).unlink()
                done.append(directory / name)
            except FileNotFoundError:
                pass
            except OSError:
                pass  # not ours to remove (read-only directory): harmless, try next time
    return done


def _roll_forward(journal: Path) -> list[Path]:
    """Complete a pair commit: rename each staged file that is still there over its target,
    then drop the journal. Idempotent; safe while the committing process is still at it."""
    try:
        plan = json.loads(journal.read_text())
        renames = [(journal.parent / src, journal.parent / dst) for src, dst in plan["renames"]]
    except FileNotFoundError:
        return []
    except (ValueError, KeyError, TypeError):
        journal.unlink(missing_ok=True)  # journals are written atomically: cannot be half
        return []
    done = []
    try:
        for src, dst in renames:
            try:
                os.replace(src, dst)
                done.append(dst)
            except FileNotFoundError:
                pass  # already renamed (by the writer or another reader)
        fsync_dir(journal.parent)
        journal.unlink(missing_ok=True)
        fsync_dir(journal.parent)
    except OSError as exc:
        raise InputError(
            f"{journal.parent}: an interrupted `neuralinv generate` left complete new files to "
            f"rename over {', '.join(d.name for _, d in renames)} but they cannot be renamed "
            f"({exc.strerror}); run the command with write access to {journal.parent}"
        ) from None
    return done


#: st_dev -> whether unnamed files there can be linked into place (probed once per filesystem:
#: overlayfs, for one, creates them but refuses the link with EXDEV).
_LINKABLE: dict[int, bool] = {}


def _link_fd(fd: int, dst: Path) -> None:
    """Give the unnamed file ``fd`` the name ``dst``: linkat(2) with AT_SYMLINK_FOLLOW on
    /proc/self/fd/N (the unprivileged way; plain link(2) would link the /proc symlink). Python
    calls linkat, with that flag, only when a dir_fd is given."""
    dfd = os.open(dst.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.link(f"/proc/self/fd/{fd}", dst.name, dst_dir_fd=dfd, follow_symlinks=True)
    finally:
        os.close(dfd)


def _open_unnamed(parent: Path) -> int | None:
    """A descriptor of an unnamed file in ``parent`` (O_TMPFILE), or None where unsupported."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or os.environ.get(_ENV_TMPFILE) == "named" or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        fd = os.open(parent, flag | os.O_RDWR | os.O_CLOEXEC, FILE_MODE)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return None  # filesystem or kernel without O_TMPFILE
        raise
    dev = os.fstat(fd).st_dev
    if dev not in _LINKABLE:
        # Probe with a second unnamed file: one linked (and unlinked) can never be linked again.
        probe_fd = os.open(parent, flag | os.O_RDWR | os.O_CLOEXEC, FILE_MODE)
        probe = parent / f".neuralinv-probe.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            _link_fd(probe_fd, probe)
            probe.unlink()
            _LINKABLE[dev] = True
        except OSError:
            _LINKABLE[dev] = False
        finally:
            os.close(probe_fd)
    if not _LINKABLE[dev]:
        os.close(fd)
        return None
    return fd


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


class AtomicFile:
    """An output file that appears complete or not at all (see the comment above).

    ``file`` is open for writing (and seeking); :meth:`commit` publishes it under ``path``,
    :meth:`discard` drops it. :meth:`stage` gives the complete data its temporary name without
    publishing it (for :func:`commit_together`)."""

    def __init__(self, path: str | Path, mode: str = "wb"):
        if mode not in ("wb", "w", "w+b"):
            raise ValueError(f"AtomicFile mode must be 'wb', 'w+b' or 'w', got {mode!r}")
        self.path = check_output_path(path)
        self.parent = self.path.parent
        clean_directory(self.parent)
        self._staged: Path | None = None
        self._closed = False
        try:
            fd = _open_unnamed(self.parent)
            if fd is None:
                self._staged = _temp_path(self.path)
                fd = os.open(self._staged, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
            os.fchmod(fd, FILE_MODE)  # whatever the umask: outputs are meant to be shared
        except OSError as exc:
            raise OSError(exc.errno, f"{self.path}: cannot create the file ({exc.strerror})") from None
        self.file: IO[Any] = os.fdopen(fd, mode, encoding="utf-8" if mode == "w" else None)
        self._named = self._staged is not None

    def stage(self) -> Path:
        """Flush and fsync the data and give it its temporary name (``.NAME.<pid>.<rand>.tmp``)."""
        if self._closed:
            assert self._staged is not None
            return self._staged
        _pause_point(f"commit:{self.path.name}")
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            if self._staged is None:
                tmp = _temp_path(self.path)
                _link_fd(self.file.fileno(), tmp)
                self._staged = tmp
        except OSError as exc:
            raise OSError(exc.errno, f"{self.path}: cannot write ({exc.strerror})") from None
        self.file.close()
        self._closed = True
        return self._staged

    def commit(self) -> Path:
        tmp = self.stage()
        try:
            os.replace(tmp, self.path)
        except OSError as exc:
            raise OSError(exc.errno, f"{self.path}: cannot rename the new file into place ({exc.strerror})") from None
        self._staged = None
        fsync_dir(self.parent)
        return self.path

    def discard(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError):
                self.file.close()
        if self._staged is not None:
            with contextlib.suppress(OSError):
                self._staged.unlink()
            self._staged = None


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Write ``path`` atomically: yields a file open in ``mode`` ("wb", "w+b", or "w" for
    UTF-8 text); when the block ends without an exception the data is fsynced and renamed over
    ``path`` (permissions 0o644, directory fsynced), otherwise it is dropped and ``path`` is
    untouched. The directory must exist (InputError otherwise). Killed at any moment, even by
    SIGKILL, the process leaves the old ``path`` or the complete new one and no temporary file
    that outlives the next write in that directory."""
    f = AtomicFile(path, mode)
    try:
        yield f.file
        f.commit()
    except BaseException:
        f.discard()
        raise


def write_bytes(path: str | Path, data: bytes) -> Path:
    """``data`` to ``path`` through :func:`atomic_write`."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """``text`` (UTF-8) to ``path`` through :func:`atomic_write`."""
    return write_bytes(path, text.encode("utf-8"))


def commit_together(files: list[AtomicFile]) -> None:
    """Publish several complete files so that a reader sees all of them new or all old.

    Each file is staged (fsynced, under its temporary name); then a journal
    ``.FIRST.<pid>.<rand>.pair`` listing the renames is written atomically; then the renames
    are done and the journal removed. Killed before the journal exists: the old files stay and
    the staged ones are litter that the next writer there removes. Killed after: every new file
    is complete and durable, so the next writer or reader in that directory
    (:func:`clean_directory`, which :func:`open_matrices` calls) finishes the renames before
    reading. SIGINT/SIGTERM/SIGHUP are held back during the commit (milliseconds)."""
    if not files:
        return
    parent = files[0].parent
    if any(f.parent != parent for f in files):
        raise ValueError("commit_together: the files must share a directory")
    with _signals_deferred():
        staged = [f.stage() for f in files]
        fsync_dir(parent)
        journal = _temp_path(files[0].path, "pair")
        plan = {"pid": os.getpid(), "renames": [[s.name, f.path.name] for s, f in zip(staged, files)]}
        write_text(journal, json.dumps(plan) + "\n")
        # From here on the journal owns the staged files: an exception must not discard one
        # (a reader rolls the renames forward), so the writers forget them before renaming.
        for f in files:
            f._staged = None
        for i, (s, f) in enumerate(zip(staged, files)):
            with contextlib.suppress(FileNotFoundError):  # a reader may have rolled it forward
                os.replace(s, f.path)
            if i == 0 and len(files) > 1:
                _pause_point(f"pair:{f.path.name}")
        fsync_dir(parent)
        journal.unlink(missing_ok=True)
        fsync_dir(parent)


#: The signals held back by the _signals_deferred sections now running (main thread only; a
#: stack because sections may nest). Read by the test pause points.
_HELD: list[list[int]] = []

_DEFERRED = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP back for a short critical section and deliver them after it.

    Python runs signal handlers in the main thread whichever thread the kernel picked (a
    thread mask, pthread_sigmask, does not stop that when torch's or the kernels' threads
    exist), so the handlers themselves are swapped for ones that only record the signal.
    Outside the main thread handlers cannot be changed; there nothing is raised asynchronously
    in this thread anyway. SIGKILL cannot be held: the pair journal covers it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum, _frame):
        pending.append(signum)

    old = {}
    _HELD.append(pending)
    try:
        for sig in _DEFERRED:
            old[sig] = signal.signal(sig, hold)
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        _HELD.remove(pending)
        for sig in pending:
            signal.raise_signal(sig)


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
    _check_not_special(path)  # a directory or FIFO says so, whatever its name
    fmt = format_of(path)
    path = check_input_path(path)
    clean_directory(path.parent)  # finish an interrupted pair commit before reading
    if fmt == ".mx":
        return MatrixSource(path, fmt, None)
    if fmt == ".csv":
        return MatrixSource(path, fmt, _read_csv(path).shape)
    if fmt == ".npy":
        return MatrixSource(path, fmt, _npy_memmap(path).shape)
    with _npz_member(path) as (_, shape, _dtype, _fortran):
        return MatrixSource(path, fmt, shape)


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
    kind = _file_kind(st.st_mode)
    if kind == "directory":
        raise InputError(f"{path}: the {what} is a directory, not a file")
    if kind != "file":
        raise InputError(f"{path}: the {what} is a {kind}, not a regular file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    return path


def _check_not_special(path: Path, what: str = "input") -> None:
    try:
        kind = _file_kind(os.stat(path).st_mode)
    except OSError:
        return  # missing or unreadable: check_input_path says which
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
                self._fh.write(b"\0" * _NPY_HEADER_BYTES)
            elif self.fmt == ".npz":
                # The member's header needs the final shape: stream into an unnamed .npy beside
                # the target (tempfile.TemporaryFile: O_TMPFILE on Linux, gone on any kill),
                # then store it in the archive at the end.
                self._npy_tmp = tempfile.TemporaryFile(dir=self.path.parent)
                self._npy_tmp.write(b"\0" * _NPY_HEADER_BYTES)
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
            self._fh.write(_text(a, end=self.fmt == ".mx").encode("ascii"))
        else:
            out = self._fh if self.fmt == ".npy" else self._npy_tmp
            out.write(np.ascontiguousarray(a, dtype=self._dtype).tobytes())
        self.count += a.shape[0]
        _pause_point(f"chunk:{self.path.name}")

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
