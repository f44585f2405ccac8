"""The forward values of lstsq and pinv per batch element, without autograd (the Functions of
:mod:`.solve_autograd` attach derivatives): the route of each element (QR, or the truncated SVD
where R looks singular), power-of-two scaling, NaN for non-finite elements."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .. import _validate as v
from .factor import SVD_ROUTE, looks_singular, qr_factor, qr_solve, svd_solve, truncated_svd
from .scaling import exponent, eye_like, ldexp
from .transforms import any_wrapped


def lstsq_values(A: Tensor, B: Tensor, route: Tensor | None, rtol: float):
    """X = A^+ B per element of (..., m, n) and (..., m, k) batches with equal batch shapes.

    route: per element QR_ROUTE or SVD_ROUTE, or None to screen (QR, and the SVD route where R looks
    singular). Each element is scaled by a power of two first (exact), so the answer does not
    depend on the scale of A or B. Non-finite elements get NaN and rank -1.
    Returns X, rank, route (the route used).
    """
    batch = A.shape[:-2]
    m, n = A.shape[-2:]
    k = B.shape[-1]
    count = math.prod(batch)
    rank = torch.full((count,), min(m, n), dtype=torch.int64, device=A.device)
    if route is not None:
        route = route.reshape(count).to(torch.int8)
    if count == 0 or m == 0 or n == 0 or k == 0:
        # No equations or no unknowns: the minimum-norm solution is 0 (and nothing can be NaN).
        X = A.new_zeros(batch + (n, k))
        if route is None:
            route = torch.zeros(count, dtype=torch.int8, device=A.device)
        return (
            X,
            rank.zero_().reshape(batch) if min(m, n) == 0 else rank.reshape(batch),
            route.reshape(batch),
        )
    Af = A.reshape(count, m, n)
    Bf = B.reshape(count, m, k)
    static = any_wrapped(A, B, route)
    finite = torch.isfinite(Af).all(-1).all(-1) & torch.isfinite(Bf).all(-1).all(-1)
    all_finite = False if static else bool(finite.all())
    if not all_finite:
        Af = torch.where(finite[:, None, None], Af, eye_like(Af))
        Bf = torch.where(finite[:, None, None], Bf, torch.zeros_like(Bf))
    ea, eb = exponent(Af), exponent(Bf)
    As = ldexp(Af, -ea[:, None, None])
    Bs = ldexp(Bf, -eb[:, None, None])
    QR = None
    if route is None:
        QR = qr_factor(As)
        route = looks_singular(QR[1]).to(torch.int8)
    svd = route == SVD_ROUTE
    if static:
        Xv, rank_v = svd_solve(As, Bs, rtol)
        Xs = torch.where(svd[:, None, None], Xv, qr_solve(As, Bs, QR))
        rank = torch.where(svd, rank_v, rank)
    elif not bool(svd.any()):
        Xs = qr_solve(As, Bs, QR)
    elif bool(svd.all()):
        Xs, rank = svd_solve(As, Bs, rtol)
    else:
        bad = svd.nonzero().squeeze(-1)
        good = (~svd).nonzero().squeeze(-1)
        Xb, rank_bad = svd_solve(As[bad], Bs[bad], rtol)
        Xs = As.new_zeros(count, n, k).index_put((bad,), Xb)
        Xs = Xs.index_put((good,), qr_solve(As[good], Bs[good]))
        rank = rank.index_put((bad,), rank_bad)
    X = ldexp(Xs, (eb - ea)[:, None, None])
    if not all_finite:
        X = X.masked_fill(~finite[:, None, None], float("nan"))
        rank = rank.masked_fill(~finite, -1)
    return X.reshape(batch + (n, k)), rank.reshape(batch), route.reshape(batch)


def pinv_values(A: Tensor, rtol: Any, atol: Any, hermitian: bool = False) -> Tensor:
    """Truncated-SVD pseudo-inverse per element of (..., m, n), scaled by powers of two first;
    NaN for non-finite elements. rtol, atol: numbers or tensors broadcasting against the batch
    shape (per-matrix cutoffs). hermitian: A is symmetric; an eigendecomposition stands in for
    the SVD (singular values = |eigenvalues|), as numpy and torch do."""
    batch = A.shape[:-2]
    m, n = A.shape[-2:]
    count = math.prod(batch)
    if count == 0 or m == 0 or n == 0:
        return A.new_zeros(batch + (n, m))
    Af = A.reshape(count, m, n)
    finite = torch.isfinite(Af).all(-1).all(-1)
    all_finite = False if any_wrapped(A) else bool(finite.all())
    if not all_finite:
        Af = torch.where(finite[:, None, None], Af, eye_like(Af))
    e = exponent(Af)
    As = ldexp(Af, -e[:, None, None])
    real = v.real_dtype(A.dtype)
    per = lambda c: torch.as_tensor(c, dtype=real, device=A.device).expand(batch).reshape(count)  # noqa: E731
    r, a = per(rtol), ldexp(per(atol), -e)
    if hermitian:
        L, V = torch.linalg.eigh(As)
        S = L.abs()
        cut = torch.maximum(r * S.amax(-1), a).unsqueeze(-1)
        keep = S > cut
        linv = torch.where(keep, 1.0 / torch.where(keep, L, torch.ones_like(L)), torch.zeros_like(L))
        P = ldexp(V @ (linv.unsqueeze(-1) * V.mH), -e[:, None, None])
    else:
        U, sinv, Vh, _ = truncated_svd(As, r.unsqueeze(-1), a.unsqueeze(-1))
        P = ldexp(Vh.mH @ (sinv.unsqueeze(-1) * U.mH), -e[:, None, None])
    if not all_finite:
        P = P.masked_fill(~finite[:, None, None], float("nan"))
    return P.reshape(batch + (n, m))
