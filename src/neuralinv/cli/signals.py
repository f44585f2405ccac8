"""SIGTERM and SIGHUP as an orderly exit, the console entry point, and the cleanup of a
failed command's output directory."""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from pathlib import Path


class _Terminated(BaseException):
    """Raised in the main thread by SIGTERM/SIGHUP so that ``finally`` blocks and the atomic
    writers' cleanup run, as they do for SIGINT's KeyboardInterrupt. A BaseException, so no
    ``except Exception`` swallows it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum, frame) -> None:
    # A second signal while cleaning up must not cut the cleanup short.
    for sig in _TERMINATING:
        signal.signal(sig, signal.SIG_IGN)
    raise _Terminated(signum)


def _recording(received: list[int]):
    """``_on_signal``, also noting the signal in ``received``: Python drops an exception raised
    where it cannot propagate (in a ctypes callback, e.g. LLVM's while numba loads a kernel from
    its cache, or during the interpreter's shutdown), so ``main`` checks the note afterwards."""

    def handler(signum, frame) -> None:
        received.append(signum)
        _on_signal(signum, frame)

    return handler


_TERMINATING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextmanager
def _removed_on_failure(directory: Path | None, *, keep_when_interrupted: bool = False):
    """Remove ``directory`` when the block fails and the directory did not exist before it
    (a failed run leaves no empty or partial output directory). A directory that existed is
    never removed. ``keep_when_interrupted``: an interrupted (Ctrl-C, SIGTERM, SIGHUP)
    training keeps its directory, which resumes."""
    import shutil

    existed = directory is None or os.path.lexists(directory)
    try:
        yield
    except BaseException as exc:
        interrupted = isinstance(exc, (KeyboardInterrupt, _Terminated))
        if not existed and os.path.isdir(directory) and not (keep_when_interrupted and interrupted):
            shutil.rmtree(directory, ignore_errors=True)
        raise


def main() -> None:
    """The console entry point: the CLI with SIGTERM and SIGHUP turned into an orderly exit
    (outputs of the interrupted command are left as they were, no temporary files). The process
    then ends by the same signal, so its parent sees how it stopped. Library code installs no
    handlers; this is the only place."""
    from .app import app  # its commands registered by the package, imported before this module

    installed, received = [], []
    if threading.current_thread() is threading.main_thread():
        handler = _recording(received)
        for sig in _TERMINATING:
            if signal.getsignal(sig) is signal.SIG_DFL:
                signal.signal(sig, handler)
                installed.append(sig)
    try:
        app()
    except _Terminated as stop:
        _end_by(stop.signum)
    finally:
        # From here on (a finished command, the interpreter's shutdown joining worker threads)
        # a signal ends the process at once, and one whose exception was dropped on the way
        # (see _recording) ends it now: the command's outputs are complete (atomic writes), and
        # the parent still learns that the run was stopped.
        for sig in installed:
            signal.signal(sig, signal.SIG_DFL)
        if received:
            _end_by(received[0])


def _end_by(signum: int) -> None:
    """End the process by ``signum`` (its default action), so that its parent sees how it stopped."""
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    raise SystemExit(128 + signum) from None  # where the signal does not end us
