"""numba kernel of the default learned path for small ``correction`` models (n <= 4).

The arithmetic of :func:`neuralinv.kernels.learned_small.make_kernel` (the ``compile=True``
kernel), on blocks of ``lanes`` matrices laid out batch-innermost (SIMD lanes = matrices): the
region test in float64 as ``Ball.contains``, every member's ``C - (C D) C + s_out * g(D / s_in)``
and their mean, up to ``steps`` Newton-Schulz steps with the stopping rule of
:func:`neuralinv.methods.newton_schulz.refine_certified`, and the dget03 certificate of the
iterate where each matrix stops, summed in the order of ``certify._entry_major_norms``. Sums
run left to right, as there; activations are scalar formulas of torch's (SiLU's exp in
arithmetic, :func:`_exp`), so their last bits may differ from torch's vectorised ones.

``learned_lanes(A, X, accepted, ratio, rcond, iters, start, stop, region_c, radius, head,
scales, weights, shapes, act, steps, tol, eps, lanes)`` works on matrices ``start:stop`` of a
C-contiguous (B, n, n) batch A in the model's dtype:

* region_c (n*n,) float64 and radius: the Ball;
* head (members, 2, n*n): each member's center and center inverse; scales (members, 2): its
  in_scale and out_scale, all in A's dtype;
* weights: every member's g, layer by layer (W row-major, then b), members one after another;
  shapes (layers, 2) int64: (out, in) of g's linear layers, the same for every member;
* act: 0 none, 1 relu, 2 silu, 3 gelu (erf), 4 tanh, applied after every layer but the last.

Rows not ``accepted`` hold meaningless values; the caller answers them with the eager path.
``team_learned_float32/64(data)`` run it on an OpenMP team (see ``TEAM_SLOTS``).
Self-contained on purpose (numba's on-disk cache tracks only this file's source).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import carray, njit, types
from numba.core.extending import intrinsic, overload


@intrinsic
def _pow2(typingctx, k):
    """2**k for a float k holding an integer in the normal exponent range (the exponent field
    set directly: vectorisable, unlike a call to ldexp)."""
    if not isinstance(k, types.Float):
        return None

    def codegen(context, builder, sig, args):
        single = args[0].type == ir.FloatType()
        ity = ir.IntType(32 if single else 64)
        e = builder.add(builder.fptosi(args[0], ity), ir.Constant(ity, 127 if single else 1023))
        return builder.bitcast(builder.shl(e, ir.Constant(ity, 23 if single else 52)), args[0].type)

    return k(k), codegen


def _exp(v):
    """exp(v) in v's precision from arithmetic alone (numba's is a libm call per element),
    so that LLVM vectorises the loops that call it: Cody-Waite reduction by ln 2 and a Taylor
    polynomial on |r| <= ln 2 / 2 (float32: degree 7, float64: degree 13), within a few ulps
    of libm's; the argument clamped to the normal range (it only serves the activations)."""
    return np.exp(v)


@overload(_exp)
def _exp_impl(v):
    if v == types.float32:
        f = np.float32
        big, log2e, hi, lo, half = f(88.0), f(1.4426950408889634), f(0.693145751953125), f(1.4286068203094173e-06), f(0.5)
        c = [f(1 / math.factorial(i)) for i in range(8)]
        c0, c1, c2, c3, c4, c5, c6, c7 = c

        def exp32(v):
            u = v if v < big else big
            w = u if u > -big else -big
            k = np.floor(w * log2e + half)
            r = (w - k * hi) - k * lo
            p = c0 + r * (c1 + r * (c2 + r * (c3 + r * (c4 + r * (c5 + r * (c6 + r * c7))))))
            return p * _pow2(k)

        return exp32
    if v == types.float64:

        def exp64(v):
            u = v if v < 709.0 else 709.0
            w = u if u > -708.0 else -708.0
            k = np.floor(w * 1.4426950408889634 + 0.5)
            r = (w - k * 0.6931471803691238) - k * 1.9082149292705877e-10
            p = 1.0
            t = 1.0
            for i in range(1, 14):
                t = t * r / i
                p = p + t
            return p * _pow2(k)

        return exp64
    return None


@njit(inline="always")
def _activate_row(h2, o, acc, bias, act, L):
    """h2[o, :L] = activation(bias + acc[:L]), the choice of activation outside the lane loop."""
    if act == 0:
        for l in range(L):
            h2[o, l] = bias + acc[l]
    elif act == 2:
        for l in range(L):
            v = bias + acc[l]
            h2[o, l] = v / (1 + _exp(-v))
    else:
        for l in range(L):
            h2[o, l] = _activate(bias + acc[l], act)


