"""Certificates: how far an answer is from being an inverse, and how close A is to singular.

All functions are batched over leading dimensions and computed in the working dtype of their
inputs, as LAPACK's test routines do (dget03 forms ``I - X A`` in working precision).

Scale: the ratio and rcond do not change when A is multiplied by a power of two and X divided by
it, and :func:`certificate` computes them so that they do not over- or underflow either, for any
A and X whose entries are finite (``n ||A||_1`` alone overflows for ``A = 1e308 I``): the product
of the norms comes before ``n eps`` wherever the dget03 order would leave the normal range, and
a matrix whose 1-norm overflows is certified on the exactly rescaled pair ``(2^-e A, 2^e X)``.

Complex matrices (complex64/complex128) are certified alike, as LAPACK's zget03 does: 1-norms
are largest column sums of the moduli ``|a_ij|``, eps is that of the real counterpart
(complex64: float32's), and the ratio, rcond and sigma_min are real tensors.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._validate import real_dtype
from .kernels.native import certificate_norms

#: LAPACK's pass threshold for the dget03 ratio.
PASS_RATIO = 30.0

#: Up to this size norms and certificates take unrolled / entry-major fast paths (same values
#: up to summation order; measured in docs/performance.md).
SMALL_N = 4
_CHUNK = 16384
#: From this size the norms come from the native kernel (kernels.native.certificate_norms) on
#: CPU: one pass per norm, no batch-sized temporaries (measured in docs/performance.md).
NATIVE_NORMS_MIN_N = 8


def eps(dtype: torch.dtype) -> float:
    """Machine epsilon of a floating dtype."""
    return float(torch.finfo(dtype).eps)


def identity_residual(A: Tensor, X: Tensor) -> Tensor:
    """``I - X A`` for batches of square matrices."""
    if X.shape == A.shape:
        # One fused pass (C = I - X A in the gemm) instead of product, negation and diagonal
        # update: measured 1.2-3.4x faster on CPU for n = 8 .. 32 (docs/performance.md).
        # Every batch shape goes through the same kernel, so a matrix's residual does not
        # depend on the shape of the batch it came in.
        n = A.shape[-1]
        B = math.prod(A.shape[:-2])
        A3, X3 = A.reshape(B, n, n), X.reshape(B, n, n)
        eye = torch.eye(n, dtype=A.dtype, device=A.device).expand_as(A3)
        return torch.baddbmm(eye, X3, A3, alpha=-1).reshape(A.shape)
    E = -(X @ A)
    E.diagonal(dim1=-2, dim2=-1).add_(1)
    return E


def norm1(M: Tensor) -> Tensor:
    """Induced 1-norm (largest absolute column sum); 0 for 0x0 matrices."""
    n = M.shape[-1]
    if n == 0:
        return M.new_zeros(M.shape[:-2], dtype=real_dtype(M.dtype))
    if n <= SMALL_N:
        # Torch reduces over a middle dimension of size <= 4 slowly; n strided adds do not.
        # Same value up to the order of the n additions; NaN propagates through maximum too.
        cols = M[..., 0, :].abs()
        for i in range(1, n):
            cols = cols + M[..., i, :].abs()
        out = cols[..., 0]
        for j in range(1, n):
            out = torch.maximum(out, cols[..., j])
        return out
    return M.abs().sum(dim=-2).amax(dim=-1)


def residual_ratio(A: Tensor, X: Tensor) -> Tensor:
    """LAPACK's dget03 ratio ``||I - X A||_1 / (n ||A||_1 ||X||_1 eps)``; < 30 passes.

    NaN where X is not finite. 0 for 0x0 matrices. A zero denominator (A = 0 or X = 0 with a
    nonzero numerator) gives +inf, which never passes; so does an overflowing one (a diverged
    X with ``||X||_1 = inf`` would otherwise score 0).
    """
    return certificate(A, X)[0]


def certificate(A: Tensor, X: Tensor) -> tuple[Tensor, Tensor]:
    """``(residual_ratio(A, X), rcond(A, X))`` at once, sharing the norms of A and X."""
    n = A.shape[-1]
    if n == 0:
        real = real_dtype(A.dtype)
        return A.new_zeros(A.shape[:-2], dtype=real), A.new_ones(A.shape[:-2], dtype=real)
    native = None if n < NATIVE_NORMS_MIN_N else certificate_norms(A, X)
    if native is not None:
        num, nA, nX = native
    elif n <= SMALL_N and A.shape == X.shape:
        num, nA, nX = _entry_major_norms(A, X)
    else:
        nA, nX = norm1(A), norm1(X)
        num = norm1(identity_residual(A, X))
    den = n * nA * nX * eps(A.dtype)
    if den.numel():
        # Ordinary norms: the dget03 denominator is a normal number everywhere, and the ratio is
        # LAPACK's, at the cost of one reduction (no per-element checks; NaN goes the long way).
        low, high = torch.aminmax(den)
        if float(low) >= torch.finfo(A.dtype).tiny and float(high) <= torch.finfo(A.dtype).max:
            return _ratio(num, den), 1.0 / (nA * nX)
    if bool(torch.isinf(nA).any()):
        return _rescaled_certificate(A, X, nA, num, nX)
    return ratio_from_norms(num, nA, nX, n, A.dtype), 1.0 / (nA * nX)


def ratio_from_norms(num: Tensor, nA: Tensor, nX: Tensor, n: int, dtype: torch.dtype) -> Tensor:
    """The dget03 ratio ``num / (n ||A||_1 ||X||_1 eps)`` from the three norms, without overflow.

    The denominator is formed in dget03's order, ``((n ||A||) ||X||) eps``, where that is a
    normal number, so that ordinary input keeps LAPACK's rounding; where it is not
    (``||A||_1 = 1e308`` makes ``n ||A||_1`` overflow; tiny norms underflow) it is
    ``(||A|| ||X||) (n eps)``, which leaves the normal range only when ``||A|| ||X||`` (about
    cond(A)) does, i.e. when rcond fails anyway. Zero and overflowing denominators are handled
    by :func:`_ratio` as before (+inf, never passing). Elementwise and branch-free, for
    compiled kernels too.
    """
    e = eps(dtype)
    den = n * nA * nX * e
    normal = (den >= torch.finfo(dtype).tiny) & (den <= torch.finfo(dtype).max)
    den = torch.where(normal, den, (nA * nX) * (n * e))
    return _ratio(num, den)


def _rescaled_certificate(
    A: Tensor, X: Tensor, nA: Tensor, num: Tensor, nX: Tensor
) -> tuple[Tensor, Tensor]:
    """:func:`certificate` where some ``||A||_1`` overflowed although A may be finite.

    ``(2^-e A)(2^e X) = X A`` exactly (powers of two; e from A's largest entry), so these
    matrices are certified on the rescaled pair, whose norms are moderate; the others keep
    their values.
    """
    n = A.shape[-1]
    rows = (torch.isinf(nA) & torch.isfinite(A).flatten(-2).all(-1)).nonzero(as_tuple=True)
    if rows[0].numel():
        Ar, Xr = A[rows], X[rows]
        e = max_exponent(Ar)
        As, Xs = pow2_scale(Ar, -e), pow2_scale(Xr, e)
        num, nA, nX = num.clone(), nA.clone(), nX.clone()
        nA[rows], nX[rows] = norm1(As), norm1(Xs)
        num[rows] = norm1(identity_residual(As, Xs))
    return ratio_from_norms(num, nA, nX, n, A.dtype), 1.0 / (nA * nX)


def max_exponent(A: Tensor) -> Tensor:
    """Per matrix, the integer e with ``max |a_ij|`` in ``[2^(e-1), 2^e)`` (0 for a zero matrix):
    ``2^-e A`` has its largest entry in [0.5, 1). Shape: A's batch shape, int32.
    Complex A: the largest real or imaginary part (no modulus that could overflow), so
    ``2^-e A`` has its largest modulus in [0.5, sqrt(2))."""
    if A.is_complex():
        A = torch.view_as_real(A.resolve_conj()).flatten(-2)
    big = A.abs().flatten(-2).amax(-1) if A.numel() else A.new_zeros(A.shape[:-2])
    return torch.frexp(big).exponent


def pow2_scale(M: Tensor, e: Tensor) -> Tensor:
    """``M * 2^e`` per matrix (e: integer, M's batch shape): exact unless the result leaves the
    normal range (it rounds to subnormal / zero, or overflows to inf, as a product would).

    Two half steps, so that no factor of two itself over- or underflows however ldexp forms it
    (scaling a float32 matrix of subnormal entries takes 2^149, beyond float32's range).
    """
    e = e.to(torch.int32)[..., None, None]
    half = torch.div(e, 2, rounding_mode="floor")
    return torch.ldexp(torch.ldexp(M, half), e - half).to(M.dtype)


def trusted(ratio: Tensor, rc: Tensor, n: int, dtype: torch.dtype) -> Tensor:
    """Whether an answer is certified: ratio < 30, rcond >= eps, and ``||I - X A||_1 < 1``.

    The last condition is ``ratio * n * eps < rcond`` (same norms, no extra work). It proves
    A nonsingular (X A = I - E with ||E|| < 1 is invertible) and bounds the relative error of
    X by ``||I - X A||_1``. Without it an exactly singular A (for which ``||I - X A|| >= 1``
    whatever X is) could pass whenever its rcond estimate lands in [eps, 30 n eps).
    """
    e = eps(dtype)
    return (ratio < PASS_RATIO) & (rc >= e) & (ratio * (n * e) < rc)


def _entry_major_norms(A: Tensor, X: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``||I - X A||_1, ||A||_1, ||X||_1`` for tiny matrices, computed entry-major.

    Laid out as (n, n, B), every entry of the product is a contiguous batch-long vector, so
    ``X A`` is n fused multiply-adds over the batch instead of B tiny matrix products; this
    is several times faster than bmm for n <= 4 on CPU (docs/performance.md). The sums run in
    the same working precision, in a possibly different order. Chunks of ``_CHUNK`` matrices
    keep the temporaries in cache (3-5x faster than one pass over a large batch).
    """
    n, shape = A.shape[-1], A.shape[:-2]
    B = math.prod(shape)
    A3, X3 = A.reshape(B, n, n), X.reshape(B, n, n)
    out = torch.empty((3, B), dtype=real_dtype(A.dtype), device=A.device)
    for start in range(0, B, _CHUNK):
        stop = min(B, start + _CHUNK)
        # contiguous() may return a view of the caller's tensor: never modify these two.
        At = A3[start:stop].permute(1, 2, 0).contiguous()
        Xt = X3[start:stop].permute(1, 2, 0).contiguous()
        E = torch.mul(Xt[:, 0, None, :], At[None, 0])
        for k in range(1, n):
            E.addcmul_(Xt[:, k, None, :], At[None, k])
        E.neg_()
        E.diagonal(dim1=0, dim2=1).add_(1)
        E = E.abs() if E.is_complex() else E.abs_()
        torch.amax(E.sum(dim=0), dim=0, out=out[0, start:stop])
        torch.amax(At.abs().sum(dim=0), dim=0, out=out[1, start:stop])
        torch.amax(Xt.abs().sum(dim=0), dim=0, out=out[2, start:stop])
    return out[0].reshape(shape), out[1].reshape(shape), out[2].reshape(shape)


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    ratio = num / den
    fails = ((den == 0) & (num > 0)) | (torch.isinf(den) & ~torch.isnan(num))
    return torch.where(fails, torch.full_like(ratio, float("inf")), ratio)


def rcond(A: Tensor, X: Tensor) -> Tensor:
    """Reciprocal 1-norm condition number ``1 / (||A||_1 ||A^-1||_1)``, with X standing in for
    ``A^-1``: exact when X is the inverse, the usual estimate once X passes the residual test."""
    if A.shape[-1] == 0:
        return A.new_ones(A.shape[:-2], dtype=real_dtype(A.dtype))
    return 1.0 / (norm1(A) * norm1(X))


def sigma_min(A: Tensor) -> Tensor:
    """Smallest singular value: the 2-norm distance from A to the nearest singular matrix."""
    if A.shape[-1] == 0:
        return A.new_full(A.shape[:-2], float("inf"), dtype=real_dtype(A.dtype))
    return torch.linalg.svdvals(A)[..., -1]


def contracts(A: Tensor, X: Tensor) -> Tensor:
    """Whether Newton-Schulz started from X converges: ``||I - A X||_2 < 1``."""
    E = -(A @ X)
    E.diagonal(dim1=-2, dim2=-1).add_(1)
    if A.shape[-1] == 0:
        return torch.ones(A.shape[:-2], dtype=torch.bool, device=A.device)
    return torch.linalg.matrix_norm(E, ord=2) < 1
