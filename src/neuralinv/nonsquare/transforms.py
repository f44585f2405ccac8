"""torch.func plumbing shared by the autograd Functions: telling wrapped tensors (whose values
cannot be read) apart, and moving the vmapped dimension to the front in a vmap rule."""

from __future__ import annotations

import torch
from torch import Tensor


def front(x: Tensor | None, dim: int | None, size: int) -> Tensor | None:
    """For a vmap rule: the vmapped dimension first (broadcast when x is not vmapped)."""
    if x is None:
        return None
    if dim is None:
        return x.unsqueeze(0).expand((size,) + tuple(x.shape))
    return x.movedim(dim, 0)


def is_wrapped(t: Tensor) -> bool:
    """Whether t is a torch.func (vmap/grad/jvp) wrapper, or a batched tensor of the vmap behind
    ``is_grads_batched``: its values cannot be read."""
    f = torch._C._functorch
    return bool(f.is_functorch_wrapped_tensor(t) or f.is_legacy_batchedtensor(t))


def any_wrapped(*ts: Tensor | None) -> bool:
    """Whether a Function's forward runs on wrapped tensors, i.e. under a vmap that does not use
    the Functions' vmap rules (``torch.autograd.grad(..., is_grads_batched=True)``, as in
    ``torch.autograd.functional.jacobian(vectorize=True)``): then the forward may not branch on
    values, and computes both routes for every element and selects with ``torch.where``."""
    return any(t is not None and is_wrapped(t) for t in ts)