@njit(inline="always")
def _activate(v, act):
    if act == 1:
        return v if not v < 0 else v * 0
    if act == 2:
        return v / (1 + _exp(-v))
    if act == 3:
        return v * 0.5 * (1 + math.erf(v * 0.7071067811865476))
    if act == 4:
        return np.tanh(v)
    return v


@njit(inline="always")
def _dot(acc, P, p0, ps, Q, q0, qs, n, L):
    """acc[l] = sum_i P[p0 + i ps, l] * Q[q0 + i qs, l], i = 0 .. n-1 added left to right, in
    one lane loop for n <= 4 (the choice of n outside it)."""
    if n == 3:
        for l in range(L):
            acc[l] = (P[p0, l] * Q[q0, l] + P[p0 + ps, l] * Q[q0 + qs, l]) + P[p0 + 2 * ps, l] * Q[q0 + 2 * qs, l]
    elif n == 2:
        for l in range(L):
            acc[l] = P[p0, l] * Q[q0, l] + P[p0 + ps, l] * Q[q0 + qs, l]
    elif n == 4:
        for l in range(L):
            acc[l] = ((P[p0, l] * Q[q0, l] + P[p0 + ps, l] * Q[q0 + qs, l]) + P[p0 + 2 * ps, l] * Q[q0 + 2 * qs, l]) + P[p0 + 3 * ps, l] * Q[q0 + 3 * qs, l]
    else:
        for l in range(L):
            acc[l] = P[p0, l] * Q[q0, l]
        for i in range(1, n):
            for l in range(L):
                acc[l] = acc[l] + P[p0 + i * ps, l] * Q[q0 + i * qs, l]


@njit(inline="always")
def _scaled_sum(out, row, w, w0, ws, Q, q0, qs, n, L):
    """out[row, l] = sum_k w[w0 + k ws] * Q[q0 + k qs, l], k = 0 ..
    n-1 left to right (the row's product with a constant vector w), one lane loop for n <= 4;
    the products as ``w * q`` (Correction.linear's C D) or ``q * w`` alike (commutative)."""
    c0 = w[w0]
    c1 = w[w0 + ws] if n > 1 else c0
    c2 = w[w0 + 2 * ws] if n > 2 else c0
    c3 = w[w0 + 3 * ws] if n > 3 else c0
    for l in range(L):
        s = c0 * Q[q0, l]
        if n > 1:
            s = s + c1 * Q[q0 + qs, l]
        if n > 2:
            s = s + c2 * Q[q0 + 2 * qs, l]
        if n > 3:
            s = s + c3 * Q[q0 + 3 * qs, l]
        out[row, l] = s


@njit(inline="always")
def _residual_column3(x, a, E, j, ce, cx, L):
    """n = 3, column j: E[:, j] = e_j - X A[:, j], ce = ||E[:, j]||_1, cx = ||X[:, j]||_1 per
    lane, in residual_norms' order, one lane loop."""
    d0 = 1 if j == 0 else 0
    d1 = 1 if j == 1 else 0
    d2 = 1 if j == 2 else 0
    for l in range(L):
        a0, a1, a2 = a[j, l], a[3 + j, l], a[6 + j, l]
        e0 = d0 - ((x[0, l] * a0 + x[1, l] * a1) + x[2, l] * a2)
        e1 = d1 - ((x[3, l] * a0 + x[4, l] * a1) + x[5, l] * a2)
        e2 = d2 - ((x[6, l] * a0 + x[7, l] * a1) + x[8, l] * a2)
        E[j, l] = e0
        E[3 + j, l] = e1
        E[6 + j, l] = e2
        ce[l] = (abs(e0) + abs(e1)) + abs(e2)
        cx[l] = (abs(x[j, l]) + abs(x[3 + j, l])) + abs(x[6 + j, l])


@njit(inline="always")
def _update_row3(x, E, h, i, L):
    """n = 3, row i of the Newton-Schulz step X + E X into h, one lane loop."""
    r = 3 * i
    for l in range(L):
        e0, e1, e2 = E[r, l], E[r + 1, l], E[r + 2, l]
        h[r, l] = x[r, l] + ((e0 * x[0, l] + e1 * x[3, l]) + e2 * x[6, l])
        h[r + 1, l] = x[r + 1, l] + ((e0 * x[1, l] + e1 * x[4, l]) + e2 * x[7, l])
        h[r + 2, l] = x[r + 2, l] + ((e0 * x[2, l] + e1 * x[5, l]) + e2 * x[8, l])




