"""One analytic backward for every method: d(A^-1) = -A^-1 dA A^-1.

Methods compute X without autograd; this attaches the exact derivative of the inverse, so
iterative methods never backpropagate through their iterations and every method's gradient
equals torch.linalg.inv's (to the accuracy of X).
"""

from __future__ import annotations

import torch
from torch import Tensor


class _InverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, A: Tensor, X: Tensor) -> Tensor:  # noqa: ARG004 (A carries the graph)
        out = X.clone()
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        (X,) = ctx.saved_tensors
        # The saved output keeps its graph, so this backward is itself differentiable
        # (second derivatives, gradgradcheck) without ever touching the iterations.
        Xt = X.mT
        return -(Xt @ grad @ Xt), None


def attach_inverse_grad(A: Tensor, X: Tensor) -> Tensor:
    """Return X with the inverse's derivative w.r.t. A attached (a no-op without autograd)."""
    if not (A.requires_grad and torch.is_grad_enabled()):
        return X
    return _InverseGrad.apply(A, X.detach())
