"""The adjugate formulas of 1x1 .. 4x4 matrices over entry lists: the closed forms' arithmetic.

Each ``FORMULAS[n](a)`` takes the n*n entries of a batch in row-major order (each a (B,) tensor,
or a row of an entry-major (n*n, B) tensor) and returns the row-major entries of the adjugate
(the inverse times the determinant) and the determinant. Used by
:mod:`neuralinv.methods.closed_form`; the native kernels (``kernels/_numba_kernels.py``) write
the same formulas out in numba.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _inv1(a: Tensor) -> tuple[list[Tensor], Tensor]:
    det = a[0]
    return [torch.ones_like(det)], det


def _inv2(a: Tensor) -> tuple[list[Tensor], Tensor]:
    a00, a01, a10, a11 = a
    det = a00 * a11 - a01 * a10
    # a is a private copy, so its rows may be scaled in place as answers.
    return [a11, -a01, -a10, a00], det


def _inv3(a: Tensor) -> tuple[list[Tensor], Tensor]:
    a00, a01, a02, a10, a11, a12, a20, a21, a22 = a
    # Cofactors of the first column feed the determinant as well as the adjugate.
    c00 = a11 * a22 - a12 * a21
    c10 = a12 * a20 - a10 * a22
    c20 = a10 * a21 - a11 * a20
    det = a00 * c00 + a01 * c10 + a02 * c20
    entries = [
        c00,
        a02 * a21 - a01 * a22,
        a01 * a12 - a02 * a11,
        c10,
        a00 * a22 - a02 * a20,
        a02 * a10 - a00 * a12,
        c20,
        a01 * a20 - a00 * a21,
        a00 * a11 - a01 * a10,
    ]
    return entries, det


def _inv4(a: Tensor) -> tuple[list[Tensor], Tensor]:
    a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33 = a
    # Laplace expansion by complementary 2x2 minors of rows (0, 1) and rows (2, 3).
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
    det = s0 * c5 - s1 * c4 + s2 * c3 + s3 * c2 - s4 * c1 + s5 * c0
    entries = [
        a11 * c5 - a12 * c4 + a13 * c3,
        -a01 * c5 + a02 * c4 - a03 * c3,
        a31 * s5 - a32 * s4 + a33 * s3,
        -a21 * s5 + a22 * s4 - a23 * s3,
        -a10 * c5 + a12 * c2 - a13 * c1,
        a00 * c5 - a02 * c2 + a03 * c1,
        -a30 * s5 + a32 * s2 - a33 * s1,
        a20 * s5 - a22 * s2 + a23 * s1,
        a10 * c4 - a11 * c2 + a13 * c0,
        -a00 * c4 + a01 * c2 - a03 * c0,
        a30 * s4 - a31 * s2 + a33 * s0,
        -a20 * s4 + a21 * s2 - a23 * s0,
        -a10 * c3 + a11 * c1 - a12 * c0,
        a00 * c3 - a01 * c1 + a02 * c0,
        -a30 * s3 + a31 * s1 - a32 * s0,
        a20 * s3 - a21 * s1 + a22 * s0,
    ]
    return entries, det


FORMULAS = {1: _inv1, 2: _inv2, 3: _inv3, 4: _inv4}
