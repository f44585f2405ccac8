"""Derivatives of lstsq and pinv: autograd.Functions whose backward and jvp are written in
differentiable torch ops (and calls of these Functions), so double backward, forward mode and
torch.func work.

Both use the fixed-rank derivative of the (truncated) pseudo-inverse P = A^+ (Golub & Pereyra
1973; the formula torch.linalg.pinv differentiates with):
    dP = -P dA P + P P^T dA^T (I - A P) + (I - P A) dA^T P^T P.
It only involves P, bounded by 1 / cutoff, never the SVD's 1 / (s_i^2 - s_j^2) terms, which
are infinite at repeated singular values where the pseudo-inverse itself is smooth. Where
the QR route answers (full rank), P is the exact pseudo-inverse and the formula is exact.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .solve_values import lstsq_values, pinv_values
from .transforms import front


class LstsqFunction(torch.autograd.Function):
    """``X = A^+ B`` on batches (..., m, n), (..., m, k) of equal batch shape; returns
    (X, rank, route). Backward and jvp apply P and P^T by calling this Function again on A and
    A^T with the same routes (A^T has A's singular values, so the same rank is kept)."""

    @staticmethod
    def forward(A: Tensor, B: Tensor, route: Tensor | None, rtol: float):  # type: ignore[override]
        return lstsq_values(A, B, route, rtol)

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
            gB = LstsqFunction.apply(A.mH, G, route, rtol)[0] if ctx.needs_input_grad[1] else None
            return None, gB, None, None
        # dL/dB = P^T G,  dL/dA = -P^T G X^T + r (P P^T G)^T + (P^T X) ((I - P A) G)^T
        # (complex: ^H for ^T throughout)
        gB, Y = LstsqFunction.apply(A.mH, torch.cat([G, X], -1), route, rtol)[0].split(k, -1)
        C, D = LstsqFunction.apply(A, torch.cat([gB, A @ G], -1), route, rtol)[0].split(k, -1)
        r = B - A @ X
        gA = -gB @ X.mH + r @ C.mH + Y @ (G - D).mH
        return gA, gB if ctx.needs_input_grad[1] else None, None, None

    @staticmethod
    def jvp(ctx, dA: Tensor | None, dB: Tensor | None, _droute: Any, _drtol: Any):  # type: ignore[override]
        A, B, X, route = ctx.saved_tensors
        rtol = ctx.rtol
        rhs = torch.zeros_like(B) if dB is None else dB
        if dA is None:
            return LstsqFunction.apply(A, rhs, route, rtol)[0], None, None
        # dX = P (dB - dA X - A Z + P^T dA^T r) + Z,  Z = dA^T P^T X
        k = X.shape[-1]
        r = B - A @ X
        Y, Wt = LstsqFunction.apply(A.mH, torch.cat([X, dA.mH @ r], -1), route, rtol)[0].split(k, -1)
        Z = dA.mH @ Y
        dX = LstsqFunction.apply(A, rhs - dA @ X - A @ Z + Wt, route, rtol)[0] + Z
        return dX, None, None

    @staticmethod
    def vmap(info, in_dims, A, B, route, rtol):  # type: ignore[override]
        # the functions are batch-agnostic: the vmapped dimension is one more batch dimension
        n = info.batch_size
        A, B = front(A, in_dims[0], n), front(B, in_dims[1], n)
        route = front(route, in_dims[2], n)
        return LstsqFunction.apply(A, B, route, rtol), (0, 0, 0)


class PinvFunction(torch.autograd.Function):
    """Truncated-SVD pseudo-inverse of (..., m, n); derivatives from the formula above."""

    @staticmethod
    def forward(A: Tensor, rtol: Any, atol: Any, hermitian: bool = False):  # type: ignore[override]
        return pinv_values(A, rtol, atol, hermitian)

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
            rtol = front(rtol, in_dims[1], size)
        if isinstance(atol, Tensor) and in_dims[2] is not None:
            atol = front(atol, in_dims[2], size)
        return PinvFunction.apply(front(A, in_dims[0], size), rtol, atol, hermitian), 0
