"""The forward values of the orthogonal projection of feature rows onto the row spaces of their
bases, without autograd: thin QR of W^T, the kept right singular vectors of a truncated SVD
where the basis looks rank-deficient, or the ridge QR of ``[W^T; sqrt(ridge) I]``."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .factor import SVD_ROUTE, looks_singular, truncated_svd
from .scaling import exponent, eye_like, ldexp
from .transforms import any_wrapped


def _apply(Q: Tensor, f: Tensor) -> Tensor:
    """``Q Q^H f`` row by row, with Q (Bq, d, k) broadcasting against f (B, d).

    Written as elementwise products and sums on purpose: a BLAS matmul may block or thread a
    batch differently at different batch sizes, changing the rounding of a sample's result;
    these reductions follow the same order for every sample whatever the batch size is.
    """
    coef = (f.unsqueeze(-1) * (Q.conj() if Q.is_complex() else Q)).sum(-2)  # (B, k)
    return (Q * coef.unsqueeze(-2)).sum(-1)


def project_values(W: Tensor, f: Tensor, route: Tensor | None, rtol: float):
    """Projection of rows f (B, d) onto the row spaces of W (Bw, r, d), Bw in {1, B}: thin QR of
    W^T, or the kept right singular vectors of a truncated SVD (cutoff ``rtol * sigma_1``) where
    ``route`` says SVD_ROUTE (route None: where R looks singular). NaN rows where f or W is not
    finite. Returns the projection and the route per basis."""
    Bw, r, d = W.shape
    finite_w = torch.isfinite(W).all(-1).all(-1)
    finite_f = torch.isfinite(f).all(-1)
    static = any_wrapped(W, f, route)
    all_finite = False if static else bool(finite_w.all()) and bool(finite_f.all())
    if not all_finite:
        W = torch.where(finite_w[:, None, None], W, eye_like(W))
        f = torch.where(finite_f[:, None], f, torch.zeros_like(f))
    Ws = ldexp(W, -exponent(W)[:, None, None])  # the row space does not change
    QR = None
    if route is None:
        QR = torch.linalg.qr(Ws.mT)
        route = looks_singular(QR[1]).to(torch.int8)
    route = route.reshape(Bw).to(torch.int8)
    svd = route == SVD_ROUTE

    def by_svd(Wp: Tensor, fp: Tensor) -> Tensor:
        _, _, Vh, keep = truncated_svd(Wp, rtol)
        return _apply(Vh.mT * keep.to(Wp.dtype).unsqueeze(-2), fp)  # dropped columns zero

    if static:
        Q = (torch.linalg.qr(Ws.mT) if QR is None else QR)[0]
        out = torch.where(svd[:, None], by_svd(Ws, f), _apply(Q, f))
    elif not bool(svd.any()):
        out = _apply((torch.linalg.qr(Ws.mT) if QR is None else QR)[0], f)
    elif bool(svd.all()):
        out = by_svd(Ws, f)
    else:
        # only reachable with a per-sample basis (Bw == B)
        bad = svd.nonzero().squeeze(-1)
        good = (~svd).nonzero().squeeze(-1)
        out = f.new_zeros(f.shape).index_put((bad,), by_svd(Ws[bad], f[bad]))
        out = out.index_put((good,), _apply(torch.linalg.qr(Ws[good].mT)[0], f[good]))
    if not all_finite:
        out = out.masked_fill(~(finite_f & finite_w)[:, None], float("nan"))
    return out, route


def project_ridge(W: Tensor, f: Tensor, ridge: float) -> Tensor:
    """``W^T (W W^T + ridge I)^-1 W f`` = ``Q1 Q1^T f`` for the QR ``[W^T; sqrt(ridge) I] = Q R``
    (Q1: Q's first d rows): smooth in W even where W loses rank, no Gram matrix formed (it
    overflows for entries ~1e155 in float64, ~1e19 in float32), bounded (||Q1|| <= 1)."""
    r, d = W.shape[-2:]
    eye = math.sqrt(ridge) * torch.eye(r, dtype=W.dtype, device=W.device)
    Q = torch.linalg.qr(torch.cat([W.mT, eye.expand(W.shape[:-2] + (r, r))], dim=-2))[0]
    out = _apply(Q[..., :d, :], f)
    finite = torch.isfinite(W).all(-1).all(-1) & torch.isfinite(f).all(-1)
    return torch.where(finite[..., None], out, float("nan"))
