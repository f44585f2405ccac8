"""What every method shares: the Method base class and the one place answers get certified.

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
import math
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from .. import _autograd
from .._validate import check_flags, square_batch
from ..certify import certificate, max_exponent, pow2_scale, trusted
from ..errors import InputError
from ..solution import Solution, Status

#: Statuses for which no inverse exists or was computed: the returned inverse is NaN there.
NO_ANSWER = (Status.SINGULAR, Status.NONFINITE, Status.NOT_SPD)

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


@dataclass
class Partial:
    """A method's raw answer on a flat (B, n, n) batch, before certification.

    status holds the failures the method detected itself (SINGULAR, NOT_CONVERGED, ...), OK
    elsewhere; method is None when every answer came from the method itself, else a (B,) numpy
    array of names (fallbacks). certificate, when a method already computed it, is
    ``certify.certificate(A, inverse)``, i.e. (residual ratio, rcond) of exactly these answers:
    ``Method.invert`` then reuses it instead of certifying a second time. Whoever changes
    ``inverse`` afterwards must update or drop it (``fill_from`` does).
    """

    inverse: Tensor
    status: Tensor
    method: np.ndarray | None = None
    stats: dict = field(default_factory=dict)
    certificate: tuple[Tensor, Tensor] | None = None


def ok_status(B: int, device: torch.device) -> Tensor:
    return torch.zeros(B, dtype=torch.int8, device=device)


def labels(shape: int | tuple[int, ...], name: str) -> np.ndarray:
    """An object array of method names, all ``name``.

    Filled by assignment: ``np.full(shape, name, dtype=object)`` took 9 ms for 100,000 labels,
    more than the whole compiled 3x3 inversion (docs/performance.md).
    """
    out = np.empty(shape, dtype=object)
    out[...] = name
    return out


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


#: Failed answers of matrices whose largest entry lies in [2^-L, 2^L], L = maxexp /
#: SAFE_EXPONENT_DIVISOR (float32 2^±16, float64 2^±128), are not redone at another scale:
#: every method's arithmetic stays in the normal range there (the highest power of the entries
#: formed is the 4x4 determinant's, degree 4), so for the scale-equivariant methods (all but a
#: learned network) a power-of-two scaling would change no bit of the answer.
SAFE_EXPONENT_DIVISOR = 8


def rescale_extreme_failures(
    method: Method, A: Tensor, part: Partial, failed: Tensor
) -> tuple[Tensor, Partial] | None:
    """Redo, on ``2^-e A`` (largest entry in [0.5, 1)), the failed answers of extremely scaled A.

    Scale should not decide a status: a determinant of 1e-100 entries underflows, a norm of 1e308
    entries overflows. ``failed`` marks the matrices whose answer failed (any status but OK /
    OUT_OF_REGION, or a certificate that does not hold; finite input only). Those whose largest
    entry lies outside the safe range ``[2^-L, 2^L]`` are inverted again at scale 2^-e (exact:
    a power of two), and ``2^-e inv(2^-e A)``, which can over- or underflow only where the
    inverse itself is not representable, is their answer, with the redo's own status. Returns
    the redone rows and their Partial (inverse already scaled back), or None when there are
    none; answers that passed are never touched, so ordinary input pays one check.
    """
    if not bool(failed.any()):
        return None
    idx = failed.nonzero().squeeze(-1)
    e = max_exponent(A[idx])
    limit = math.frexp(torch.finfo(A.dtype).max)[1] // SAFE_EXPONENT_DIVISOR
    far = e.abs() > limit
    if not bool(far.any()):
        return None
    idx, e = idx[far], e[far]
    with torch.no_grad():
        sub = method._invert_scaled(A, idx, e)
    sub.inverse = pow2_scale(sub.inverse.to(part.inverse.dtype), -e)
    sub.certificate = None  # it was of the scaled pair: Method.invert certifies A's answer
    return idx, sub


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


def certify(
    batch,
    part: Partial,
    finite: Tensor | None,
    name: str,
    method: Method | None = None,
    *,
    screened: bool = True,
) -> Solution:
    """Residual ratio and rcond for every answer, final status codes, output types.

    finite: which input matrices are finite (None: all of them, or not screened).
    method: the method that produced ``part``; given, the failed answers of extremely scaled
    matrices are redone at a power-of-two scale (:func:`rescale_extreme_failures`).
    screened: False when the input was not screened for NaN/Inf (:func:`unscreened`): where
    some answer fails, the input is checked then, and non-finite matrices get NONFINITE.
    """
    A = batch.flat
    status = part.status
    if finite is not None:
        status = torch.where(finite, status, int(Status.NONFINITE))
    X, res, rc, flagged = _certificate_of(A, part, status)
    good = trusted(res, rc, A.shape[-1], A.dtype)
    if not screened and not _all(good):
        finite = torch.isfinite(A).all(dim=-1).all(dim=-1)
        if not _all(finite):
            bad = ~finite
            status = torch.where(finite, status, int(Status.NONFINITE)).to(torch.int8)
            X = X.masked_fill(bad[:, None, None], float("nan"))
            res, rc = res.masked_fill(bad, float("nan")), rc.masked_fill(bad, float("nan"))
            flagged = True
    if method is not None and (flagged or not _all(good)):
        failed = ~good
        if flagged:
            usable = (status == int(Status.OK)) | (status == int(Status.OUT_OF_REGION))
            failed |= ~usable
            if finite is not None:
                failed &= finite
        redo = rescale_extreme_failures(method, A, part, failed)
        if redo is not None:
            part, X, status, res, rc = _merge_rows(A, part, X, status, res, rc, *redo, method.name)
            good = trusted(res, rc, A.shape[-1], A.dtype)
            flagged = bool(status.any())
    if flagged:
        bad = (status == int(Status.OK)) & ~good
        status = torch.where(bad, int(Status.ILL_CONDITIONED), status).to(torch.int8)
    else:
        status = (~good).to(torch.int8) * int(Status.ILL_CONDITIONED)
    X = X.reshape(batch.tensor.shape)
    if part.method is None:
        names = labels(batch.batch_shape, name)
    else:
        names = np.asarray(part.method, dtype=object).reshape(batch.batch_shape)
    stats = dict(part.stats)
    stats.setdefault("method", name)
    return Solution(
        inverse=batch.to_output(X, matrices=True),
        status=batch.to_output(status, matrices=False),
        residual=batch.to_output(res, matrices=False),
        rcond=batch.to_output(rc, matrices=False),
        method=names,
        stats=stats,
    )


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


def _all(mask: Tensor) -> bool:
    """``bool(mask.all())`` for a 1-D bool mask, as the minimum of its bytes: a bool reduction
    took 70 us per 100,000 on the 2-core CPU, this 3 us."""
    if mask.numel() == 0:
        return True
    return int(mask.contiguous().view(torch.uint8).amin()) != 0


def _no_answer(status: Tensor) -> Tensor:
    no_answer = torch.zeros(status.shape, dtype=torch.bool, device=status.device)
    for code in NO_ANSWER:
        no_answer |= status == int(code)
    return no_answer


def _certificate_of(A: Tensor, part: Partial, status: Tensor) -> tuple[Tensor, Tensor, Tensor, bool]:
    """``(X, ratio, rcond, flagged)``: the answers with NaN where there is none, their
    certificate (``part.certificate`` where the method computed it), and whether any status
    is not OK."""
    X = part.inverse
    # Usually every status is OK: one reduction then spares the per-code comparisons.
    flagged = bool(status.any())
    missing = False
    if flagged:
        no_answer = _no_answer(status)
        missing = bool(no_answer.any())
    if missing:  # a full pass over X, so only when some answer is missing
        X = X.masked_fill(no_answer[:, None, None], float("nan"))
    if part.certificate is None:
        with torch.no_grad():
            res, rc = certificate(A, X)
    else:
        # Already computed on these answers; a NaN answer's certificate is NaN, as certificate()
        # would compute it from the NaN-filled X.
        res, rc = part.certificate
        if missing:
            res = res.masked_fill(no_answer, float("nan"))
            rc = rc.masked_fill(no_answer, float("nan"))
    return X, res, rc, flagged


def _merge_rows(
    A: Tensor,
    part: Partial,
    X: Tensor,
    status: Tensor,
    res: Tensor,
    rc: Tensor,
    idx: Tensor,
    sub: Partial,
    name: str,
) -> tuple[Partial, Tensor, Tensor, Tensor, Tensor]:
    """Rows ``idx`` of the answers, statuses and certificate replaced by ``sub``'s (new tensors:
    the method's own are left alone), the certificate of those rows computed afresh. Labels
    and per-matrix stats (iterations) of those rows come from ``sub``."""
    Xi, si = sub.inverse, sub.status.to(status.dtype)
    none = _no_answer(si)
    Xi = Xi.masked_fill(none[:, None, None], float("nan"))
    with torch.no_grad():
        ri, ci = certificate(A[idx], Xi)
    X, status, res, rc = X.clone(), status.clone(), res.clone(), rc.clone()
    X[idx], status[idx], res[idx], rc[idx] = Xi, si, ri.to(res.dtype), ci.to(rc.dtype)
    names = part.method
    if sub.method is not None or names is not None:
        names = labels(X.shape[0], name) if names is None else names.copy()
        names[idx.cpu().numpy()] = name if sub.method is None else sub.method
    stats = dict(part.stats)
    B = X.shape[0]
    for key, value in sub.stats.items():
        old = stats.get(key)
        if isinstance(old, Tensor) and isinstance(value, Tensor) and old.shape[:1] == (B,):
            if value.shape[:1] == idx.shape:
                stats[key] = old.clone()
                stats[key][idx] = value.to(old.dtype)
    stats["rescaled"] = int(idx.numel())
    return Partial(X, status, names, stats), X, status, res, rc


def fill_from(
    A: Tensor, part: Partial, mask: Tensor, method: Method, own_name: str, *, in_place: bool = False
) -> Partial:
    """Replace the answers of ``part`` where ``mask`` holds by ``method``'s answers.

    Used for certified fallbacks: ``method`` runs only on the masked matrices, and the returned
    Partial records which answers came from it. ``part`` is left as it was unless ``in_place``,
    which writes into its tensors (for a caller that owns them: no copy of the whole batch).
    """
    idx = mask.nonzero().squeeze(-1)
    if idx.numel() == 0:
        return part
    sub = method.kernel(A[idx])
    inverse = part.inverse if in_place else part.inverse.clone()
    inverse[idx] = sub.inverse.to(inverse.dtype)
    status = part.status if in_place else part.status.clone()
    status[idx] = sub.status
    if part.method is None:
        names = labels(A.shape[0], own_name)
    else:
        names = part.method if in_place else part.method.copy()
    names[idx.cpu().numpy()] = method.name if sub.method is None else sub.method
    stats = dict(part.stats)
    stats["fallbacks"] = stats.get("fallbacks", 0) + int(idx.numel())
    cert = None
    if part.certificate is not None:
        # Only the replaced rows need a new certificate.
        same = sub.certificate is not None and sub.inverse.dtype == inverse.dtype
        with torch.no_grad():
            sub_cert = sub.certificate if same else certificate(A[idx], inverse[idx])
        cert = part.certificate if in_place else tuple(c.clone() for c in part.certificate)
        for c, s in zip(cert, sub_cert):
            c[idx] = s.to(c.dtype)
    return Partial(inverse, status, names, stats, cert)
