"""numba kernels of the default learned path for small ``correction`` models (n <= 4).

The arithmetic of :func:`neuralinv.kernels.learned_small.make_kernel` (the ``compile=True``
kernel), on blocks of ``lanes`` matrices laid out batch-innermost (SIMD lanes = matrices): the
region test in float64 as ``Ball.contains``, every member's ``C - (C D) C + s_out * g(D / s_in)``
and their mean, up to ``steps`` Newton-Schulz steps (1 .. 3 in float32, 1 .. 4 in float64) with the stopping rule of
:func:`neuralinv.methods.newton_schulz.refine_certified`, and the dget03 certificate of the
iterate where each matrix stops, summed in the order of ``certify._entry_major_norms``. Sums
run left to right, as there; activations are scalar formulas of torch's (SiLU's exp in
arithmetic, :func:`_exp`), so their last bits may differ from torch's vectorised ones.

The parts fixed by n (a member's linear head, the Newton-Schulz steps with their verdicts) are
generated straight-line code, one loop over the lanes with every entry in registers
(``_head{n}``, ``_steps{n}``, written by ``tests/learned_codegen.py``); the network g, whose
shape is the model's, runs layer by layer over lane rows (``_mlp``). One kernel per n,
``learned_lanes{n}(A, X, accepted, ratio, rcond, iters, start, stop, region_c, radius, head,
scales, weights, shapes, act, steps, tol, eps, lanes)``, so that a process compiles (or loads
from numba's cache) only the size it inverts. It works on matrices ``start:stop`` of a
C-contiguous (B, n, n) batch A in the kernel's dtype:

* region_c (n*n,) float64 and radius: the Ball;
* head (members, 2, n*n): each member's center and center inverse; scales (members, 2): its
  in_scale and out_scale, all in A's dtype;
* weights: every member's g, layer by layer (W row-major, then b), members one after another;
  shapes (layers, 2) int64: (out, in) of g's linear layers, the same for every member;
* act: 0 none, 1 relu, 2 silu, 3 gelu (erf), 4 tanh, applied after every layer but the last;
* lanes: matrices per block, at most ``S``.

Rows not ``accepted`` hold meaningless values; the caller answers them with the eager path.
``team_learned{n}_float32/64(data)`` run it on an OpenMP team (see ``TEAM_SLOTS``).
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


#: The row stride of the kernel's block scratch (entry k of lane l at ``k * S + l``), a literal
#: for LLVM, and the most lanes a block may have.
S = 256


# --- generated by tests/learned_codegen.py: do not edit by hand ---
@njit(fastmath={"contract"}, error_model="numpy")
def _head1(av, xv, hv, c, C, s_in, L):
    """n = 1: D = A - c, X = C - (C D) C and the network's input D / s_in of every lane."""
    c0 = c[0]
    C0 = C[0]
    for l in range(L):
        d0 = av[0 * S + l] - c0
        p0 = C0 * d0
        xv[0 * S + l] = C0 - (C0 * p0)
        hv[0 * S + l] = d0 / s_in


@njit(fastmath={"contract"}, error_model="numpy")
def _steps1_3(av, xv, na, ok, contracted, r, rc, its, steps, one, eps, tol, L):
    """n = 1: Newton-Schulz from the guess in ``xv``, every lane in registers: the residual
    of each iterate, its certificate and verdict, then the step for the lanes that go on;
    ``steps`` (1 .. 3) steps and a verdict after each, the iterate where a lane stops left
    in ``xv``. Always 4 verdicts: one after the last step changes nothing (same iterate,
    same ratio). Branch-free (the conditions as selects), so that the loop vectorises. ``one``:
    1 in the working precision (a literal 1 would make the residual float64)."""
    u0 = steps > 0
    u1 = steps > 1
    u2 = steps > 2
    for l in range(L):
        a0 = av[0 * S + l]
        x0 = xv[0 * S + l]
        nal = na[l]
        okl = False
        st = False
        it = 0
        prev = nal
        e0 = one - (x0 * a0)
        ce0 = abs(e0)
        cx0 = abs(x0)
        nl = ce0
        nx = cx0
        contracted[l] = nl < 1
        den = 1 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | (False)
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u0)
        y0 = x0 + (e0 * x0)
        x0 = x0 if keep else y0
        it = it if keep else it + 1
        e0 = one - (x0 * a0)
        ce0 = abs(e0)
        cx0 = abs(x0)
        nl = ce0
        nx = cx0
        den = 1 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | (False)
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u1)
        y0 = x0 + (e0 * x0)
        x0 = x0 if keep else y0
        it = it if keep else it + 1
        e0 = one - (x0 * a0)
        ce0 = abs(e0)
        cx0 = abs(x0)
        nl = ce0
        nx = cx0
        den = 1 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | ((nl >= prev) & (nl < 1))
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u2)
        y0 = x0 + (e0 * x0)
        x0 = x0 if keep else y0
        it = it if keep else it + 1
        e0 = one - (x0 * a0)
        ce0 = abs(e0)
        cx0 = abs(x0)
        nl = ce0
        nx = cx0
        den = 1 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | ((nl >= prev) & (nl < 1))
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        xv[0 * S + l] = x0
        ok[l] = okl
        its[l] = it


@njit(fastmath={"contract"}, error_model="numpy")
def _steps1_4(av, xv, na, ok, contracted, r, rc, its, steps, one, eps, tol, L):
    """n = 1: Newton-Schulz from the guess in ``xv``, every lane in registers: the residual
    of each iterate, its certificate and verdict, then the step for the lanes that go on;
    ``steps`` (1 .. 4) steps and a verdict after each, the iterate where a lane stops left
    in ``xv``. Always 5 verdicts: one after the last step changes nothing (same iterate,
    same ratio). Branch-free (the conditions as selects), so that the loop vectorises. ``one``:
    1 in the working precision (a literal 1 would make the residual float64)."""
    u0 = steps > 0
    u1 = steps > 1
    u2 = steps > 2
    u3 = steps > 3
    for l in range(L):
        a0 = av[0 * S + l]
        x0 = xv[0 * S + l]
        nal = na[l]
        okl = False
        st = False
        it = 0
        prev = nal
        e0 = one - (x0 * a0)
        ce0 = abs(e0)
        cx0 = abs(x0)
        nl = ce0
        nx = cx0
        contracted[l] = nl < 1
        den = 1 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | (False)
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u0)
        y0 = x0 + (e0 * x0)
        x0 = x0 if keep else y0
        it = it if keep else it + 1
        e0 = one - (x0 * a0)
        ce0 = abs(e0)
        cx0 = abs(x0)
        nl = ce0
        nx = cx0
        den = 1 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | (False)
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u1)
        y0 = x0 + (e0 * x0)
        x0 = x0 if keep else y0
        it = it if keep else it + 1
        e0 = one - (x0 * a0)
        ce0 = abs(e0)
        cx0 = abs(x0)
        nl = ce0
        nx = cx0
        den = 1 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | ((nl >= prev) & (nl < 1))
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u2)
        y0 = x0 + (e0 * x0)
        x0 = x0 if keep else y0
        it = it if keep else it + 1
        e0 = one - (x0 * a0)
        ce0 = abs(e0)
        cx0 = abs(x0)
        nl = ce0
        nx = cx0
        den = 1 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | ((nl >= prev) & (nl < 1))
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u3)
        y0 = x0 + (e0 * x0)
        x0 = x0 if keep else y0
        it = it if keep else it + 1
        e0 = one - (x0 * a0)
        ce0 = abs(e0)
        cx0 = abs(x0)
        nl = ce0
        nx = cx0
        den = 1 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | ((nl >= prev) & (nl < 1))
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        xv[0 * S + l] = x0
        ok[l] = okl
        its[l] = it


@njit(fastmath={"contract"}, error_model="numpy")
def _head2(av, xv, hv, c, C, s_in, L):
    """n = 2: D = A - c, X = C - (C D) C and the network's input D / s_in of every lane."""
    c0 = c[0]
    c1 = c[1]
    c2 = c[2]
    c3 = c[3]
    C0 = C[0]
    C1 = C[1]
    C2 = C[2]
    C3 = C[3]
    for l in range(L):
        d0 = av[0 * S + l] - c0
        d1 = av[1 * S + l] - c1
        d2 = av[2 * S + l] - c2
        d3 = av[3 * S + l] - c3
        p0 = C0 * d0 + C1 * d2
        p1 = C0 * d1 + C1 * d3
        p2 = C2 * d0 + C3 * d2
        p3 = C2 * d1 + C3 * d3
        xv[0 * S + l] = C0 - (C0 * p0 + C2 * p1)
        xv[1 * S + l] = C1 - (C1 * p0 + C3 * p1)
        xv[2 * S + l] = C2 - (C0 * p2 + C2 * p3)
        xv[3 * S + l] = C3 - (C1 * p2 + C3 * p3)
        hv[0 * S + l] = d0 / s_in
        hv[1 * S + l] = d1 / s_in
        hv[2 * S + l] = d2 / s_in
        hv[3 * S + l] = d3 / s_in


@njit(fastmath={"contract"}, error_model="numpy")
def _steps2_3(av, xv, na, ok, contracted, r, rc, its, steps, one, eps, tol, L):
    """n = 2: Newton-Schulz from the guess in ``xv``, every lane in registers: the residual
    of each iterate, its certificate and verdict, then the step for the lanes that go on;
    ``steps`` (1 .. 3) steps and a verdict after each, the iterate where a lane stops left
    in ``xv``. Always 4 verdicts: one after the last step changes nothing (same iterate,
    same ratio). Branch-free (the conditions as selects), so that the loop vectorises. ``one``:
    1 in the working precision (a literal 1 would make the residual float64)."""
    u0 = steps > 0
    u1 = steps > 1
    u2 = steps > 2
    for l in range(L):
        a0 = av[0 * S + l]
        a1 = av[1 * S + l]
        a2 = av[2 * S + l]
        a3 = av[3 * S + l]
        x0 = xv[0 * S + l]
        x1 = xv[1 * S + l]
        x2 = xv[2 * S + l]
        x3 = xv[3 * S + l]
        nal = na[l]
        okl = False
        st = False
        it = 0
        prev = nal
        e0 = one - (x0 * a0 + x1 * a2)
        e1 = -(x0 * a1 + x1 * a3)
        e2 = -(x2 * a0 + x3 * a2)
        e3 = one - (x2 * a1 + x3 * a3)
        ce0 = abs(e0) + abs(e2)
        cx0 = abs(x0) + abs(x2)
        ce1 = abs(e1) + abs(e3)
        cx1 = abs(x1) + abs(x3)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        contracted[l] = nl < 1
        den = 2 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | (False)
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u0)
        y0 = x0 + (e0 * x0 + e1 * x2)
        y1 = x1 + (e0 * x1 + e1 * x3)
        y2 = x2 + (e2 * x0 + e3 * x2)
        y3 = x3 + (e2 * x1 + e3 * x3)
        x0 = x0 if keep else y0
        x1 = x1 if keep else y1
        x2 = x2 if keep else y2
        x3 = x3 if keep else y3
        it = it if keep else it + 1
        e0 = one - (x0 * a0 + x1 * a2)
        e1 = -(x0 * a1 + x1 * a3)
        e2 = -(x2 * a0 + x3 * a2)
        e3 = one - (x2 * a1 + x3 * a3)
        ce0 = abs(e0) + abs(e2)
        cx0 = abs(x0) + abs(x2)
        ce1 = abs(e1) + abs(e3)
        cx1 = abs(x1) + abs(x3)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        den = 2 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | (False)
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u1)
        y0 = x0 + (e0 * x0 + e1 * x2)
        y1 = x1 + (e0 * x1 + e1 * x3)
        y2 = x2 + (e2 * x0 + e3 * x2)
        y3 = x3 + (e2 * x1 + e3 * x3)
        x0 = x0 if keep else y0
        x1 = x1 if keep else y1
        x2 = x2 if keep else y2
        x3 = x3 if keep else y3
        it = it if keep else it + 1
        e0 = one - (x0 * a0 + x1 * a2)
        e1 = -(x0 * a1 + x1 * a3)
        e2 = -(x2 * a0 + x3 * a2)
        e3 = one - (x2 * a1 + x3 * a3)
        ce0 = abs(e0) + abs(e2)
        cx0 = abs(x0) + abs(x2)
        ce1 = abs(e1) + abs(e3)
        cx1 = abs(x1) + abs(x3)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        den = 2 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | ((nl >= prev) & (nl < 1))
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u2)
        y0 = x0 + (e0 * x0 + e1 * x2)
        y1 = x1 + (e0 * x1 + e1 * x3)
        y2 = x2 + (e2 * x0 + e3 * x2)
        y3 = x3 + (e2 * x1 + e3 * x3)
        x0 = x0 if keep else y0
        x1 = x1 if keep else y1
        x2 = x2 if keep else y2
        x3 = x3 if keep else y3
        it = it if keep else it + 1
        e0 = one - (x0 * a0 + x1 * a2)
        e1 = -(x0 * a1 + x1 * a3)
        e2 = -(x2 * a0 + x3 * a2)
        e3 = one - (x2 * a1 + x3 * a3)
        ce0 = abs(e0) + abs(e2)
        cx0 = abs(x0) + abs(x2)
        ce1 = abs(e1) + abs(e3)
        cx1 = abs(x1) + abs(x3)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        den = 2 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | ((nl >= prev) & (nl < 1))
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        xv[0 * S + l] = x0
        xv[1 * S + l] = x1
        xv[2 * S + l] = x2
        xv[3 * S + l] = x3
        ok[l] = okl
        its[l] = it


