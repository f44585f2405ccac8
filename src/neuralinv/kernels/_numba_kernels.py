"""numba kernels of the native path: invert and certify a batch in one pass over memory.

Imported only by :mod:`neuralinv.kernels.native` on first use (importing numba costs ~0.3 s and
compiling ~seconds; nothing here runs at ``import neuralinv``). Two kernels, each compiled once
per dtype (float32, float64) and cached on disk by numba (``cache=True``):

``small(A, X, cert, status, start, stop, eps)``  n = 1 .. 4: adjugate over determinant in
    float64 (float32 input too) and the certificate of the stored X, 64 matrices at a time
    laid out batch-innermost, in one generated straight-line loop per n (``_fused1`` ..
    ``_fused4``; their residual and norms are summed in float64 from the stored values).
``gauss_jordan(A, X, cert, status, start, stop, eps)``  any n (used for 5 .. 32): unpivoted
    Gauss-Jordan on blocks of LANES matrices laid out batch-innermost (SIMD lanes = matrices),
    then ``I - X A`` and the three 1-norms on the same block, in working precision.
``norms1(M, out, start, stop, minus_identity)``  ``out[b] = ||M[b]||_1`` (or
    ``||M[b] - I||_1``, subtracting I from M in place) in working precision, one pass, for the certificate of n >= 8
    (:func:`neuralinv.kernels.native.certificate_norms`).
``team_small_float32(data)`` ... ``team_gauss_jordan_float64(data)``  C entry points
    (``void (void *)``, compiled by :mod:`.native` as numba cfuncs) that an OpenMP
    runtime runs on every thread of a team (``GOMP_parallel``): each thread claims chunks of
    the batch from a shared atomic counter and runs the kernel on them. ``data`` is a
    ``TEAM_SLOTS`` int64 block (addresses, sizes, the counters, eps; see ``_team_views``).

Both work on matrices ``start:stop`` of a C-contiguous (B, n, n) batch A, write X (B, n, n),
cert (2, B) = (dget03 ratio, rcond) and status (B,) int8, and return how many matrices need
the fallback. Per matrix the status is

* ``0`` (OK): the certificate holds, i.e. ``certify.trusted``: ratio < 30, rcond >= eps and
  ratio * n * eps < rcond, with the ratio and rcond of ``certify.certificate`` (same formulas,
  same inf/NaN rules; the summation order differs and, for float32 closed forms, the residual of
  the stored float32 X is summed in float64, i.e. more accurately than in working precision);
* ``NONFINITE`` (5): A has a NaN or Inf entry; X and cert are NaN;
* ``FALLBACK`` (-1): anything else (zero or tiny pivot, rounding, overflow); X and cert hold
  garbage and the caller must recompute the matrix (pivoted LU) and certify it again.

No batch-sized temporary: the Gauss-Jordan block buffers are ~2 n^2 LANES numbers per call.
Runs without the GIL (``nogil=True``): the caller splits the batch over its own threads.

One module on purpose, although longer than the package's other modules: numba's on-disk cache
of a function is invalidated only by a change of the function's own source file, not of the
njit helpers it calls from other files, so helpers split into another module could leave a
stale compiled kernel in a user's cache after an upgrade.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import carray, njit, types
from numba.core.extending import intrinsic

#: Matrices per Gauss-Jordan block: one (or two, float64) 512-bit vectors per entry.
LANES = 16
NONFINITE = 5
FALLBACK = -1
PASS_RATIO = 30.0
#: The kernels' answers (closed forms, unpivoted elimination) are kept only when
#: ``||I - X A||_1 < 1 / UNPIVOTED_MARGIN`` besides the certificate's own rules; the others go to
#: pivoted LU, whose answer the ordinary certificate judges. The certificate alone accepts up
#: to ``||I - X A||_1 < 1`` (relative error of X below 1); unpivoted float32 elimination reached
#: that edge on matrices of condition 1e6-1e7 with errors of 0.3-0.4 where LU's were below 0.06.
UNPIVOTED_MARGIN = 8.0
#: Lanes of the closed-form kernel (a literal in its generated code: see _fused3).
SMALL_LANES = 64

# contract: fused multiply-adds allowed; no other fast-math flag (NaN/Inf must propagate).
_OPTS = {"nogil": True, "cache": True, "fastmath": {"contract"}, "error_model": "numpy"}


@njit
def _nmax(a, b):
    """max that keeps a NaN once it has appeared (like torch.amax)."""
    return b if (b > a or b != b) else a


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
    multiply-adds). E, C: (2 n, L) / (n, L) float64 scratch: the products of the stored
    (float32 or float64) entries are formed and summed in float64, so that the residual of a
    float32 answer is not itself off by rounding (computed in float32, its error of about one
    ratio unit let answers with a true ||I - XA||_1 >= 1 pass near the rcond edge)."""
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
                    v = np.float64(V[a, l])
                    E[j, l] -= np.float64(W[i0 * n + k, l]) * v
                    E[n + j, l] -= np.float64(W[i1 * n + k, l]) * v
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
def _finish(A, X, Xf, R, cert, status, b0, m, n, num, nA, nX, eps, okv, store):
    """Store the block's answers and per-matrix verdicts; returns how many need the fallback.

    The verdicts are computed for all lanes at once, branch-free (certify._ratio / certify.trusted's
    rules, plus UNPIVOTED_MARGIN, as selects, so that the loop vectorises); only failing lanes take the scalar path."""
    nn = n * n
    for k0 in range(0, nn if store else 0, 16):  # tiles, as in _load
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
        ok = ratio < PASS_RATIO and rc >= eps and ratio * ne * UNPIVOTED_MARGIN < rc and na < np.inf
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
def _fused1(V, R, nA, nX, num, L):
    """n = 1: inverse, rounding to the stored dtype and the three norms of the
    certificate for every lane in one loop (generated code: one expression per entry).
    V, R: 1-D, lane l of entry k at k * 64 + l (a literal stride, so that LLVM can tell the
    rows apart and vectorise the loop)."""
    for l in range(L):
        a00 = V[0 + l]
        x0 = 1.0 / a00
        R[0 + l] = x0
        y00 = np.float64(R[0 + l])
        na = abs(a00)
        nx = abs(y00)
        nu = abs(1.0 - (y00 * a00))
        nA[l] = na
        nX[l] = nx
        num[l] = nu


