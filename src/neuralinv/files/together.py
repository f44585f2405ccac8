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

from ._pause import pause_point
from .atomic import AtomicFile, fsync_dir, temp_path, write_text
from .deferred import signals_deferred


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