@njit(nogil=True, cache=True, fastmath={"contract"}, error_model="numpy")
def learned_lanes(A, X, accepted, ratio, rcond, iters, start, stop, region_c, radius, head,
                  scales, weights, shapes, act, steps, tol, eps, lanes):
    """The kernel (module docstring): the same operations in the same order for every matrix,
    the per-matrix decisions as lane masks."""
    n = A.shape[1]
    nn = n * n
    L = lanes
    members = head.shape[0]
    width = nn
    for li in range(shapes.shape[0]):
        width = max(width, shapes[li, 0])
    last = shapes.shape[0] - 1
    dt = A.dtype
    a = np.empty((nn, L), dt)
    d = np.empty((nn, L), dt)
    cd = np.empty((nn, L), dt)
    x = np.empty((nn, L), dt)
    total = np.empty((nn, L), dt)
    E = np.empty((nn, L), dt)
    h = np.empty((width, L), dt)
    h2 = np.empty((width, L), dt)
    acc = np.empty(L, dt)
    tmp = np.empty((1, L), dt)
    dist = np.empty(L, np.float64)
    num = np.empty(L, dt)
    na = np.empty(L, dt)
    nx = np.empty(L, dt)
    ce = np.empty(L, dt)
    ca = np.empty(L, dt)
    cx = np.empty(L, dt)
    prev = np.empty(L, dt)
    r = np.empty(L, dt)
    rc = np.empty(L, dt)
    ok = np.empty(L, np.bool_)
    stopped = np.empty(L, np.bool_)
    contracted = np.empty(L, np.bool_)
    its = np.empty(L, np.int32)
    for b0 in range(start, stop, L):
        m = min(L, stop - b0)
        for k in range(nn):
            i, j = k // n, k % n
            for l in range(m):
                a[k, l] = A[b0 + l, i, j]
            for l in range(m, L):  # padding: member 0's center (a harmless matrix)
                a[k, l] = head[0, 0, k]
        for l in range(L):
            dist[l] = 0.0
        for k in range(nn):
            c = region_c[k]
            for l in range(L):
                dk = abs(np.float64(a[k, l]) - c)
                dist[l] = dk if (dk > dist[l]) | (dk != dk) else dist[l]
        off = 0
        for mi in range(members):
            for k in range(nn):
                c = head[mi, 0, k]
                for l in range(L):
                    d[k, l] = a[k, l] - c
            C = head[mi, 1]
            for i in range(n):
                for j in range(n):  # (C D)[i, j] = sum_k C[i, k] D[k, j]
                    _scaled_sum(cd, i * n + j, C, i * n, 1, d, j, n, n, L)
            for i in range(n):
                for j in range(n):  # ((C D) C)[i, j] = sum_k (C D)[i, k] C[k, j]
                    _scaled_sum(tmp, 0, C, j, n, cd, i * n, 1, n, L)
                    c = C[i * n + j]
                    for l in range(L):
                        x[i * n + j, l] = c - tmp[0, l]
            s_in = scales[mi, 0]
            for k in range(nn):
                for l in range(L):
                    h[k, l] = d[k, l] / s_in
            size = nn
            for li in range(shapes.shape[0]):
                out, inp = shapes[li, 0], shapes[li, 1]
                wb = off + out * inp
                for o in range(out):
                    row = off + o * inp
                    w = weights[row]
                    for l in range(L):
                        acc[l] = h[0, l] * w
                    i = 1
                    while i + 3 < inp:  # four terms per pass, still added left to right
                        w0, w1, w2, w3 = weights[row + i], weights[row + i + 1], weights[row + i + 2], weights[row + i + 3]
                        for l in range(L):
                            acc[l] = (((acc[l] + w0 * h[i, l]) + w1 * h[i + 1, l]) + w2 * h[i + 2, l]) + w3 * h[i + 3, l]
                        i += 4
                    while i < inp:
                        w = weights[row + i]
                        for l in range(L):
                            acc[l] = acc[l] + w * h[i, l]
                        i += 1
                    bias = weights[wb + o]
                    _activate_row(h2, o, acc, bias, act if li < last else 0, L)
                off = wb + out
                for o in range(out):
                    for l in range(L):
                        h[o, l] = h2[o, l]
                size = out
            s_out = scales[mi, 1]
            for k in range(min(size, nn)):
                for l in range(L):
                    x[k, l] = x[k, l] + s_out * h[k, l]
            for k in range(nn):
                for l in range(L):
                    total[k, l] = x[k, l] if mi == 0 else total[k, l] + x[k, l]
        if members > 1:
            for k in range(nn):
                for l in range(L):
                    x[k, l] = total[k, l] / members
        for l in range(L):
            ok[l] = False
            stopped[l] = False
            its[l] = 0
        for j in range(n):  # ||A||_1, the same at every step
            first = j == 0
            for l in range(L):
                ca[l] = abs(a[j, l])
            for k in range(1, n):
                for l in range(L):
                    ca[l] = ca[l] + abs(a[k * n + j, l])
            for l in range(L):
                na[l] = ca[l] if first | (ca[l] > na[l]) | (ca[l] != ca[l]) else na[l]
        for step in range(steps + 1):
            for j in range(n):
                first = j == 0
                if n == 3:
                    _residual_column3(x, a, E, j, ce, cx, L)
                else:
                    for l in range(L):
                        ce[l] = 0
                        cx[l] = 0
                    for k in range(n):
                        _dot(acc, x, k * n, 1, a, j, n, n, L)
                        one = 1 if k == j else 0
                        for l in range(L):
                            e = one - acc[l]
                            E[k * n + j, l] = e
                            ce[l] = ce[l] + abs(e)
                            cx[l] = cx[l] + abs(x[k * n + j, l])
                for l in range(L):
                    num[l] = ce[l] if first | (ce[l] > num[l]) | (ce[l] != ce[l]) else num[l]
                    nx[l] = cx[l] if first | (cx[l] > nx[l]) | (cx[l] != cx[l]) else nx[l]
            if step == 0:
                for l in range(L):
                    contracted[l] = num[l] < 1
            late = step >= 2
            # Branch-free (bitwise & | on booleans, selects), so that the lane loop vectorises.
            for l in range(L):
                nl = num[l]
                den = n * na[l] * nx[l] * eps
                fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
                r[l] = np.inf if fails else nl / den
                rc[l] = 1 / (na[l] * nx[l])
                other = (not (abs(nl) < np.inf)) | (nl > 1e6) | (late & (nl >= prev[l]) & (nl < 1))
                ok[l] = ok[l] | ((r[l] < tol) & (not stopped[l]))
                stopped[l] = stopped[l] | ok[l] | other
                prev[l] = nl
            if step < steps:
                for i in range(n):
                    if n == 3:
                        _update_row3(x, E, h, i, L)
                        continue
                    for j in range(n):
                        _dot(acc, E, i * n, 1, x, j, n, n, L)
                        for l in range(L):
                            h[i * n + j, l] = x[i * n + j, l] + acc[l]
                for k in range(nn):
                    for l in range(L):
                        x[k, l] = x[k, l] if stopped[l] else h[k, l]
                for l in range(L):
                    its[l] = its[l] if stopped[l] else its[l] + 1
        for k in range(nn):
            i, j = k // n, k % n
            for l in range(m):
                X[b0 + l, i, j] = x[k, l]
        for l in range(m):
            accepted[b0 + l] = ok[l] & (dist[l] <= radius) & contracted[l]
            ratio[b0 + l] = r[l]
            rcond[b0 + l] = rc[l]
            iters[b0 + l] = its[l]
    return 0


