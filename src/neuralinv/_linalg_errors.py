"""The LinAlgError family of :mod:`neuralinv.errors` (read them there: ``neuralinv.errors``
hands these classes out on first use, so that importing it does not import torch).

Each class says it belongs to ``neuralinv.errors`` (``__module__``): that is where users,
reprs and pickle find it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


class InversionError(ArithmeticError, np.linalg.LinAlgError, torch.linalg.LinAlgError):
    """Some matrices of a batch could not be inverted; ``indices`` names them (batch indices).

    Also a ``numpy.linalg.LinAlgError`` and a ``torch.linalg.LinAlgError`` (hence a ValueError
    and a RuntimeError), the errors numpy and torch raise for singular input and for
    factorisations that do not converge.
    """

    __module__ = "neuralinv.errors"

    def __init__(self, message: str, indices: Sequence[tuple[int, ...]] = ()):
        super().__init__(message)
        self.indices = [tuple(i) for i in indices]


class SingularMatrixError(InversionError):
    """At least one matrix is exactly singular. (A matrix with NaN or Inf entries is bad input:
    ``ni.inv`` raises :class:`InputError` for it, status NONFINITE.)"""

    __module__ = "neuralinv.errors"


class NotConvergedError(InversionError):
    """An iterative method stopped at ``max_iter`` before its certificate held.

    A LinAlgError like the others: numpy raises ``LinAlgError("SVD did not converge")`` and
    torch ``torch.linalg.LinAlgError`` for factorisations that do not converge.
    """

    __module__ = "neuralinv.errors"


class NotPositiveDefiniteError(InversionError):
    """The Cholesky method was given a matrix that is not symmetric positive definite."""

    __module__ = "neuralinv.errors"
