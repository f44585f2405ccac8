"""Test hook of the crash tests: stop a writer at a chosen moment so a test can kill it there.

A process whose environment has ``NEURALINV_TEST_PAUSE=POINT`` creates the file named by
``NEURALINV_TEST_PAUSE_FILE`` when it reaches POINT and then sleeps (``POINT#K``: the K-th time
it gets there). Points: ``chunk:NAME`` (a MatrixWriter wrote a chunk of NAME), ``commit:NAME``
(NAME's data is complete, before it is renamed into place), ``pair:NAME`` (a pair commit renamed
its first file, NAME), ``probe`` (the O_TMPFILE probe has its name, before it is removed).
Without the variable :func:`pause_point` returns at once.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .deferred import HELD

_ENV_PAUSE = "NEURALINV_TEST_PAUSE"

_SEEN: dict[str, int] = {}


def pause_point(point: str) -> None:
    want = os.environ.get(_ENV_PAUSE)
    if not want:
        return
    name, _, nth = want.partition("#")  # POINT#K: the K-th time POINT is reached
    if name != point:
        return
    _SEEN[point] = _SEEN.get(point, 0) + 1
    if _SEEN[point] != (int(nth) if nth else 1):
        return
    marker = os.environ.get(_ENV_PAUSE + "_FILE")
    if marker:
        Path(marker).write_text(str(os.getpid()))
    # Until killed (signals still run their handlers), or, inside a section that holds
    # signals back, until one arrives: the section then runs to its end.
    while not (HELD and HELD[-1]):
        time.sleep(0.05)