@njit(fastmath={"contract"}, error_model="numpy")
def _steps2_4(av, xv, na, ok, contracted, r, rc, its, steps, one, eps, tol, L):
    """n = 2: Newton-Schulz from the guess in ``xv``, every lane in registers: the residual
    of each iterate, its certificate and verdict, then the step for the lanes that go on;
    ``steps`` (1 .. 4) steps and a verdict after each, the iterate where a lane stops left
    in ``xv``. Always 5 verdicts: one after the last step changes nothing (same iterate,
    same ratio). Branch-free (the conditions as selects), so that the loop vectorises. ``one``:
    1 in the working precision (a literal 1 would make the residual float64)."""
    u0 = steps > 0
    u1 = steps > 1
    u2 = steps > 2
    u3 = steps > 3
    for l in range(L):
        a0 = av[0 * S + l]
        a1 = av[1 * S + l]
        a2 = av[2 * S + l]
        a3 = av[3 * S + l]
        x0 = xv[0 * S + l]
        x1 = xv[1 * S + l]
        x2 = xv[2 * S + l]
        x3 = xv[3 * S + l]
        nal = na[l]
        okl = False
        st = False
        it = 0
        prev = nal
        e0 = one - (x0 * a0 + x1 * a2)
        e1 = -(x0 * a1 + x1 * a3)
        e2 = -(x2 * a0 + x3 * a2)
        e3 = one - (x2 * a1 + x3 * a3)
        ce0 = abs(e0) + abs(e2)
        cx0 = abs(x0) + abs(x2)
        ce1 = abs(e1) + abs(e3)
        cx1 = abs(x1) + abs(x3)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        contracted[l] = nl < 1
        den = 2 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | (False)
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u0)
        y0 = x0 + (e0 * x0 + e1 * x2)
        y1 = x1 + (e0 * x1 + e1 * x3)
        y2 = x2 + (e2 * x0 + e3 * x2)
        y3 = x3 + (e2 * x1 + e3 * x3)
        x0 = x0 if keep else y0
        x1 = x1 if keep else y1
        x2 = x2 if keep else y2
        x3 = x3 if keep else y3
        it = it if keep else it + 1
        e0 = one - (x0 * a0 + x1 * a2)
        e1 = -(x0 * a1 + x1 * a3)
        e2 = -(x2 * a0 + x3 * a2)
        e3 = one - (x2 * a1 + x3 * a3)
        ce0 = abs(e0) + abs(e2)
        cx0 = abs(x0) + abs(x2)
        ce1 = abs(e1) + abs(e3)
        cx1 = abs(x1) + abs(x3)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        den = 2 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | (False)
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u1)
        y0 = x0 + (e0 * x0 + e1 * x2)
        y1 = x1 + (e0 * x1 + e1 * x3)
        y2 = x2 + (e2 * x0 + e3 * x2)
        y3 = x3 + (e2 * x1 + e3 * x3)
        x0 = x0 if keep else y0
        x1 = x1 if keep else y1
        x2 = x2 if keep else y2
        x3 = x3 if keep else y3
        it = it if keep else it + 1
        e0 = one - (x0 * a0 + x1 * a2)
        e1 = -(x0 * a1 + x1 * a3)
        e2 = -(x2 * a0 + x3 * a2)
        e3 = one - (x2 * a1 + x3 * a3)
        ce0 = abs(e0) + abs(e2)
        cx0 = abs(x0) + abs(x2)
        ce1 = abs(e1) + abs(e3)
        cx1 = abs(x1) + abs(x3)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        den = 2 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | ((nl >= prev) & (nl < 1))
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u2)
        y0 = x0 + (e0 * x0 + e1 * x2)
        y1 = x1 + (e0 * x1 + e1 * x3)
        y2 = x2 + (e2 * x0 + e3 * x2)
        y3 = x3 + (e2 * x1 + e3 * x3)
        x0 = x0 if keep else y0
        x1 = x1 if keep else y1
        x2 = x2 if keep else y2
        x3 = x3 if keep else y3
        it = it if keep else it + 1
        e0 = one - (x0 * a0 + x1 * a2)
        e1 = -(x0 * a1 + x1 * a3)
        e2 = -(x2 * a0 + x3 * a2)
        e3 = one - (x2 * a1 + x3 * a3)
        ce0 = abs(e0) + abs(e2)
        cx0 = abs(x0) + abs(x2)
        ce1 = abs(e1) + abs(e3)
        cx1 = abs(x1) + abs(x3)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        den = 2 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | ((nl >= prev) & (nl < 1))
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u3)
        y0 = x0 + (e0 * x0 + e1 * x2)
        y1 = x1 + (e0 * x1 + e1 * x3)
        y2 = x2 + (e2 * x0 + e3 * x2)
        y3 = x3 + (e2 * x1 + e3 * x3)
        x0 = x0 if keep else y0
        x1 = x1 if keep else y1
        x2 = x2 if keep else y2
        x3 = x3 if keep else y3
        it = it if keep else it + 1
        e0 = one - (x0 * a0 + x1 * a2)
        e1 = -(x0 * a1 + x1 * a3)
        e2 = -(x2 * a0 + x3 * a2)
        e3 = one - (x2 * a1 + x3 * a3)
        ce0 = abs(e0) + abs(e2)
        cx0 = abs(x0) + abs(x2)
        ce1 = abs(e1) + abs(e3)
        cx1 = abs(x1) + abs(x3)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        den = 2 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | ((nl >= prev) & (nl < 1))
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        xv[0 * S + l] = x0
        xv[1 * S + l] = x1
        xv[2 * S + l] = x2
        xv[3 * S + l] = x3
        ok[l] = okl
        its[l] = it


@njit(fastmath={"contract"}, error_model="numpy")
def _head3(av, xv, hv, c, C, s_in, L):
    """n = 3: D = A - c, X = C - (C D) C and the network's input D / s_in of every lane."""
    c0 = c[0]
    c1 = c[1]
    c2 = c[2]
    c3 = c[3]
    c4 = c[4]
    c5 = c[5]
    c6 = c[6]
    c7 = c[7]
    c8 = c[8]
    C0 = C[0]
    C1 = C[1]
    C2 = C[2]
    C3 = C[3]
    C4 = C[4]
    C5 = C[5]
    C6 = C[6]
    C7 = C[7]
    C8 = C[8]
    for l in range(L):
        d0 = av[0 * S + l] - c0
        d1 = av[1 * S + l] - c1
        d2 = av[2 * S + l] - c2
        d3 = av[3 * S + l] - c3
        d4 = av[4 * S + l] - c4
        d5 = av[5 * S + l] - c5
        d6 = av[6 * S + l] - c6
        d7 = av[7 * S + l] - c7
        d8 = av[8 * S + l] - c8
        p0 = (C0 * d0 + C1 * d3) + C2 * d6
        p1 = (C0 * d1 + C1 * d4) + C2 * d7
        p2 = (C0 * d2 + C1 * d5) + C2 * d8
        p3 = (C3 * d0 + C4 * d3) + C5 * d6
        p4 = (C3 * d1 + C4 * d4) + C5 * d7
        p5 = (C3 * d2 + C4 * d5) + C5 * d8
        p6 = (C6 * d0 + C7 * d3) + C8 * d6
        p7 = (C6 * d1 + C7 * d4) + C8 * d7
        p8 = (C6 * d2 + C7 * d5) + C8 * d8
        xv[0 * S + l] = C0 - ((C0 * p0 + C3 * p1) + C6 * p2)
        xv[1 * S + l] = C1 - ((C1 * p0 + C4 * p1) + C7 * p2)
        xv[2 * S + l] = C2 - ((C2 * p0 + C5 * p1) + C8 * p2)
        xv[3 * S + l] = C3 - ((C0 * p3 + C3 * p4) + C6 * p5)
        xv[4 * S + l] = C4 - ((C1 * p3 + C4 * p4) + C7 * p5)
        xv[5 * S + l] = C5 - ((C2 * p3 + C5 * p4) + C8 * p5)
        xv[6 * S + l] = C6 - ((C0 * p6 + C3 * p7) + C6 * p8)
        xv[7 * S + l] = C7 - ((C1 * p6 + C4 * p7) + C7 * p8)
        xv[8 * S + l] = C8 - ((C2 * p6 + C5 * p7) + C8 * p8)
        hv[0 * S + l] = d0 / s_in
        hv[1 * S + l] = d1 / s_in
        hv[2 * S + l] = d2 / s_in
        hv[3 * S + l] = d3 / s_in
        hv[4 * S + l] = d4 / s_in
        hv[5 * S + l] = d5 / s_in
        hv[6 * S + l] = d6 / s_in
        hv[7 * S + l] = d7 / s_in
        hv[8 * S + l] = d8 / s_in


