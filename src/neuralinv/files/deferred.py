"""Holding SIGINT, SIGTERM and SIGHUP back for a short critical section (a pair commit, the
O_TMPFILE probe's few microseconds with a name, a numba kernel load) and delivering them after it.

Kept apart from the writers so that :mod:`neuralinv.files.atomic`, :mod:`~neuralinv.files.together`
and :mod:`neuralinv.kernels.native` can all use it without importing each other.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

#: The signals held back by the ``signals_deferred`` sections now running (main thread only; a
#: stack because sections may nest). The crash tests' pause points (``files._pause``) stop
#: pausing when a signal arrives inside one, so the section runs to its end as it would have.
HELD: list[list[int]] = []

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
