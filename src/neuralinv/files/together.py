"""Publishing several files as one change: a reader sees all of them new or all of them old.

Used for a generated dataset's matrices and inverses (:func:`commit_together`). Each file is
staged complete and durable under its temporary name, a journal listing the renames is written
atomically, the renames are done and the journal removed. A SIGKILL at any point leaves either
no journal (the old files stand; the staged ones are swept as litter) or a journal whose renames
the next writer or reader in the directory completes (:func:`neuralinv.files.atomic.clean_directory`).
SIGINT, SIGTERM and SIGHUP are held back for the milliseconds of the commit
(:func:`signals_deferred`), so an orderly stop does not even need the journal.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections.abc import Iterator

from ._pause import HELD, pause_point
from .atomic import AtomicFile, fsync_dir, temp_path, write_text


def commit_together(files: list[AtomicFile]) -> None:
    """Publish several complete files so that a reader sees all of them new or all old.

    Each file is staged (fsynced, under its temporary name); then a journal
    ``.FIRST.<pid>.<rand>.pair`` listing the renames is written atomically; then the renames
    are done and the journal removed. Killed before the journal exists: the old files stay and
    the staged ones are litter that the next writer there removes. Killed after: every new file
    is complete and durable, so the next writer or reader in that directory
    (:func:`~neuralinv.files.atomic.clean_directory`, which
    :func:`~neuralinv.files.reading.open_matrices` calls) finishes the renames before reading.
    SIGINT/SIGTERM/SIGHUP are held back during the commit (milliseconds)."""
    if not files:
        return
    parent = files[0].parent
    if any(f.parent != parent for f in files):
        raise ValueError("commit_together: the files must share a directory")
    with signals_deferred():
        staged = [f.stage() for f in files]
        fsync_dir(parent)
        journal = temp_path(files[0].path, "pair")
        plan = {"pid": os.getpid(), "renames": [[s.name, f.path.name] for s, f in zip(staged, files)]}
        write_text(journal, json.dumps(plan) + "\n")
        # From here on the journal owns the staged files: an exception must not discard one
        # (a reader rolls the renames forward), so the writers forget them before renaming.
        for f in files:
            f.release()
        for i, (s, f) in enumerate(zip(staged, files)):
            with contextlib.suppress(FileNotFoundError):  # a reader may have rolled it forward
                os.replace(s, f.path)
            if i == 0 and len(files) > 1:
                pause_point(f"pair:{f.path.name}")
        fsync_dir(parent)
        journal.unlink(missing_ok=True)
        fsync_dir(parent)


_DEFERRED = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
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
    HELD.append(pending)
    try:
        for sig in _DEFERRED:
            old[sig] = signal.signal(sig, hold)
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        HELD.remove(pending)
        for sig in pending:
            signal.raise_signal(sig)