@njit(fastmath={"contract"}, error_model="numpy")
def _steps3_3(av, xv, na, ok, contracted, r, rc, its, steps, one, eps, tol, L):
    """n = 3: Newton-Schulz from the guess in ``xv``, every lane in registers: the residual
    of each iterate, its certificate and verdict, then the step for the lanes that go on;
    ``steps`` (1 .. 3) steps and a verdict after each, the iterate where a lane stops left
    in ``xv``. Always 4 verdicts: one after the last step changes nothing (same iterate,
    same ratio). Branch-free (the conditions as selects), so that the loop vectorises. ``one``:
    1 in the working precision (a literal 1 would make the residual float64)."""
    u0 = steps > 0
    u1 = steps > 1
    u2 = steps > 2
    for l in range(L):
        a0 = av[0 * S + l]
        a1 = av[1 * S + l]
        a2 = av[2 * S + l]
        a3 = av[3 * S + l]
        a4 = av[4 * S + l]
        a5 = av[5 * S + l]
        a6 = av[6 * S + l]
        a7 = av[7 * S + l]
        a8 = av[8 * S + l]
        x0 = xv[0 * S + l]
        x1 = xv[1 * S + l]
        x2 = xv[2 * S + l]
        x3 = xv[3 * S + l]
        x4 = xv[4 * S + l]
        x5 = xv[5 * S + l]
        x6 = xv[6 * S + l]
        x7 = xv[7 * S + l]
        x8 = xv[8 * S + l]
        nal = na[l]
        okl = False
        st = False
        it = 0
        prev = nal
        e0 = one - ((x0 * a0 + x1 * a3) + x2 * a6)
        e1 = -((x0 * a1 + x1 * a4) + x2 * a7)
        e2 = -((x0 * a2 + x1 * a5) + x2 * a8)
        e3 = -((x3 * a0 + x4 * a3) + x5 * a6)
        e4 = one - ((x3 * a1 + x4 * a4) + x5 * a7)
        e5 = -((x3 * a2 + x4 * a5) + x5 * a8)
        e6 = -((x6 * a0 + x7 * a3) + x8 * a6)
        e7 = -((x6 * a1 + x7 * a4) + x8 * a7)
        e8 = one - ((x6 * a2 + x7 * a5) + x8 * a8)
        ce0 = (abs(e0) + abs(e3)) + abs(e6)
        cx0 = (abs(x0) + abs(x3)) + abs(x6)
        ce1 = (abs(e1) + abs(e4)) + abs(e7)
        cx1 = (abs(x1) + abs(x4)) + abs(x7)
        ce2 = (abs(e2) + abs(e5)) + abs(e8)
        cx2 = (abs(x2) + abs(x5)) + abs(x8)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nl = ce2 if (ce2 > nl) | (ce2 != ce2) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        nx = cx2 if (cx2 > nx) | (cx2 != cx2) else nx
        contracted[l] = nl < 1
        den = 3 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | (False)
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u0)
        y0 = x0 + ((e0 * x0 + e1 * x3) + e2 * x6)
        y1 = x1 + ((e0 * x1 + e1 * x4) + e2 * x7)
        y2 = x2 + ((e0 * x2 + e1 * x5) + e2 * x8)
        y3 = x3 + ((e3 * x0 + e4 * x3) + e5 * x6)
        y4 = x4 + ((e3 * x1 + e4 * x4) + e5 * x7)
        y5 = x5 + ((e3 * x2 + e4 * x5) + e5 * x8)
        y6 = x6 + ((e6 * x0 + e7 * x3) + e8 * x6)
        y7 = x7 + ((e6 * x1 + e7 * x4) + e8 * x7)
        y8 = x8 + ((e6 * x2 + e7 * x5) + e8 * x8)
        x0 = x0 if keep else y0
        x1 = x1 if keep else y1
        x2 = x2 if keep else y2
        x3 = x3 if keep else y3
        x4 = x4 if keep else y4
        x5 = x5 if keep else y5
        x6 = x6 if keep else y6
        x7 = x7 if keep else y7
        x8 = x8 if keep else y8
        it = it if keep else it + 1
        e0 = one - ((x0 * a0 + x1 * a3) + x2 * a6)
        e1 = -((x0 * a1 + x1 * a4) + x2 * a7)
        e2 = -((x0 * a2 + x1 * a5) + x2 * a8)
        e3 = -((x3 * a0 + x4 * a3) + x5 * a6)
        e4 = one - ((x3 * a1 + x4 * a4) + x5 * a7)
        e5 = -((x3 * a2 + x4 * a5) + x5 * a8)
        e6 = -((x6 * a0 + x7 * a3) + x8 * a6)
        e7 = -((x6 * a1 + x7 * a4) + x8 * a7)
        e8 = one - ((x6 * a2 + x7 * a5) + x8 * a8)
        ce0 = (abs(e0) + abs(e3)) + abs(e6)
        cx0 = (abs(x0) + abs(x3)) + abs(x6)
        ce1 = (abs(e1) + abs(e4)) + abs(e7)
        cx1 = (abs(x1) + abs(x4)) + abs(x7)
        ce2 = (abs(e2) + abs(e5)) + abs(e8)
        cx2 = (abs(x2) + abs(x5)) + abs(x8)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nl = ce2 if (ce2 > nl) | (ce2 != ce2) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        nx = cx2 if (cx2 > nx) | (cx2 != cx2) else nx
        den = 3 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | (False)
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u1)
        y0 = x0 + ((e0 * x0 + e1 * x3) + e2 * x6)
        y1 = x1 + ((e0 * x1 + e1 * x4) + e2 * x7)
        y2 = x2 + ((e0 * x2 + e1 * x5) + e2 * x8)
        y3 = x3 + ((e3 * x0 + e4 * x3) + e5 * x6)
        y4 = x4 + ((e3 * x1 + e4 * x4) + e5 * x7)
        y5 = x5 + ((e3 * x2 + e4 * x5) + e5 * x8)
        y6 = x6 + ((e6 * x0 + e7 * x3) + e8 * x6)
        y7 = x7 + ((e6 * x1 + e7 * x4) + e8 * x7)
        y8 = x8 + ((e6 * x2 + e7 * x5) + e8 * x8)
        x0 = x0 if keep else y0
        x1 = x1 if keep else y1
        x2 = x2 if keep else y2
        x3 = x3 if keep else y3
        x4 = x4 if keep else y4
        x5 = x5 if keep else y5
        x6 = x6 if keep else y6
        x7 = x7 if keep else y7
        x8 = x8 if keep else y8
        it = it if keep else it + 1
        e0 = one - ((x0 * a0 + x1 * a3) + x2 * a6)
        e1 = -((x0 * a1 + x1 * a4) + x2 * a7)
        e2 = -((x0 * a2 + x1 * a5) + x2 * a8)
        e3 = -((x3 * a0 + x4 * a3) + x5 * a6)
        e4 = one - ((x3 * a1 + x4 * a4) + x5 * a7)
        e5 = -((x3 * a2 + x4 * a5) + x5 * a8)
        e6 = -((x6 * a0 + x7 * a3) + x8 * a6)
        e7 = -((x6 * a1 + x7 * a4) + x8 * a7)
        e8 = one - ((x6 * a2 + x7 * a5) + x8 * a8)
        ce0 = (abs(e0) + abs(e3)) + abs(e6)
        cx0 = (abs(x0) + abs(x3)) + abs(x6)
        ce1 = (abs(e1) + abs(e4)) + abs(e7)
        cx1 = (abs(x1) + abs(x4)) + abs(x7)
        ce2 = (abs(e2) + abs(e5)) + abs(e8)
        cx2 = (abs(x2) + abs(x5)) + abs(x8)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nl = ce2 if (ce2 > nl) | (ce2 != ce2) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        nx = cx2 if (cx2 > nx) | (cx2 != cx2) else nx
        den = 3 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | ((nl >= prev) & (nl < 1))
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u2)
        y0 = x0 + ((e0 * x0 + e1 * x3) + e2 * x6)
        y1 = x1 + ((e0 * x1 + e1 * x4) + e2 * x7)
        y2 = x2 + ((e0 * x2 + e1 * x5) + e2 * x8)
        y3 = x3 + ((e3 * x0 + e4 * x3) + e5 * x6)
        y4 = x4 + ((e3 * x1 + e4 * x4) + e5 * x7)
        y5 = x5 + ((e3 * x2 + e4 * x5) + e5 * x8)
        y6 = x6 + ((e6 * x0 + e7 * x3) + e8 * x6)
        y7 = x7 + ((e6 * x1 + e7 * x4) + e8 * x7)
        y8 = x8 + ((e6 * x2 + e7 * x5) + e8 * x8)
        x0 = x0 if keep else y0
        x1 = x1 if keep else y1
        x2 = x2 if keep else y2
        x3 = x3 if keep else y3
        x4 = x4 if keep else y4
        x5 = x5 if keep else y5
        x6 = x6 if keep else y6
        x7 = x7 if keep else y7
        x8 = x8 if keep else y8
        it = it if keep else it + 1
        e0 = one - ((x0 * a0 + x1 * a3) + x2 * a6)
        e1 = -((x0 * a1 + x1 * a4) + x2 * a7)
        e2 = -((x0 * a2 + x1 * a5) + x2 * a8)
        e3 = -((x3 * a0 + x4 * a3) + x5 * a6)
        e4 = one - ((x3 * a1 + x4 * a4) + x5 * a7)
        e5 = -((x3 * a2 + x4 * a5) + x5 * a8)
        e6 = -((x6 * a0 + x7 * a3) + x8 * a6)
        e7 = -((x6 * a1 + x7 * a4) + x8 * a7)
        e8 = one - ((x6 * a2 + x7 * a5) + x8 * a8)
        ce0 = (abs(e0) + abs(e3)) + abs(e6)
        cx0 = (abs(x0) + abs(x3)) + abs(x6)
        ce1 = (abs(e1) + abs(e4)) + abs(e7)
        cx1 = (abs(x1) + abs(x4)) + abs(x7)
        ce2 = (abs(e2) + abs(e5)) + abs(e8)
        cx2 = (abs(x2) + abs(x5)) + abs(x8)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nl = ce2 if (ce2 > nl) | (ce2 != ce2) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        nx = cx2 if (cx2 > nx) | (cx2 != cx2) else nx
        den = 3 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | ((nl >= prev) & (nl < 1))
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        xv[0 * S + l] = x0
        xv[1 * S + l] = x1
        xv[2 * S + l] = x2
        xv[3 * S + l] = x3
        xv[4 * S + l] = x4
        xv[5 * S + l] = x5
        xv[6 * S + l] = x6
        xv[7 * S + l] = x7
        xv[8 * S + l] = x8
        ok[l] = okl
        its[l] = it


@njit(fastmath={"contract"}, error_model="numpy")
def _steps3_4(av, xv, na, ok, contracted, r, rc, its, steps, one, eps, tol, L):
    """n = 3: Newton-Schulz from the guess in ``xv``, every lane in registers: the residual
    of each iterate, its certificate and verdict, then the step for the lanes that go on;
    ``steps`` (1 .. 4) steps and a verdict after each, the iterate where a lane stops left
    in ``xv``. Always 5 verdicts: one after the last step changes nothing (same iterate,
    same ratio). Branch-free (the conditions as selects), so that the loop vectorises. ``one``:
    1 in the working precision (a literal 1 would make the residual float64)."""
    u0 = steps > 0
    u1 = steps > 1
    u2 = steps > 2
    u3 = steps > 3
    for l in range(L):
        a0 = av[0 * S + l]
        a1 = av[1 * S + l]
        a2 = av[2 * S + l]
        a3 = av[3 * S + l]
        a4 = av[4 * S + l]
        a5 = av[5 * S + l]
        a6 = av[6 * S + l]
        a7 = av[7 * S + l]
        a8 = av[8 * S + l]
        x0 = xv[0 * S + l]
        x1 = xv[1 * S + l]
        x2 = xv[2 * S + l]
        x3 = xv[3 * S + l]
        x4 = xv[4 * S + l]
        x5 = xv[5 * S + l]
        x6 = xv[6 * S + l]
        x7 = xv[7 * S + l]
        x8 = xv[8 * S + l]
        nal = na[l]
        okl = False
        st = False
        it = 0
        prev = nal
        e0 = one - ((x0 * a0 + x1 * a3) + x2 * a6)
        e1 = -((x0 * a1 + x1 * a4) + x2 * a7)
        e2 = -((x0 * a2 + x1 * a5) + x2 * a8)
        e3 = -((x3 * a0 + x4 * a3) + x5 * a6)
        e4 = one - ((x3 * a1 + x4 * a4) + x5 * a7)
        e5 = -((x3 * a2 + x4 * a5) + x5 * a8)
        e6 = -((x6 * a0 + x7 * a3) + x8 * a6)
        e7 = -((x6 * a1 + x7 * a4) + x8 * a7)
        e8 = one - ((x6 * a2 + x7 * a5) + x8 * a8)
        ce0 = (abs(e0) + abs(e3)) + abs(e6)
        cx0 = (abs(x0) + abs(x3)) + abs(x6)
        ce1 = (abs(e1) + abs(e4)) + abs(e7)
        cx1 = (abs(x1) + abs(x4)) + abs(x7)
        ce2 = (abs(e2) + abs(e5)) + abs(e8)
        cx2 = (abs(x2) + abs(x5)) + abs(x8)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nl = ce2 if (ce2 > nl) | (ce2 != ce2) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        nx = cx2 if (cx2 > nx) | (cx2 != cx2) else nx
        contracted[l] = nl < 1
        den = 3 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | (False)
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u0)
        y0 = x0 + ((e0 * x0 + e1 * x3) + e2 * x6)
        y1 = x1 + ((e0 * x1 + e1 * x4) + e2 * x7)
        y2 = x2 + ((e0 * x2 + e1 * x5) + e2 * x8)
        y3 = x3 + ((e3 * x0 + e4 * x3) + e5 * x6)
        y4 = x4 + ((e3 * x1 + e4 * x4) + e5 * x7)
        y5 = x5 + ((e3 * x2 + e4 * x5) + e5 * x8)
        y6 = x6 + ((e6 * x0 + e7 * x3) + e8 * x6)
        y7 = x7 + ((e6 * x1 + e7 * x4) + e8 * x7)
        y8 = x8 + ((e6 * x2 + e7 * x5) + e8 * x8)
        x0 = x0 if keep else y0
        x1 = x1 if keep else y1
        x2 = x2 if keep else y2
        x3 = x3 if keep else y3
        x4 = x4 if keep else y4
        x5 = x5 if keep else y5
        x6 = x6 if keep else y6
        x7 = x7 if keep else y7
        x8 = x8 if keep else y8
        it = it if keep else it + 1
        e0 = one - ((x0 * a0 + x1 * a3) + x2 * a6)
        e1 = -((x0 * a1 + x1 * a4) + x2 * a7)
        e2 = -((x0 * a2 + x1 * a5) + x2 * a8)
        e3 = -((x3 * a0 + x4 * a3) + x5 * a6)
        e4 = one - ((x3 * a1 + x4 * a4) + x5 * a7)
        e5 = -((x3 * a2 + x4 * a5) + x5 * a8)
        e6 = -((x6 * a0 + x7 * a3) + x8 * a6)
        e7 = -((x6 * a1 + x7 * a4) + x8 * a7)
        e8 = one - ((x6 * a2 + x7 * a5) + x8 * a8)
        ce0 = (abs(e0) + abs(e3)) + abs(e6)
        cx0 = (abs(x0) + abs(x3)) + abs(x6)
        ce1 = (abs(e1) + abs(e4)) + abs(e7)
        cx1 = (abs(x1) + abs(x4)) + abs(x7)
        ce2 = (abs(e2) + abs(e5)) + abs(e8)
        cx2 = (abs(x2) + abs(x5)) + abs(x8)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nl = ce2 if (ce2 > nl) | (ce2 != ce2) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        nx = cx2 if (cx2 > nx) | (cx2 != cx2) else nx
        den = 3 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | (False)
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u1)
        y0 = x0 + ((e0 * x0 + e1 * x3) + e2 * x6)
        y1 = x1 + ((e0 * x1 + e1 * x4) + e2 * x7)
        y2 = x2 + ((e0 * x2 + e1 * x5) + e2 * x8)
        y3 = x3 + ((e3 * x0 + e4 * x3) + e5 * x6)
        y4 = x4 + ((e3 * x1 + e4 * x4) + e5 * x7)
        y5 = x5 + ((e3 * x2 + e4 * x5) + e5 * x8)
        y6 = x6 + ((e6 * x0 + e7 * x3) + e8 * x6)
        y7 = x7 + ((e6 * x1 + e7 * x4) + e8 * x7)
        y8 = x8 + ((e6 * x2 + e7 * x5) + e8 * x8)
        x0 = x0 if keep else y0
        x1 = x1 if keep else y1
        x2 = x2 if keep else y2
        x3 = x3 if keep else y3
        x4 = x4 if keep else y4
        x5 = x5 if keep else y5
        x6 = x6 if keep else y6
        x7 = x7 if keep else y7
        x8 = x8 if keep else y8
        it = it if keep else it + 1
        e0 = one - ((x0 * a0 + x1 * a3) + x2 * a6)
        e1 = -((x0 * a1 + x1 * a4) + x2 * a7)
        e2 = -((x0 * a2 + x1 * a5) + x2 * a8)
        e3 = -((x3 * a0 + x4 * a3) + x5 * a6)
        e4 = one - ((x3 * a1 + x4 * a4) + x5 * a7)
        e5 = -((x3 * a2 + x4 * a5) + x5 * a8)
        e6 = -((x6 * a0 + x7 * a3) + x8 * a6)
        e7 = -((x6 * a1 + x7 * a4) + x8 * a7)
        e8 = one - ((x6 * a2 + x7 * a5) + x8 * a8)
        ce0 = (abs(e0) + abs(e3)) + abs(e6)
        cx0 = (abs(x0) + abs(x3)) + abs(x6)
        ce1 = (abs(e1) + abs(e4)) + abs(e7)
        cx1 = (abs(x1) + abs(x4)) + abs(x7)
        ce2 = (abs(e2) + abs(e5)) + abs(e8)
        cx2 = (abs(x2) + abs(x5)) + abs(x8)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nl = ce2 if (ce2 > nl) | (ce2 != ce2) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        nx = cx2 if (cx2 > nx) | (cx2 != cx2) else nx
        den = 3 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | ((nl >= prev) & (nl < 1))
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u2)
        y0 = x0 + ((e0 * x0 + e1 * x3) + e2 * x6)
        y1 = x1 + ((e0 * x1 + e1 * x4) + e2 * x7)
        y2 = x2 + ((e0 * x2 + e1 * x5) + e2 * x8)
        y3 = x3 + ((e3 * x0 + e4 * x3) + e5 * x6)
        y4 = x4 + ((e3 * x1 + e4 * x4) + e5 * x7)
        y5 = x5 + ((e3 * x2 + e4 * x5) + e5 * x8)
        y6 = x6 + ((e6 * x0 + e7 * x3) + e8 * x6)
        y7 = x7 + ((e6 * x1 + e7 * x4) + e8 * x7)
        y8 = x8 + ((e6 * x2 + e7 * x5) + e8 * x8)
        x0 = x0 if keep else y0
        x1 = x1 if keep else y1
        x2 = x2 if keep else y2
        x3 = x3 if keep else y3
        x4 = x4 if keep else y4
        x5 = x5 if keep else y5
        x6 = x6 if keep else y6
        x7 = x7 if keep else y7
        x8 = x8 if keep else y8
        it = it if keep else it + 1
        e0 = one - ((x0 * a0 + x1 * a3) + x2 * a6)
        e1 = -((x0 * a1 + x1 * a4) + x2 * a7)
        e2 = -((x0 * a2 + x1 * a5) + x2 * a8)
        e3 = -((x3 * a0 + x4 * a3) + x5 * a6)
        e4 = one - ((x3 * a1 + x4 * a4) + x5 * a7)
        e5 = -((x3 * a2 + x4 * a5) + x5 * a8)
        e6 = -((x6 * a0 + x7 * a3) + x8 * a6)
        e7 = -((x6 * a1 + x7 * a4) + x8 * a7)
        e8 = one - ((x6 * a2 + x7 * a5) + x8 * a8)
        ce0 = (abs(e0) + abs(e3)) + abs(e6)
        cx0 = (abs(x0) + abs(x3)) + abs(x6)
        ce1 = (abs(e1) + abs(e4)) + abs(e7)
        cx1 = (abs(x1) + abs(x4)) + abs(x7)
        ce2 = (abs(e2) + abs(e5)) + abs(e8)
        cx2 = (abs(x2) + abs(x5)) + abs(x8)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nl = ce2 if (ce2 > nl) | (ce2 != ce2) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        nx = cx2 if (cx2 > nx) | (cx2 != cx2) else nx
        den = 3 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | ((nl >= prev) & (nl < 1))
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u3)
        y0 = x0 + ((e0 * x0 + e1 * x3) + e2 * x6)
        y1 = x1 + ((e0 * x1 + e1 * x4) + e2 * x7)
        y2 = x2 + ((e0 * x2 + e1 * x5) + e2 * x8)
        y3 = x3 + ((e3 * x0 + e4 * x3) + e5 * x6)
        y4 = x4 + ((e3 * x1 + e4 * x4) + e5 * x7)
        y5 = x5 + ((e3 * x2 + e4 * x5) + e5 * x8)
        y6 = x6 + ((e6 * x0 + e7 * x3) + e8 * x6)
        y7 = x7 + ((e6 * x1 + e7 * x4) + e8 * x7)
        y8 = x8 + ((e6 * x2 + e7 * x5) + e8 * x8)
        x0 = x0 if keep else y0
        x1 = x1 if keep else y1
        x2 = x2 if keep else y2
        x3 = x3 if keep else y3
        x4 = x4 if keep else y4
        x5 = x5 if keep else y5
        x6 = x6 if keep else y6
        x7 = x7 if keep else y7
        x8 = x8 if keep else y8
        it = it if keep else it + 1
        e0 = one - ((x0 * a0 + x1 * a3) + x2 * a6)
        e1 = -((x0 * a1 + x1 * a4) + x2 * a7)
        e2 = -((x0 * a2 + x1 * a5) + x2 * a8)
        e3 = -((x3 * a0 + x4 * a3) + x5 * a6)
        e4 = one - ((x3 * a1 + x4 * a4) + x5 * a7)
        e5 = -((x3 * a2 + x4 * a5) + x5 * a8)
        e6 = -((x6 * a0 + x7 * a3) + x8 * a6)
        e7 = -((x6 * a1 + x7 * a4) + x8 * a7)
        e8 = one - ((x6 * a2 + x7 * a5) + x8 * a8)
        ce0 = (abs(e0) + abs(e3)) + abs(e6)
        cx0 = (abs(x0) + abs(x3)) + abs(x6)
        ce1 = (abs(e1) + abs(e4)) + abs(e7)
        cx1 = (abs(x1) + abs(x4)) + abs(x7)
        ce2 = (abs(e2) + abs(e5)) + abs(e8)
        cx2 = (abs(x2) + abs(x5)) + abs(x8)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nl = ce2 if (ce2 > nl) | (ce2 != ce2) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        nx = cx2 if (cx2 > nx) | (cx2 != cx2) else nx
        den = 3 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | ((nl >= prev) & (nl < 1))
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        xv[0 * S + l] = x0
        xv[1 * S + l] = x1
        xv[2 * S + l] = x2
        xv[3 * S + l] = x3
        xv[4 * S + l] = x4
        xv[5 * S + l] = x5
        xv[6 * S + l] = x6
        xv[7 * S + l] = x7
        xv[8 * S + l] = x8
        ok[l] = okl
        its[l] = it


