"""The exceptions and warnings neuralinv raises.

Input problems are found before any work starts and raise :class:`InputError` (a ValueError).
Numerical failures are *reported* by :func:`neuralinv.invert` in ``Solution.status`` and only
*raised* by :func:`neuralinv.inv`, as an :class:`InversionError` naming every failing batch element.

So that code written against numpy or torch keeps working, every :class:`InversionError` is
also a ``numpy.linalg.LinAlgError`` (a ValueError) and a ``torch.linalg.LinAlgError`` (a
RuntimeError): ``except np.linalg.LinAlgError`` catches ``neuralinv.inv(singular)`` as it
catches ``np.linalg.inv(singular)``. Both bases are plain Exception subclasses without instance
layout of their own, so one class can derive from both (and from ArithmeticError, the original
base, kept for callers that catch it).

The four LinAlgError classes live in :mod:`neuralinv._linalg_errors` and are reached through
this module (``neuralinv.errors.InversionError``, ``from neuralinv.errors import ...``) on first
use: their torch base means importing torch (about a second), which the paths that never
invert through torch do not pay (the command line's start, ``neuralinv invert`` of a file the
native kernels answer). Everything else here imports neither torch nor numpy.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

#: Defined in neuralinv._linalg_errors (torch), handed out by __getattr__.
_LINALG = ("InversionError", "SingularMatrixError", "NotConvergedError", "NotPositiveDefiniteError")


def __getattr__(name: str) -> Any:  # PEP 562: the LinAlgError family, imported on first use
    if name in _LINALG:
        from . import _linalg_errors

        return getattr(_linalg_errors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LINALG))


def is_inversion_error(exc: BaseException) -> bool:
    """Whether ``exc`` is an :class:`InversionError`, without importing torch: none can exist
    before ``neuralinv._linalg_errors`` was imported (``except InversionError`` would import it
    for every exception that reaches the clause, Ctrl-C and SIGTERM included)."""
    module = sys.modules.get(f"{__package__}._linalg_errors")
    return module is not None and isinstance(exc, module.InversionError)


class InputError(ValueError):
    """A bad argument: wrong shape, dtype, option value, file contents. Says which and why."""


class IllConditionedWarning(RuntimeWarning):
    """The answer was computed but the matrix is too close to singular for it to be trusted."""


class PartialModelWarning(UserWarning):
    """:meth:`LearnedInverse.load` loaded a model directory whose training was interrupted:
    the members hold their best weights so far. ``neuralinv train --config DIR/config.toml
    --out DIR`` resumes and finishes it."""


class OutOfRegionWarning(RuntimeWarning):
    """A learned inverter saw inputs outside its region; those answers came from the fallback."""


def format_indices(indices: Sequence[tuple[int, ...]], limit: int = 20) -> str:
    """``[3, 7]`` for a 1-d batch, ``[(0, 3)]`` for deeper batches; long lists are elided."""
    shown = [str(i[0]) if len(i) == 1 else str(tuple(i)) for i in indices[:limit]]
    more = f", ... ({len(indices) - limit} more)" if len(indices) > limit else ""
    return "[" + ", ".join(shown) + more + "]"


# The LinAlgError names come from __getattr__ (so that ``import *`` gets them too).
__all__ = [  # noqa: F822
    "IllConditionedWarning", "InputError", "InversionError", "NotConvergedError",
    "NotPositiveDefiniteError", "OutOfRegionWarning", "PartialModelWarning", "SingularMatrixError",
    "format_indices", "is_inversion_error",
]