@njit
def _fused2(V, R, nA, nX, num, L):
    """n = 2: inverse, rounding to the stored dtype and the three norms of the
    certificate for every lane in one loop (generated code: one expression per entry).
    V, R: 1-D, lane l of entry k at k * 64 + l (a literal stride, so that LLVM can tell the
    rows apart and vectorise the loop)."""
    for l in range(L):
        a00 = V[0 + l]
        a01 = V[64 + l]
        a10 = V[128 + l]
        a11 = V[192 + l]
        r = 1.0 / (a00 * a11 - a01 * a10)
        x0 = a11 * r
        x1 = -a01 * r
        x2 = -a10 * r
        x3 = a00 * r
        R[0 + l] = x0
        R[64 + l] = x1
        R[128 + l] = x2
        R[192 + l] = x3
        y00 = np.float64(R[0 + l])
        y01 = np.float64(R[64 + l])
        y10 = np.float64(R[128 + l])
        y11 = np.float64(R[192 + l])
        na = abs(a00) + abs(a10)
        t = abs(a01) + abs(a11)
        na = t if (t > na or t != t) else na
        nx = abs(y00) + abs(y10)
        t = abs(y01) + abs(y11)
        nx = t if (t > nx or t != t) else nx
        nu = abs(1.0 - (y00 * a00 + y01 * a10)) + abs(0.0 - (y10 * a00 + y11 * a10))
        t = abs(0.0 - (y00 * a01 + y01 * a11)) + abs(1.0 - (y10 * a01 + y11 * a11))
        nu = t if (t > nu or t != t) else nu
        nA[l] = na
        nX[l] = nx
        num[l] = nu


