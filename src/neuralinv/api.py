"""The entry functions: ``invert`` reports, ``inv`` raises."""

from __future__ import annotations

import math
import warnings
from typing import Any

from .errors import (
    IllConditionedWarning,
    InputError,
    NotConvergedError,
    NotPositiveDefiniteError,
    OutOfRegionWarning,
    SingularMatrixError,
    format_indices,
)
from .methods import resolve
from .solution import Solution, Status


def invert(A: Any, method: Any = "auto", **options: Any) -> Solution:
    """Invert a batch of square matrices (..., n, n) and certify every answer.

    ``method`` is a registered name (see ``neuralinv.METHODS``), a Method instance or a trained
    LearnedInverse; ``options`` are that method's fields. Numerical failure is reported in
    ``Solution.status``, never raised; bad arguments raise :class:`InputError` before any work.
    """
    return resolve(method, **options).invert(A)


def inv(A: Any, method: Any = "auto", **options: Any) -> Any:
    """Like :func:`invert` but returns the inverse, raising on any matrix without a trusted one.

    Raises InputError (NaN/Inf input), SingularMatrixError, NotPositiveDefiniteError or
    NotConvergedError naming every failing batch index; warns IllConditionedWarning and
    OutOfRegionWarning (answers from the exact fallback) naming theirs.
    """
    sol = invert(A, method, **options)
    raise_for_status(sol)
    return sol.inverse


def raise_for_status(sol: Solution) -> None:
    """The error/warning policy of :func:`inv`, usable on any Solution."""
    if sol.all_ok:  # the usual case: one check instead of one scan per status (native fast path)
        return
    errors = (
        (Status.NONFINITE, InputError, "A has NaN or Inf entries in batch elements"),
        (Status.SINGULAR, SingularMatrixError, "singular matrices at batch indices"),
        (Status.NOT_SPD, NotPositiveDefiniteError, "not symmetric positive definite at batch indices"),
        (Status.NOT_CONVERGED, NotConvergedError, "did not converge at batch indices"),
    )
    for status, exc, what in errors:
        idx = sol.indices(status)
        if idx:
            total = math.prod(tuple(sol.status.shape))
            msg = f"{what} {format_indices(idx)} ({len(idx)} of {total})"
            if exc is InputError:
                raise InputError(msg)
            raise exc(msg, idx)
    warns = (
        (Status.ILL_CONDITIONED, IllConditionedWarning, "ill-conditioned (answer not trusted) at"),
        (Status.OUT_OF_REGION, OutOfRegionWarning, "outside the learned region (answered by fallback) at"),
    )
    for status, category, what in warns:
        idx = sol.indices(status)
        if idx:
            warnings.warn(f"{what} batch indices {format_indices(idx)}", category, stacklevel=3)
