"""What every method shares: the Method base class (the answer types are in :mod:`.partial`, the
certificate in :mod:`.certified`).

A method is a small frozen dataclass with three public entries:

* ``invert(A) -> Solution``: the whole certified path, once for all methods: validation,
  NaN/Inf screening, the analytic derivatives, the method's kernel, the certificate, shapes and
  array types.
* ``kernel(A) -> Partial``: the method's own answer on a validated, detached, finite
  (B, n, n) float32/float64 batch (complex64/complex128 too where ``takes_complex``), before
  certification: the inverse, any failure codes it
  knows of, what produced each answer. What ``auto``, ``block``, the certified fallbacks
  (:func:`fill_from`) and the bench's ``NAME:alone`` run. A method implements it as
  ``_invert(A)``.
* ``supports(n, dtype, device) -> bool``: whether it takes n x n matrices of that dtype on
  that device: the registry's one answer to "which sizes can this method take".

docs/architecture.md shows the data flow and how to add a method.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from .. import _autograd
from .._validate import check_flags, square_batch
from ..certify import pow2_scale
from ..errors import InputError
from ..solution import Solution
from .certified import certify
from .partial import Partial, ok_status

#: False inside :func:`unscreened` (scipy's ``check_finite=False``): no up-front NaN/Inf screen.
_SCREEN = contextvars.ContextVar("neuralinv_screen", default=True)


@contextlib.contextmanager
def unscreened():
    """Run ``Method.invert`` without the up-front NaN/Inf screen (scipy's ``check_finite=False``).

    The methods then see non-finite matrices as they are; their answers fail the certificate
    (a non-finite A never passes it), and only then are those matrices checked and reported
    NONFINITE with a NaN inverse, as with the screen. What is saved is the screen's one pass
    over the batch; the native kernels of ``auto`` screen inside their single pass anyway.
    """
    token = _SCREEN.set(False)
    try:
        yield
    finally:
        _SCREEN.reset(token)


@dataclass(frozen=True)
class Method:
    """Base of all methods. Subclasses are frozen dataclasses whose fields are their options."""

    name: ClassVar[str] = "method"
    #: Whether the method inverts complex64/complex128 matrices; the others refuse them with
    #: an InputError naming the methods that do (:func:`complex_methods`).
    takes_complex: ClassVar[bool] = False

    def __post_init__(self):
        # Subclasses with a __post_init__ of their own call this first.
        check_flags(self)

    def invert(self, A: Any) -> Solution:
        """Invert a batch (..., n, n) and certify every answer.

        Differentiable like torch.linalg.inv under backward, forward-mode AD and every
        torch.func transform (:mod:`neuralinv._autograd`).
        """
        batch = square_batch(A)
        if batch.out_dtype.is_complex and not self.takes_complex:
            refuse_complex(self, batch.out_dtype)
        if not batch.numpy_in and _autograd.needs_autograd(batch.tensor):
            return _differentiable(self, batch)
        fast = self._fast(batch)
        if fast is not None:
            return fast
        return self._solve_batch(batch)

    def supports(self, n: int, dtype: torch.dtype, device: torch.device | str = "cpu") -> bool:
        """Whether this method takes n x n matrices of ``dtype`` on ``device``: the registry's one answer
        to "which sizes can this method take" (auto, block, bench, demo and the generic tests ask it)."""
        return self.takes_complex or not dtype.is_complex

    def kernel(self, A: Tensor) -> Partial:
        """The method's answer on a validated, detached, finite (B, n, n) batch of a size it
        ``supports``, before certification (a :class:`Partial`; ``Method.invert`` certifies it).
        What auto, block, the certified fallbacks and the bench's ``NAME:alone`` run; methods
        implement it as ``_invert``."""
        return self._invert(A)

    def _fast(self, batch) -> Solution | None:
        """A whole Solution by a shortcut for a validated batch without autograd, or None
        (the default): ``auto``'s native kernels (:mod:`.native`)."""
        return None

    def _solve(self, A: Tensor) -> Solution:
        """``invert`` on a plain tensor (no autograd, no functorch wrapper), already checked by
        ``invert`` (and any subclass's checks before it): what the autograd Function runs."""
        return self._solve_batch(square_batch(A))

    def _solve_batch(self, batch) -> Solution:
        start = time.perf_counter()
        Af = batch.flat
        B, n = Af.shape[0], batch.n
        # One flat check first: the per-matrix reduction over (n, n) is slow for tiny n and
        # only needed when something is not finite. A finite sum proves every entry finite (an
        # Inf or NaN entry makes any float sum Inf or NaN) at a 25th of isfinite's cost; only
        # an overflowing sum of finite entries needs the exact check.
        screened = _SCREEN.get()
        all_finite = (
            bool(torch.isfinite(Af.sum())) or bool(torch.isfinite(Af).all())
            if B and n and screened
            else True
        )
        finite = None
        if not all_finite:
            finite = torch.isfinite(Af).all(dim=(-2, -1))
            eye = torch.eye(n, dtype=Af.dtype, device=Af.device)
            Af = torch.where(finite[:, None, None], Af, eye)
        if B == 0 or n == 0:
            part = Partial(Af.clone(), ok_status(B, Af.device))
        else:
            with torch.no_grad():
                part = self.kernel(Af)
        solve_time = time.perf_counter() - start
        sol = certify(batch, part, finite, self.name, self, screened=screened)
        sol.stats["solve_time_s"] = solve_time
        sol.stats["time_s"] = time.perf_counter() - start
        return sol

    def _invert(self, A: Tensor) -> Partial:
        raise NotImplementedError

    def _invert_scaled(self, A: Tensor, rows: Tensor, exponent: Tensor) -> Partial:
        """``kernel`` of ``S = 2^-exponent A[rows]`` (per matrix), whose inverse is
        ``2^exponent`` times that of ``A[rows]``. A method whose input carries more than A (a
        seed) overrides this to scale it alike; for the others S is just another batch."""
        return self.kernel(pow2_scale(A[rows], -exponent))


def _differentiable(method: Method, batch) -> Solution:
    """``method.invert`` of an input that takes part in autograd or a torch.func transform.

    The method runs on plain tensors inside ``_autograd._Invert``, which attaches the inverse's
    derivatives and vmap rule. The returned Solution's tensors are the Function's outputs (under
    vmap: the logical, per-slice ones); ``method`` and ``stats`` come from the physical run
    (under vmap they describe the whole physical batch, vmapped dimensions first). The physical
    run's status shape and failing indices are kept as ``_physical_status`` for
    :func:`neuralinv.api.raise_for_status`.
    """
    side = _autograd.Side()
    X, status, residual, rcond = _autograd.apply(batch.tensor, method, side)
    phys = side.solution
    sol = Solution(
        inverse=X.to(batch.out_dtype),
        status=status,
        residual=residual,
        rcond=rcond,
        method=phys.method,
        stats=phys.stats,
    )
    object.__setattr__(sol, "_physical_status", (tuple(phys.status.shape), side.indices))
    return sol


def complex_methods() -> list[str]:
    """The names of neuralinv's methods that invert complex matrices, from the class hierarchy
    (not the registry, which imports this module)."""
    found, todo = set(), list(Method.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith(__package__ + ".") and cls.takes_complex:
            found.add(cls.name)
    return sorted(found)


def refuse_complex(method: Method, dtype: torch.dtype) -> None:
    raise InputError(
        f"method {method.name!r} inverts real matrices only, got {dtype}; methods for complex "
        f"matrices: {', '.join(complex_methods())}"
    )