@njit
def _fused3(V, R, nA, nX, num, L):
    """n = 3: inverse, rounding to the stored dtype and the three norms of the
    certificate for every lane in one loop (generated code: one expression per entry).
    V, R: 1-D, lane l of entry k at k * 64 + l (a literal stride, so that LLVM can tell the
    rows apart and vectorise the loop)."""
    for l in range(L):
        a00 = V[0 + l]
        a01 = V[64 + l]
        a02 = V[128 + l]
        a10 = V[192 + l]
        a11 = V[256 + l]
        a12 = V[320 + l]
        a20 = V[384 + l]
        a21 = V[448 + l]
        a22 = V[512 + l]
        c00 = a11 * a22 - a12 * a21
        c10 = a12 * a20 - a10 * a22
        c20 = a10 * a21 - a11 * a20
        r = 1.0 / (a00 * c00 + a01 * c10 + a02 * c20)
        x0 = c00 * r
        x1 = (a02 * a21 - a01 * a22) * r
        x2 = (a01 * a12 - a02 * a11) * r
        x3 = c10 * r
        x4 = (a00 * a22 - a02 * a20) * r
        x5 = (a02 * a10 - a00 * a12) * r
        x6 = c20 * r
        x7 = (a01 * a20 - a00 * a21) * r
        x8 = (a00 * a11 - a01 * a10) * r
        R[0 + l] = x0
        R[64 + l] = x1
        R[128 + l] = x2
        R[192 + l] = x3
        R[256 + l] = x4
        R[320 + l] = x5
        R[384 + l] = x6
        R[448 + l] = x7
        R[512 + l] = x8
        y00 = np.float64(R[0 + l])
        y01 = np.float64(R[64 + l])
        y02 = np.float64(R[128 + l])
        y10 = np.float64(R[192 + l])
        y11 = np.float64(R[256 + l])
        y12 = np.float64(R[320 + l])
        y20 = np.float64(R[384 + l])
        y21 = np.float64(R[448 + l])
        y22 = np.float64(R[512 + l])
        na = abs(a00) + abs(a10) + abs(a20)
        t = abs(a01) + abs(a11) + abs(a21)
        na = t if (t > na or t != t) else na
        t = abs(a02) + abs(a12) + abs(a22)
        na = t if (t > na or t != t) else na
        nx = abs(y00) + abs(y10) + abs(y20)
        t = abs(y01) + abs(y11) + abs(y21)
        nx = t if (t > nx or t != t) else nx
        t = abs(y02) + abs(y12) + abs(y22)
        nx = t if (t > nx or t != t) else nx
        nu = abs(1.0 - (y00 * a00 + y01 * a10 + y02 * a20)) + abs(0.0 - (y10 * a00 + y11 * a10 + y12 * a20)) + abs(0.0 - (y20 * a00 + y21 * a10 + y22 * a20))
        t = abs(0.0 - (y00 * a01 + y01 * a11 + y02 * a21)) + abs(1.0 - (y10 * a01 + y11 * a11 + y12 * a21)) + abs(0.0 - (y20 * a01 + y21 * a11 + y22 * a21))
        nu = t if (t > nu or t != t) else nu
        t = abs(0.0 - (y00 * a02 + y01 * a12 + y02 * a22)) + abs(0.0 - (y10 * a02 + y11 * a12 + y12 * a22)) + abs(1.0 - (y20 * a02 + y21 * a12 + y22 * a22))
        nu = t if (t > nu or t != t) else nu
        nA[l] = na
        nX[l] = nx
        num[l] = nu


