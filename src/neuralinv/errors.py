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
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


class InputError(ValueError):
    """A bad argument: wrong shape, dtype, option value, file contents. Says which and why."""


class InversionError(ArithmeticError, np.linalg.LinAlgError, torch.linalg.LinAlgError):
    """Some matrices of a batch could not be inverted; ``indices`` names them (batch indices).

    Also a ``numpy.linalg.LinAlgError`` and a ``torch.linalg.LinAlgError`` (hence a ValueError
    and a RuntimeError), the errors numpy and torch raise for singular input and for
    factorisations that do not converge.
    """

    def __init__(self, message: str, indices: Sequence[tuple[int, ...]] = ()):
        super().__init__(message)
        self.indices = [tuple(i) for i in indices]


class SingularMatrixError(InversionError):
    """At least one matrix is exactly singular. (A matrix with NaN or Inf entries is bad input:
    ``ni.inv`` raises :class:`InputError` for it, status NONFINITE.)"""


class NotConvergedError(InversionError):
    """An iterative method stopped at ``max_iter`` before its certificate held.

    A LinAlgError like the others: numpy raises ``LinAlgError("SVD did not converge")`` and
    torch ``torch.linalg.LinAlgError`` for factorisations that do not converge.
    """


class NotPositiveDefiniteError(InversionError):
    """The Cholesky method was given a matrix that is not symmetric positive definite."""


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
