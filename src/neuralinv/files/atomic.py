"""The one atomic writer: every file neuralinv produces appears complete or not at all.

Matrices, weights, training states, JSON, reports and figures all go through
:func:`atomic_write` (or :class:`AtomicFile`, which it wraps). The data goes to an *unnamed*
file in the target's directory (Linux ``O_TMPFILE``): a process killed by any signal, SIGKILL
included, leaves nothing behind, because the kernel frees an unnamed file when its last
descriptor closes. On commit the file is fsynced, linked to a temporary name
``.NAME.<pid>.<random>.tmp`` (linkat(2) on /proc/self/fd/N) and renamed over the target
(``os.replace``, atomic on POSIX), then the directory is fsynced. Where O_TMPFILE is not
available (some filesystems, no /proc, or ``NEURALINV_TMPFILE=named``) the data is written
under that temporary name from the start. Either way a temporary name carries the writer's pid,
and every later writer (or reader of matrix files) in the same directory removes the ones whose
process is gone (:func:`clean_directory`): a kill in the milliseconds between link and rename,
or any kill in the fallback mode, leaves litter only until the next run there.

Two files that must change together (a generated dataset's matrices and inverses) are
published with a journal by :func:`neuralinv.files.together.commit_together`; finishing an
interrupted one is part of :func:`clean_directory`, so every writer and reader sees whole pairs.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ..errors import InputError
from ._pause import pause_point
from .deferred import signals_deferred
from .paths import check_output_path

#: ``.NAME.<pid>.<8 hex>.tmp`` (a temporary file) or ``.NAME.<pid>.<8 hex>.pair`` (a journal).
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?P<rand>[0-9a-f]{8})\.(?P<kind>tmp|pair)$")
#: ``NEURALINV_TMPFILE=named`` writes under a temporary name instead of an unnamed file (the
#: fallback, for diagnosis and tests).
_ENV_TMPFILE = "NEURALINV_TMPFILE"
FILE_MODE = 0o644


def temp_path(path: Path, kind: str = "tmp") -> Path:
    """``.NAME.<pid>.<random>.KIND`` beside ``path``: a name :func:`clean_directory` recognises."""
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
    is there (:func:`~neuralinv.files.together.commit_together`) and remove the temporary files
    of processes that no longer run. Returns the paths removed or completed. Called by every
    writer and by :func:`~neuralinv.files.reading.open_matrices`; a live writer's files are
    never touched."""
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


def _open_tmpfile(parent: Path, mode: int) -> int | None:
    """An O_TMPFILE descriptor in ``parent``, or None where unsupported (or not wanted)."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or os.environ.get(_ENV_TMPFILE) == "named" or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(parent, flag | os.O_RDWR | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return None  # filesystem or kernel without O_TMPFILE
        raise


def _open_unnamed(parent: Path) -> int | None:
    """A descriptor of an unnamed file in ``parent`` that can later be linked into place, or None."""
    fd = _open_tmpfile(parent, FILE_MODE)
    if fd is None:
        return None
    dev = os.fstat(fd).st_dev
    if dev not in _LINKABLE:
        # Probe with a second unnamed file: one linked (and unlinked) can never be linked again.
        probe_fd = _open_tmpfile(parent, FILE_MODE)
        if probe_fd is None:
            os.close(fd)
            return None
        probe = temp_path(parent / "neuralinv-probe")  # swept by clean_directory after SIGKILL
        # The probe has a name for microseconds; SIGTERM/SIGHUP/SIGINT (turned into exceptions
        # by the command line) are held until it is gone, because one landing in the cleanup
        # itself, before the unlink ran, left the name behind.
        with signals_deferred():
            try:
                _link_fd(probe_fd, probe)
                _LINKABLE[dev] = True
            except OSError:
                _LINKABLE[dev] = False
            finally:
                pause_point("probe")
                with contextlib.suppress(OSError):
                    probe.unlink(missing_ok=True)
                os.close(probe_fd)
    if not _LINKABLE[dev]:
        os.close(fd)
        return None
    return fd


def scratch_file(near: str | Path) -> IO[bytes]:
    """A read-write binary file in ``near``'s directory that no one else sees and that is gone
    when it is closed or the process dies (an unnamed file; else a pid-named one unlinked at
    once, which :func:`clean_directory` sweeps if the process dies in between). For data that
    is assembled before it is copied into an output (the member of a streamed ``.npz``)."""
    near = Path(near)
    fd = _open_tmpfile(near.parent, 0o600)
    if fd is None:
        named = temp_path(near)
        with signals_deferred():  # a signal between the two calls would leave the name
            fd = os.open(named, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            os.unlink(named)
    return os.fdopen(fd, "w+b")


class AtomicFile:
    """An output file that appears complete or not at all (see the module docstring).

    ``file`` is open for writing (and seeking); :meth:`commit` publishes it under ``path``,
    :meth:`discard` drops it. :meth:`stage` gives the complete data its temporary name without
    publishing it (for :func:`~neuralinv.files.together.commit_together`)."""

    def __init__(self, path: str | Path, mode: str = "wb"):
        if mode not in ("wb", "w", "w+b"):
            raise ValueError(f"AtomicFile mode must be 'wb', 'w+b' or 'w', got {mode!r}")
        self.path = check_output_path(path)
        self.parent = self.path.parent
        clean_directory(self.parent)
        self._staged: Path | None = None
        self._closed = False
        fd = None
        try:
            try:
                fd = _open_unnamed(self.parent)
                if fd is None:
                    self._staged = temp_path(self.path)
                    fd = os.open(self._staged, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
                os.fchmod(fd, FILE_MODE)  # whatever the umask: outputs are meant to be shared
            except OSError as exc:
                raise OSError(exc.errno, f"{self.path}: cannot create the file ({exc.strerror})") from None
            self.file: IO[Any] = os.fdopen(fd, mode, encoding="utf-8" if mode == "w" else None)
        except BaseException:
            # A signal turned into an exception (the CLI's SIGTERM/SIGHUP handler) can land
            # between creating the named file and returning it: no caller could remove it then.
            if fd is not None and not hasattr(self, "file"):
                with contextlib.suppress(OSError):
                    os.close(fd)
            if self._staged is not None:
                with contextlib.suppress(OSError):
                    self._staged.unlink()
            raise

    def stage(self) -> Path:
        """Flush and fsync the data and give it its temporary name (``.NAME.<pid>.<rand>.tmp``)."""
        if self._closed:
            assert self._staged is not None
            return self._staged
        pause_point(f"commit:{self.path.name}")
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            if self._staged is None:
                tmp = temp_path(self.path)
                _link_fd(self.file.fileno(), tmp)
                self._staged = tmp
        except OSError as exc:
            raise OSError(exc.errno, f"{self.path}: cannot write ({exc.strerror})") from None
        self.file.close()
        self._closed = True
        return self._staged

    def release(self) -> None:
        """Forget the staged file without removing it (a pair journal now owns it)."""
        self._staged = None

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
    f = None
    try:
        f = AtomicFile(path, mode)
        yield f.file
        f.commit()
    except BaseException:
        if f is not None:
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