@njit
def _fused4(V, R, nA, nX, num, L):
    """n = 4: inverse, rounding to the stored dtype and the three norms of the
    certificate for every lane in one loop (generated code: one expression per entry).
    V, R: 1-D, lane l of entry k at k * 64 + l (a literal stride, so that LLVM can tell the
    rows apart and vectorise the loop)."""
    for l in range(L):
        a00 = V[0 + l]
        a01 = V[64 + l]
        a02 = V[128 + l]
        a03 = V[192 + l]
        a10 = V[256 + l]
        a11 = V[320 + l]
        a12 = V[384 + l]
        a13 = V[448 + l]
        a20 = V[512 + l]
        a21 = V[576 + l]
        a22 = V[640 + l]
        a23 = V[704 + l]
        a30 = V[768 + l]
        a31 = V[832 + l]
        a32 = V[896 + l]
        a33 = V[960 + l]
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
        x0 = (a11 * c5 - a12 * c4 + a13 * c3) * r
        x1 = (-a01 * c5 + a02 * c4 - a03 * c3) * r
        x2 = (a31 * s5 - a32 * s4 + a33 * s3) * r
        x3 = (-a21 * s5 + a22 * s4 - a23 * s3) * r
        x4 = (-a10 * c5 + a12 * c2 - a13 * c1) * r
        x5 = (a00 * c5 - a02 * c2 + a03 * c1) * r
        x6 = (-a30 * s5 + a32 * s2 - a33 * s1) * r
        x7 = (a20 * s5 - a22 * s2 + a23 * s1) * r
        x8 = (a10 * c4 - a11 * c2 + a13 * c0) * r
        x9 = (-a00 * c4 + a01 * c2 - a03 * c0) * r
        x10 = (a30 * s4 - a31 * s2 + a33 * s0) * r
        x11 = (-a20 * s4 + a21 * s2 - a23 * s0) * r
        x12 = (-a10 * c3 + a11 * c1 - a12 * c0) * r
        x13 = (a00 * c3 - a01 * c1 + a02 * c0) * r
        x14 = (-a30 * s3 + a31 * s1 - a32 * s0) * r
        x15 = (a20 * s3 - a21 * s1 + a22 * s0) * r
        R[0 + l] = x0
        R[64 + l] = x1
        R[128 + l] = x2
        R[192 + l] = x3
        R[256 + l] = x4
        R[320 + l] = x5
        R[384 + l] = x6
        R[448 + l] = x7
        R[512 + l] = x8
        R[576 + l] = x9
        R[640 + l] = x10
        R[704 + l] = x11
        R[768 + l] = x12
        R[832 + l] = x13
        R[896 + l] = x14
        R[960 + l] = x15
        y00 = np.float64(R[0 + l])
        y01 = np.float64(R[64 + l])
        y02 = np.float64(R[128 + l])
        y03 = np.float64(R[192 + l])
        y10 = np.float64(R[256 + l])
        y11 = np.float64(R[320 + l])
        y12 = np.float64(R[384 + l])
        y13 = np.float64(R[448 + l])
        y20 = np.float64(R[512 + l])
        y21 = np.float64(R[576 + l])
        y22 = np.float64(R[640 + l])
        y23 = np.float64(R[704 + l])
        y30 = np.float64(R[768 + l])
        y31 = np.float64(R[832 + l])
        y32 = np.float64(R[896 + l])
        y33 = np.float64(R[960 + l])
        na = abs(a00) + abs(a10) + abs(a20) + abs(a30)
        t = abs(a01) + abs(a11) + abs(a21) + abs(a31)
        na = t if (t > na or t != t) else na
        t = abs(a02) + abs(a12) + abs(a22) + abs(a32)
        na = t if (t > na or t != t) else na
        t = abs(a03) + abs(a13) + abs(a23) + abs(a33)
        na = t if (t > na or t != t) else na
        nx = abs(y00) + abs(y10) + abs(y20) + abs(y30)
        t = abs(y01) + abs(y11) + abs(y21) + abs(y31)
        nx = t if (t > nx or t != t) else nx
        t = abs(y02) + abs(y12) + abs(y22) + abs(y32)
        nx = t if (t > nx or t != t) else nx
        t = abs(y03) + abs(y13) + abs(y23) + abs(y33)
        nx = t if (t > nx or t != t) else nx
        nu = abs(1.0 - (y00 * a00 + y01 * a10 + y02 * a20 + y03 * a30)) + abs(0.0 - (y10 * a00 + y11 * a10 + y12 * a20 + y13 * a30)) + abs(0.0 - (y20 * a00 + y21 * a10 + y22 * a20 + y23 * a30)) + abs(0.0 - (y30 * a00 + y31 * a10 + y32 * a20 + y33 * a30))
        t = abs(0.0 - (y00 * a01 + y01 * a11 + y02 * a21 + y03 * a31)) + abs(1.0 - (y10 * a01 + y11 * a11 + y12 * a21 + y13 * a31)) + abs(0.0 - (y20 * a01 + y21 * a11 + y22 * a21 + y23 * a31)) + abs(0.0 - (y30 * a01 + y31 * a11 + y32 * a21 + y33 * a31))
        nu = t if (t > nu or t != t) else nu
        t = abs(0.0 - (y00 * a02 + y01 * a12 + y02 * a22 + y03 * a32)) + abs(0.0 - (y10 * a02 + y11 * a12 + y12 * a22 + y13 * a32)) + abs(1.0 - (y20 * a02 + y21 * a12 + y22 * a22 + y23 * a32)) + abs(0.0 - (y30 * a02 + y31 * a12 + y32 * a22 + y33 * a32))
        nu = t if (t > nu or t != t) else nu
        t = abs(0.0 - (y00 * a03 + y01 * a13 + y02 * a23 + y03 * a33)) + abs(0.0 - (y10 * a03 + y11 * a13 + y12 * a23 + y13 * a33)) + abs(0.0 - (y20 * a03 + y21 * a13 + y22 * a23 + y23 * a33)) + abs(1.0 - (y30 * a03 + y31 * a13 + y32 * a23 + y33 * a33))
        nu = t if (t > nu or t != t) else nu
        nA[l] = na
        nX[l] = nx
        num[l] = nu


