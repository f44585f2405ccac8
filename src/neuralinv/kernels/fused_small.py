"""Closed-form inverse and its certificate for n <= 4, as one elementwise expression per matrix.

Every quantity is written out entry by entry over (B,) vectors: the adjugate and determinant
(the formulas of :mod:`neuralinv.methods.closed_form`), the residual ``I - X A``, the 1-norms of
the residual, A and X, the LAPACK dget03 ratio and rcond. Run eagerly this is hundreds of small
passes over the batch; compiled by inductor it is one loop that reads each matrix once and
writes its inverse and certificate once (docs/performance.md, attempt 14). On CUDA inductor emits
a Triton kernel from the same code; this eager function is its CPU twin.

Numerics are those of the eager paths it replaces, so statuses agree: float32 input is inverted
in float64 and rounded once (closed_form's accuracy argument), and the certificate is computed
in the input's dtype as dget03 does, in the order of ``certify._entry_major_norms`` (inductor
does not reassociate or contract floating-point operations on CPU by default).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..certify import ratio_from_norms
from ..methods.closed_form import FORMULAS


def inverse_certificate(A: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(X, singular, ratio, rcond)`` for a contiguous (B, n, n) batch, 1 <= n <= 4.

    X is the closed-form inverse in A's dtype (inf/NaN where ``singular``, the determinant being
    exactly zero); ratio and rcond are ``certify.certificate(A, X)`` up to summation order.
    """
    B, n = A.shape[0], A.shape[-1]
    work = torch.float64 if A.dtype == torch.float32 else A.dtype
    a = [A[:, i, j] for i in range(n) for j in range(n)]
    cof, det = FORMULAS[n]([v.to(work) for v in a])
    r = 1.0 / det
    x = [(c * r).to(A.dtype) for c in cof]
    _, num, norm_a, norm_x = residual_norms(x, a, n)
    ratio = ratio_from_norms(num, norm_a, norm_x, n, A.dtype)
    X = torch.stack(x, dim=-1).reshape(B, n, n)
    return X, det == 0, ratio, 1.0 / (norm_a * norm_x)


def residual_norms(x: list[Tensor], a: list[Tensor], n: int) -> tuple[list[Tensor], Tensor, Tensor, Tensor]:
    """``(E, ||E||_1, ||A||_1, ||X||_1)`` with ``E = I - X A``, from row-major entry lists.

    ``E`` comes back row-major too. Sums run in the order of ``certify._entry_major_norms``:
    each product entry over i in order, then the column sums over rows, then the largest.
    """
    E: list[Tensor | None] = [None] * (n * n)
    num = norm_a = norm_x = None
    for j in range(n):
        col_e = col_a = col_x = None
        for k in range(n):
            # (X A)[k, j] accumulated over i in order, then I - (X A), as the eager certificate.
            s = x[k * n] * a[j]
            for i in range(1, n):
                s = s + x[k * n + i] * a[i * n + j]
            E[k * n + j] = 1.0 - s if k == j else -s
            e = E[k * n + j].abs()
            ak, xk = a[k * n + j].abs(), x[k * n + j].abs()
            col_e = e if col_e is None else col_e + e
            col_a = ak if col_a is None else col_a + ak
            col_x = xk if col_x is None else col_x + xk
        num = col_e if num is None else torch.maximum(num, col_e)
        norm_a = col_a if norm_a is None else torch.maximum(norm_a, col_a)
        norm_x = col_x if norm_x is None else torch.maximum(norm_x, col_x)
    return E, num, norm_a, norm_x
