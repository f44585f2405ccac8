"""numba kernels of the native path: invert and certify a batch in one pass over memory.

Imported only by :mod:`neuralinv.kernels.native` on first use (importing numba costs ~0.3 s and
compiling ~seconds; nothing here runs at ``import neuralinv``). Two kernels, each compiled once
per dtype (float32, float64) and cached on disk by numba (``cache=True``):

``small(A, X, cert, status, start, stop, eps)``  n = 1 .. 4: adjugate over determinant per
    matrix, in float64 registers (float32 input too), and the certificate of the stored X.
``gauss_jordan(A, X, cert, status, start, stop, eps)``  any n (used for 5 .. 32): unpivoted
    Gauss-Jordan on blocks of LANES matrices laid out batch-innermost (SIMD lanes = matrices),
    then ``I - X A`` and the three 1-norms on the same block, in working precision.

Both work on matrices ``start:stop`` of a C-contiguous (B, n, n) batch A, write X (B, n, n),
cert (2, B) = (dget03 ratio, rcond) and status (B,) int8, and return how many matrices need
the fallback. Per matrix the status is

* ``0`` (OK): the certificate holds, i.e. ``certify.trusted``: ratio < 30, rcond >= eps and
  ratio * n * eps < rcond, with the ratio and rcond of ``certify.certificate`` (same formulas,
  same inf/NaN rules; summation order and, for the float32 closed forms, the precision of the
  residual differ: it is the residual of the stored float32 X computed in float64);
* ``NONFINITE`` (5): A has a NaN or Inf entry; X and cert are NaN;
* ``FALLBACK`` (-1): anything else (zero or tiny pivot, rounding, overflow); X and cert hold
  garbage and the caller must recompute the matrix (pivoted LU) and certify it again.

No batch-sized temporary: the Gauss-Jordan block buffers are ~2 n^2 LANES numbers per call.
Runs without the GIL (``nogil=True``): the caller splits the batch over its own threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Matrices per Gauss-Jordan block: one (or two, float64) 512-bit vectors per entry.
LANES = 16
NONFINITE = 5
FALLBACK = -1
PASS_RATIO = 30.0

# contract: fused multiply-adds allowed; no other fast-math flag (NaN/Inf must propagate).
_OPTS = {"nogil": True, "cache": True, "fastmath": {"contract"}, "error_model": "numpy"}


@njit
def _nmax(a, b):
    """max that keeps a NaN once it has appeared (like torch.amax)."""
    return b if (b > a or b != b) else a


@njit
def _verdict(num, nA, nX, n, eps):
    """(ratio, rcond, trusted) exactly as certify._ratio / certify.trusted define them."""
    den = n * nA * nX * eps
    if (den == 0.0 and num > 0.0) or (den == np.inf and num == num):
        ratio = np.inf
    else:
        ratio = num / den
    rc = 1.0 / (nA * nX)
    ok = ratio < PASS_RATIO and rc >= eps and ratio * (n * eps) < rc
    return ratio, rc, ok


@njit
def _all_finite(A, b):
    n = A.shape[1]
    for i in range(n):
        for j in range(n):
            if not np.isfinite(A[b, i, j]):
                return False
    return True


@njit
def _norm1_64(M, b, N):
    """||M[b]||_1 accumulated in float64 (NaN if an entry is NaN, inf if one is inf)."""
    out = 0.0
    for j in range(N):
        s = 0.0
        for i in range(N):
            s += abs(np.float64(M[b, i, j]))
        out = _nmax(out, s)
    return out


@njit
def _nonfinite(X, cert, status, b):
    n = X.shape[1]
    for i in range(n):
        for j in range(n):
            X[b, i, j] = np.nan
    cert[0, b] = np.nan
    cert[1, b] = np.nan
    status[b] = NONFINITE


@njit
def _lanes(n):
    """Matrices per block: a runtime number, so that LLVM vectorises the lane loops (a small
    constant trip count gets unrolled into scalar code instead: the lane rows of one block
    may alias as far as LLVM knows), and blocks stay within L2 (2 n^2 L numbers)."""
    return 64 if n <= 16 else 32


@njit
def _load(Af, V, b0, m, n):
    """V[k, l] = entry k of matrix b0 + l; a short block is padded with identities."""
    nn, L = V.shape
    # Tiles of 16 entries: a tile reads one or two cache lines per matrix and writes a few KB
    # of V. Entry by entry across the lanes instead, the reads run at a stride of n^2 numbers
    # (4 KB for float32 n = 32), which maps every lane to the same L1 set and thrashed it.
    for k0 in range(0, nn, 16):
        k1 = min(nn, k0 + 16)
        for l in range(m):
            for k in range(k0, k1):
                V[k, l] = Af[b0 + l, k]
    for k in range(nn):
        d = 1 if k % (n + 1) == 0 else 0
        for l in range(m, L):
            V[k, l] = d


@njit
def _lane_norm1(M, S, out, n):
    """out[l] = ||M[:, l]||_1 (M holds n x n matrices entry-major, row i = entries i*n..)."""
    L = M.shape[1]
    for l in range(L):
        out[l] = 0
    for j in range(n):
        for l in range(L):
            S[l] = 0
        for i in range(n):
            for l in range(L):
                S[l] += abs(M[i * n + j, l])
        for l in range(L):
            out[l] = _nmax(out[l], S[l])


@njit
def _lane_residual(W, V, E, C, num, n, one):
    """num[l] = ||I - W_l V_l||_1, two rows of the product at a time (one load of V per two
    multiply-adds). E, C: (2 n, L) / (n, L) scratch."""
    L = V.shape[1]
    for j in range(n):
        for l in range(L):
            C[j, l] = 0
    for i0 in range(0, n, 2):
        i1 = min(i0 + 1, n - 1)
        for j in range(2 * n):
            for l in range(L):
                E[j, l] = 0
        for l in range(L):
            E[i0, l] = one
            E[n + i1, l] = one
        for k in range(n):
            for j in range(n):
                a = k * n + j
                for l in range(L):
                    v = V[a, l]
                    E[j, l] -= W[i0 * n + k, l] * v
                    E[n + j, l] -= W[i1 * n + k, l] * v
        rows = 2 if i1 > i0 else 1
        for r in range(rows):
            for j in range(n):
                for l in range(L):
                    C[j, l] += abs(E[r * n + j, l])
    for l in range(L):
        num[l] = 0
    for j in range(n):
        for l in range(L):
            num[l] = _nmax(num[l], C[j, l])


@njit
def _finish(A, X, Xf, R, cert, status, b0, m, n, num, nA, nX, eps, okv):
    """Store the block's answers and per-matrix verdicts; returns how many need the fallback.

    The verdicts are computed for all lanes at once, branch-free (``_verdict``'s rules as
    selects, so that the loop vectorises); only failing lanes take the scalar path."""
    nn = n * n
    for k0 in range(0, nn, 16):  # tiles, as in _load
        k1 = min(nn, k0 + 16)
        for l in range(m):
            for k in range(k0, k1):
                Xf[b0 + l, k] = R[k, l]
    ne = n * eps
    for l in range(m):
        na = np.float64(nA[l])
        nx = np.float64(nX[l])
        nu = np.float64(num[l])
        den = n * na * nx * eps
        ratio = nu / den
        inf_ratio = (den == 0.0 and nu > 0.0) or (den == np.inf and nu == nu)
        ratio = np.inf if inf_ratio else ratio
        rc = 1.0 / (na * nx)
        ok = ratio < PASS_RATIO and rc >= eps and ratio * ne < rc and na < np.inf
        cert[0, b0 + l] = ratio
        cert[1, b0 + l] = rc
        status[b0 + l] = 0 if ok else FALLBACK
        okv[l] = 1 if ok else 0
    bad = 0
    for l in range(m):
        if okv[l]:
            continue
        b = b0 + l
        # A sum of |entries| is finite iff every entry is, unless it overflowed.
        if not np.isfinite(nA[l]) and not _all_finite(A, b):
            _nonfinite(X, cert, status, b)
        else:
            bad += 1
    return bad


@njit
def _adj1(V, W, L):
    for l in range(L):
        W[0, l] = 1.0 / V[0, l]


@njit
def _adj2(V, W, L):
    for l in range(L):
        a00 = V[0, l]
        a01 = V[1, l]
        a10 = V[2, l]
        a11 = V[3, l]
        r = 1.0 / (a00 * a11 - a01 * a10)
        W[0, l] = a11 * r
        W[1, l] = -a01 * r
        W[2, l] = -a10 * r
        W[3, l] = a00 * r


@njit
def _adj3(V, W, L):
    for l in range(L):
        a00 = V[0, l]
        a01 = V[1, l]
        a02 = V[2, l]
        a10 = V[3, l]
        a11 = V[4, l]
        a12 = V[5, l]
        a20 = V[6, l]
        a21 = V[7, l]
        a22 = V[8, l]
        c00 = a11 * a22 - a12 * a21
        c10 = a12 * a20 - a10 * a22
        c20 = a10 * a21 - a11 * a20
        r = 1.0 / (a00 * c00 + a01 * c10 + a02 * c20)
        W[0, l] = c00 * r
        W[1, l] = (a02 * a21 - a01 * a22) * r
        W[2, l] = (a01 * a12 - a02 * a11) * r
        W[3, l] = c10 * r
        W[4, l] = (a00 * a22 - a02 * a20) * r
        W[5, l] = (a02 * a10 - a00 * a12) * r
        W[6, l] = c20 * r
        W[7, l] = (a01 * a20 - a00 * a21) * r
        W[8, l] = (a00 * a11 - a01 * a10) * r


@njit
def _adj4(V, W, L):
    for l in range(L):
        a00 = V[0, l]
        a01 = V[1, l]
        a02 = V[2, l]
        a03 = V[3, l]
        a10 = V[4, l]
        a11 = V[5, l]
        a12 = V[6, l]
        a13 = V[7, l]
        a20 = V[8, l]
        a21 = V[9, l]
        a22 = V[10, l]
        a23 = V[11, l]
        a30 = V[12, l]
        a31 = V[13, l]
        a32 = V[14, l]
        a33 = V[15, l]
        # Laplace expansion by complementary 2x2 minors of rows (0, 1) and rows (2, 3)
        # (the formulas of methods/closed_form._inv4).
        s0 = a00 * a11 - a10 * a01
        s1 = a00 * a12 - a10 * a02
        s2 = a00 * a13 - a10 * a03
        s3 = a01 * a12 - a11 * a02
        s4 = a01 * a13 - a11 * a03
        s5 = a02 * a13 - a12 * a03
        c5 = a22 * a33 - a32 * a23
        c4 = a21 * a33 - a31 * a23
        c3 = a21 * a32 - a31 * a22
        c2 = a20 * a33 - a30 * a23
        c1 = a20 * a32 - a30 * a22
        c0 = a20 * a31 - a30 * a21
        r = 1.0 / (s0 * c5 - s1 * c4 + s2 * c3 + s3 * c2 - s4 * c1 + s5 * c0)
        W[0, l] = (a11 * c5 - a12 * c4 + a13 * c3) * r
        W[1, l] = (-a01 * c5 + a02 * c4 - a03 * c3) * r
        W[2, l] = (a31 * s5 - a32 * s4 + a33 * s3) * r
        W[3, l] = (-a21 * s5 + a22 * s4 - a23 * s3) * r
        W[4, l] = (-a10 * c5 + a12 * c2 - a13 * c1) * r
        W[5, l] = (a00 * c5 - a02 * c2 + a03 * c1) * r
        W[6, l] = (-a30 * s5 + a32 * s2 - a33 * s1) * r
        W[7, l] = (a20 * s5 - a22 * s2 + a23 * s1) * r
        W[8, l] = (a10 * c4 - a11 * c2 + a13 * c0) * r
        W[9, l] = (-a00 * c4 + a01 * c2 - a03 * c0) * r
        W[10, l] = (a30 * s4 - a31 * s2 + a33 * s0) * r
        W[11, l] = (-a20 * s4 + a21 * s2 - a23 * s0) * r
        W[12, l] = (-a10 * c3 + a11 * c1 - a12 * c0) * r
        W[13, l] = (a00 * c3 - a01 * c1 + a02 * c0) * r
        W[14, l] = (-a30 * s3 + a31 * s1 - a32 * s0) * r
        W[15, l] = (a20 * s3 - a21 * s1 + a22 * s0) * r


@njit(**_OPTS)
def small(A, X, cert, status, start, stop, eps):
    """n = 1 .. 4: adjugate / determinant in float64 (float32 input too), then the certificate
    of the stored (rounded) X in working precision, as certify computes it. An exactly zero
    determinant gives a non-finite X, which fails the certificate (LU then says SINGULAR)."""
    n = A.shape[1]
    nn = n * n
    L = _lanes(n)
    Af = A.reshape(A.shape[0], nn)
    Xf = X.reshape(X.shape[0], nn)
    V = np.empty((nn, L), np.float64)
    W = np.empty((nn, L), np.float64)
    Va = np.empty((nn, L), A.dtype)
    R = np.empty((nn, L), A.dtype)
    E = np.empty((2 * n, L), A.dtype)
    C = np.empty((n, L), A.dtype)
    S = np.empty(L, A.dtype)
    nA = np.empty(L, A.dtype)
    nX = np.empty(L, A.dtype)
    num = np.empty(L, A.dtype)
    okv = np.empty(L, np.int8)
    one = np.ones(1, A.dtype)[0]
    bad = 0
    for b0 in range(start, stop, L):
        m = min(L, stop - b0)
        _load(Af, V, b0, m, n)
        if n == 1:
            _adj1(V, W, L)
        elif n == 2:
            _adj2(V, W, L)
        elif n == 3:
            _adj3(V, W, L)
        else:
            _adj4(V, W, L)
        for k in range(nn):  # the answer as stored (float32: rounded), A as given
            for l in range(L):
                R[k, l] = W[k, l]
                Va[k, l] = V[k, l]
        _lane_norm1(Va, S, nA, n)
        _lane_norm1(R, S, nX, n)
        _lane_residual(R, Va, E, C, num, n, one)
        bad += _finish(A, X, Xf, R, cert, status, b0, m, n, num, nA, nX, eps, okv)
    return bad


@njit
def _gauss_jordan_lanes(W, p, f, n, one):
    """Invert every lane of W (entry-major (n*n, L)) in place, without pivoting: a zero or tiny
    pivot gives inf/NaN or a large residual in that lane only, which the certificate catches."""
    L = W.shape[1]
    for k in range(n):
        kk = k * n + k
        for l in range(L):
            p[l] = one / W[kk, l]
            W[kk, l] = one
        for j in range(n):
            a = k * n + j
            for l in range(L):
                W[a, l] *= p[l]
        for i in range(n):
            if i == k:
                continue
            ik = i * n + k
            for l in range(L):
                f[l] = W[ik, l]
                W[ik, l] = 0
            for j in range(n):
                a = i * n + j
                c = k * n + j
                for l in range(L):
                    W[a, l] -= f[l] * W[c, l]


@njit(**_OPTS)
def gauss_jordan(A, X, cert, status, start, stop, eps):
    """Any n (used for 5 .. 32): unpivoted Gauss-Jordan on blocks of matrices laid out
    batch-innermost, then the certificate on the same block, all in working precision."""
    n = A.shape[1]
    nn = n * n
    L = _lanes(n)
    Af = A.reshape(A.shape[0], nn)
    Xf = X.reshape(X.shape[0], nn)
    V = np.empty((nn, L), A.dtype)
    W = np.empty((nn, L), A.dtype)
    E = np.empty((2 * n, L), A.dtype)
    C = np.empty((n, L), A.dtype)
    S = np.empty(L, A.dtype)
    p = np.empty(L, A.dtype)
    f = np.empty(L, A.dtype)
    nA = np.empty(L, A.dtype)
    nX = np.empty(L, A.dtype)
    num = np.empty(L, A.dtype)
    okv = np.empty(L, np.int8)
    one = np.ones(1, A.dtype)[0]
    bad = 0
    for b0 in range(start, stop, L):
        m = min(L, stop - b0)
        _load(Af, V, b0, m, n)
        for k in range(nn):
            for l in range(L):
                W[k, l] = V[k, l]
        _gauss_jordan_lanes(W, p, f, n, one)
        _lane_norm1(V, S, nA, n)
        _lane_norm1(W, S, nX, n)
        _lane_residual(W, V, E, C, num, n, one)
        bad += _finish(A, X, Xf, W, cert, status, b0, m, n, num, nA, nX, eps, okv)
    return bad