@njit
def _load_small(Af, V1, b0, m, n):
    """_load for the closed-form kernel's 1-D lane layout (entry k of lane l at k * 64 + l)."""
    nn = n * n
    for k in range(nn):
        for l in range(m):
            V1[k * 64 + l] = Af[b0 + l, k]
        d = 1.0 if k % (n + 1) == 0 else 0.0
        for l in range(m, 64):
            V1[k * 64 + l] = d


@njit(**_OPTS)
def small(A, X, cert, status, start, stop, eps):
    """n = 1 .. 4: adjugate / determinant in float64 (float32 input too) and the certificate
    of the stored (rounded) X, its residual and norms summed in float64 from the stored
    values: one fused loop over the lanes of a block (``_fused1`` .. ``_fused4``). An exactly
    zero determinant gives a non-finite X, which fails the certificate (LU then says
    SINGULAR)."""
    n = A.shape[1]
    nn = n * n
    L = SMALL_LANES
    Af = A.reshape(A.shape[0], nn)
    Xf = X.reshape(X.shape[0], nn)
    V1 = np.empty(nn * SMALL_LANES, np.float64)
    R1 = np.empty(nn * SMALL_LANES, A.dtype)
    R = R1.reshape(nn, SMALL_LANES)
    nA = np.empty(L, np.float64)
    nX = np.empty(L, np.float64)
    num = np.empty(L, np.float64)
    okv = np.empty(L, np.int8)
    bad = 0
    for b0 in range(start, stop, L):
        m = min(L, stop - b0)
        _load_small(Af, V1, b0, m, n)
        if n == 1:
            _fused1(V1, R1, nA, nX, num, L)
        elif n == 2:
            _fused2(V1, R1, nA, nX, num, L)
        elif n == 3:
            _fused3(V1, R1, nA, nX, num, L)
        else:
            _fused4(V1, R1, nA, nX, num, L)
        for k in range(nn):  # the answers, from the 1-D lane layout
            for l in range(m):
                Xf[b0 + l, k] = R1[k * 64 + l]
        bad += _finish(A, X, Xf, R, cert, status, b0, m, n, num, nA, nX, eps, okv, False)
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
    batch-innermost, then the certificate on the same block (elimination in working precision,
    the residual in float64)."""
    n = A.shape[1]
    nn = n * n
    L = _lanes(n)
    Af = A.reshape(A.shape[0], nn)
    Xf = X.reshape(X.shape[0], nn)
    V = np.empty((nn, L), A.dtype)
    W = np.empty((nn, L), A.dtype)
    E = np.empty((2 * n, L), np.float64)
    C = np.empty((n, L), np.float64)
    S = np.empty(L, A.dtype)
    p = np.empty(L, A.dtype)
    f = np.empty(L, A.dtype)
    nA = np.empty(L, A.dtype)
    nX = np.empty(L, A.dtype)
    num = np.empty(L, np.float64)
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
        _lane_residual(W, V, E, C, num, n, 1.0)
        bad += _finish(A, X, Xf, W, cert, status, b0, m, n, num, nA, nX, eps, okv, True)
    return bad


@njit(nogil=True, fastmath={"contract", "reassoc"}, error_model="numpy")
def _largest_row_sum(M, b):
    """max_i sum_j |M[b, i, j]| (the 1-norm of M[b]'s transpose); reassoc lets LLVM vectorise
    the sums (their order is not part of the certificate; NaN and inf still propagate)."""
    n = M.shape[1]
    out = 0.0
    for i in range(n):
        s = 0.0
        for j in range(n):
            s += abs(M[b, i, j])
        out = _nmax(out, s)
    return out


@njit(**_OPTS)
def norms1_transposed(M, out, start, stop):
    """``out[b] = ||M[b]^T||_1`` for b in start:stop: the 1-norms of a batch whose matrices are
    stored transposed (LAPACK's column-major inverses, as torch returns them)."""
    for b in range(start, stop):
        out[b] = _largest_row_sum(M, b)
    return 0


@njit(**_OPTS)
def norms1(M, out, start, stop, minus_identity):
    """``out[b] = ||M[b] - minus_identity * I||_1`` for b in start:stop, summed in working
    precision as ``M.abs().sum(-2).amax(-1)`` is (NaN propagates, inf stays inf). With
    ``minus_identity`` the identity is subtracted from M in place (M is the caller's scratch)."""
    n = M.shape[1]
    cols = np.empty(n, M.dtype)
    for b in range(start, stop):
        for j in range(n):
            cols[j] = 0
        if minus_identity:
            for i in range(n):
                M[b, i, i] -= 1
        for i in range(n):
            for j in range(n):
                cols[j] += abs(M[b, i, j])
        m = cols[0] if n else 0
        for j in range(1, n):
            m = _nmax(m, cols[j])
        out[b] = m
    return 0


# --- team entry points: the kernels on the threads of an OpenMP team --------------------------
#: int64 slots of a team block: A, X, cert, status (addresses), B, n, chunk, next, bad, eps.
TEAM_SLOTS = 10
TEAM_NEXT = 7
TEAM_BAD = 8


@intrinsic
def _voidptr(typingctx, address):
    """The int64 ``address`` as a void pointer (for ``carray``)."""

    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], ir.IntType(8).as_pointer())

    return types.voidptr(types.int64), codegen


