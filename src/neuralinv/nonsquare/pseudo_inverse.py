"""``pinv``: the truncated-SVD (or eigendecomposition, or ridge) pseudo-inverse of a batch,
with torch's cutoff convention, numpy's and scipy's keywords, and its rank."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import _validate as v
from .._peers import array_wrap, write_out
from .._validate import keywords_listed
from ..errors import InputError
from .factor import default_rtol, ridge_solve
from .scaling import exponent, eye_like, ldexp
from .solve_autograd import PinvFunction
from .transforms import is_wrapped


def _cutoffs(rtol: float | None, atol: float | None, m: int, n: int, dtype) -> tuple[float, float]:
    """torch.linalg.pinv's convention: cutoff ``max(atol, rtol * sigma_1)``; with only a positive
    ``atol`` given, ``rtol`` is 0; with neither, ``rtol = eps * max(m, n)``."""
    a = 0.0 if atol is None else v.positive("atol", atol, allow_zero=True)
    if rtol is None:
        r = 0.0 if a > 0 else default_rtol(m, n, dtype)
    else:
        r = v.positive("rtol", rtol, allow_zero=True)
    return r, a


def _cutoff(name: str, value: Any, batch: tuple[int, ...], device) -> Any:
    """A cutoff: None, a number >= 0, or (torch) a tensor/array of them broadcasting against
    the batch shape, one per matrix. Under torch.func.vmap over the cutoffs their values cannot
    be read: then only their dtype and shape are checked (the Function's vmap rule takes them)."""
    if value is None or not isinstance(value, (Tensor, np.ndarray)):
        return None if value is None else v.positive(name, value, allow_zero=True)
    t = torch.as_tensor(np.asarray(value) if isinstance(value, np.ndarray) else value).detach()
    if t.is_complex() or t.dtype == torch.bool:
        raise InputError(f"{name} must hold real numbers, got dtype {t.dtype}")
    t = t.to(device=device, dtype=torch.float64)
    if t.numel() and not is_wrapped(t) and not bool((torch.isfinite(t) & (t >= 0)).all()):
        raise InputError(f"{name} must hold finite numbers >= 0, got {value!r}")
    try:
        torch.broadcast_shapes(t.shape, batch)
        if len(torch.broadcast_shapes(t.shape, batch)) > len(batch):
            raise RuntimeError
    except RuntimeError:
        raise InputError(
            f"{name} has shape {tuple(t.shape)}, which does not broadcast against the batch shape {batch} of A"
        ) from None
    return t


@keywords_listed
def pinv(
    A: Any,
    rtol: Any = None,
    hermitian: bool = False,
    *,
    atol: Any = None,
    rcond: Any = None,
    ridge: float = 0.0,
    out: Any = None,
    check_finite: bool = True,
    return_rank: bool = False,
) -> Any:
    """Moore-Penrose pseudo-inverse of each matrix of a batch (..., m, n) -> (..., n, m).

    Singular values ``<= max(atol, rtol * sigma_1)`` are treated as zero (torch.linalg.pinv's
    convention and defaults: neither given -> ``rtol = eps * max(m, n)``; only a positive atol
    -> ``rtol = 0``, per matrix). ``rtol`` and ``atol`` are numbers or tensors broadcasting
    against the batch shape (one cutoff per matrix, as torch). ``rcond`` is numpy's name for
    rtol (numpy's own default, 1e-15, is not used: give it explicitly for numpy's cutoff); a
    negative rcond means no cutoff, as in numpy (exact zeros still count as zero).
    ``hermitian=True``: A is symmetric and only its lower triangle is read (numpy and torch);
    computed from an eigendecomposition. ``ridge > 0`` (keyword) returns the Tikhonov inverse
    ``(A^T A + ridge I)^-1 A^T`` instead, smooth in A (cannot be combined with rtol/atol; ridge
    is absolute, in the units of ``A^T A``). ``out=`` (torch): written into and returned.
    ``return_rank`` (scipy): return ``(pinv, rank)``, the number of kept singular values per
    matrix (-1 for NaN/Inf elements; ``min(m, n)`` with a ridge). ``check_finite`` (scipy) is
    accepted and changes nothing (see below).
    A batch element with NaN/Inf entries gets an all-NaN pseudo-inverse; the others are
    computed as usual (torch.linalg.pinv raises for NaN and returns zeros for Inf instead).
    ``pinv(c A) = pinv(A) / c`` at any scale c that does not overflow the answer.
    Gradients are finite for any rank (see :mod:`neuralinv.nonsquare`); they grow like
    ``1 / sigma_r^2`` for the smallest kept singular value sigma_r, so prefer :func:`lstsq` or a
    solve over forming a pseudo-inverse. Differentiable twice, in forward mode and under
    torch.func.vmap/jacrev/jacfwd. Numpy (and array-likes) in, numpy out (the pseudo-inverse
    and the rank; per-matrix cutoffs given as tensors do not change that); ndarray subclasses
    (np.matrix) are kept, as numpy keeps them.
    """
    wrap = array_wrap(A)
    At, numpy_in, out_dtype = v.real_array(A, "A", min_ndim=2, shape_text="(..., m, n)", complex_ok=True)
    hermitian = v.flag("hermitian", hermitian)
    v.flag("check_finite", check_finite)
    return_rank = v.flag("return_rank", return_rank)
    ridge = v.positive("ridge", ridge, allow_zero=True)
    if rcond is not None:
        if rtol is not None:
            raise InputError("give rtol or rcond (numpy's name for it), not both")
        rtol = rcond
        if isinstance(rcond, (int, float, np.integer, np.floating)) and not isinstance(rcond, bool) and rcond < 0:
            # numpy: a negative rcond is a negative cutoff, i.e. none (numpy then divides by
            # exactly zero singular values too; those stay zero here, as with rtol=0)
            rtol = 0.0
    m, n = At.shape[-2:]
    batch = tuple(At.shape[:-2])
    rtol = _cutoff("rtol" if rcond is None else "rcond", rtol, batch, At.device)
    atol = _cutoff("atol", atol, batch, At.device)
    if ridge > 0 and (rtol is not None or atol is not None):
        raise InputError(
            f"ridge > 0 regularises by itself; do not combine it with rtol/atol (got rtol={rtol!r}, atol={atol!r})"
        )
    if hermitian:
        if m != n:
            raise InputError(f"hermitian=True needs square matrices, got shape {tuple(At.shape)}")
        if ridge > 0:
            raise InputError("hermitian=True and ridge > 0 cannot be combined")
        # numpy and torch read the lower triangle only (complex: Hermitian, mirrored conjugated,
        # the imaginary part of the diagonal ignored, as eigh ignores it)
        if At.is_complex():
            low = torch.tril(At, -1)
            At = low + low.mH + torch.diag_embed(At.diagonal(dim1=-2, dim2=-1).real.to(At.dtype))
        else:
            At = torch.tril(At) + torch.tril(At, -1).mT
    if isinstance(rtol, Tensor) or isinstance(atol, Tensor):
        default = default_rtol(m, n, At.dtype)
        a = torch.zeros((), dtype=torch.float64, device=At.device) if atol is None else torch.as_tensor(atol)
        if rtol is None:
            r = torch.where(a > 0, 0.0, default) if atol is not None else torch.tensor(default)
        else:
            r = torch.as_tensor(rtol)
        r, a = r.to(v.real_dtype(At.dtype)), a.to(v.real_dtype(At.dtype))
    else:
        r, a = _cutoffs(rtol, atol, m, n, At.dtype)
    count = math.prod(batch)
    if count == 0 or m == 0 or n == 0:
        P = At.new_zeros(batch + (n, m)) + 0 * At.sum()
    elif ridge > 0:
        Af = At.reshape(count, m, n)
        eye = torch.eye(m, dtype=At.dtype, device=At.device).expand(count, m, m)
        P = ridge_solve(Af, eye, ridge).reshape(batch + (n, m))
    else:
        P = PinvFunction.apply(At, r, a, hermitian)
    P = P.to(out_dtype)
    P = wrap(P.detach().cpu().numpy()) if numpy_in else P
    P = write_out(P, out)
    if not return_rank:
        return P
    rank = _pinv_rank(At.detach(), r, a, hermitian, ridge, batch)
    return P, (rank.cpu().numpy() if numpy_in else rank)


def _pinv_rank(A: Tensor, r: Any, a: Any, hermitian: bool, ridge: float, batch: tuple[int, ...]) -> Tensor:
    """Singular values kept by :func:`pinv`'s cutoff, per matrix; -1 for non-finite ones."""
    m, n = A.shape[-2:]
    count = math.prod(batch)
    if count == 0 or m == 0 or n == 0 or ridge > 0:
        return torch.full(batch, min(m, n), dtype=torch.int64, device=A.device)
    Af = A.reshape(count, m, n)
    finite = torch.isfinite(Af).all(-1).all(-1)
    Af = torch.where(finite[:, None, None], Af, eye_like(Af))
    e = exponent(Af)
    As = ldexp(Af, -e[:, None, None])
    S = torch.linalg.eigvalsh(As).abs() if hermitian else torch.linalg.svdvals(As)
    per = lambda c: torch.as_tensor(c, dtype=S.dtype, device=A.device).expand(batch).reshape(count)  # noqa: E731
    cut = torch.maximum(per(r) * S.amax(-1), ldexp(per(a), -e))
    rank = (S > cut[:, None]).sum(-1).masked_fill(~finite, -1)
    return rank.reshape(batch)
