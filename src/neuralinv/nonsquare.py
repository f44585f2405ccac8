"""Non-square and rank-deficient inputs: least squares, pseudo-inverse, orthogonal projection.

Three routes, chosen per batch element:

* ``qr``: Householder QR of A (or of A^T for wide A). Backward stable.
* ``svd``: truncated SVD with the cutoff ``max(atol, rtol * sigma_1)``.
* ``ridge``: Tikhonov, solved as the QR of the stacked ``[A; sqrt(ridge) I]``, whose smallest
  singular value is at least ``sqrt(ridge)``: finite gradients for any A, no cutoff needed.

``auto`` uses QR and sends the elements whose R looks numerically singular (smallest
``|r_ii|`` below ``sqrt(eps)`` of the largest) to the SVD route. Unpivoted QR only *screens*
for rank deficiency (exact rank deficiency always shows up as a tiny ``r_ii``, but a moderate
``r_ii`` does not prove good conditioning); the certificate, not the screen, says whether an
answer is a least-squares solution.

Every batch element is scaled by a power of two before it is factorised (exact), so answers do
not depend on the scale of the data, and elements with NaN/Inf entries get NaN answers without
disturbing the others (torch.linalg raises a LinAlgError for the whole batch).

Derivatives (qr and svd routes): the analytic fixed-rank formula of Golub & Pereyra (the one
torch.linalg.pinv uses), NOT autograd through the factorisations: the SVD's backward has
``1 / (sigma_i^2 - sigma_j^2)`` terms that are infinite for repeated singular values (every
rank-deficient matrix has repeated zeros), although the pseudo-inverse itself is smooth there.
The formula only involves the (truncated) pinv, bounded by ``1 / cutoff``, so gradients stay
finite. It is written as autograd.Functions whose backward and jvp are differentiable torch ops
and calls of the same Functions, with vmap rules, so second derivatives, forward mode and
torch.func (vmap, jacrev, jacfwd, hessian) work. The ridge routes are plain torch ops.

Complex input (complex64/complex128) goes the same routes with conjugate transposes (``A^H``
wherever the real formulas have ``A^T``); residuals, singular values, ranks and certificates
are real, as torch and numpy return them. Gradients follow torch's convention for complex
inputs (the conjugate Wirtinger derivative, as torch.linalg.pinv/lstsq).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import _validate as v
from .certify import PASS_RATIO, eps
from .errors import InputError
from .solution import Status

_LSTSQ_METHODS = ("auto", "qr", "svd")


@dataclass(frozen=True)
class LstsqResult:
    """A least-squares solution with its certificate; unpacks like torch's and numpy's result.

    ``X, residuals, rank, singular_values = ni.lstsq(A, B)`` (and ``res[0]`` .. ``res[3]``,
    ``len(res) == 4``) give torch.linalg.lstsq's / numpy.linalg.lstsq's four values; the
    certificate fields below are attributes only.

    solution: (..., n, k) (or (..., n) for a vector right-hand side), minimising
              ``||A X - B||_F^2 + ridge ||X||_F^2`` (minimum norm among minimisers).
    residuals: numpy's and torch's ``residuals``: the squared residual norms
              ``||A X - B||_2^2`` per column, (..., k) ((..., 1) for a vector B, as numpy), where
              they apply: m > n and every element of full rank n; else empty (shape (0,)), as
              numpy returns them. Under torch.func transforms (ranks cannot be read) they are
              computed whenever m > n.
    residual: (...) the certificate: relative normal-equation residual
              ``||A^T (A X - B) + ridge X||_F / (||A||_F (||A||_F ||X||_F + ||B||_F))``.
              A backward-stable solver makes it a small multiple of eps whatever the
              conditioning; a truncated SVD leaves about ``sigma_discarded / sigma_1`` in it, so
              it fails when the discarded singular values were not negligible.
    rank:     (...) numerical rank used: ``min(m, n)`` on the qr and ridge routes (the ridge
              system always has full rank), the number of kept singular values on the svd route.
              -1 where the element's input had NaN/Inf entries (no answer).
    singular_values: (..., min(m, n)) singular values of A (numpy's ``s``), computed when first
              read (unpacking reads it); NaN for elements with NaN/Inf entries; empty under
              torch.func transforms. Not differentiable.
    method:   (...) numpy array of "qr", "svd" or "ridge": what produced each answer; "none"
              for non-finite inputs. None under torch.func transforms (vmap, jacrev, jacfwd),
              where per-element values cannot be read.
    tol:      the pass threshold for ``residual``: ``30 * max(m, n) * eps`` (LAPACK's ratio 30).
    status:   (...) integer :class:`~neuralinv.Status` codes, as ``ni.invert`` reports them:
              ``OK`` where the certificate holds, ``NONFINITE`` where A or B has NaN/Inf entries
              (the solution is NaN there), ``ILL_CONDITIONED`` where a solution was computed but
              the certificate fails (not a least-squares solution to working precision).
    """

    solution: Any
    residual: Any
    rank: Any
    method: np.ndarray | None
    tol: float
    status: Any
    residuals: Any = None
    _svd_of: Any = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> Any:
        """Per element: the normal equations hold to working precision (NaN fails)."""
        return self.residual <= self.tol

    @property
    def all_ok(self) -> bool:
        r = self.residual
        r = r.detach().cpu().numpy() if isinstance(r, Tensor) else np.asarray(r)
        return bool(np.all(r <= self.tol))

    @property
    def singular_values(self) -> Any:
        cached = self.__dict__.get("_singular_values")
        if cached is None:
            cached = _singular_values(*self._svd_of) if self._svd_of is not None else None
            object.__setattr__(self, "_singular_values", cached)
        return cached

    def _values(self) -> tuple:
        return (self.solution, self.residuals, self.rank, self.singular_values)

    def __iter__(self):
        return iter(self._values())

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            i = int(index)
            if not -4 <= i < 4:
                raise IndexError(f"LstsqResult index {i} out of range (it has 4 values)")
            if i % 4 != 3:  # only the singular values cost work
                return (self.solution, self.residuals, self.rank)[i % 4]
        return self._values()[index]


def _singular_values(Af: Tensor, batch: tuple[int, ...], out_dtype: torch.dtype, numpy_out: bool) -> Any:
    """Singular values of a flat (count, m, n) batch, NaN for non-finite elements."""
    m, n = Af.shape[-2:]
    with torch.no_grad():
        if _wrapped(Af):
            S = Af.new_zeros((0,))
        elif Af.numel() == 0:
            S = Af.new_zeros(batch + (min(m, n),))
        else:
            finite = torch.isfinite(Af).all(-1).all(-1)
            M = torch.where(finite[:, None, None], Af, _eye_like(Af))
            # complex64 in complex128 (exact input; LAPACK's cgesdd is that accurate, torch's
            # complex64 svdvals was 2 ulps off on numpy's "csingle_nsq" case)
            S = torch.linalg.svdvals(M.to(torch.complex128) if M.dtype == torch.complex64 else M)
            S = S.masked_fill(~finite[:, None], float("nan")).reshape(batch + (min(m, n),))
        S = S.to(v.real_dtype(out_dtype))
    return S.cpu().numpy() if numpy_out else S


# ---------------------------------------------------------------------------------------------
# helpers: cutoffs, exact power-of-two scaling, non-finite elements

#: Route codes carried in tensors (so that they survive torch.func transforms).
_QR, _SVD = 0, 1


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


def _exponent(M: Tensor, dims: tuple[int, ...] = (-2, -1)) -> Tensor:
    """Per element, the integer e (as a float) with ``max|M| = 2^e * [0.5, 1)``; 0 where M is
    zero or not finite. Scaling by ``2^-e`` is exact and brings the largest entry to [0.5, 1)."""
    # callers pass values without autograd; complex: the largest real or imaginary part (a
    # modulus could overflow)
    amax = (torch.view_as_real(M.resolve_conj()).abs().amax(-1) if M.is_complex() else M.abs()).amax(dims)
    e = torch.floor(torch.log2(amax)) + 1
    return torch.where(torch.isfinite(e), e, torch.zeros_like(e))


def _ldexp(x: Tensor, e: Tensor) -> Tensor:
    """``x * 2^e`` (e integral, broadcasting against x) in two halves, so that the power of two
    itself never overflows or underflows (float32 holds 2^-149 .. 2^127 only)."""
    h = torch.floor(e / 2)
    return x * torch.exp2(h) * torch.exp2(e - h)


def _eye_like(M: Tensor) -> Tensor:
    """A well-conditioned stand-in of M's shape (..., m, n) for elements that are not finite."""
    m, n = M.shape[-2:]
    return torch.eye(m, n, dtype=M.dtype, device=M.device).expand(M.shape)


def _front(x: Tensor | None, dim: int | None, size: int) -> Tensor | None:
    """For a vmap rule: the vmapped dimension first (broadcast when x is not vmapped)."""
    if x is None:
        return None
    if dim is None:
        return x.unsqueeze(0).expand((size,) + tuple(x.shape))
    return x.movedim(dim, 0)


def _wrapped(t: Tensor) -> bool:
    """Whether t is a torch.func (vmap/grad/jvp) wrapper, or a batched tensor of the vmap behind
    ``is_grads_batched``: its values cannot be read."""
    f = torch._C._functorch
    return bool(f.is_functorch_wrapped_tensor(t) or f.is_legacy_batchedtensor(t))


def _static(*ts: Tensor | None) -> bool:
    """Whether a Function's forward runs on wrapped tensors, i.e. under a vmap that does not use
    the Functions' vmap rules (``torch.autograd.grad(..., is_grads_batched=True)``, as in
    ``torch.autograd.functional.jacobian(vectorize=True)``): then the forward may not branch on
    values, and computes both routes for every element and selects with ``torch.where``."""
    return any(t is not None and _wrapped(t) for t in ts)


# ---------------------------------------------------------------------------------------------
# forward values on flat batches, without autograd (the Functions below attach derivatives)


def _qr_factor(A: Tensor) -> tuple[Tensor, Tensor]:
    """Thin QR of A (tall) or of A^H (wide)."""
    return torch.linalg.qr(A if A.shape[-2] >= A.shape[-1] else A.mH)


def _qr_solve(A: Tensor, B: Tensor, QR: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Least squares (tall) or minimum norm (wide) solution from one Householder QR."""
    Q, R = _qr_factor(A) if QR is None else QR
    if A.shape[-2] >= A.shape[-1]:
        solve = lambda Y: torch.linalg.solve_triangular(R, Q.mH @ Y, upper=True)  # noqa: E731
    else:
        # A = R^H Q^H; minimum-norm X = Q R^-H B
        solve = lambda Y: Q @ torch.linalg.solve_triangular(R.mH, Y, upper=False)  # noqa: E731
    return _refined(A, B, solve)


def _refined(A: Tensor, B: Tensor, solve) -> Tensor:
    """``solve(B)``, plus in float32 one step of mixed-precision iterative refinement:
    ``X + solve(B - A X)`` with the residual formed in float64. numpy computes float32
    problems in float64 throughout (numpy.linalg's ``_commonType``); one refinement step gets
    consistent systems (square, wide, or tall with B in A's range) to that accuracy at float32
    factorisation cost (``[[1, 2], [3, 4]] x = [2, 1]`` with an rcond: 1.7e-6 error before,
    0 after). For inconsistent tall problems the error stays at backward-stable float32 level,
    that of LAPACK's sgelsd. complex64 alike, with a complex128 residual."""
    X = solve(B)
    wide = _WIDER.get(A.dtype)
    if wide is None:
        return X
    R = (B.to(wide) - A.to(wide) @ X.to(wide)).to(A.dtype)
    return X + solve(R)


_WIDER = {torch.float32: torch.float64, torch.complex64: torch.complex128}


def _truncated_svd(A: Tensor, rtol: float, atol: Tensor | float = 0.0):
    """U, 1/S on the kept singular values (0 elsewhere), Vh, keep: cutoff max(atol, rtol s_1)."""
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)
    cut = torch.maximum(rtol * S[..., :1], torch.as_tensor(atol, dtype=S.dtype, device=S.device))
    keep = S > cut
    sinv = torch.where(keep, 1.0 / torch.where(keep, S, torch.ones_like(S)), torch.zeros_like(S))
    return U, sinv, Vh, keep


def _svd_solve_values(A: Tensor, B: Tensor, rtol: Any) -> tuple[Tensor, Tensor]:
    U, sinv, Vh, keep = _truncated_svd(A, rtol)
    X = _refined(A, B, lambda Y: Vh.mH @ (sinv.unsqueeze(-1) * (U.mH @ Y)))
    return X, keep.sum(-1)


def _r_looks_singular(R: Tensor) -> Tensor:
    """Per element: smallest |r_ii| <= sqrt(eps) * largest, or non-finite. Such elements go to
    the SVD route, which handles full rank as accurately as QR, so a loose screen costs only time."""
    d = R.detach().diagonal(dim1=-2, dim2=-1).abs()
    if d.shape[-1] == 0:
        return torch.zeros(R.shape[:-2], dtype=torch.bool, device=R.device)
    big = d.amax(-1)
    return ~torch.isfinite(d).all(-1) | (d.amin(-1) <= math.sqrt(eps(R.dtype)) * big)


def _lstsq_values(A: Tensor, B: Tensor, route: Tensor | None, rtol: float):
    """X = A^+ B per element of (..., m, n) and (..., m, k) batches with equal batch shapes.

    route: per element _QR or _SVD, or None to screen (QR, and the SVD route where R looks
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
    static = _static(A, B, route)
    finite = torch.isfinite(Af).all(-1).all(-1) & torch.isfinite(Bf).all(-1).all(-1)
    all_finite = False if static else bool(finite.all())
    if not all_finite:
        Af = torch.where(finite[:, None, None], Af, _eye_like(Af))
        Bf = torch.where(finite[:, None, None], Bf, torch.zeros_like(Bf))
    ea, eb = _exponent(Af), _exponent(Bf)
    As = _ldexp(Af, -ea[:, None, None])
    Bs = _ldexp(Bf, -eb[:, None, None])
    QR = None
    if route is None:
        QR = _qr_factor(As)
        route = _r_looks_singular(QR[1]).to(torch.int8)
    svd = route == _SVD
    if static:
        Xv, rank_v = _svd_solve_values(As, Bs, rtol)
        Xs = torch.where(svd[:, None, None], Xv, _qr_solve(As, Bs, QR))
        rank = torch.where(svd, rank_v, rank)
    elif not bool(svd.any()):
        Xs = _qr_solve(As, Bs, QR)
    elif bool(svd.all()):
        Xs, rank = _svd_solve_values(As, Bs, rtol)
    else:
        bad = svd.nonzero().squeeze(-1)
        good = (~svd).nonzero().squeeze(-1)
        Xb, rank_bad = _svd_solve_values(As[bad], Bs[bad], rtol)
        Xs = As.new_zeros(count, n, k).index_put((bad,), Xb)
        Xs = Xs.index_put((good,), _qr_solve(As[good], Bs[good]))
        rank = rank.index_put((bad,), rank_bad)
    X = _ldexp(Xs, (eb - ea)[:, None, None])
    if not all_finite:
        X = X.masked_fill(~finite[:, None, None], float("nan"))
        rank = rank.masked_fill(~finite, -1)
    return X.reshape(batch + (n, k)), rank.reshape(batch), route.reshape(batch)


def _pinv_values(A: Tensor, rtol: Any, atol: Any, hermitian: bool = False) -> Tensor:
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
    all_finite = False if _static(A) else bool(finite.all())
    if not all_finite:
        Af = torch.where(finite[:, None, None], Af, _eye_like(Af))
    e = _exponent(Af)
    As = _ldexp(Af, -e[:, None, None])
    real = v.real_dtype(A.dtype)
    per = lambda c: torch.as_tensor(c, dtype=real, device=A.device).expand(batch).reshape(count)  # noqa: E731
    r, a = per(rtol), _ldexp(per(atol), -e)
    if hermitian:
        L, V = torch.linalg.eigh(As)
        S = L.abs()
        cut = torch.maximum(r * S.amax(-1), a).unsqueeze(-1)
        keep = S > cut
        linv = torch.where(keep, 1.0 / torch.where(keep, L, torch.ones_like(L)), torch.zeros_like(L))
        P = _ldexp(V @ (linv.unsqueeze(-1) * V.mH), -e[:, None, None])
    else:
        U, sinv, Vh, _ = _truncated_svd(As, r.unsqueeze(-1), a.unsqueeze(-1))
        P = _ldexp(Vh.mH @ (sinv.unsqueeze(-1) * U.mH), -e[:, None, None])
    if not all_finite:
        P = P.masked_fill(~finite[:, None, None], float("nan"))
    return P.reshape(batch + (n, m))


def _apply(Q: Tensor, f: Tensor) -> Tensor:
    """``Q Q^H f`` row by row, with Q (Bq, d, k) broadcasting against f (B, d).

    Written as elementwise products and sums on purpose: a BLAS matmul may block or thread a
    batch differently at different batch sizes, changing the rounding of a sample's result;
    these reductions follow the same order for every sample whatever the batch size is.
    """
    coef = (f.unsqueeze(-1) * (Q.conj() if Q.is_complex() else Q)).sum(-2)  # (B, k)
    return (Q * coef.unsqueeze(-2)).sum(-1)


def _project_values(W: Tensor, f: Tensor, route: Tensor | None, rtol: float):
    """Projection of rows f (B, d) onto the row spaces of W (Bw, r, d), Bw in {1, B}: thin QR of
    W^T, or the kept right singular vectors of a truncated SVD (cutoff ``rtol * sigma_1``) where
    ``route`` says _SVD (route None: where R looks singular). NaN rows where f or W is not
    finite. Returns the projection and the route per basis."""
    Bw, r, d = W.shape
    finite_w = torch.isfinite(W).all(-1).all(-1)
    finite_f = torch.isfinite(f).all(-1)
    static = _static(W, f, route)
    all_finite = False if static else bool(finite_w.all()) and bool(finite_f.all())
    if not all_finite:
        W = torch.where(finite_w[:, None, None], W, _eye_like(W))
        f = torch.where(finite_f[:, None], f, torch.zeros_like(f))
    Ws = _ldexp(W, -_exponent(W)[:, None, None])  # the row space does not change
    QR = None
    if route is None:
        QR = torch.linalg.qr(Ws.mT)
        route = _r_looks_singular(QR[1]).to(torch.int8)
    route = route.reshape(Bw).to(torch.int8)
    svd = route == _SVD

    def by_svd(Wp: Tensor, fp: Tensor) -> Tensor:
        _, _, Vh, keep = _truncated_svd(Wp, rtol)
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


# ---------------------------------------------------------------------------------------------
# derivatives: autograd.Functions whose backward and jvp are written in differentiable torch
# ops (and calls of these Functions), so double backward, forward mode and torch.func work.
#
# All use the fixed-rank derivative of the (truncated) pseudo-inverse P = A^+ (Golub & Pereyra
# 1973; the formula torch.linalg.pinv differentiates with):
#     dP = -P dA P + P P^T dA^T (I - A P) + (I - P A) dA^T P^T P.
# It only involves P, bounded by 1 / cutoff, never the SVD's 1 / (s_i^2 - s_j^2) terms, which
# are infinite at repeated singular values where the pseudo-inverse itself is smooth. Where
# the QR route answers (full rank), P is the exact pseudo-inverse and the formula is exact.


class _Lstsq(torch.autograd.Function):
    """``X = A^+ B`` on batches (..., m, n), (..., m, k) of equal batch shape; returns
    (X, rank, route). Backward and jvp apply P and P^T by calling this Function again on A and
    A^T with the same routes (A^T has A's singular values, so the same rank is kept)."""

    @staticmethod
    def forward(A: Tensor, B: Tensor, route: Tensor | None, rtol: float):  # type: ignore[override]
        return _lstsq_values(A, B, route, rtol)

    @staticmethod
    def setup_context(ctx, inputs, output):  # type: ignore[override]
        A, B, _, rtol = inputs
        X, rank, route = output
        ctx.mark_non_differentiable(rank, route)
        ctx.save_for_backward(A, B, X, route)
        ctx.save_for_forward(A, B, X, route)
        ctx.rtol = rtol

    @staticmethod
    def backward(ctx, G: Tensor, _grank: Any, _groute: Any):  # type: ignore[override]
        A, B, X, route = ctx.saved_tensors
        rtol = ctx.rtol
        k = X.shape[-1]
        if not ctx.needs_input_grad[0]:
            gB = _Lstsq.apply(A.mH, G, route, rtol)[0] if ctx.needs_input_grad[1] else None
            return None, gB, None, None
        # dL/dB = P^T G,  dL/dA = -P^T G X^T + r (P P^T G)^T + (P^T X) ((I - P A) G)^T
        # (complex: ^H for ^T throughout)
        gB, Y = _Lstsq.apply(A.mH, torch.cat([G, X], -1), route, rtol)[0].split(k, -1)
        C, D = _Lstsq.apply(A, torch.cat([gB, A @ G], -1), route, rtol)[0].split(k, -1)
        r = B - A @ X
        gA = -gB @ X.mH + r @ C.mH + Y @ (G - D).mH
        return gA, gB if ctx.needs_input_grad[1] else None, None, None

    @staticmethod
    def jvp(ctx, dA: Tensor | None, dB: Tensor | None, _droute: Any, _drtol: Any):  # type: ignore[override]
        A, B, X, route = ctx.saved_tensors
        rtol = ctx.rtol
        rhs = torch.zeros_like(B) if dB is None else dB
        if dA is None:
            return _Lstsq.apply(A, rhs, route, rtol)[0], None, None
        # dX = P (dB - dA X - A Z + P^T dA^T r) + Z,  Z = dA^T P^T X
        k = X.shape[-1]
        r = B - A @ X
        Y, Wt = _Lstsq.apply(A.mH, torch.cat([X, dA.mH @ r], -1), route, rtol)[0].split(k, -1)
        Z = dA.mH @ Y
        dX = _Lstsq.apply(A, rhs - dA @ X - A @ Z + Wt, route, rtol)[0] + Z
        return dX, None, None

    @staticmethod
    def vmap(info, in_dims, A, B, route, rtol):  # type: ignore[override]
        # the functions are batch-agnostic: the vmapped dimension is one more batch dimension
        n = info.batch_size
        A, B = _front(A, in_dims[0], n), _front(B, in_dims[1], n)
        route = _front(route, in_dims[2], n)
        return _Lstsq.apply(A, B, route, rtol), (0, 0, 0)


class _Pinv(torch.autograd.Function):
    """Truncated-SVD pseudo-inverse of (..., m, n); derivatives from the formula above."""

    @staticmethod
    def forward(A: Tensor, rtol: Any, atol: Any, hermitian: bool = False):  # type: ignore[override]
        return _pinv_values(A, rtol, atol, hermitian)

    @staticmethod
    def setup_context(ctx, inputs, output):  # type: ignore[override]
        ctx.save_for_backward(inputs[0], output)
        ctx.save_for_forward(inputs[0], output)

    @staticmethod
    def backward(ctx, G: Tensor):  # type: ignore[override]
        A, P = ctx.saved_tensors
        Pt = P.mH
        # (complex: ^H for ^T) -P^T G P^T + (I - A P) G^T P P^T + P^T P G^T (I - P A)   (torch's pinv_backward)
        T = G.mH @ (P @ Pt)
        S = (Pt @ P) @ G.mH
        return -Pt @ G @ Pt + (T - A @ (P @ T)) + (S - (S @ P) @ A), None, None, None

    @staticmethod
    def jvp(ctx, dA: Tensor, _drtol: Any, _datol: Any, _dherm: Any = None):  # type: ignore[override]
        A, P = ctx.saved_tensors
        dAt = dA.mH
        K = dAt @ (P.mH @ P)
        L = dAt - (dAt @ A) @ P
        return -P @ dA @ P + P @ (P.mH @ L) + (K - P @ (A @ K))

    @staticmethod
    def vmap(info, in_dims, A, rtol, atol, hermitian=False):  # type: ignore[override]
        size = info.batch_size
        # per-matrix cutoffs that are vmapped move to the front with A; others broadcast
        if isinstance(rtol, Tensor) and in_dims[1] is not None:
            rtol = _front(rtol, in_dims[1], size)
        if isinstance(atol, Tensor) and in_dims[2] is not None:
            atol = _front(atol, in_dims[2], size)
        return _Pinv.apply(_front(A, in_dims[0], size), rtol, atol, hermitian), 0


def _coefficients(W: Tensor, xs: list[Tensor], route: Tensor, rtol: float) -> list[Tensor]:
    """``(W^T)^+ x`` for the rows x of each X (B, d) in xs: coefficients (B, r) of their
    projections on W's rows, from one least-squares call."""
    if W.shape[0] == 1:  # shared basis: one factorisation, all rows as right-hand sides
        C = _Lstsq.apply(W.mT, torch.cat(xs, 0).mT.unsqueeze(0), route, rtol)[0][0].mT
        return list(C.split(xs[0].shape[0], 0))
    C = _Lstsq.apply(W.mT, torch.stack(xs, -1), route, rtol)[0]
    return list(C.unbind(-1))


class _Projection(torch.autograd.Function):
    """Projection of f (B, d) onto row(W), W (Bw, r, d) with Bw in {1, B}; returns (proj, route).

    With P = W^+ W: d(P f) = P df + (I - P) dW^T W^+T f + W^+ dW (I - P) f (fixed rank), so
        dL/df = P G,   dL/dW = (W^+T f) ((I - P) G)^T + (W^+T G) ((I - P) f)^T.
    W^+T x and W^+ y are least-squares solves with W^T and W (:class:`_Lstsq`, same routes).
    """

    @staticmethod
    def forward(W: Tensor, f: Tensor, route: Tensor | None, rtol: float):  # type: ignore[override]
        return _project_values(W, f, route, rtol)

    @staticmethod
    def setup_context(ctx, inputs, output):  # type: ignore[override]
        W, f, _, rtol = inputs
        proj, route = output
        ctx.mark_non_differentiable(route)
        ctx.save_for_backward(W, f, proj, route)
        ctx.save_for_forward(W, f, proj, route)
        ctx.rtol = rtol

    @staticmethod
    def backward(ctx, G: Tensor, _groute: Any):  # type: ignore[override]
        W, f, proj, route = ctx.saved_tensors
        rtol = ctx.rtol
        PG = _Projection.apply(W, G, route, rtol)[0]
        gW = None
        if ctx.needs_input_grad[0]:
            Cf, CG = _coefficients(W, [f, G], route, rtol)
            if W.is_complex():  # dL/dW = conj(W^+T f) ((I - P) G)^T + conj(W^+T G) ((I - P) f)^T
                Cf, CG = Cf.conj(), CG.conj()
            if W.shape[0] == 1:
                gW = (Cf.mT @ (G - PG) + CG.mT @ (f - proj)).unsqueeze(0)
            else:
                gW = Cf.unsqueeze(-1) * (G - PG).unsqueeze(-2) + CG.unsqueeze(-1) * (
                    f - proj
                ).unsqueeze(-2)
        return gW, PG if ctx.needs_input_grad[1] else None, None, None

    @staticmethod
    def jvp(ctx, dW: Tensor | None, df: Tensor | None, _droute: Any, _drtol: Any):  # type: ignore[override]
        W, f, proj, route = ctx.saved_tensors
        rtol = ctx.rtol
        t = torch.zeros_like(f) if df is None else df
        if dW is None:
            return _Projection.apply(W, t, route, rtol)[0], None
        # P (df - u) + u + W^+ y  with  u = dW^T W^+T f,  y = dW (I - P) f
        # complex: the last term is (W^+)^H dW^H (I - P) f = conj(W^+ dW conj((I - P) f))
        (Cf,) = _coefficients(W, [f], route, rtol)
        q = (f - proj).conj() if W.is_complex() else f - proj
        if W.shape[0] == 1:
            u = Cf @ dW[0]
            y = q @ dW[0].mT
            Wpy = _Lstsq.apply(W, y.mT.unsqueeze(0), route, rtol)[0][0].mT
        else:
            u = (dW * Cf.unsqueeze(-1)).sum(-2)
            y = (dW * q.unsqueeze(-2)).sum(-1)
            Wpy = _Lstsq.apply(W, y.unsqueeze(-1), route, rtol)[0].squeeze(-1)
        if W.is_complex():
            Wpy = Wpy.conj()
        return _Projection.apply(W, t - u, route, rtol)[0] + u + Wpy, None

    @staticmethod
    def vmap(info, in_dims, W, f, route, rtol):  # type: ignore[override]
        n = info.batch_size
        wd, fd, rd = in_dims[:3]
        B, (Bw, r, d) = f.shape[-2], W.shape[-3:]
        f = _front(f, fd, n)
        if wd is None and rd is None and Bw == 1:
            # a basis shared by every sample of every vmapped slice: still one factorisation
            proj, rt = _Projection.apply(W, f.reshape(n * B, d), route, rtol)
            return (proj.reshape(n, B, d), rt), (0, None)
        W = _front(W, wd, n).expand(n, B, r, d).reshape(n * B, r, d)
        if route is not None:
            route = _front(route, rd, n).expand(n, B).reshape(n * B)
        proj, rt = _Projection.apply(W, f.reshape(n * B, d), route, rtol)
        rt = rt.reshape(n, B)[:, :Bw]
        return (proj.reshape(n, B, d), rt), (0, 0)


# ---------------------------------------------------------------------------------------------
# ridge routes: plain torch ops (autograd, forward mode and torch.func work through the QR)


def _ridge_solve(A: Tensor, B: Tensor, ridge: float) -> Tensor:
    """``(A^T A + ridge I)^-1 A^T B`` via the QR of a stacked matrix (condition <= that of A).

    Householder QR is safe at any scale (its norms are computed without overflow), so the
    stacked ``[A; sqrt(ridge) I]`` needs no scaling; ridge is in the units of ``A^T A``.
    Non-finite elements give NaN."""
    m, n = A.shape[-2:]
    root = math.sqrt(ridge)
    finite = torch.isfinite(A).all(-1).all(-1) & torch.isfinite(B).all(-1).all(-1)
    if m >= n:
        eye = torch.eye(n, dtype=A.dtype, device=A.device).expand(A.shape[:-2] + (n, n))
        Q, R = torch.linalg.qr(torch.cat([A, root * eye], dim=-2))
        X = torch.linalg.solve_triangular(R, Q[..., :m, :].mH @ B, upper=True)
    else:
        # wide: X = A^T (A A^T + ridge I)^-1 B, with A A^T + ridge I = R^T R
        eye = torch.eye(m, dtype=A.dtype, device=A.device).expand(A.shape[:-2] + (m, m))
        _, R = torch.linalg.qr(torch.cat([A.mH, root * eye], dim=-2))
        Y = torch.linalg.solve_triangular(R.mH, B, upper=False)
        X = A.mH @ torch.linalg.solve_triangular(R, Y, upper=True)
    return torch.where(finite[..., None, None], X, float("nan"))


def _project_ridge(W: Tensor, f: Tensor, ridge: float) -> Tensor:
    """``W^T (W W^T + ridge I)^-1 W f`` = ``Q1 Q1^T f`` for the QR ``[W^T; sqrt(ridge) I] = Q R``
    (Q1: Q's first d rows): smooth in W even where W loses rank, no Gram matrix formed (it
    overflows for entries ~1e155 in float64, ~1e19 in float32), bounded (||Q1|| <= 1)."""
    r, d = W.shape[-2:]
    eye = math.sqrt(ridge) * torch.eye(r, dtype=W.dtype, device=W.device)
    Q = torch.linalg.qr(torch.cat([W.mT, eye.expand(W.shape[:-2] + (r, r))], dim=-2))[0]
    out = _apply(Q[..., :d, :], f)
    finite = torch.isfinite(W).all(-1).all(-1) & torch.isfinite(f).all(-1)
    return torch.where(finite[..., None], out, float("nan"))


def _normal_residual(A: Tensor, B: Tensor, X: Tensor, ridge: float) -> Tensor:
    """The certificate ratio, computed on A, B, X scaled by powers of two (it is invariant under
    A -> a A, B -> b B, X -> (b / a) X, ridge -> a^2 ridge), so it neither overflows nor
    underflows at any scale of the data."""
    with torch.no_grad():
        A, B, X = A.detach(), B.detach(), X.detach()
        fro = lambda M: torch.linalg.matrix_norm(M) if M.numel() else M.new_zeros(M.shape[:-2])  # noqa: E731
        if A.numel() and B.numel():
            ea, eb = _exponent(A)[:, None, None], _exponent(B)[:, None, None]
            A, B = _ldexp(A, -ea), _ldexp(B, -eb)
            num = A.mH @ (A @ _ldexp(X, ea - eb) - B)
            if ridge:
                num = num + _ldexp(ridge * X, -ea - eb)
            X = _ldexp(X, ea - eb)
        else:
            num = A.mH @ (A @ X - B)
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


#: torch.linalg.lstsq's and scipy.linalg.lstsq's driver names -> the route they stand for here.
DRIVERS = {"gels": "qr", "gelsy": "auto", "gelsd": "svd", "gelss": "svd"}


def _driver_method(driver: Any, lapack_driver: Any, method: str) -> str:
    """``method`` after torch's ``driver=`` / scipy's ``lapack_driver=`` (see :data:`DRIVERS`)."""
    if driver is not None and lapack_driver is not None:
        raise InputError("give driver (torch) or lapack_driver (scipy), not both")
    name, key = (driver, "driver") if driver is not None else (lapack_driver, "lapack_driver")
    if name is None:
        return method
    v.one_of(key, name, tuple(DRIVERS))
    mapped = DRIVERS[name]
    if method not in ("auto", mapped):
        raise InputError(f"{key}={name!r} means method={mapped!r}; it conflicts with method={method!r}")
    return mapped


def _rcond_value(rcond: Any, cond: Any) -> float | None:
    """numpy's/torch's ``rcond`` (scipy's ``cond``): None, a cutoff >= 0, or negative for
    machine precision (LAPACK's convention, numpy's ``rcond=-1``); the caller takes eps then."""
    if rcond is not None and cond is not None:
        raise InputError("give rcond (numpy, torch) or cond (scipy), not both")
    value = rcond if rcond is not None else cond
    if value is None:
        return None
    name = "rcond" if rcond is not None else "cond"
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise InputError(f"{name} must be a number, got {value!r}")
    try:
        f = float(value)
    except (TypeError, ValueError, RuntimeError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(f):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    return f


def lstsq(
    A: Any,
    B: Any,
    rcond: float | None = None,
    *,
    ridge: float = 0.0,
    method: str = "auto",
    driver: str | None = None,
    cond: float | None = None,
    lapack_driver: str | None = None,
    check_finite: bool = True,
    overwrite_a: bool = False,
    overwrite_b: bool = False,
) -> LstsqResult:
    """Solve ``min ||A X - B||_F^2 + ridge ||X||_F^2`` for each matrix of a batch, certified.

    A: (..., m, n); B: (..., m, k) with batch dimensions broadcasting against A's, a vector
    (..., m) when its shape is A's without the last dimension, or a 1-D (m,) vector shared by
    every matrix of the batch (numpy's and scipy's rule). Returns the minimum-norm solution,
    as an :class:`LstsqResult` that unpacks like torch's and numpy's
    ``(solution, residuals, rank, singular_values)``.

    ``rcond`` (third positional, as in numpy, torch and scipy; scipy's name ``cond`` too):
    solve by SVD, treating singular values ``<= rcond * sigma_1`` as zero; negative means
    machine precision (numpy's ``rcond=-1``). None: ``method="auto"`` uses QR and moves the
    elements whose R looks singular to the SVD route, whose cutoff is then numpy's default
    ``eps * max(m, n)``. ``method="qr"`` forces QR (inf/NaN on rank deficiency; the certificate
    then fails), ``method="svd"`` the SVD. ``driver`` (torch) / ``lapack_driver`` (scipy):
    "gels" -> qr, "gelsy" -> auto, "gelsd" and "gelss" -> svd (:data:`DRIVERS`).
    ``ridge > 0``: Tikhonov regularisation (route "ridge"; ridge is absolute, in the units of
    ``A^T A``; keyword only).

    Types: numpy arrays, lists and other array-likes in -> numpy out (ndarray subclasses of B,
    e.g. np.matrix, are kept for the solution and residuals, as numpy keeps them); torch in ->
    torch out. A torch B of an integer or bool dtype is refused, as torch.linalg.lstsq refuses
    it (numpy and lists of integers compute in float64, as numpy does).
    ``check_finite``, ``overwrite_a``, ``overwrite_b`` (scipy) are accepted and change nothing:
    NaN/Inf elements always get NaN answers on their own (one pass over the data), and the
    inputs are never written.

    Batch elements with NaN/Inf in A or B get a NaN solution, rank -1, method "none" and status
    ``Status.NONFINITE``; the other elements are solved as usual (nothing is raised). Answers
    do not depend on the scale of A or B (each element is scaled by a power of two first).
    float32 solutions get one step of iterative refinement with a float64 residual.
    Differentiable (also twice, forward mode, torch.func.vmap/jacrev/jacfwd) with the
    fixed-rank derivative of the pseudo-inverse; under torch.func transforms ``method`` is None.
    """
    from ._peers import array_wrap

    wrap = array_wrap(B)
    if isinstance(B, Tensor) and not (B.dtype.is_floating_point or B.dtype.is_complex):
        raise InputError(
            f"B is a torch tensor of dtype {B.dtype}; torch.linalg.lstsq refuses integer and bool "
            f"right-hand sides, and so does neuralinv (it would silently change the precision): "
            f"pass B.to(A.dtype)"
        )
    At, numpy_in, out_a = v.real_array(A, "A", min_ndim=2, shape_text="(..., m, n)", complex_ok=True)
    Bt, numpy_b, out_b = v.real_array(
        B, "B", min_ndim=1, shape_text="(..., m, k) or (..., m)", complex_ok=True
    )
    ridge = v.positive("ridge", ridge, allow_zero=True)
    v.one_of("method", method, _LSTSQ_METHODS)
    for name, value in (("check_finite", check_finite), ("overwrite_a", overwrite_a), ("overwrite_b", overwrite_b)):
        v.flag(name, value)
    method = _driver_method(driver, lapack_driver, method)
    rcond = _rcond_value(rcond, cond)
    if ridge > 0 and (rcond is not None or method != "auto"):
        raise InputError(
            "ridge > 0 regularises by itself; do not combine it with rcond or method "
            f"(got ridge={ridge}, rcond={rcond!r}, method={method!r})"
        )
    if rcond is not None and method == "qr":
        raise InputError("rcond is an SVD cutoff; it cannot be used with method='qr' (driver 'gels')")
    if At.device != Bt.device:
        raise InputError(f"A is on {At.device} but B is on {Bt.device}")
    m, n = At.shape[-2:]
    vector = Bt.ndim == 1 or (Bt.ndim == At.ndim - 1 and tuple(Bt.shape) == tuple(At.shape[:-1]))
    if vector:
        Bt = Bt.unsqueeze(-1)
    if Bt.ndim < 2 or Bt.shape[-2] != m:
        raise InputError(
            f"B must have shape (..., {m}, k), {tuple(At.shape[:-1])} or ({m},) to match A of shape "
            f"{tuple(At.shape)}, got shape {tuple(Bt.shape) if not vector else tuple(Bt.shape[:-1])}"
        )
    dtype = torch.promote_types(At.dtype, Bt.dtype)
    At, Bt, batch = _broadcast_pair(At.to(dtype), Bt.to(dtype))
    k = Bt.shape[-1]
    count = math.prod(batch)
    Af = At.reshape(count, m, n)
    Bf = Bt.reshape(count, m, k)

    if ridge > 0:
        if count == 0 or m == 0 or n == 0 or k == 0:
            Xf = Af.new_zeros(count, n, k) + 0 * Bf.sum() * Af.sum()
        else:
            Xf = _ridge_solve(Af, Bf, ridge)
        rank = torch.full((count,), min(m, n), dtype=torch.int64, device=Af.device)
        if count and m and n and k:
            finite = torch.isfinite(Af).all(-1).all(-1) & torch.isfinite(Bf).all(-1).all(-1)
            rank = rank.masked_fill(~finite, -1)
        route = None
    else:
        forced = None
        if method == "svd" or rcond is not None:
            forced = torch.full((count,), _SVD, dtype=torch.int8, device=Af.device)
        elif method == "qr":
            forced = torch.full((count,), _QR, dtype=torch.int8, device=Af.device)
        if rcond is None:
            rtol = _default_rtol(m, n, dtype)
        else:
            rtol = eps(dtype) if rcond < 0 else rcond
        Xf, rank, route = _Lstsq.apply(Af, Bf, forced, rtol)
        if count == 0 or m == 0 or n == 0 or k == 0:
            # keep the graph (and the empty answer's zero gradient) connected to A and B
            Xf = Xf + 0 * Bf.sum() * Af.sum()

    res = _normal_residual(Af, Bf, Xf, ridge)
    tol = PASS_RATIO * max(m, n, 1) * eps(dtype)
    nonfinite = rank == -1
    status = torch.where(
        nonfinite,
        int(Status.NONFINITE),
        torch.where(res <= tol, int(Status.OK), int(Status.ILL_CONDITIONED)),
    ).to(torch.int8)
    if _wrapped(rank) or (route is not None and _wrapped(route)):
        labels = None  # inside torch.func transforms per-element values cannot be read
        full_rank = m > n
    else:
        names = np.array(["qr", "svd"], dtype=object)
        labels = (
            np.full(count, "ridge", dtype=object)
            if route is None
            else names[route.cpu().numpy().astype(np.int64)]
        )
        labels[nonfinite.cpu().numpy()] = "none"
        labels = labels.reshape(batch)
        full_rank = m > n and bool((rank == n).all())
    out_dtype = out_a if out_a == out_b else torch.promote_types(out_a, out_b)
    if full_rank:  # numpy's and torch's residuals: squared column norms of A X - B
        R = Af @ Xf - Bf
        residuals = (R.abs() if R.is_complex() else R).square().sum(-2).reshape(batch + (k,))
        residuals = residuals.to(v.real_dtype(out_dtype))
    else:
        residuals = Xf.new_zeros((0,), dtype=v.real_dtype(out_dtype))
    X = Xf.reshape(batch + (n, k))
    if vector:
        X = X.squeeze(-1)
    X = X.to(out_dtype)
    res, rank, status = res.reshape(batch), rank.reshape(batch), status.reshape(batch)
    numpy_out = numpy_in and numpy_b
    svd_of = (Af.detach(), batch, out_dtype, numpy_out)
    if numpy_out:
        return LstsqResult(
            wrap(X.detach().cpu().numpy()),
            res.cpu().numpy(),
            rank.cpu().numpy(),
            labels,
            tol,
            status.cpu().numpy(),
            wrap(residuals.detach().cpu().numpy()),
            svd_of,
        )
    return LstsqResult(X, res, rank, labels, tol, status, residuals, svd_of)


def _cutoff(name: str, value: Any, batch: tuple[int, ...], device) -> Any:
    """A cutoff: None, a number >= 0, or (torch) a tensor/array of them broadcasting against
    the batch shape, one per matrix."""
    if value is None or not isinstance(value, (Tensor, np.ndarray)):
        return None if value is None else v.positive(name, value, allow_zero=True)
    t = torch.as_tensor(np.asarray(value) if isinstance(value, np.ndarray) else value).detach()
    if t.is_complex() or t.dtype == torch.bool:
        raise InputError(f"{name} must hold real numbers, got dtype {t.dtype}")
    t = t.to(device=device, dtype=torch.float64)
    if t.numel() and not bool((torch.isfinite(t) & (t >= 0)).all()):
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
    rtol (numpy's own default, 1e-15, is not used: give it explicitly for numpy's cutoff).
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
    Gradients are finite for any rank (see the module docstring); they grow like
    ``1 / sigma_r^2`` for the smallest kept singular value sigma_r, so prefer :func:`lstsq` or a
    solve over forming a pseudo-inverse. Differentiable twice, in forward mode and under
    torch.func.vmap/jacrev/jacfwd. Numpy (and array-likes) in, numpy out; ndarray subclasses
    (np.matrix) are kept, as numpy keeps them.
    """
    from ._peers import array_wrap, write_out

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
        default = _default_rtol(m, n, At.dtype)
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
        P = _ridge_solve(Af, eye, ridge).reshape(batch + (n, m))
    else:
        P = _Pinv.apply(At, r, a, hermitian)
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
    Af = torch.where(finite[:, None, None], Af, _eye_like(Af))
    e = _exponent(Af)
    As = _ldexp(Af, -e[:, None, None])
    S = torch.linalg.eigvalsh(As).abs() if hermitian else torch.linalg.svdvals(As)
    per = lambda c: torch.as_tensor(c, dtype=S.dtype, device=A.device).expand(batch).reshape(count)  # noqa: E731
    cut = torch.maximum(per(r) * S.amax(-1), _ldexp(per(a), -e))
    rank = (S > cut[:, None]).sum(-1).masked_fill(~finite, -1)
    return rank.reshape(batch)


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
    ``rtol * sigma_1`` and a bounded analytic gradient). The projection does not depend on the
    scale of the basis (each basis is scaled by a power of two first; rtol is relative).
    ``ridge > 0`` uses the regularised solve ``W^T (W W^T + ridge I)^-1 W f`` instead (then the
    result is only nearly idempotent). The ridge is absolute, in the units of the Gram matrix
    ``W W^T`` of the basis as given, so that route does depend on the basis scale on purpose:
    ``project(F, c W, ridge=c**2 * lam) == project(F, W, ridge=lam)``. It is computed from a QR
    of ``[W^T; sqrt(ridge) I]``, without forming the Gram matrix, so it does not overflow.

    A sample whose feature row or basis has NaN/Inf entries gets a NaN row (complement too);
    the other samples are projected as usual. Differentiable twice, in forward mode and under
    torch.func.vmap/jacrev/jacfwd.

    Nothing is formed across the batch, and the per-row products avoid BLAS, so a sample's
    result is bit-for-bit the same alone or in any batch. (A layer *before* this one that mixes
    samples, e.g. BatchNorm in training mode, breaks that; a basis built from the batch would
    too.)
    """
    Ft, numpy_in, out_dtype = v.real_array(F, "F", min_ndim=1, shape_text="(..., d)", complex_ok=True)
    Wt, _, _ = v.real_array(basis, "basis", min_ndim=2, shape_text="(..., r, d)", complex_ok=True)
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
        # an empty basis spans {0}; NaN stays NaN (F - 0 is F for the complement)
        proj = torch.where(torch.isfinite(Fb).all(-1, keepdim=True), proj, float("nan"))
    else:
        fb = Fb.reshape(count, d)
        # one factorisation for a shared basis, one per sample otherwise
        W = Wt.unsqueeze(0) if Wt.ndim == 2 else Wt.expand(batch + (r, d)).reshape(count, r, d)
        if ridge > 0:
            proj = _project_ridge(W, fb, ridge)
        else:
            tol = _default_rtol(r, d, dtype) if rtol is None else rtol
            route = None
            if rtol is not None:  # an explicit cutoff means: always the SVD route
                route = torch.full((W.shape[0],), _SVD, dtype=torch.int8, device=W.device)
            proj = _Projection.apply(W, fb, route, tol)[0]
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
