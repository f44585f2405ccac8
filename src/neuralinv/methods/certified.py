"""The one place answers get certified: :func:`certify` turns a method's :class:`Partial` into the
:class:`~neuralinv.Solution` (dget03 ratio and rcond for every answer, final statuses, output
types), redoing the failed answers of extremely scaled matrices at a power-of-two scale."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from ..certify import certificate, max_exponent, pow2_scale, trusted
from ..solution import Solution, Status
from .partial import Partial, labels, no_answer

if TYPE_CHECKING:
    from .base import Method

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


def _all(mask: Tensor) -> bool:
    """``bool(mask.all())`` for a 1-D bool mask, as the minimum of its bytes: a bool reduction
    took 70 us per 100,000 on the 2-core CPU, this 3 us."""
    if mask.numel() == 0:
        return True
    return int(mask.contiguous().view(torch.uint8).amin()) != 0


def _certificate_of(A: Tensor, part: Partial, status: Tensor) -> tuple[Tensor, Tensor, Tensor, bool]:
    """``(X, ratio, rcond, flagged)``: the answers with NaN where there is none, their
    certificate (``part.certificate`` where the method computed it), and whether any status
    is not OK."""
    X = part.inverse
    # Usually every status is OK: one reduction then spares the per-code comparisons.
    flagged = bool(status.any())
    missing = False
    if flagged:
        absent = no_answer(status)
        missing = bool(absent.any())
    if missing:  # a full pass over X, so only when some answer is missing
        X = X.masked_fill(absent[:, None, None], float("nan"))
    if part.certificate is None:
        with torch.no_grad():
            res, rc = certificate(A, X)
    else:
        # Already computed on these answers; a NaN answer's certificate is NaN, as certificate()
        # would compute it from the NaN-filled X.
        res, rc = part.certificate
        if missing:
            res = res.masked_fill(absent, float("nan"))
            rc = rc.masked_fill(absent, float("nan"))
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
    none = no_answer(si)
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