# --- team entry points (as in _numba_kernels): the kernel on the threads of an OpenMP team ---
#: int64 slots of a team block: 0-10 the addresses of A, X, accepted, ratio, rcond, iters,
#: region_c, head, scales, weights, shapes; 11 B, 12 n, 13 members, 14 len(weights), 15 layers,
#: 16 act, 17 steps, 18 lanes, 19 chunk, 20 the next chunk's start (atomic counter); 21 radius,
#: 22 tol, 23 eps as float64.
TEAM_SLOTS = 24
TEAM_NEXT = 20


# _voidptr and _fetch_add repeat _numba_kernels' on purpose: numba's cache of a kernel tracks
# only its own file's source, so this module depends on no other numba module.
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
def _team_learned(data, dtype):
    blk = carray(data, TEAM_SLOTS, np.int64)
    flt = carray(data, TEAM_SLOTS, np.float64)
    B, n, members, nw, layers = blk[11], blk[12], blk[13], blk[14], blk[15]
    nn = n * n
    A = carray(_voidptr(blk[0]), (B, n, n), dtype)
    X = carray(_voidptr(blk[1]), (B, n, n), dtype)
    accepted = carray(_voidptr(blk[2]), B, np.bool_)
    ratio = carray(_voidptr(blk[3]), B, dtype)
    rcond = carray(_voidptr(blk[4]), B, dtype)
    iters = carray(_voidptr(blk[5]), B, np.int32)
    region_c = carray(_voidptr(blk[6]), nn, np.float64)
    head = carray(_voidptr(blk[7]), (members, 2, nn), dtype)
    scales = carray(_voidptr(blk[8]), (members, 2), dtype)
    weights = carray(_voidptr(blk[9]), nw, dtype)
    shapes = carray(_voidptr(blk[10]), (layers, 2), np.int64)
    chunk = blk[19]
    while True:
        s = _fetch_add(data, TEAM_NEXT, chunk)
        if s >= B:
            break
        learned_lanes(A, X, accepted, ratio, rcond, iters, s, min(B, s + chunk), region_c,
                      flt[21], head, scales, weights, shapes, blk[16], blk[17], flt[22], flt[23],
                      blk[18])


# Plain functions: kernels/native_learned.py compiles the one it needs as a cfunc.
def team_learned_float32(data):
    _team_learned(data, np.float32)


def team_learned_float64(data):
    _team_learned(data, np.float64)
