"""The entry functions: ``invert`` reports, ``inv`` raises."""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from typing import Any

import numpy as np
import torch

from . import certify
from ._peers import array_wrap, structured, write_out
from ._validate import flag, square_batch
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
from .methods.base import unscreened
from .solution import Solution, Status


def invert(
    A: Any,
    method: Any = "auto",
    *,
    check_finite: bool = True,
    overwrite_a: bool = False,
    assume_a: str | None = None,
    lower: bool = False,
    **options: Any,
) -> Solution:
    """Invert a batch of square matrices (..., n, n) and certify every answer.

    ``method`` is a registered name (see ``neuralinv.METHODS``), a Method instance or a trained
    LearnedInverse; ``options`` are that method's fields. Numerical failure is reported in
    ``Solution.status``, never raised; bad arguments raise :class:`InputError` before any work.
    scipy's keywords: ``assume_a``/``lower`` say which entries are read and pick the method
    ("pos": cholesky, "her": Hermitian from one triangle; see
    :func:`neuralinv._peers.structured`). ``check_finite=False`` skips the up-front NaN/Inf
    screen (one sum over the batch): the methods see such matrices as they are, their answers
    fail the certificate, and only then are they reported NONFINITE with a NaN inverse, as
    with the screen (:func:`neuralinv.methods.base.unscreened`). ``overwrite_a`` is accepted
    and changes nothing (the input is never written).
    Complex matrices (complex64/complex128, numpy complex too) are inverted by every exact
    method; ``gradient`` and ``learned`` refuse them.
    Array-likes are accepted as numpy accepts them; an ndarray subclass (np.matrix) comes
    back as that subclass.
    """
    if check_finite is not True or overwrite_a is not False or assume_a is not None or lower is not False:
        flag("check_finite", check_finite)
        flag("overwrite_a", overwrite_a)
        A, method = structured(A, method, options, assume_a, lower)
    wrap = array_wrap(A)
    if check_finite is not True and not check_finite:
        with unscreened():
            sol = _invert(A, method, options)
    else:
        sol = _invert(A, method, options)
    if isinstance(A, np.ndarray) and type(A) is not np.ndarray:
        sol = dataclasses.replace(sol, inverse=wrap(sol.inverse))
    return sol


def _invert(A: Any, method: Any, options: dict) -> Solution:
    if options and torch._C._functorch.peek_interpreter_stack() is not None:
        sol = _resolve_outside_transforms(method, options).invert(A)
    elif not options and type(method) is str and method == "auto":
        sol = _default_auto().invert(A)  # the default: resolve("auto") without its checks
    else:
        sol = resolve(method, **options).invert(A)
    return sol


@functools.cache
def _default_auto() -> Any:
    """``resolve("auto")``, built once (a frozen dataclass: sharing it is safe); saves ~3 us of
    option checks per call of ``ni.invert(A)``."""
    return resolve("auto")


def _resolve_outside_transforms(method: Any, options: dict) -> Any:
    # Inside a torch.func transform: building a method is no computation on A, and loading a
    # model (nn.Module.to assigns .data) is refused there, so build it outside them all.
    from torch._functorch.pyfunctorch import temporarily_clear_interpreter_stack

    with temporarily_clear_interpreter_stack():
        return resolve(method, **options)


def inv(
    A: Any,
    method: Any = "auto",
    *,
    out: Any = None,
    check_finite: bool = True,
    overwrite_a: bool = False,
    assume_a: str | None = None,
    lower: bool = False,
    **options: Any,
) -> Any:
    """Like :func:`invert` but returns the inverse, raising on any matrix without a trusted one.

    Raises InputError (NaN/Inf input), SingularMatrixError, NotPositiveDefiniteError or
    NotConvergedError naming every failing batch index; warns IllConditionedWarning and
    OutOfRegionWarning (answers from the exact fallback) naming theirs. Under torch.func.vmap
    the indices are those of the physical batch: the vmapped dimensions first (outermost vmap
    first), then A's own batch dimensions. ``out=`` (torch): a tensor (an ndarray for numpy
    results) of the result's shape and dtype, written into and returned; the scipy keywords
    are :func:`invert`'s.
    """
    sol = invert(
        A, method, check_finite=check_finite, overwrite_a=overwrite_a, assume_a=assume_a,
        lower=lower, **options,
    )
    # The native fast path marks a Solution it built with every status OK (methods/native.py):
    # nothing to raise or warn, and no status scan (~5 us of a single 3x3).
    if not getattr(sol, "_all_ok", False):
        raise_for_status(sol)
    return write_out(sol.inverse, out)