@njit(fastmath={"contract"}, error_model="numpy")
def _head4(av, xv, hv, c, C, s_in, L):
    """n = 4: D = A - c, X = C - (C D) C and the network's input D / s_in of every lane."""
    c0 = c[0]
    c1 = c[1]
    c2 = c[2]
    c3 = c[3]
    c4 = c[4]
    c5 = c[5]
    c6 = c[6]
    c7 = c[7]
    c8 = c[8]
    c9 = c[9]
    c10 = c[10]
    c11 = c[11]
    c12 = c[12]
    c13 = c[13]
    c14 = c[14]
    c15 = c[15]
    C0 = C[0]
    C1 = C[1]
    C2 = C[2]
    C3 = C[3]
    C4 = C[4]
    C5 = C[5]
    C6 = C[6]
    C7 = C[7]
    C8 = C[8]
    C9 = C[9]
    C10 = C[10]
    C11 = C[11]
    C12 = C[12]
    C13 = C[13]
    C14 = C[14]
    C15 = C[15]
    for l in range(L):
        d0 = av[0 * S + l] - c0
        d1 = av[1 * S + l] - c1
        d2 = av[2 * S + l] - c2
        d3 = av[3 * S + l] - c3
        d4 = av[4 * S + l] - c4
        d5 = av[5 * S + l] - c5
        d6 = av[6 * S + l] - c6
        d7 = av[7 * S + l] - c7
        d8 = av[8 * S + l] - c8
        d9 = av[9 * S + l] - c9
        d10 = av[10 * S + l] - c10
        d11 = av[11 * S + l] - c11
        d12 = av[12 * S + l] - c12
        d13 = av[13 * S + l] - c13
        d14 = av[14 * S + l] - c14
        d15 = av[15 * S + l] - c15
        p0 = ((C0 * d0 + C1 * d4) + C2 * d8) + C3 * d12
        p1 = ((C0 * d1 + C1 * d5) + C2 * d9) + C3 * d13
        p2 = ((C0 * d2 + C1 * d6) + C2 * d10) + C3 * d14
        p3 = ((C0 * d3 + C1 * d7) + C2 * d11) + C3 * d15
        p4 = ((C4 * d0 + C5 * d4) + C6 * d8) + C7 * d12
        p5 = ((C4 * d1 + C5 * d5) + C6 * d9) + C7 * d13
        p6 = ((C4 * d2 + C5 * d6) + C6 * d10) + C7 * d14
        p7 = ((C4 * d3 + C5 * d7) + C6 * d11) + C7 * d15
        p8 = ((C8 * d0 + C9 * d4) + C10 * d8) + C11 * d12
        p9 = ((C8 * d1 + C9 * d5) + C10 * d9) + C11 * d13
        p10 = ((C8 * d2 + C9 * d6) + C10 * d10) + C11 * d14
        p11 = ((C8 * d3 + C9 * d7) + C10 * d11) + C11 * d15
        p12 = ((C12 * d0 + C13 * d4) + C14 * d8) + C15 * d12
        p13 = ((C12 * d1 + C13 * d5) + C14 * d9) + C15 * d13
        p14 = ((C12 * d2 + C13 * d6) + C14 * d10) + C15 * d14
        p15 = ((C12 * d3 + C13 * d7) + C14 * d11) + C15 * d15
        xv[0 * S + l] = C0 - (((C0 * p0 + C4 * p1) + C8 * p2) + C12 * p3)
        xv[1 * S + l] = C1 - (((C1 * p0 + C5 * p1) + C9 * p2) + C13 * p3)
        xv[2 * S + l] = C2 - (((C2 * p0 + C6 * p1) + C10 * p2) + C14 * p3)
        xv[3 * S + l] = C3 - (((C3 * p0 + C7 * p1) + C11 * p2) + C15 * p3)
        xv[4 * S + l] = C4 - (((C0 * p4 + C4 * p5) + C8 * p6) + C12 * p7)
        xv[5 * S + l] = C5 - (((C1 * p4 + C5 * p5) + C9 * p6) + C13 * p7)
        xv[6 * S + l] = C6 - (((C2 * p4 + C6 * p5) + C10 * p6) + C14 * p7)
        xv[7 * S + l] = C7 - (((C3 * p4 + C7 * p5) + C11 * p6) + C15 * p7)
        xv[8 * S + l] = C8 - (((C0 * p8 + C4 * p9) + C8 * p10) + C12 * p11)
        xv[9 * S + l] = C9 - (((C1 * p8 + C5 * p9) + C9 * p10) + C13 * p11)
        xv[10 * S + l] = C10 - (((C2 * p8 + C6 * p9) + C10 * p10) + C14 * p11)
        xv[11 * S + l] = C11 - (((C3 * p8 + C7 * p9) + C11 * p10) + C15 * p11)
        xv[12 * S + l] = C12 - (((C0 * p12 + C4 * p13) + C8 * p14) + C12 * p15)
        xv[13 * S + l] = C13 - (((C1 * p12 + C5 * p13) + C9 * p14) + C13 * p15)
        xv[14 * S + l] = C14 - (((C2 * p12 + C6 * p13) + C10 * p14) + C14 * p15)
        xv[15 * S + l] = C15 - (((C3 * p12 + C7 * p13) + C11 * p14) + C15 * p15)
        hv[0 * S + l] = d0 / s_in
        hv[1 * S + l] = d1 / s_in
        hv[2 * S + l] = d2 / s_in
        hv[3 * S + l] = d3 / s_in
        hv[4 * S + l] = d4 / s_in
        hv[5 * S + l] = d5 / s_in
        hv[6 * S + l] = d6 / s_in
        hv[7 * S + l] = d7 / s_in
        hv[8 * S + l] = d8 / s_in
        hv[9 * S + l] = d9 / s_in
        hv[10 * S + l] = d10 / s_in
        hv[11 * S + l] = d11 / s_in
        hv[12 * S + l] = d12 / s_in
        hv[13 * S + l] = d13 / s_in
        hv[14 * S + l] = d14 / s_in
        hv[15 * S + l] = d15 / s_in


