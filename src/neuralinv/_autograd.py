"""One analytic derivative for every method: d(A^-1) = -A^-1 dA A^-1.

Methods compute X without autograd, on plain tensors. When the input takes part in any
autograd machinery -- it requires grad, carries a forward-mode tangent, or is wrapped by a
torch.func transform (grad, vjp, jvp, vmap, jacrev, jacfwd, hessian) -- ``Method.invert`` runs
the method inside :class:`_Invert`, an autograd.Function that supplies

* ``backward``: ``-X^H g X^H`` (``X^T`` for real X; torch's convention for complex
  gradients, the conjugate Wirtinger derivative, as torch.linalg.inv), in differentiable torch ops on the saved output X, so it is
  itself differentiable (gradgradcheck, hessian) and never touches the iterations;
* ``jvp`` (forward mode, torch.func.jvp/jacfwd): ``-X dA X``;
* ``vmap``: every method is batch-agnostic over leading dimensions, so the rule moves the
  vmapped dimension to the front and inverts the physically batched tensor in one call. The
  methods' data-dependent control flow (statuses, fallbacks) therefore never sees a
  BatchedTensor.

Every method's derivatives thus equal torch.linalg.inv's (to the accuracy of X). The per-matrix
status, residual ratio and rcond come out of the Function as non-differentiable tensors (so
vmap gives them their logical shape); the Python-side record (method labels, stats) and the
whole physical Solution, which :func:`neuralinv.inv` needs to raise naming physical batch
indices, travel in a :class:`Side` object. Plain inputs (numpy, tensors outside autograd) never
reach this module beyond :func:`needs_autograd`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.autograd.forward_ad as _fwad
from torch import Tensor

_is_wrapped = torch._C._functorch.is_functorch_wrapped_tensor


def _forward_ad_on():
    """Forward AD switched on for a jvp rule's own ops.

    torch runs an autograd.Function's jvp with forward AD off, so under nested forward modes
    (jacfwd(jacfwd(f)), the third derivative) the outer levels' tangents of X were silently
    dropped: second forward derivatives came out wrong, as in pytorch/pytorch#197867. With it on,
    ``-X dA X`` is differentiated at the outer levels like any torch expression.
    """
    return _fwad._set_fwd_grad_enabled(True)


def needs_autograd(t: Tensor) -> bool:
    """Whether the inverse of ``t`` must go through :class:`_Invert` (cheap when it need not)."""
    if t.requires_grad and torch.is_grad_enabled():
        return True
    if _is_wrapped(t):  # any torch.func transform: vmap, grad, jvp, ...
        return True
    # Plain forward AD: only inside a ``forward_ad.dual_level()`` can a tensor have a tangent.
    return _fwad._current_level >= 0 and _fwad.unpack_dual(t).tangent is not None


class Side:
    """What the innermost forward leaves for the caller: the physical Solution, and the batch
    indices of each status other than OK in it (``{Status: [index tuple, ...]}``).

    The indices are read off in the forward because outside it, under torch.func.grad and
    friends, no tensor can be converted to numpy ("Cannot access data pointer of Tensor that
    doesn't have storage"), not even a plain one.
    """

    __slots__ = ("solution", "indices")

    def __init__(self) -> None:
        self.solution: Any = None
        self.indices: dict = {}


class _Invert(torch.autograd.Function):
    """(A, method, side) -> (X, status, residual, rcond); only X is differentiable."""

    @staticmethod
    def forward(A: Tensor, method: Any, side: Side):
        sol = method._solve(A)
        side.solution = sol
        side.indices = _status_indices(sol.status)
        # Outputs must not be views (of the method's flat (B, n, n) results): forward AD
        # rejects a Function output that is a view of a tensor it never saw.
        return tuple(
            t if t._base is None else t.clone()
            for t in (sol.inverse, sol.status, sol.residual, sol.rcond)
        )

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        X, status, residual, rcond = output
        ctx.mark_non_differentiable(status, residual, rcond)
        ctx.save_for_backward(X)
        ctx.save_for_forward(X)

    @staticmethod
    def backward(ctx, gX: Tensor, *_: Any):
        # The saved output keeps its graph, so under create_graph this backward is itself
        # differentiated (through this Function again): second derivatives come for free.
        (X,) = ctx.saved_tensors
        Xt = X.mH  # X.mT for real X
        return -(Xt @ gX @ Xt), None, None

    @staticmethod
    def jvp(ctx, dA: Tensor, *_: Any):
        (X,) = ctx.saved_tensors
        with _forward_ad_on():
            return -(X @ dA @ X), None, None, None

    @staticmethod
    def vmap(info, in_dims, A: Tensor, method: Any, side: Side):
        # Only A can be batched (the other inputs are not tensors). The methods treat leading
        # dimensions as a batch, so one call on the physical tensor answers every vmapped slice.
        A = A.movedim(in_dims[0], 0)
        return apply(A, method, side), (0, 0, 0, 0)


def _status_indices(status: Tensor) -> dict:
    from .solution import Status

    codes = status.detach().cpu().numpy()
    found: dict = {}
    if codes.any():
        for code in np.unique(codes[codes != 0]):
            idx = np.argwhere(codes == code)
            found[Status(int(code))] = [tuple(int(v) for v in i) for i in idx]
    return found


def apply(A: Tensor, method: Any, side: Side):
    """``_Invert`` on A when A needs autograd, else the plain forward (no Function overhead)."""
    if needs_autograd(A):
        return _Invert.apply(A, method, side)
    return _Invert.forward(A, method, side)
