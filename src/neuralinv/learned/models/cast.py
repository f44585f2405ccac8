"""Low-precision copies of trained networks: the learned part in bfloat16 (or float16), the
exact part in the model's own precision.

A network's guess only seeds Newton-Schulz, which refines it in the input's precision, so the
guess itself may be computed in a cheaper precision where that is faster. What must not lose
precision is the part of a model that is not learned: the linear approximation ``C - C D C``
of a :class:`~.correction.Correction` (its residual ``(D C)^2`` is small, and bfloat16's 8-bit
mantissa would add an error of about 2^-9 of ``C``, larger than the remainder the network
learns), and the affine rescaling of :class:`~.scaled.Scaled`. :func:`low_precision` therefore
casts only the learned remainder network (``g``, or the wrapped ``net``); a model of another
kind is cast whole.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from ...errors import InputError
from .correction import Correction, UnionCorrection
from .scaled import Scaled

#: The precisions a guess may be computed in (besides the model's own).
LOW_PRECISION = (torch.bfloat16, torch.float16)


class Cast(nn.Module):
    """``net`` run in ``dtype``: the input is cast to it, the output back to the input's dtype."""

    def __init__(self, net: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.net = net.to(dtype)
        self.dtype = dtype

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.to(self.dtype)).to(x.dtype)


def low_precision(member: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy of the trained ``member`` whose learned part runs in ``dtype`` (bfloat16 or
    float16); ``member`` itself is not changed. The copy is for inference (eval mode)."""
    if dtype not in LOW_PRECISION:
        raise InputError(f"a low-precision guess must be bfloat16 or float16, got {dtype}")
    out = copy.deepcopy(member).eval()
    if isinstance(out, Correction):
        out.g = Cast(out.g, dtype)
    elif isinstance(out, UnionCorrection):
        out.g = nn.ModuleList(Cast(g, dtype) for g in out.g)
    elif isinstance(out, Scaled):
        out.net = Cast(out.net, dtype)
    else:
        out = Cast(out, dtype)
    return out.requires_grad_(False)


__all__ = ["LOW_PRECISION", "Cast", "low_precision"]