@intrinsic
def _fetch_add(typingctx, base, index, value):
    """Atomically add ``value`` to int64 slot ``index`` of ``base``; the slot's old value."""

    def codegen(context, builder, sig, args):
        slot = builder.gep(builder.bitcast(args[0], ir.IntType(64).as_pointer()), [args[1]])
        return builder.atomic_rmw("add", slot, args[2], "monotonic")

    return types.int64(types.voidptr, types.int64, types.int64), codegen


@njit
def _team_views(data, dtype):
    """The arrays of a team block: A, X (B, n, n), cert (2, B), status (B,); and B, chunk, eps."""
    blk = carray(data, TEAM_SLOTS, np.int64)
    B, n = blk[4], blk[5]
    A = carray(_voidptr(blk[0]), (B, n, n), dtype)
    X = carray(_voidptr(blk[1]), (B, n, n), dtype)
    cert = carray(_voidptr(blk[2]), (2, B), dtype)
    status = carray(_voidptr(blk[3]), B, np.int8)
    eps = carray(data, TEAM_SLOTS, np.float64)[9]
    return A, X, cert, status, B, blk[6], eps


@njit
def _team_small(data, dtype):
    A, X, cert, status, B, chunk, eps = _team_views(data, dtype)
    bad = 0
    while True:
        s = _fetch_add(data, TEAM_NEXT, chunk)
        if s >= B:
            break
        bad += small(A, X, cert, status, s, min(B, s + chunk), eps)
    _fetch_add(data, TEAM_BAD, bad)


@njit
def _team_gauss_jordan(data, dtype):
    A, X, cert, status, B, chunk, eps = _team_views(data, dtype)
    bad = 0
    while True:
        s = _fetch_add(data, TEAM_NEXT, chunk)
        if s >= B:
            break
        bad += gauss_jordan(A, X, cert, status, s, min(B, s + chunk), eps)
    _fetch_add(data, TEAM_BAD, bad)


# Plain functions: :mod:`.native` compiles the one it needs as a cfunc (``void (void *)``) on
# first use, so that importing this module compiles nothing.
def team_small_float32(data):
    _team_small(data, np.float32)


def team_small_float64(data):
    _team_small(data, np.float64)


def team_gauss_jordan_float32(data):
    _team_gauss_jordan(data, np.float32)


def team_gauss_jordan_float64(data):
    _team_gauss_jordan(data, np.float64)
