"""Derivatives of the projection (QR and SVD routes): an autograd.Function whose backward and
jvp are differentiable torch ops and calls of itself and of lstsq's Function. The ridge route
is plain torch ops (autograd through the QR)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .project_values import project_values
from .solve_autograd import LstsqFunction
from .transforms import front


def _coefficients(W: Tensor, xs: list[Tensor], route: Tensor, rtol: float) -> list[Tensor]:
    """``(W^T)^+ x`` for the rows x of each X (B, d) in xs: coefficients (B, r) of their
    projections on W's rows, from one least-squares call."""
    if W.shape[0] == 1:  # shared basis: one factorisation, all rows as right-hand sides
        C = LstsqFunction.apply(W.mT, torch.cat(xs, 0).mT.unsqueeze(0), route, rtol)[0][0].mT
        return list(C.split(xs[0].shape[0], 0))
    C = LstsqFunction.apply(W.mT, torch.stack(xs, -1), route, rtol)[0]
    return list(C.unbind(-1))


class ProjectionFunction(torch.autograd.Function):
    """Projection of f (B, d) onto row(W), W (Bw, r, d) with Bw in {1, B}; returns (proj, route).

    With P = W^+ W: d(P f) = P df + (I - P) dW^T W^+T f + W^+ dW (I - P) f (fixed rank), so
        dL/df = P G,   dL/dW = (W^+T f) ((I - P) G)^T + (W^+T G) ((I - P) f)^T.
    W^+T x and W^+ y are least-squares solves with W^T and W (:class:`LstsqFunction`, same routes).
    """

    @staticmethod
    def forward(W: Tensor, f: Tensor, route: Tensor | None, rtol: float):  # type: ignore[override]
        return project_values(W, f, route, rtol)

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
        PG = ProjectionFunction.apply(W, G, route, rtol)[0]
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
            return ProjectionFunction.apply(W, t, route, rtol)[0], None
        # P (df - u) + u + W^+ y  with  u = dW^T W^+T f,  y = dW (I - P) f
        # complex: the last term is (W^+)^H dW^H (I - P) f = conj(W^+ dW conj((I - P) f))
        (Cf,) = _coefficients(W, [f], route, rtol)
        q = (f - proj).conj() if W.is_complex() else f - proj
        if W.shape[0] == 1:
            u = Cf @ dW[0]
            y = q @ dW[0].mT
            Wpy = LstsqFunction.apply(W, y.mT.unsqueeze(0), route, rtol)[0][0].mT
        else:
            u = (dW * Cf.unsqueeze(-1)).sum(-2)
            y = (dW * q.unsqueeze(-2)).sum(-1)
            Wpy = LstsqFunction.apply(W, y.unsqueeze(-1), route, rtol)[0].squeeze(-1)
        if W.is_complex():
            Wpy = Wpy.conj()
        return ProjectionFunction.apply(W, t - u, route, rtol)[0] + u + Wpy, None

    @staticmethod
    def vmap(info, in_dims, W, f, route, rtol):  # type: ignore[override]
        n = info.batch_size
        wd, fd, rd = in_dims[:3]
        B, (Bw, r, d) = f.shape[-2], W.shape[-3:]
        f = front(f, fd, n)
        if wd is None and rd is None and Bw == 1:
            # a basis shared by every sample of every vmapped slice: still one factorisation
            proj, rt = ProjectionFunction.apply(W, f.reshape(n * B, d), route, rtol)
            return (proj.reshape(n, B, d), rt), (0, None)
        W = front(W, wd, n).expand(n, B, r, d).reshape(n * B, r, d)
        if route is not None:
            route = front(route, rd, n).expand(n, B).reshape(n * B)
        proj, rt = ProjectionFunction.apply(W, f.reshape(n * B, d), route, rtol)
        rt = rt.reshape(n, B)[:, :Bw]
        return (proj.reshape(n, B, d), rt), (0, 0)