@njit(fastmath={"contract"}, error_model="numpy")
def _steps4_3(av, xv, na, ok, contracted, r, rc, its, steps, one, eps, tol, L):
    """n = 4: Newton-Schulz from the guess in ``xv``, every lane in registers: the residual
    of each iterate, its certificate and verdict, then the step for the lanes that go on;
    ``steps`` (1 .. 3) steps and a verdict after each, the iterate where a lane stops left
    in ``xv``. Always 4 verdicts: one after the last step changes nothing (same iterate,
    same ratio). Branch-free (the conditions as selects), so that the loop vectorises. ``one``:
    1 in the working precision (a literal 1 would make the residual float64)."""
    u0 = steps > 0
    u1 = steps > 1
    u2 = steps > 2
    for l in range(L):
        a0 = av[0 * S + l]
        a1 = av[1 * S + l]
        a2 = av[2 * S + l]
        a3 = av[3 * S + l]
        a4 = av[4 * S + l]
        a5 = av[5 * S + l]
        a6 = av[6 * S + l]
        a7 = av[7 * S + l]
        a8 = av[8 * S + l]
        a9 = av[9 * S + l]
        a10 = av[10 * S + l]
        a11 = av[11 * S + l]
        a12 = av[12 * S + l]
        a13 = av[13 * S + l]
        a14 = av[14 * S + l]
        a15 = av[15 * S + l]
        x0 = xv[0 * S + l]
        x1 = xv[1 * S + l]
        x2 = xv[2 * S + l]
        x3 = xv[3 * S + l]
        x4 = xv[4 * S + l]
        x5 = xv[5 * S + l]
        x6 = xv[6 * S + l]
        x7 = xv[7 * S + l]
        x8 = xv[8 * S + l]
        x9 = xv[9 * S + l]
        x10 = xv[10 * S + l]
        x11 = xv[11 * S + l]
        x12 = xv[12 * S + l]
        x13 = xv[13 * S + l]
        x14 = xv[14 * S + l]
        x15 = xv[15 * S + l]
        nal = na[l]
        okl = False
        st = False
        it = 0
        prev = nal
        e0 = one - (((x0 * a0 + x1 * a4) + x2 * a8) + x3 * a12)
        e1 = -(((x0 * a1 + x1 * a5) + x2 * a9) + x3 * a13)
        e2 = -(((x0 * a2 + x1 * a6) + x2 * a10) + x3 * a14)
        e3 = -(((x0 * a3 + x1 * a7) + x2 * a11) + x3 * a15)
        e4 = -(((x4 * a0 + x5 * a4) + x6 * a8) + x7 * a12)
        e5 = one - (((x4 * a1 + x5 * a5) + x6 * a9) + x7 * a13)
        e6 = -(((x4 * a2 + x5 * a6) + x6 * a10) + x7 * a14)
        e7 = -(((x4 * a3 + x5 * a7) + x6 * a11) + x7 * a15)
        e8 = -(((x8 * a0 + x9 * a4) + x10 * a8) + x11 * a12)
        e9 = -(((x8 * a1 + x9 * a5) + x10 * a9) + x11 * a13)
        e10 = one - (((x8 * a2 + x9 * a6) + x10 * a10) + x11 * a14)
        e11 = -(((x8 * a3 + x9 * a7) + x10 * a11) + x11 * a15)
        e12 = -(((x12 * a0 + x13 * a4) + x14 * a8) + x15 * a12)
        e13 = -(((x12 * a1 + x13 * a5) + x14 * a9) + x15 * a13)
        e14 = -(((x12 * a2 + x13 * a6) + x14 * a10) + x15 * a14)
        e15 = one - (((x12 * a3 + x13 * a7) + x14 * a11) + x15 * a15)
        ce0 = ((abs(e0) + abs(e4)) + abs(e8)) + abs(e12)
        cx0 = ((abs(x0) + abs(x4)) + abs(x8)) + abs(x12)
        ce1 = ((abs(e1) + abs(e5)) + abs(e9)) + abs(e13)
        cx1 = ((abs(x1) + abs(x5)) + abs(x9)) + abs(x13)
        ce2 = ((abs(e2) + abs(e6)) + abs(e10)) + abs(e14)
        cx2 = ((abs(x2) + abs(x6)) + abs(x10)) + abs(x14)
        ce3 = ((abs(e3) + abs(e7)) + abs(e11)) + abs(e15)
        cx3 = ((abs(x3) + abs(x7)) + abs(x11)) + abs(x15)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nl = ce2 if (ce2 > nl) | (ce2 != ce2) else nl
        nl = ce3 if (ce3 > nl) | (ce3 != ce3) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        nx = cx2 if (cx2 > nx) | (cx2 != cx2) else nx
        nx = cx3 if (cx3 > nx) | (cx3 != cx3) else nx
        contracted[l] = nl < 1
        den = 4 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | (False)
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u0)
        y0 = x0 + (((e0 * x0 + e1 * x4) + e2 * x8) + e3 * x12)
        y1 = x1 + (((e0 * x1 + e1 * x5) + e2 * x9) + e3 * x13)
        y2 = x2 + (((e0 * x2 + e1 * x6) + e2 * x10) + e3 * x14)
        y3 = x3 + (((e0 * x3 + e1 * x7) + e2 * x11) + e3 * x15)
        y4 = x4 + (((e4 * x0 + e5 * x4) + e6 * x8) + e7 * x12)
        y5 = x5 + (((e4 * x1 + e5 * x5) + e6 * x9) + e7 * x13)
        y6 = x6 + (((e4 * x2 + e5 * x6) + e6 * x10) + e7 * x14)
        y7 = x7 + (((e4 * x3 + e5 * x7) + e6 * x11) + e7 * x15)
        y8 = x8 + (((e8 * x0 + e9 * x4) + e10 * x8) + e11 * x12)
        y9 = x9 + (((e8 * x1 + e9 * x5) + e10 * x9) + e11 * x13)
        y10 = x10 + (((e8 * x2 + e9 * x6) + e10 * x10) + e11 * x14)
        y11 = x11 + (((e8 * x3 + e9 * x7) + e10 * x11) + e11 * x15)
        y12 = x12 + (((e12 * x0 + e13 * x4) + e14 * x8) + e15 * x12)
        y13 = x13 + (((e12 * x1 + e13 * x5) + e14 * x9) + e15 * x13)
        y14 = x14 + (((e12 * x2 + e13 * x6) + e14 * x10) + e15 * x14)
        y15 = x15 + (((e12 * x3 + e13 * x7) + e14 * x11) + e15 * x15)
        x0 = x0 if keep else y0
        x1 = x1 if keep else y1
        x2 = x2 if keep else y2
        x3 = x3 if keep else y3
        x4 = x4 if keep else y4
        x5 = x5 if keep else y5
        x6 = x6 if keep else y6
        x7 = x7 if keep else y7
        x8 = x8 if keep else y8
        x9 = x9 if keep else y9
        x10 = x10 if keep else y10
        x11 = x11 if keep else y11
        x12 = x12 if keep else y12
        x13 = x13 if keep else y13
        x14 = x14 if keep else y14
        x15 = x15 if keep else y15
        it = it if keep else it + 1
        e0 = one - (((x0 * a0 + x1 * a4) + x2 * a8) + x3 * a12)
        e1 = -(((x0 * a1 + x1 * a5) + x2 * a9) + x3 * a13)
        e2 = -(((x0 * a2 + x1 * a6) + x2 * a10) + x3 * a14)
        e3 = -(((x0 * a3 + x1 * a7) + x2 * a11) + x3 * a15)
        e4 = -(((x4 * a0 + x5 * a4) + x6 * a8) + x7 * a12)
        e5 = one - (((x4 * a1 + x5 * a5) + x6 * a9) + x7 * a13)
        e6 = -(((x4 * a2 + x5 * a6) + x6 * a10) + x7 * a14)
        e7 = -(((x4 * a3 + x5 * a7) + x6 * a11) + x7 * a15)
        e8 = -(((x8 * a0 + x9 * a4) + x10 * a8) + x11 * a12)
        e9 = -(((x8 * a1 + x9 * a5) + x10 * a9) + x11 * a13)
        e10 = one - (((x8 * a2 + x9 * a6) + x10 * a10) + x11 * a14)
        e11 = -(((x8 * a3 + x9 * a7) + x10 * a11) + x11 * a15)
        e12 = -(((x12 * a0 + x13 * a4) + x14 * a8) + x15 * a12)
        e13 = -(((x12 * a1 + x13 * a5) + x14 * a9) + x15 * a13)
        e14 = -(((x12 * a2 + x13 * a6) + x14 * a10) + x15 * a14)
        e15 = one - (((x12 * a3 + x13 * a7) + x14 * a11) + x15 * a15)
        ce0 = ((abs(e0) + abs(e4)) + abs(e8)) + abs(e12)
        cx0 = ((abs(x0) + abs(x4)) + abs(x8)) + abs(x12)
        ce1 = ((abs(e1) + abs(e5)) + abs(e9)) + abs(e13)
        cx1 = ((abs(x1) + abs(x5)) + abs(x9)) + abs(x13)
        ce2 = ((abs(e2) + abs(e6)) + abs(e10)) + abs(e14)
        cx2 = ((abs(x2) + abs(x6)) + abs(x10)) + abs(x14)
        ce3 = ((abs(e3) + abs(e7)) + abs(e11)) + abs(e15)
        cx3 = ((abs(x3) + abs(x7)) + abs(x11)) + abs(x15)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nl = ce2 if (ce2 > nl) | (ce2 != ce2) else nl
        nl = ce3 if (ce3 > nl) | (ce3 != ce3) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        nx = cx2 if (cx2 > nx) | (cx2 != cx2) else nx
        nx = cx3 if (cx3 > nx) | (cx3 != cx3) else nx
        den = 4 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | (False)
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u1)
        y0 = x0 + (((e0 * x0 + e1 * x4) + e2 * x8) + e3 * x12)
        y1 = x1 + (((e0 * x1 + e1 * x5) + e2 * x9) + e3 * x13)
        y2 = x2 + (((e0 * x2 + e1 * x6) + e2 * x10) + e3 * x14)
        y3 = x3 + (((e0 * x3 + e1 * x7) + e2 * x11) + e3 * x15)
        y4 = x4 + (((e4 * x0 + e5 * x4) + e6 * x8) + e7 * x12)
        y5 = x5 + (((e4 * x1 + e5 * x5) + e6 * x9) + e7 * x13)
        y6 = x6 + (((e4 * x2 + e5 * x6) + e6 * x10) + e7 * x14)
        y7 = x7 + (((e4 * x3 + e5 * x7) + e6 * x11) + e7 * x15)
        y8 = x8 + (((e8 * x0 + e9 * x4) + e10 * x8) + e11 * x12)
        y9 = x9 + (((e8 * x1 + e9 * x5) + e10 * x9) + e11 * x13)
        y10 = x10 + (((e8 * x2 + e9 * x6) + e10 * x10) + e11 * x14)
        y11 = x11 + (((e8 * x3 + e9 * x7) + e10 * x11) + e11 * x15)
        y12 = x12 + (((e12 * x0 + e13 * x4) + e14 * x8) + e15 * x12)
        y13 = x13 + (((e12 * x1 + e13 * x5) + e14 * x9) + e15 * x13)
        y14 = x14 + (((e12 * x2 + e13 * x6) + e14 * x10) + e15 * x14)
        y15 = x15 + (((e12 * x3 + e13 * x7) + e14 * x11) + e15 * x15)
        x0 = x0 if keep else y0
        x1 = x1 if keep else y1
        x2 = x2 if keep else y2
        x3 = x3 if keep else y3
        x4 = x4 if keep else y4
        x5 = x5 if keep else y5
        x6 = x6 if keep else y6
        x7 = x7 if keep else y7
        x8 = x8 if keep else y8
        x9 = x9 if keep else y9
        x10 = x10 if keep else y10
        x11 = x11 if keep else y11
        x12 = x12 if keep else y12
        x13 = x13 if keep else y13
        x14 = x14 if keep else y14
        x15 = x15 if keep else y15
        it = it if keep else it + 1
        e0 = one - (((x0 * a0 + x1 * a4) + x2 * a8) + x3 * a12)
        e1 = -(((x0 * a1 + x1 * a5) + x2 * a9) + x3 * a13)
        e2 = -(((x0 * a2 + x1 * a6) + x2 * a10) + x3 * a14)
        e3 = -(((x0 * a3 + x1 * a7) + x2 * a11) + x3 * a15)
        e4 = -(((x4 * a0 + x5 * a4) + x6 * a8) + x7 * a12)
        e5 = one - (((x4 * a1 + x5 * a5) + x6 * a9) + x7 * a13)
        e6 = -(((x4 * a2 + x5 * a6) + x6 * a10) + x7 * a14)
        e7 = -(((x4 * a3 + x5 * a7) + x6 * a11) + x7 * a15)
        e8 = -(((x8 * a0 + x9 * a4) + x10 * a8) + x11 * a12)
        e9 = -(((x8 * a1 + x9 * a5) + x10 * a9) + x11 * a13)
        e10 = one - (((x8 * a2 + x9 * a6) + x10 * a10) + x11 * a14)
        e11 = -(((x8 * a3 + x9 * a7) + x10 * a11) + x11 * a15)
        e12 = -(((x12 * a0 + x13 * a4) + x14 * a8) + x15 * a12)
        e13 = -(((x12 * a1 + x13 * a5) + x14 * a9) + x15 * a13)
        e14 = -(((x12 * a2 + x13 * a6) + x14 * a10) + x15 * a14)
        e15 = one - (((x12 * a3 + x13 * a7) + x14 * a11) + x15 * a15)
        ce0 = ((abs(e0) + abs(e4)) + abs(e8)) + abs(e12)
        cx0 = ((abs(x0) + abs(x4)) + abs(x8)) + abs(x12)
        ce1 = ((abs(e1) + abs(e5)) + abs(e9)) + abs(e13)
        cx1 = ((abs(x1) + abs(x5)) + abs(x9)) + abs(x13)
        ce2 = ((abs(e2) + abs(e6)) + abs(e10)) + abs(e14)
        cx2 = ((abs(x2) + abs(x6)) + abs(x10)) + abs(x14)
        ce3 = ((abs(e3) + abs(e7)) + abs(e11)) + abs(e15)
        cx3 = ((abs(x3) + abs(x7)) + abs(x11)) + abs(x15)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nl = ce2 if (ce2 > nl) | (ce2 != ce2) else nl
        nl = ce3 if (ce3 > nl) | (ce3 != ce3) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        nx = cx2 if (cx2 > nx) | (cx2 != cx2) else nx
        nx = cx3 if (cx3 > nx) | (cx3 != cx3) else nx
        den = 4 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | ((nl >= prev) & (nl < 1))
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u2)
        y0 = x0 + (((e0 * x0 + e1 * x4) + e2 * x8) + e3 * x12)
        y1 = x1 + (((e0 * x1 + e1 * x5) + e2 * x9) + e3 * x13)
        y2 = x2 + (((e0 * x2 + e1 * x6) + e2 * x10) + e3 * x14)
        y3 = x3 + (((e0 * x3 + e1 * x7) + e2 * x11) + e3 * x15)
        y4 = x4 + (((e4 * x0 + e5 * x4) + e6 * x8) + e7 * x12)
        y5 = x5 + (((e4 * x1 + e5 * x5) + e6 * x9) + e7 * x13)
        y6 = x6 + (((e4 * x2 + e5 * x6) + e6 * x10) + e7 * x14)
        y7 = x7 + (((e4 * x3 + e5 * x7) + e6 * x11) + e7 * x15)
        y8 = x8 + (((e8 * x0 + e9 * x4) + e10 * x8) + e11 * x12)
        y9 = x9 + (((e8 * x1 + e9 * x5) + e10 * x9) + e11 * x13)
        y10 = x10 + (((e8 * x2 + e9 * x6) + e10 * x10) + e11 * x14)
        y11 = x11 + (((e8 * x3 + e9 * x7) + e10 * x11) + e11 * x15)
        y12 = x12 + (((e12 * x0 + e13 * x4) + e14 * x8) + e15 * x12)
        y13 = x13 + (((e12 * x1 + e13 * x5) + e14 * x9) + e15 * x13)
        y14 = x14 + (((e12 * x2 + e13 * x6) + e14 * x10) + e15 * x14)
        y15 = x15 + (((e12 * x3 + e13 * x7) + e14 * x11) + e15 * x15)
        x0 = x0 if keep else y0
        x1 = x1 if keep else y1
        x2 = x2 if keep else y2
        x3 = x3 if keep else y3
        x4 = x4 if keep else y4
        x5 = x5 if keep else y5
        x6 = x6 if keep else y6
        x7 = x7 if keep else y7
        x8 = x8 if keep else y8
        x9 = x9 if keep else y9
        x10 = x10 if keep else y10
        x11 = x11 if keep else y11
        x12 = x12 if keep else y12
        x13 = x13 if keep else y13
        x14 = x14 if keep else y14
        x15 = x15 if keep else y15
        it = it if keep else it + 1
        e0 = one - (((x0 * a0 + x1 * a4) + x2 * a8) + x3 * a12)
        e1 = -(((x0 * a1 + x1 * a5) + x2 * a9) + x3 * a13)
        e2 = -(((x0 * a2 + x1 * a6) + x2 * a10) + x3 * a14)
        e3 = -(((x0 * a3 + x1 * a7) + x2 * a11) + x3 * a15)
        e4 = -(((x4 * a0 + x5 * a4) + x6 * a8) + x7 * a12)
        e5 = one - (((x4 * a1 + x5 * a5) + x6 * a9) + x7 * a13)
        e6 = -(((x4 * a2 + x5 * a6) + x6 * a10) + x7 * a14)
        e7 = -(((x4 * a3 + x5 * a7) + x6 * a11) + x7 * a15)
        e8 = -(((x8 * a0 + x9 * a4) + x10 * a8) + x11 * a12)
        e9 = -(((x8 * a1 + x9 * a5) + x10 * a9) + x11 * a13)
        e10 = one - (((x8 * a2 + x9 * a6) + x10 * a10) + x11 * a14)
        e11 = -(((x8 * a3 + x9 * a7) + x10 * a11) + x11 * a15)
        e12 = -(((x12 * a0 + x13 * a4) + x14 * a8) + x15 * a12)
        e13 = -(((x12 * a1 + x13 * a5) + x14 * a9) + x15 * a13)
        e14 = -(((x12 * a2 + x13 * a6) + x14 * a10) + x15 * a14)
        e15 = one - (((x12 * a3 + x13 * a7) + x14 * a11) + x15 * a15)
        ce0 = ((abs(e0) + abs(e4)) + abs(e8)) + abs(e12)
        cx0 = ((abs(x0) + abs(x4)) + abs(x8)) + abs(x12)
        ce1 = ((abs(e1) + abs(e5)) + abs(e9)) + abs(e13)
        cx1 = ((abs(x1) + abs(x5)) + abs(x9)) + abs(x13)
        ce2 = ((abs(e2) + abs(e6)) + abs(e10)) + abs(e14)
        cx2 = ((abs(x2) + abs(x6)) + abs(x10)) + abs(x14)
        ce3 = ((abs(e3) + abs(e7)) + abs(e11)) + abs(e15)
        cx3 = ((abs(x3) + abs(x7)) + abs(x11)) + abs(x15)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nl = ce2 if (ce2 > nl) | (ce2 != ce2) else nl
        nl = ce3 if (ce3 > nl) | (ce3 != ce3) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        nx = cx2 if (cx2 > nx) | (cx2 != cx2) else nx
        nx = cx3 if (cx3 > nx) | (cx3 != cx3) else nx
        den = 4 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | ((nl >= prev) & (nl < 1))
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        xv[0 * S + l] = x0
        xv[1 * S + l] = x1
        xv[2 * S + l] = x2
        xv[3 * S + l] = x3
        xv[4 * S + l] = x4
        xv[5 * S + l] = x5
        xv[6 * S + l] = x6
        xv[7 * S + l] = x7
        xv[8 * S + l] = x8
        xv[9 * S + l] = x9
        xv[10 * S + l] = x10
        xv[11 * S + l] = x11
        xv[12 * S + l] = x12
        xv[13 * S + l] = x13
        xv[14 * S + l] = x14
        xv[15 * S + l] = x15
        ok[l] = okl
        its[l] = it


