"""Non-square and rank-deficient inputs: least squares, pseudo-inverse, orthogonal projection.

Three routes, chosen per batch element:

* ``qr``: Householder QR of A (or of A^T for wide A). Backward stable, and its gradient is
  autograd's QR backward, which is well defined while R is nonsingular.
* ``svd``: truncated SVD with the cutoff ``max(atol, rtol * sigma_1)``. Its gradient is the
  analytic fixed-rank formula of Golub & Pereyra (the one torch.linalg.pinv uses), NOT autograd
  through the SVD: the SVD's backward has ``1 / (sigma_i^2 - sigma_j^2)`` terms that are infinite
  for repeated singular values (every rank-deficient matrix has repeated zeros), although the
  pseudo-inverse itself is smooth there. The formula only involves the truncated pinv, which is
  bounded by ``1 / cutoff``, so gradients stay finite.
* ``ridge``: Tikhonov, solved as the QR of the stacked ``[A; sqrt(ridge) I]``, whose smallest
  singular value is at least ``sqrt(ridge)``: finite gradients for any A, no cutoff needed.

``auto`` uses QR and sends the elements whose R looks numerically singular (smallest
``|r_ii|`` below ``sqrt(eps)`` of the largest) to the SVD route. Unpivoted QR only *screens*
for rank deficiency (exact rank deficiency always shows up as a tiny ``r_ii``, but a moderate
``r_ii`` does not prove good conditioning); the certificate, not the screen, says whether an
answer is a least-squares solution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import _validate as v
from .certify import PASS_RATIO, eps
from .errors import InputError

_LSTSQ_METHODS = ("auto", "qr", "svd")


@dataclass(frozen=True)
class LstsqResult:
    """A least-squares solution with its certificate.

    solution: (..., n, k) (or (..., n) for a vector right-hand side), minimising
              ``||A X - B||_F^2 + ridge ||X||_F^2`` (minimum norm among minimisers).
    residual: (...) relative normal-equation residual
              ``||A^T (A X - B) + ridge X||_F / (||A||_F (||A||_F ||X||_F + ||B||_F))``.
              A backward-stable solver makes it a small multiple of eps whatever the
              conditioning; a truncated SVD leaves about ``sigma_discarded / sigma_1`` in it, so
              it fails when the discarded singular values were not negligible.
    rank:     (...) numerical rank used: ``min(m, n)`` on the qr and ridge routes (the ridge
              system always has full rank), the number of kept singular values on the svd route.
    method:   (...) numpy array of "qr", "svd" or "ridge": what produced each answer.
    tol:      the pass threshold for ``residual``: ``30 * max(m, n) * eps`` (LAPACK's ratio 30).
    """

    solution: Any
    residual: Any
    rank: Any
    method: np.ndarray
    tol: float

    @property
    def ok(self) -> Any:
        """Per element: the normal equations hold to working precision (NaN fails)."""
        return self.residual <= self.tol

    @property
    def all_ok(self) -> bool:
        r = self.residual
        r = r.detach().cpu().numpy() if isinstance(r, Tensor) else np.asarray(r)
        return bool(np.all(r <= self.tol))


# ---------------------------------------------------------------------------------------------
# numerics on flat batches (Bt, m, n); autograd intact


def _default_rtol(m: int, n: int, dtype: torch.dtype) -> float:
    return eps(dtype) * max(m, n)


def _cutoffs(rtol: float | None, atol: float | None, m: int, n: int, dtype) -> tuple[float, float]:
    """torch.linalg.pinv's convention: cutoff ``max(atol, rtol * sigma_1)``; with only a positive
    ``atol`` given, ``rtol`` is 0; with neither, ``rtol = eps * max(m, n)``."""
    a = 0.0 if atol is None else v.positive("atol", atol, allow_zero=True)
    if rtol is None:
        r = 0.0 if a > 0 else _default_rtol(m, n, dtype)
    else:
        r = v.positive("rtol", rtol, allow_zero=True)
    return r, a


class _TruncatedSolve(torch.autograd.Function):
    """``X = A^+ B`` through a truncated SVD, with the fixed-rank analytic gradient.

    With P the truncated pinv and r = B - A X, G = dL/dX:
        dL/dB = P^T G
        dL/dA = -P^T G X^T + r G^T P P^T + P^T X G^T (I - P A)
    (Golub & Pereyra 1973; torch's pinv_backward is the same formula with B = I). Every term is
    bounded by powers of ||P|| <= 1 / cutoff, so it is finite for any rank deficiency.
    """

    @staticmethod
    def forward(ctx, A: Tensor, B: Tensor, rtol: float, atol: float):  # type: ignore[override]
        U, S, Vh = torch.linalg.svd(A, full_matrices=False)
        cut = torch.clamp(rtol * S[..., :1], min=atol)
        keep = S > cut
        sinv = torch.where(
            keep, 1.0 / torch.where(keep, S, torch.ones_like(S)), torch.zeros_like(S)
        )
        X = Vh.mT @ (sinv.unsqueeze(-1) * (U.mT @ B))
        ctx.save_for_backward(A, B, X, U, sinv, Vh, keep)
        rank = keep.sum(-1)
        ctx.mark_non_differentiable(rank)
        return X, rank

    @staticmethod
    def backward(ctx, G: Tensor, _grank: Any):  # type: ignore[override]
        A, B, X, U, sinv, Vh, keep = ctx.saved_tensors
        V = Vh.mT
        VtG = Vh @ G  # (k, nrhs)
        PtG = U @ (sinv.unsqueeze(-1) * VtG)  # P^T G  (m, nrhs)
        gA = gB = None
        if ctx.needs_input_grad[0]:
            r = B - A @ X
            GtV = VtG.mT  # (nrhs, k)
            term2 = r @ ((GtV * sinv.square().unsqueeze(-2)) @ Vh)
            PtX = U @ (sinv.unsqueeze(-1) * (Vh @ X))
            GtIPA = G.mT - (GtV * keep.to(G.dtype).unsqueeze(-2)) @ V.mT
            gA = -PtG @ X.mT + term2 + PtX @ GtIPA
        if ctx.needs_input_grad[1]:
            gB = PtG
        return gA, gB, None, None


def _svd_solve(A: Tensor, B: Tensor, rtol: float, atol: float) -> tuple[Tensor, Tensor]:
    X, rank = _TruncatedSolve.apply(A, B, rtol, atol)
    return X, rank


def _qr_factor(A: Tensor) -> tuple[Tensor, Tensor]:
    """Thin QR of A (tall) or of A^T (wide)."""
    return torch.linalg.qr(A if A.shape[-2] >= A.shape[-1] else A.mT)


def _qr_solve(A: Tensor, B: Tensor, QR: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Least squares (tall) or minimum norm (wide) solution from one Householder QR."""
    Q, R = _qr_factor(A) if QR is None else QR
    if A.shape[-2] >= A.shape[-1]:
        return torch.linalg.solve_triangular(R, Q.mT @ B, upper=True)
    # A = R^T Q^T; minimum-norm X = Q R^-T B
    return Q @ torch.linalg.solve_triangular(R.mT, B, upper=False)


def _ridge_solve(A: Tensor, B: Tensor, ridge: float) -> Tensor:
    """``(A^T A + ridge I)^-1 A^T B`` via the QR of a stacked matrix (condition <= that of A)."""
    m, n = A.shape[-2:]
    root = math.sqrt(ridge)
    if m >= n:
        eye = torch.eye(n, dtype=A.dtype, device=A.device).expand(A.shape[:-2] + (n, n))
        Q, R = torch.linalg.qr(torch.cat([A, root * eye], dim=-2))
        return torch.linalg.solve_triangular(R, Q[..., :m, :].mT @ B, upper=True)
    # wide: X = A^T (A A^T + ridge I)^-1 B, with A A^T + ridge I = R^T R
    eye = torch.eye(m, dtype=A.dtype, device=A.device).expand(A.shape[:-2] + (m, m))
    _, R = torch.linalg.qr(torch.cat([A.mT, root * eye], dim=-2))
    Y = torch.linalg.solve_triangular(R.mT, B, upper=False)
    return A.mT @ torch.linalg.solve_triangular(R, Y, upper=True)


def _r_looks_singular(R: Tensor) -> Tensor:
    """Per element: smallest |r_ii| <= sqrt(eps) * largest, or non-finite. Such elements go to
    the SVD route, which handles full rank as accurately as QR, so a loose screen costs only time."""
    d = R.detach().diagonal(dim1=-2, dim2=-1).abs()
    if d.shape[-1] == 0:
        return torch.zeros(R.shape[:-2], dtype=torch.bool, device=R.device)
    big = d.amax(-1)
    return ~torch.isfinite(d).all(-1) | (d.amin(-1) <= math.sqrt(eps(R.dtype)) * big)


def _screen(A: Tensor) -> Tensor:
    """Which elements of a flat batch (Bt, m, n) the QR route should not take."""
    with torch.no_grad():
        M = A if A.shape[-2] >= A.shape[-1] else A.mT
        return _r_looks_singular(torch.linalg.qr(M, mode="r")[1])


def _normal_residual(A: Tensor, B: Tensor, X: Tensor, ridge: float) -> Tensor:
    with torch.no_grad():
        num = A.mT @ (A @ X - B)
        if ridge:
            num = num + ridge * X
        fro = lambda M: torch.linalg.matrix_norm(M) if M.numel() else M.new_zeros(M.shape[:-2])  # noqa: E731
        nA = fro(A)
        den = nA * (nA * fro(X) + fro(B))
        n_num = fro(num)
        ratio = n_num / den
        # A = 0 (or B = 0 with X = 0): the zero solution is exact, the ratio 0/0 means 0.
        return torch.where(den == 0, torch.where(n_num == 0, 0.0, float("inf")), ratio)


# ---------------------------------------------------------------------------------------------
# public functions


def _broadcast_pair(A: Tensor, B: Tensor) -> tuple[Tensor, Tensor, tuple[int, ...]]:
    batch_a, batch_b = A.shape[:-2], B.shape[:-2]
    try:
        batch = torch.broadcast_shapes(batch_a, batch_b)
    except RuntimeError:
        raise InputError(
            f"batch dimensions of A {tuple(A.shape)} and B {tuple(B.shape)} do not broadcast"
        ) from None
    return A.expand(batch + A.shape[-2:]), B.expand(batch + B.shape[-2:]), tuple(batch)


def lstsq(
    A: Any,
    B: Any,
    ridge: float = 0.0,
    rcond: float | None = None,
    method: str = "auto",
) -> LstsqResult:
    """Solve ``min ||A X - B||_F^2 + ridge ||X||_F^2`` for each matrix of a batch, certified.

    A: (..., m, n); B: (..., m, k) with batch dimensions broadcasting against A's, or a vector
    (..., m) when its shape is A's without the last dimension. Returns the minimum-norm solution.

    ``ridge > 0``: Tikhonov regularisation (route "ridge"). Otherwise ``rcond`` (or
    ``method="svd"``) solves by SVD, treating singular values ``<= rcond * sigma_1`` as zero
    (default rcond ``eps * max(m, n)``), and ``method="auto"`` uses QR, moving the elements whose
    R looks singular to the SVD route. ``method="qr"`` forces QR (inf/NaN on rank deficiency;
    the certificate then fails). NaN/Inf entries give NaN answers with a failing certificate.
    """
    At, numpy_in, out_a = v.real_array(A, "A", min_ndim=2, shape_text="(..., m, n)")
    Bt, numpy_b, out_b = v.real_array(B, "B", min_ndim=1, shape_text="(..., m, k) or (..., m)")
    ridge = v.positive("ridge", ridge, allow_zero=True)
    v.one_of("method", method, _LSTSQ_METHODS)
    if rcond is not None:
        v.positive("rcond", rcond, allow_zero=True)
    if ridge > 0 and (rcond is not None or method != "auto"):
        raise InputError(
            "ridge > 0 regularises by itself; do not combine it with rcond or method "
            f"(got ridge={ridge}, rcond={rcond!r}, method={method!r})"
        )
    if rcond is not None and method == "qr":
        raise InputError("rcond is an SVD cutoff; it cannot be used with method='qr'")
    if At.device != Bt.device:
        raise InputError(f"A is on {At.device} but B is on {Bt.device}")
    m, n = At.shape[-2:]
    vector = Bt.ndim == At.ndim - 1 and tuple(Bt.shape) == tuple(At.shape[:-1])
    if vector:
        Bt = Bt.unsqueeze(-1)
    if Bt.ndim < 2 or Bt.shape[-2] != m:
        raise InputError(
            f"B must have shape (..., {m}, k) or {tuple(At.shape[:-1])} to match A of shape "
            f"{tuple(At.shape)}, got shape {tuple(Bt.shape) if not vector else tuple(Bt.shape[:-1])}"
        )
    dtype = torch.promote_types(At.dtype, Bt.dtype)
    At, Bt, batch = _broadcast_pair(At.to(dtype), Bt.to(dtype))
    k = Bt.shape[-1]
    count = math.prod(batch)
    Af = At.reshape(count, m, n)
    Bf = Bt.reshape(count, m, k)

    labels = np.full(count, "qr" if method != "svd" and rcond is None else "svd", dtype=object)
    rank = torch.full((count,), min(m, n), dtype=torch.int64, device=Af.device)
    if count == 0 or m == 0 or n == 0 or k == 0:
        # No equations or no unknowns: the minimum-norm solution is 0.
        Xf = Af.new_zeros(count, n, k) + 0 * Bf.sum() * Af.sum()
        if ridge > 0:
            labels[:] = "ridge"
        if min(m, n) == 0:
            rank.zero_()
    elif ridge > 0:
        Xf = _ridge_solve(Af, Bf, ridge)
        labels[:] = "ridge"
    elif method == "svd" or rcond is not None:
        rtol = _default_rtol(m, n, dtype) if rcond is None else rcond
        Xf, rank = _svd_solve(Af, Bf, rtol, 0.0)
    elif method == "qr":
        Xf = _qr_solve(Af, Bf)
    else:
        # Factor once; the screen reads R. Only when some element is flagged is the QR redone
        # on the others (a singular R in the graph would poison their backward pass).
        QR = _qr_factor(Af)
        flag = _r_looks_singular(QR[1])
        if not bool(flag.any()):
            Xf = _qr_solve(Af, Bf, QR)
        else:
            # Solve each part only on its own elements, so no inf from a singular R enters the
            # backward pass of the other part (0 * inf = NaN), then put the pieces together.
            bad = flag.nonzero().squeeze(-1)
            good = (~flag).nonzero().squeeze(-1)
            Xs, rank_bad = _svd_solve(Af[bad], Bf[bad], _default_rtol(m, n, dtype), 0.0)
            Xf = Af.new_zeros(count, n, k).index_put((bad,), Xs)
            if good.numel():
                Xf = Xf.index_put((good,), _qr_solve(Af[good], Bf[good]))
            rank = rank.index_put((bad,), rank_bad)
            labels[flag.cpu().numpy()] = "svd"

    res = _normal_residual(Af, Bf, Xf, ridge)
    tol = PASS_RATIO * max(m, n, 1) * eps(dtype)
    X = Xf.reshape(batch + (n, k))
    if vector:
        X = X.squeeze(-1)
    out_dtype = out_a if out_a == out_b else torch.promote_types(out_a, out_b)
    X = X.to(out_dtype)
    res = res.reshape(batch)
    rank = rank.reshape(batch)
    labels = labels.reshape(batch)
    if numpy_in and numpy_b:
        return LstsqResult(
            X.detach().cpu().numpy(), res.cpu().numpy(), rank.cpu().numpy(), labels, tol
        )
    return LstsqResult(X, res, rank, labels, tol)


def pinv(A: Any, rtol: float | None = None, atol: float | None = None, ridge: float = 0.0) -> Any:
    """Moore-Penrose pseudo-inverse of each matrix of a batch (..., m, n) -> (..., n, m).

    Singular values ``<= max(atol, rtol * sigma_1)`` are treated as zero (torch.linalg.pinv's
    convention and defaults). ``ridge > 0`` returns the Tikhonov inverse
    ``(A^T A + ridge I)^-1 A^T`` instead, smooth in A (cannot be combined with rtol/atol).
    Gradients are finite for any rank (see the module docstring); they grow like
    ``1 / sigma_r^2`` for the smallest kept singular value sigma_r, so prefer :func:`lstsq` or a
    solve over forming a pseudo-inverse. Numpy in, numpy out.
    """
    At, numpy_in, out_dtype = v.real_array(A, "A", min_ndim=2, shape_text="(..., m, n)")
    ridge = v.positive("ridge", ridge, allow_zero=True)
    if ridge > 0 and (rtol is not None or atol is not None):
        raise InputError(
            f"ridge > 0 regularises by itself; do not combine it with rtol/atol (got rtol={rtol!r}, atol={atol!r})"
        )
    m, n = At.shape[-2:]
    r, a = _cutoffs(rtol, atol, m, n, At.dtype)
    batch = tuple(At.shape[:-2])
    count = math.prod(batch)
    if count == 0 or m == 0 or n == 0:
        P = At.new_zeros(batch + (n, m)) + 0 * At.sum()
    else:
        Af = At.reshape(count, m, n)
        eye = torch.eye(m, dtype=At.dtype, device=At.device).expand(count, m, m)
        if ridge > 0:
            P = _ridge_solve(Af, eye, ridge)
        else:
            P, _ = _svd_solve(Af, eye, r, a)
        P = P.reshape(batch + (n, m))
    P = P.to(out_dtype)
    return P.detach().cpu().numpy() if numpy_in else P


def _apply(Q: Tensor, f: Tensor) -> Tensor:
    """``Q Q^T f`` row by row, with Q (Bq, d, k) broadcasting against f (B, d).

    Written as elementwise products and sums on purpose: a BLAS matmul may block or thread a
    batch differently at different batch sizes, changing the rounding of a sample's result;
    these reductions follow the same order for every sample whatever the batch size is.
    """
    coef = (f.unsqueeze(-1) * Q).sum(-2)  # (B, k)
    return (Q * coef.unsqueeze(-2)).sum(-1)


class _RowSpaceProjection(torch.autograd.Function):
    """Projection of f (B, d) onto row(W), W (Bw, r, d) with Bw in {1, B}, by a truncated SVD.

    Forward: P f with P = V_k V_k^T from the kept right singular vectors. Backward from
    dP = (I - P) dW^T W^+T + W^+ dW (I - P) (fixed rank):
        dL/df = P G,   dL/dW = (W^+T f) ((I - P) G)^T + (W^+T G) ((I - P) f)^T
    bounded by ||W^+|| <= 1 / cutoff, unlike autograd through the SVD (infinite at repeated
    singular values, e.g. two zero ones).
    """

    @staticmethod
    def forward(ctx, W: Tensor, f: Tensor, rtol: float):  # type: ignore[override]
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        keep = S > rtol * S[..., :1]
        Q = Vh.mT * keep.to(W.dtype).unsqueeze(-2)  # (Bw, d, k), dropped columns zero
        proj = _apply(Q, f)
        sinv = torch.where(
            keep, 1.0 / torch.where(keep, S, torch.ones_like(S)), torch.zeros_like(S)
        )
        ctx.save_for_backward(U, sinv, Vh, Q, f, proj)
        return proj

    @staticmethod
    def backward(ctx, G: Tensor):  # type: ignore[override]
        U, sinv, Vh, Q, f, proj = ctx.saved_tensors
        PG = _apply(Q, G)
        gW = None
        if ctx.needs_input_grad[0]:
            # W^+T x = U diag(sinv) Vh x
            def wpt(x: Tensor) -> Tensor:
                return (U @ (sinv * (Vh @ x.unsqueeze(-1)).squeeze(-1)).unsqueeze(-1)).squeeze(-1)

            gW = wpt(f).unsqueeze(-1) * (G - PG).unsqueeze(-2) + wpt(G).unsqueeze(-1) * (
                f - proj
            ).unsqueeze(-2)
            if U.shape[0] == 1 and gW.shape[0] != 1:
                gW = gW.sum(0, keepdim=True)
        return gW, PG if ctx.needs_input_grad[1] else None, None


def _project_rows(W: Tensor, f: Tensor, rtol: float | None) -> Tensor:
    """Projection of rows f (B, d) onto the row spaces of W (Bw, r, d), Bw in {1, B}: thin QR
    where W's R looks nonsingular, the truncated SVD route elsewhere (or everywhere with rtol)."""
    count, r, d = W.shape
    tol = _default_rtol(r, d, W.dtype) if rtol is None else rtol
    if rtol is not None:  # an explicit cutoff means: always the SVD route
        return _RowSpaceProjection.apply(W, f, tol)
    Q, R = torch.linalg.qr(W.mT)
    flag = _r_looks_singular(R)
    if not bool(flag.any()):
        return _apply(Q, f)
    if bool(flag.all()):
        return _RowSpaceProjection.apply(W, f, tol)
    # only reachable with a per-sample basis (Bw == B): each part on its own elements, so no
    # inf from a singular R reaches the other part's backward pass
    bad = flag.nonzero().squeeze(-1)
    good = (~flag).nonzero().squeeze(-1)
    out = f.new_zeros(f.shape).index_put((bad,), _RowSpaceProjection.apply(W[bad], f[bad], tol))
    return out.index_put((good,), _apply(torch.linalg.qr(W[good].mT)[0], f[good]))


def _project_gram(W: Tensor, f: Tensor, ridge: float) -> Tensor:
    """``W^T (W W^T + ridge I)^-1 W f``: smooth in W even when W loses rank. W (Bw, r, d)."""
    r = W.shape[-2]
    gram = (W.unsqueeze(-2) * W.unsqueeze(-3)).sum(-1)
    gram = gram + ridge * torch.eye(r, dtype=W.dtype, device=W.device)
    L = torch.linalg.cholesky(gram)
    Wf = (W * f.unsqueeze(-2)).sum(-1)  # (B, r)
    coef = torch.cholesky_solve(Wf.unsqueeze(-1), L)  # (B, r, 1)
    return (W * coef).sum(-2)


def project(
    F: Any,
    basis: Any,
    complement: bool = False,
    ridge: float = 0.0,
    rtol: float | None = None,
) -> Any:
    """Orthogonal projection of each feature row onto the span of its basis rows.

    F: (..., d) feature rows. basis: (..., r, d), r rows spanning the subspace; its batch
    dimensions broadcast against F's, so a (r, d) basis (e.g. a model parameter) is shared and a
    (batch, r, d) basis is per sample. ``complement=True`` projects onto the orthogonal complement
    instead (``F - projection``).

    Each sample is projected on its own, from a thin QR of its basis (elements whose basis looks
    rank-deficient, or all when ``rtol`` is given, use a truncated SVD with cutoff
    ``rtol * sigma_1`` and a bounded analytic gradient); ``ridge > 0`` uses the regularised Gram
    solve ``W^T (W W^T + ridge I)^-1 W f`` instead (then the result is only nearly idempotent).
    Nothing is formed across the batch, and the per-row products avoid BLAS, so a sample's
    result is bit-for-bit the same alone or in any batch. (A layer *before* this one that mixes
    samples, e.g. BatchNorm in training mode, breaks that; a basis built from the batch would
    too.)
    """
    Ft, numpy_in, out_dtype = v.real_array(F, "F", min_ndim=1, shape_text="(..., d)")
    Wt, _, _ = v.real_array(basis, "basis", min_ndim=2, shape_text="(..., r, d)")
    ridge = v.positive("ridge", ridge, allow_zero=True)
    if rtol is not None:
        v.positive("rtol", rtol, allow_zero=True)
        if ridge > 0:
            raise InputError("give either ridge or rtol, not both")
    if Ft.shape[-1] != Wt.shape[-1]:
        raise InputError(
            f"F's feature dimension {Ft.shape[-1]} (shape {tuple(Ft.shape)}) differs from basis's "
            f"{Wt.shape[-1]} (shape {tuple(Wt.shape)}); basis rows must have length d"
        )
    if Ft.device != Wt.device:
        raise InputError(f"F is on {Ft.device} but basis is on {Wt.device}")
    try:
        batch = tuple(torch.broadcast_shapes(Ft.shape[:-1], Wt.shape[:-2]))
    except RuntimeError:
        raise InputError(
            f"batch dimensions of F {tuple(Ft.shape)} and basis {tuple(Wt.shape)} do not broadcast"
        ) from None
    dtype = torch.promote_types(Ft.dtype, Wt.dtype)
    Ft, Wt = Ft.to(dtype), Wt.to(dtype)
    r, d = Wt.shape[-2:]
    count = math.prod(batch)
    Fb = Ft.expand(batch + (d,))
    if count == 0 or d == 0 or r == 0:
        proj = Fb * 0 + 0 * Wt.sum()
    else:
        fb = Fb.reshape(count, d)
        # one factorisation for a shared basis, one per sample otherwise
        W = Wt.unsqueeze(0) if Wt.ndim == 2 else Wt.expand(batch + (r, d)).reshape(count, r, d)
        proj = _project_gram(W, fb, ridge) if ridge > 0 else _project_rows(W, fb, rtol)
        proj = proj.reshape(batch + (d,))
    out = Fb - proj if complement else proj
    out = out.to(out_dtype)
    return out.detach().cpu().numpy() if numpy_in else out


class OrthogonalProjection(nn.Module):
    """:func:`project` as a layer.

    ``OrthogonalProjection(complement=True)(F, basis)`` projects each row of F onto the
    orthogonal complement of its own basis rows (per sample, e.g. another branch's features).
    ``OrthogonalProjection(dim=d, rank=r)`` owns a learnable (r, d) basis, shared by all samples.
    Batch-size agnostic either way; has no batch statistics.
    """

    def __init__(
        self,
        dim: int | None = None,
        rank: int | None = None,
        *,
        complement: bool = False,
        ridge: float = 0.0,
        rtol: float | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.complement = bool(complement)
        self.ridge = v.positive("ridge", ridge, allow_zero=True)
        self.rtol = rtol
        if (dim is None) != (rank is None):
            raise InputError(
                f"give both dim and rank for a learnable basis, or neither (got dim={dim!r}, rank={rank!r})"
            )
        if dim is not None:
            d = v.int_at_least("dim", dim, 1)
            k = v.int_at_least("rank", rank, 1)
            init = torch.randn(k, d, generator=generator) / math.sqrt(d)
            self.basis = nn.Parameter(init)
        else:
            self.register_parameter("basis", None)

    def forward(self, F: Tensor, basis: Tensor | None = None) -> Tensor:
        W = basis if basis is not None else self.basis
        if W is None:
            raise InputError(
                "OrthogonalProjection has no basis of its own: call it as layer(F, basis)"
            )
        return project(F, W, complement=self.complement, ridge=self.ridge, rtol=self.rtol)

    def extra_repr(self) -> str:
        own = "" if self.basis is None else f"basis={tuple(self.basis.shape)}, "
        return f"{own}complement={self.complement}, ridge={self.ridge}"