def raise_for_status(sol: Solution) -> None:
    """The error/warning policy of :func:`inv`, usable on any Solution."""
    # A Solution from an input under autograd or torch.func (methods/base.py) carries the
    # physical batch's status shape and failing indices: under vmap its own statuses are one
    # slice's, and under torch.func no tensor converts to numpy.
    physical = getattr(sol, "_physical_status", None)
    if physical is None:
        if sol.all_ok:  # the usual case: one check instead of one scan per status
            return
        shape, indices = tuple(sol.status.shape), sol.indices
    else:
        shape, found = physical
        indices = lambda status: found.get(status, [])  # noqa: E731
    # (status, error, text for a batch (indices follow), text for one matrix without a batch)
    errors = (
        (Status.NONFINITE, InputError, "A has NaN or Inf entries in batch elements",
         "A has NaN or Inf entries"),
        (Status.SINGULAR, SingularMatrixError, "singular matrices at batch indices", "singular matrix"),
        (Status.NOT_SPD, NotPositiveDefiniteError, "not symmetric positive definite at batch indices",
         "matrix not symmetric positive definite"),
        (Status.NOT_CONVERGED, NotConvergedError, "did not converge at batch indices",
         "did not converge"),
    )
    for status, exc, what, single in errors:
        idx = indices(status)
        if idx:
            total = math.prod(shape)
            msg = single if shape == () else f"{what} {format_indices(idx)} ({len(idx)} of {total})"
            if exc is InputError:
                raise InputError(msg)
            raise exc(msg, idx)
    warns = (
        (Status.ILL_CONDITIONED, IllConditionedWarning, "ill-conditioned (answer not trusted) at"),
        (Status.OUT_OF_REGION, OutOfRegionWarning, "outside the learned region (answered by fallback) at"),
    )
    for status, category, what in warns:
        idx = indices(status)
        if idx:
            where = "this matrix" if shape == () else f"batch indices {format_indices(idx)}"
            warnings.warn(f"{what} {where}", category, stacklevel=3)


def _pair(A: Any, X: Any) -> tuple[Any, Any, Any]:
    """Validate (A, X) for the public certificate functions: same (..., n, n) shape."""
    a, x = square_batch(A, "A"), square_batch(X, "X")
    if a.tensor.shape != x.tensor.shape:
        raise InputError(
            f"A and X must have the same shape, got {tuple(a.tensor.shape)} and {tuple(x.tensor.shape)}"
        )
    dtype = torch.promote_types(a.tensor.dtype, x.tensor.dtype)
    return a, a.tensor.detach().to(dtype), x.tensor.detach().to(dtype)


def residual_ratio(A: Any, X: Any) -> Any:
    """LAPACK's dget03 ratio ``||I - X A||_1 / (n ||A||_1 ||X||_1 eps)`` per matrix (< 30 passes).

    Torch or numpy (numpy in -> numpy out), float32/float64 or complex (a real ratio, with the
    eps of the real counterpart: complex64 -> float32's); bad input raises InputError."""
    a, At, Xt = _pair(A, X)
    return a.to_output(certify.residual_ratio(At, Xt).reshape(-1), matrices=False)


def rcond(A: Any, X: Any) -> Any:
    """``1 / (||A||_1 ||X||_1)`` per matrix, X standing in for ``A^-1`` (see certify.rcond)."""
    a, At, Xt = _pair(A, X)
    return a.to_output(certify.rcond(At, Xt).reshape(-1), matrices=False)


def sigma_min(A: Any) -> Any:
    """Smallest singular value per matrix: the 2-norm distance to the nearest singular matrix."""
    a = square_batch(A, "A")
    return a.to_output(certify.sigma_min(a.tensor.detach()).reshape(-1), matrices=False)