@njit(fastmath={"contract"}, error_model="numpy")
def _steps4_4(av, xv, na, ok, contracted, r, rc, its, steps, one, eps, tol, L):
    """n = 4: Newton-Schulz from the guess in ``xv``, every lane in registers: the residual
    of each iterate, its certificate and verdict, then the step for the lanes that go on;
    ``steps`` (1 .. 4) steps and a verdict after each, the iterate where a lane stops left
    in ``xv``. Always 5 verdicts: one after the last step changes nothing (same iterate,
    same ratio). Branch-free (the conditions as selects), so that the loop vectorises. ``one``:
    1 in the working precision (a literal 1 would make the residual float64)."""
    u0 = steps > 0
    u1 = steps > 1
    u2 = steps > 2
    u3 = steps > 3
    for l in range(L):
        a0 = av[0 * S + l]
        a1 = av[1 * S + l]
        a2 = av[2 * S + l]
        a3 = av[3 * S + l]
        a4 = av[4 * S + l]
        a5 = av[5 * S + l]
        a6 = av[6 * S + l]
        a7 = av[7 * S + l]
        a8 = av[8 * S + l]
        a9 = av[9 * S + l]
        a10 = av[10 * S + l]
        a11 = av[11 * S + l]
        a12 = av[12 * S + l]
        a13 = av[13 * S + l]
        a14 = av[14 * S + l]
        a15 = av[15 * S + l]
        x0 = xv[0 * S + l]
        x1 = xv[1 * S + l]
        x2 = xv[2 * S + l]
        x3 = xv[3 * S + l]
        x4 = xv[4 * S + l]
        x5 = xv[5 * S + l]
        x6 = xv[6 * S + l]
        x7 = xv[7 * S + l]
        x8 = xv[8 * S + l]
        x9 = xv[9 * S + l]
        x10 = xv[10 * S + l]
        x11 = xv[11 * S + l]
        x12 = xv[12 * S + l]
        x13 = xv[13 * S + l]
        x14 = xv[14 * S + l]
        x15 = xv[15 * S + l]
        nal = na[l]
        okl = False
        st = False
        it = 0
        prev = nal
        e0 = one - (((x0 * a0 + x1 * a4) + x2 * a8) + x3 * a12)
        e1 = -(((x0 * a1 + x1 * a5) + x2 * a9) + x3 * a13)
        e2 = -(((x0 * a2 + x1 * a6) + x2 * a10) + x3 * a14)
        e3 = -(((x0 * a3 + x1 * a7) + x2 * a11) + x3 * a15)
        e4 = -(((x4 * a0 + x5 * a4) + x6 * a8) + x7 * a12)
        e5 = one - (((x4 * a1 + x5 * a5) + x6 * a9) + x7 * a13)
        e6 = -(((x4 * a2 + x5 * a6) + x6 * a10) + x7 * a14)
        e7 = -(((x4 * a3 + x5 * a7) + x6 * a11) + x7 * a15)
        e8 = -(((x8 * a0 + x9 * a4) + x10 * a8) + x11 * a12)
        e9 = -(((x8 * a1 + x9 * a5) + x10 * a9) + x11 * a13)
        e10 = one - (((x8 * a2 + x9 * a6) + x10 * a10) + x11 * a14)
        e11 = -(((x8 * a3 + x9 * a7) + x10 * a11) + x11 * a15)
        e12 = -(((x12 * a0 + x13 * a4) + x14 * a8) + x15 * a12)
        e13 = -(((x12 * a1 + x13 * a5) + x14 * a9) + x15 * a13)
        e14 = -(((x12 * a2 + x13 * a6) + x14 * a10) + x15 * a14)
        e15 = one - (((x12 * a3 + x13 * a7) + x14 * a11) + x15 * a15)
        ce0 = ((abs(e0) + abs(e4)) + abs(e8)) + abs(e12)
        cx0 = ((abs(x0) + abs(x4)) + abs(x8)) + abs(x12)
        ce1 = ((abs(e1) + abs(e5)) + abs(e9)) + abs(e13)
        cx1 = ((abs(x1) + abs(x5)) + abs(x9)) + abs(x13)
        ce2 = ((abs(e2) + abs(e6)) + abs(e10)) + abs(e14)
        cx2 = ((abs(x2) + abs(x6)) + abs(x10)) + abs(x14)
        ce3 = ((abs(e3) + abs(e7)) + abs(e11)) + abs(e15)
        cx3 = ((abs(x3) + abs(x7)) + abs(x11)) + abs(x15)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nl = ce2 if (ce2 > nl) | (ce2 != ce2) else nl
        nl = ce3 if (ce3 > nl) | (ce3 != ce3) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        nx = cx2 if (cx2 > nx) | (cx2 != cx2) else nx
        nx = cx3 if (cx3 > nx) | (cx3 != cx3) else nx
        contracted[l] = nl < 1
        den = 4 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | (False)
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u0)
        y0 = x0 + (((e0 * x0 + e1 * x4) + e2 * x8) + e3 * x12)
        y1 = x1 + (((e0 * x1 + e1 * x5) + e2 * x9) + e3 * x13)
        y2 = x2 + (((e0 * x2 + e1 * x6) + e2 * x10) + e3 * x14)
        y3 = x3 + (((e0 * x3 + e1 * x7) + e2 * x11) + e3 * x15)
        y4 = x4 + (((e4 * x0 + e5 * x4) + e6 * x8) + e7 * x12)
        y5 = x5 + (((e4 * x1 + e5 * x5) + e6 * x9) + e7 * x13)
        y6 = x6 + (((e4 * x2 + e5 * x6) + e6 * x10) + e7 * x14)
        y7 = x7 + (((e4 * x3 + e5 * x7) + e6 * x11) + e7 * x15)
        y8 = x8 + (((e8 * x0 + e9 * x4) + e10 * x8) + e11 * x12)
        y9 = x9 + (((e8 * x1 + e9 * x5) + e10 * x9) + e11 * x13)
        y10 = x10 + (((e8 * x2 + e9 * x6) + e10 * x10) + e11 * x14)
        y11 = x11 + (((e8 * x3 + e9 * x7) + e10 * x11) + e11 * x15)
        y12 = x12 + (((e12 * x0 + e13 * x4) + e14 * x8) + e15 * x12)
        y13 = x13 + (((e12 * x1 + e13 * x5) + e14 * x9) + e15 * x13)
        y14 = x14 + (((e12 * x2 + e13 * x6) + e14 * x10) + e15 * x14)
        y15 = x15 + (((e12 * x3 + e13 * x7) + e14 * x11) + e15 * x15)
        x0 = x0 if keep else y0
        x1 = x1 if keep else y1
        x2 = x2 if keep else y2
        x3 = x3 if keep else y3
        x4 = x4 if keep else y4
        x5 = x5 if keep else y5
        x6 = x6 if keep else y6
        x7 = x7 if keep else y7
        x8 = x8 if keep else y8
        x9 = x9 if keep else y9
        x10 = x10 if keep else y10
        x11 = x11 if keep else y11
        x12 = x12 if keep else y12
        x13 = x13 if keep else y13
        x14 = x14 if keep else y14
        x15 = x15 if keep else y15
        it = it if keep else it + 1
        e0 = one - (((x0 * a0 + x1 * a4) + x2 * a8) + x3 * a12)
        e1 = -(((x0 * a1 + x1 * a5) + x2 * a9) + x3 * a13)
        e2 = -(((x0 * a2 + x1 * a6) + x2 * a10) + x3 * a14)
        e3 = -(((x0 * a3 + x1 * a7) + x2 * a11) + x3 * a15)
        e4 = -(((x4 * a0 + x5 * a4) + x6 * a8) + x7 * a12)
        e5 = one - (((x4 * a1 + x5 * a5) + x6 * a9) + x7 * a13)
        e6 = -(((x4 * a2 + x5 * a6) + x6 * a10) + x7 * a14)
        e7 = -(((x4 * a3 + x5 * a7) + x6 * a11) + x7 * a15)
        e8 = -(((x8 * a0 + x9 * a4) + x10 * a8) + x11 * a12)
        e9 = -(((x8 * a1 + x9 * a5) + x10 * a9) + x11 * a13)
        e10 = one - (((x8 * a2 + x9 * a6) + x10 * a10) + x11 * a14)
        e11 = -(((x8 * a3 + x9 * a7) + x10 * a11) + x11 * a15)
        e12 = -(((x12 * a0 + x13 * a4) + x14 * a8) + x15 * a12)
        e13 = -(((x12 * a1 + x13 * a5) + x14 * a9) + x15 * a13)
        e14 = -(((x12 * a2 + x13 * a6) + x14 * a10) + x15 * a14)
        e15 = one - (((x12 * a3 + x13 * a7) + x14 * a11) + x15 * a15)
        ce0 = ((abs(e0) + abs(e4)) + abs(e8)) + abs(e12)
        cx0 = ((abs(x0) + abs(x4)) + abs(x8)) + abs(x12)
        ce1 = ((abs(e1) + abs(e5)) + abs(e9)) + abs(e13)
        cx1 = ((abs(x1) + abs(x5)) + abs(x9)) + abs(x13)
        ce2 = ((abs(e2) + abs(e6)) + abs(e10)) + abs(e14)
        cx2 = ((abs(x2) + abs(x6)) + abs(x10)) + abs(x14)
        ce3 = ((abs(e3) + abs(e7)) + abs(e11)) + abs(e15)
        cx3 = ((abs(x3) + abs(x7)) + abs(x11)) + abs(x15)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nl = ce2 if (ce2 > nl) | (ce2 != ce2) else nl
        nl = ce3 if (ce3 > nl) | (ce3 != ce3) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        nx = cx2 if (cx2 > nx) | (cx2 != cx2) else nx
        nx = cx3 if (cx3 > nx) | (cx3 != cx3) else nx
        den = 4 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | (False)
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u1)
        y0 = x0 + (((e0 * x0 + e1 * x4) + e2 * x8) + e3 * x12)
        y1 = x1 + (((e0 * x1 + e1 * x5) + e2 * x9) + e3 * x13)
        y2 = x2 + (((e0 * x2 + e1 * x6) + e2 * x10) + e3 * x14)
        y3 = x3 + (((e0 * x3 + e1 * x7) + e2 * x11) + e3 * x15)
        y4 = x4 + (((e4 * x0 + e5 * x4) + e6 * x8) + e7 * x12)
        y5 = x5 + (((e4 * x1 + e5 * x5) + e6 * x9) + e7 * x13)
        y6 = x6 + (((e4 * x2 + e5 * x6) + e6 * x10) + e7 * x14)
        y7 = x7 + (((e4 * x3 + e5 * x7) + e6 * x11) + e7 * x15)
        y8 = x8 + (((e8 * x0 + e9 * x4) + e10 * x8) + e11 * x12)
        y9 = x9 + (((e8 * x1 + e9 * x5) + e10 * x9) + e11 * x13)
        y10 = x10 + (((e8 * x2 + e9 * x6) + e10 * x10) + e11 * x14)
        y11 = x11 + (((e8 * x3 + e9 * x7) + e10 * x11) + e11 * x15)
        y12 = x12 + (((e12 * x0 + e13 * x4) + e14 * x8) + e15 * x12)
        y13 = x13 + (((e12 * x1 + e13 * x5) + e14 * x9) + e15 * x13)
        y14 = x14 + (((e12 * x2 + e13 * x6) + e14 * x10) + e15 * x14)
        y15 = x15 + (((e12 * x3 + e13 * x7) + e14 * x11) + e15 * x15)
        x0 = x0 if keep else y0
        x1 = x1 if keep else y1
        x2 = x2 if keep else y2
        x3 = x3 if keep else y3
        x4 = x4 if keep else y4
        x5 = x5 if keep else y5
        x6 = x6 if keep else y6
        x7 = x7 if keep else y7
        x8 = x8 if keep else y8
        x9 = x9 if keep else y9
        x10 = x10 if keep else y10
        x11 = x11 if keep else y11
        x12 = x12 if keep else y12
        x13 = x13 if keep else y13
        x14 = x14 if keep else y14
        x15 = x15 if keep else y15
        it = it if keep else it + 1
        e0 = one - (((x0 * a0 + x1 * a4) + x2 * a8) + x3 * a12)
        e1 = -(((x0 * a1 + x1 * a5) + x2 * a9) + x3 * a13)
        e2 = -(((x0 * a2 + x1 * a6) + x2 * a10) + x3 * a14)
        e3 = -(((x0 * a3 + x1 * a7) + x2 * a11) + x3 * a15)
        e4 = -(((x4 * a0 + x5 * a4) + x6 * a8) + x7 * a12)
        e5 = one - (((x4 * a1 + x5 * a5) + x6 * a9) + x7 * a13)
        e6 = -(((x4 * a2 + x5 * a6) + x6 * a10) + x7 * a14)
        e7 = -(((x4 * a3 + x5 * a7) + x6 * a11) + x7 * a15)
        e8 = -(((x8 * a0 + x9 * a4) + x10 * a8) + x11 * a12)
        e9 = -(((x8 * a1 + x9 * a5) + x10 * a9) + x11 * a13)
        e10 = one - (((x8 * a2 + x9 * a6) + x10 * a10) + x11 * a14)
        e11 = -(((x8 * a3 + x9 * a7) + x10 * a11) + x11 * a15)
        e12 = -(((x12 * a0 + x13 * a4) + x14 * a8) + x15 * a12)
        e13 = -(((x12 * a1 + x13 * a5) + x14 * a9) + x15 * a13)
        e14 = -(((x12 * a2 + x13 * a6) + x14 * a10) + x15 * a14)
        e15 = one - (((x12 * a3 + x13 * a7) + x14 * a11) + x15 * a15)
        ce0 = ((abs(e0) + abs(e4)) + abs(e8)) + abs(e12)
        cx0 = ((abs(x0) + abs(x4)) + abs(x8)) + abs(x12)
        ce1 = ((abs(e1) + abs(e5)) + abs(e9)) + abs(e13)
        cx1 = ((abs(x1) + abs(x5)) + abs(x9)) + abs(x13)
        ce2 = ((abs(e2) + abs(e6)) + abs(e10)) + abs(e14)
        cx2 = ((abs(x2) + abs(x6)) + abs(x10)) + abs(x14)
        ce3 = ((abs(e3) + abs(e7)) + abs(e11)) + abs(e15)
        cx3 = ((abs(x3) + abs(x7)) + abs(x11)) + abs(x15)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nl = ce2 if (ce2 > nl) | (ce2 != ce2) else nl
        nl = ce3 if (ce3 > nl) | (ce3 != ce3) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        nx = cx2 if (cx2 > nx) | (cx2 != cx2) else nx
        nx = cx3 if (cx3 > nx) | (cx3 != cx3) else nx
        den = 4 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | ((nl >= prev) & (nl < 1))
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u2)
        y0 = x0 + (((e0 * x0 + e1 * x4) + e2 * x8) + e3 * x12)
        y1 = x1 + (((e0 * x1 + e1 * x5) + e2 * x9) + e3 * x13)
        y2 = x2 + (((e0 * x2 + e1 * x6) + e2 * x10) + e3 * x14)
        y3 = x3 + (((e0 * x3 + e1 * x7) + e2 * x11) + e3 * x15)
        y4 = x4 + (((e4 * x0 + e5 * x4) + e6 * x8) + e7 * x12)
        y5 = x5 + (((e4 * x1 + e5 * x5) + e6 * x9) + e7 * x13)
        y6 = x6 + (((e4 * x2 + e5 * x6) + e6 * x10) + e7 * x14)
        y7 = x7 + (((e4 * x3 + e5 * x7) + e6 * x11) + e7 * x15)
        y8 = x8 + (((e8 * x0 + e9 * x4) + e10 * x8) + e11 * x12)
        y9 = x9 + (((e8 * x1 + e9 * x5) + e10 * x9) + e11 * x13)
        y10 = x10 + (((e8 * x2 + e9 * x6) + e10 * x10) + e11 * x14)
        y11 = x11 + (((e8 * x3 + e9 * x7) + e10 * x11) + e11 * x15)
        y12 = x12 + (((e12 * x0 + e13 * x4) + e14 * x8) + e15 * x12)
        y13 = x13 + (((e12 * x1 + e13 * x5) + e14 * x9) + e15 * x13)
        y14 = x14 + (((e12 * x2 + e13 * x6) + e14 * x10) + e15 * x14)
        y15 = x15 + (((e12 * x3 + e13 * x7) + e14 * x11) + e15 * x15)
        x0 = x0 if keep else y0
        x1 = x1 if keep else y1
        x2 = x2 if keep else y2
        x3 = x3 if keep else y3
        x4 = x4 if keep else y4
        x5 = x5 if keep else y5
        x6 = x6 if keep else y6
        x7 = x7 if keep else y7
        x8 = x8 if keep else y8
        x9 = x9 if keep else y9
        x10 = x10 if keep else y10
        x11 = x11 if keep else y11
        x12 = x12 if keep else y12
        x13 = x13 if keep else y13
        x14 = x14 if keep else y14
        x15 = x15 if keep else y15
        it = it if keep else it + 1
        e0 = one - (((x0 * a0 + x1 * a4) + x2 * a8) + x3 * a12)
        e1 = -(((x0 * a1 + x1 * a5) + x2 * a9) + x3 * a13)
        e2 = -(((x0 * a2 + x1 * a6) + x2 * a10) + x3 * a14)
        e3 = -(((x0 * a3 + x1 * a7) + x2 * a11) + x3 * a15)
        e4 = -(((x4 * a0 + x5 * a4) + x6 * a8) + x7 * a12)
        e5 = one - (((x4 * a1 + x5 * a5) + x6 * a9) + x7 * a13)
        e6 = -(((x4 * a2 + x5 * a6) + x6 * a10) + x7 * a14)
        e7 = -(((x4 * a3 + x5 * a7) + x6 * a11) + x7 * a15)
        e8 = -(((x8 * a0 + x9 * a4) + x10 * a8) + x11 * a12)
        e9 = -(((x8 * a1 + x9 * a5) + x10 * a9) + x11 * a13)
        e10 = one - (((x8 * a2 + x9 * a6) + x10 * a10) + x11 * a14)
        e11 = -(((x8 * a3 + x9 * a7) + x10 * a11) + x11 * a15)
        e12 = -(((x12 * a0 + x13 * a4) + x14 * a8) + x15 * a12)
        e13 = -(((x12 * a1 + x13 * a5) + x14 * a9) + x15 * a13)
        e14 = -(((x12 * a2 + x13 * a6) + x14 * a10) + x15 * a14)
        e15 = one - (((x12 * a3 + x13 * a7) + x14 * a11) + x15 * a15)
        ce0 = ((abs(e0) + abs(e4)) + abs(e8)) + abs(e12)
        cx0 = ((abs(x0) + abs(x4)) + abs(x8)) + abs(x12)
        ce1 = ((abs(e1) + abs(e5)) + abs(e9)) + abs(e13)
        cx1 = ((abs(x1) + abs(x5)) + abs(x9)) + abs(x13)
        ce2 = ((abs(e2) + abs(e6)) + abs(e10)) + abs(e14)
        cx2 = ((abs(x2) + abs(x6)) + abs(x10)) + abs(x14)
        ce3 = ((abs(e3) + abs(e7)) + abs(e11)) + abs(e15)
        cx3 = ((abs(x3) + abs(x7)) + abs(x11)) + abs(x15)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nl = ce2 if (ce2 > nl) | (ce2 != ce2) else nl
        nl = ce3 if (ce3 > nl) | (ce3 != ce3) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        nx = cx2 if (cx2 > nx) | (cx2 != cx2) else nx
        nx = cx3 if (cx3 > nx) | (cx3 != cx3) else nx
        den = 4 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | ((nl >= prev) & (nl < 1))
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        keep = st | (not u3)
        y0 = x0 + (((e0 * x0 + e1 * x4) + e2 * x8) + e3 * x12)
        y1 = x1 + (((e0 * x1 + e1 * x5) + e2 * x9) + e3 * x13)
        y2 = x2 + (((e0 * x2 + e1 * x6) + e2 * x10) + e3 * x14)
        y3 = x3 + (((e0 * x3 + e1 * x7) + e2 * x11) + e3 * x15)
        y4 = x4 + (((e4 * x0 + e5 * x4) + e6 * x8) + e7 * x12)
        y5 = x5 + (((e4 * x1 + e5 * x5) + e6 * x9) + e7 * x13)
        y6 = x6 + (((e4 * x2 + e5 * x6) + e6 * x10) + e7 * x14)
        y7 = x7 + (((e4 * x3 + e5 * x7) + e6 * x11) + e7 * x15)
        y8 = x8 + (((e8 * x0 + e9 * x4) + e10 * x8) + e11 * x12)
        y9 = x9 + (((e8 * x1 + e9 * x5) + e10 * x9) + e11 * x13)
        y10 = x10 + (((e8 * x2 + e9 * x6) + e10 * x10) + e11 * x14)
        y11 = x11 + (((e8 * x3 + e9 * x7) + e10 * x11) + e11 * x15)
        y12 = x12 + (((e12 * x0 + e13 * x4) + e14 * x8) + e15 * x12)
        y13 = x13 + (((e12 * x1 + e13 * x5) + e14 * x9) + e15 * x13)
        y14 = x14 + (((e12 * x2 + e13 * x6) + e14 * x10) + e15 * x14)
        y15 = x15 + (((e12 * x3 + e13 * x7) + e14 * x11) + e15 * x15)
        x0 = x0 if keep else y0
        x1 = x1 if keep else y1
        x2 = x2 if keep else y2
        x3 = x3 if keep else y3
        x4 = x4 if keep else y4
        x5 = x5 if keep else y5
        x6 = x6 if keep else y6
        x7 = x7 if keep else y7
        x8 = x8 if keep else y8
        x9 = x9 if keep else y9
        x10 = x10 if keep else y10
        x11 = x11 if keep else y11
        x12 = x12 if keep else y12
        x13 = x13 if keep else y13
        x14 = x14 if keep else y14
        x15 = x15 if keep else y15
        it = it if keep else it + 1
        e0 = one - (((x0 * a0 + x1 * a4) + x2 * a8) + x3 * a12)
        e1 = -(((x0 * a1 + x1 * a5) + x2 * a9) + x3 * a13)
        e2 = -(((x0 * a2 + x1 * a6) + x2 * a10) + x3 * a14)
        e3 = -(((x0 * a3 + x1 * a7) + x2 * a11) + x3 * a15)
        e4 = -(((x4 * a0 + x5 * a4) + x6 * a8) + x7 * a12)
        e5 = one - (((x4 * a1 + x5 * a5) + x6 * a9) + x7 * a13)
        e6 = -(((x4 * a2 + x5 * a6) + x6 * a10) + x7 * a14)
        e7 = -(((x4 * a3 + x5 * a7) + x6 * a11) + x7 * a15)
        e8 = -(((x8 * a0 + x9 * a4) + x10 * a8) + x11 * a12)
        e9 = -(((x8 * a1 + x9 * a5) + x10 * a9) + x11 * a13)
        e10 = one - (((x8 * a2 + x9 * a6) + x10 * a10) + x11 * a14)
        e11 = -(((x8 * a3 + x9 * a7) + x10 * a11) + x11 * a15)
        e12 = -(((x12 * a0 + x13 * a4) + x14 * a8) + x15 * a12)
        e13 = -(((x12 * a1 + x13 * a5) + x14 * a9) + x15 * a13)
        e14 = -(((x12 * a2 + x13 * a6) + x14 * a10) + x15 * a14)
        e15 = one - (((x12 * a3 + x13 * a7) + x14 * a11) + x15 * a15)
        ce0 = ((abs(e0) + abs(e4)) + abs(e8)) + abs(e12)
        cx0 = ((abs(x0) + abs(x4)) + abs(x8)) + abs(x12)
        ce1 = ((abs(e1) + abs(e5)) + abs(e9)) + abs(e13)
        cx1 = ((abs(x1) + abs(x5)) + abs(x9)) + abs(x13)
        ce2 = ((abs(e2) + abs(e6)) + abs(e10)) + abs(e14)
        cx2 = ((abs(x2) + abs(x6)) + abs(x10)) + abs(x14)
        ce3 = ((abs(e3) + abs(e7)) + abs(e11)) + abs(e15)
        cx3 = ((abs(x3) + abs(x7)) + abs(x11)) + abs(x15)
        nl = ce0
        nl = ce1 if (ce1 > nl) | (ce1 != ce1) else nl
        nl = ce2 if (ce2 > nl) | (ce2 != ce2) else nl
        nl = ce3 if (ce3 > nl) | (ce3 != ce3) else nl
        nx = cx0
        nx = cx1 if (cx1 > nx) | (cx1 != cx1) else nx
        nx = cx2 if (cx2 > nx) | (cx2 != cx2) else nx
        nx = cx3 if (cx3 > nx) | (cx3 != cx3) else nx
        den = 4 * nal * nx * eps
        fails = ((den == 0) & (nl > 0)) | ((den == np.inf) & (nl == nl))
        r[l] = np.inf if fails else nl / den
        rc[l] = 1 / (nal * nx)
        other = (not (abs(nl) < np.inf)) | (nl > 1e6) | ((nl >= prev) & (nl < 1))
        okl = okl | ((r[l] < tol) & (not st))
        st = st | okl | other
        prev = nl
        xv[0 * S + l] = x0
        xv[1 * S + l] = x1
        xv[2 * S + l] = x2
        xv[3 * S + l] = x3
        xv[4 * S + l] = x4
        xv[5 * S + l] = x5
        xv[6 * S + l] = x6
        xv[7 * S + l] = x7
        xv[8 * S + l] = x8
        xv[9 * S + l] = x9
        xv[10 * S + l] = x10
        xv[11 * S + l] = x11
        xv[12 * S + l] = x12
        xv[13 * S + l] = x13
        xv[14 * S + l] = x14
        xv[15 * S + l] = x15
        ok[l] = okl
        its[l] = it
