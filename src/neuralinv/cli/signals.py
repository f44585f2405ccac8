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

    installed = []
    if threading.current_thread() is threading.main_thread():
        for sig in _TERMINATING:
            if signal.getsignal(sig) is signal.SIG_DFL:
                signal.signal(sig, _on_signal)
                installed.append(sig)
    try:
        app()
    except _Terminated as stop:
        signal.signal(stop.signum, signal.SIG_DFL)
        os.kill(os.getpid(), stop.signum)
        raise SystemExit(128 + stop.signum) from None  # where the signal does not end us