# --- end of generated code ---


@njit(inline="always")
def _mlp(hv, h2, acc, weights, shapes, off, act, L):
    """The member's g on its input ``hv[:in0]``, layer by layer, the result in ``hv[:out]``;
    four weights per lane pass, still added left to right. The offset of the next member's
    weights and g's output size. (Four outputs per pass, each input row loaded once for the
    four, measured 2.5x slower: attempt 82.)"""
    last = shapes.shape[0] - 1
    size = 0
    # 2-D views: a row index that varies outside the lane loop keeps numba's negative-index
    # test out of it (with ``hv[i * S + l]`` it tests every element, and nothing vectorises).
    h = hv.reshape(hv.size // S, S)
    for li in range(shapes.shape[0]):
        out, inp = shapes[li, 0], shapes[li, 1]
        wb = off + out * inp
        for o in range(out):
            row = off + o * inp
            w = weights[row]
            for l in range(L):
                acc[l] = h[0, l] * w
            i = 1
            while i + 3 < inp:
                w0, w1, w2, w3 = weights[row + i], weights[row + i + 1], weights[row + i + 2], weights[row + i + 3]
                for l in range(L):
                    acc[l] = (((acc[l] + w0 * h[i, l]) + w1 * h[i + 1, l]) + w2 * h[i + 2, l]) + w3 * h[i + 3, l]
                i += 4
            while i < inp:
                w = weights[row + i]
                for l in range(L):
                    acc[l] = acc[l] + w * h[i, l]
                i += 1
            _activate_row(h2, o * S, acc, weights[wb + o], act if li < last else 0, L)
        off = wb + out
        for k in range(out * S):
            hv[k] = h2[k]
        size = out
    return off, size


@njit(inline="always")
def _activate_row(h2, at, acc, bias, act, L):
    """h2[at:at + L] = activation(bias + acc[:L]), the choice of activation outside the lane loop."""
    if act == 0:
        for l in range(L):
            h2[at + l] = bias + acc[l]
    elif act == 2:
        for l in range(L):
            v = bias + acc[l]
            h2[at + l] = v / (1 + _exp(-v))
    else:
        for l in range(L):
            h2[at + l] = _activate(bias + acc[l], act)


def _head(ntag, av, xv, hv, c, C, s_in, L):
    """``_head{n}`` for the n that ``ntag`` (a tuple of n zeros) stands for; chosen while numba
    types the kernel (an argument passed as a function would make the kernel uncachable)."""


def _steps(ntag, av, xv, na, ok, contracted, r, rc, its, steps, one, eps, tol, L):
    """``_steps{n}_{k}`` for the n that ``ntag`` stands for (as :func:`_head`) and the dtype's
    most steps k (``MOST_STEPS``)."""


@overload(_head)
def _head_impl(ntag, av, xv, hv, c, C, s_in, L):
    fn = _HEADS[len(ntag.types) - 1]

    def impl(ntag, av, xv, hv, c, C, s_in, L):
        fn(av, xv, hv, c, C, s_in, L)

    return impl


@overload(_steps)
def _steps_impl(ntag, av, xv, na, ok, contracted, r, rc, its, steps, one, eps, tol, L):
    fn = _STEPS[len(ntag.types) - 1][av.dtype == types.float64]

    def impl(ntag, av, xv, na, ok, contracted, r, rc, its, steps, one, eps, tol, L):
        fn(av, xv, na, ok, contracted, r, rc, its, steps, one, eps, tol, L)

    return impl


_HEADS = (_head1, _head2, _head3, _head4)
#: per n: float32's and float64's (MOST_STEPS)
_STEPS = tuple(zip((_steps1_3, _steps2_3, _steps3_3, _steps4_3), (_steps1_4, _steps2_4, _steps3_4, _steps4_4)))
#: The most steps each kernel takes, by dtype name.
MOST_STEPS = {"float32": 3, "float64": 4}


@njit(fastmath={"contract"}, error_model="numpy")
def _lanes(A, X, accepted, ratio, rcond, iters, start, stop, region_c, radius, head, scales,
           weights, shapes, act, steps, tol, eps, lanes, ntag):
    """The kernel (module docstring) for the n that ``ntag`` stands for (a tuple of n zeros):
    the same operations in the same order for every matrix, the per-matrix decisions as lane
    masks."""
    n = A.shape[1]
    nn = n * n
    L = min(lanes, S)
    members = head.shape[0]
    width = nn
    for li in range(shapes.shape[0]):
        width = max(width, shapes[li, 0])
    dt = A.dtype
    one = np.ones(1, dt)[0]
    av = np.empty(nn * S, dt)
    xv = np.empty(nn * S, dt)
    total = np.empty(nn * S, dt)
    hv = np.empty(width * S, dt)
    h2 = np.empty(width * S, dt)
    acc = np.empty(S, dt)
    dist = np.empty(S, np.float64)
    na = np.empty(S, dt)
    ca = np.empty(S, dt)
    r = np.empty(S, dt)
    rc = np.empty(S, dt)
    ok = np.empty(S, np.bool_)
    contracted = np.empty(S, np.bool_)
    its = np.empty(S, np.int32)
    a2, x2, t2, g2 = av.reshape(nn, S), xv.reshape(nn, S), total.reshape(nn, S), hv.reshape(width, S)
    Af, Xf = A.reshape(A.shape[0], nn), X.reshape(X.shape[0], nn)
    for b0 in range(start, stop, L):
        m = min(L, stop - b0)
        src, dst = Af[b0:b0 + m], Xf[b0:b0 + m]  # (matrix, entry) slices: the loads below and
        for l in range(m):  # the stores at the end run along each matrix, with no index tests
            for k in range(nn):
                a2[k, l] = src[l, k]
        for k in range(nn):
            for l in range(m, L):  # padding: member 0's center (a harmless matrix)
                a2[k, l] = head[0, 0, k]
        for l in range(L):
            dist[l] = 0.0
        for k in range(nn):
            c = region_c[k]
            for l in range(L):
                dk = abs(np.float64(a2[k, l]) - c)
                dist[l] = dk if (dk > dist[l]) | (dk != dk) else dist[l]
        off = 0
        for mi in range(members):
            _head(ntag, av, xv, hv, head[mi, 0], head[mi, 1], scales[mi, 0], L)
            off, size = _mlp(hv, h2, acc, weights, shapes, off, act, L)
            s_out = scales[mi, 1]
            for k in range(min(size, nn)):
                for l in range(L):
                    x2[k, l] = x2[k, l] + s_out * g2[k, l]
            for k in range(nn):
                for l in range(L):
                    t2[k, l] = x2[k, l] if mi == 0 else t2[k, l] + x2[k, l]
        if members > 1:
            for k in range(nn * S):
                xv[k] = total[k] / members
        for j in range(n):  # ||A||_1, the same at every step
            first = j == 0
            for l in range(L):
                ca[l] = abs(a2[j, l])
            for k in range(1, n):
                for l in range(L):
                    ca[l] = ca[l] + abs(a2[k * n + j, l])
            for l in range(L):
                na[l] = ca[l] if first | (ca[l] > na[l]) | (ca[l] != ca[l]) else na[l]
        _steps(ntag, av, xv, na, ok, contracted, r, rc, its, steps, one, eps, tol, L)
        for l in range(m):
            for k in range(nn):
                dst[l, k] = x2[k, l]
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
def _team_learned(data, dtype, ntag):
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
        _lanes(A, X, accepted, ratio, rcond, iters, s, min(B, s + chunk), region_c, flt[21],
               head, scales, weights, shapes, blk[16], blk[17], flt[22], flt[23], blk[18], ntag)


# --- generated by tests/learned_codegen.py: the entry points of each n ---
@njit(nogil=True, cache=True, fastmath={"contract"}, error_model="numpy")
def learned_lanes1(A, X, accepted, ratio, rcond, iters, start, stop, region_c, radius, head, scales, weights, shapes, act, steps, tol, eps, lanes):
    """The kernel for 1x1 matrices (module docstring)."""
    return _lanes(A, X, accepted, ratio, rcond, iters, start, stop, region_c, radius, head, scales, weights, shapes, act, steps, tol, eps, lanes, (0,))


def team_learned1_float32(data):
    _team_learned(data, np.float32, (0,))


def team_learned1_float64(data):
    _team_learned(data, np.float64, (0,))


@njit(nogil=True, cache=True, fastmath={"contract"}, error_model="numpy")
def learned_lanes2(A, X, accepted, ratio, rcond, iters, start, stop, region_c, radius, head, scales, weights, shapes, act, steps, tol, eps, lanes):
    """The kernel for 2x2 matrices (module docstring)."""
    return _lanes(A, X, accepted, ratio, rcond, iters, start, stop, region_c, radius, head, scales, weights, shapes, act, steps, tol, eps, lanes, (0, 0))


def team_learned2_float32(data):
    _team_learned(data, np.float32, (0, 0))


def team_learned2_float64(data):
    _team_learned(data, np.float64, (0, 0))


@njit(nogil=True, cache=True, fastmath={"contract"}, error_model="numpy")
def learned_lanes3(A, X, accepted, ratio, rcond, iters, start, stop, region_c, radius, head, scales, weights, shapes, act, steps, tol, eps, lanes):
    """The kernel for 3x3 matrices (module docstring)."""
    return _lanes(A, X, accepted, ratio, rcond, iters, start, stop, region_c, radius, head, scales, weights, shapes, act, steps, tol, eps, lanes, (0, 0, 0))


def team_learned3_float32(data):
    _team_learned(data, np.float32, (0, 0, 0))


def team_learned3_float64(data):
    _team_learned(data, np.float64, (0, 0, 0))


@njit(nogil=True, cache=True, fastmath={"contract"}, error_model="numpy")
def learned_lanes4(A, X, accepted, ratio, rcond, iters, start, stop, region_c, radius, head, scales, weights, shapes, act, steps, tol, eps, lanes):
    """The kernel for 4x4 matrices (module docstring)."""
    return _lanes(A, X, accepted, ratio, rcond, iters, start, stop, region_c, radius, head, scales, weights, shapes, act, steps, tol, eps, lanes, (0, 0, 0, 0))


def team_learned4_float32(data):
    _team_learned(data, np.float32, (0, 0, 0, 0))


def team_learned4_float64(data):
    _team_learned(data, np.float64, (0, 0, 0, 0))
