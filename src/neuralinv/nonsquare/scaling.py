"""Exact power-of-two scaling and stand-ins for non-finite batch elements.

Every route scales each batch element by a power of two before it factorises it (exact), so
answers and certificates do not depend on the scale of the data; elements with NaN/Inf entries
are replaced by a harmless stand-in and get NaN answers afterwards, without disturbing the rest.
"""

from __future__ import annotations

import torch
from torch import Tensor


def exponent(M: Tensor, dims: tuple[int, ...] = (-2, -1)) -> Tensor:
    """Per element, the integer e (as a float) with ``max|M| = 2^e * [0.5, 1)``; 0 where M is
    zero or not finite. Scaling by ``2^-e`` is exact and brings the largest entry to [0.5, 1)."""
    # callers pass values without autograd; complex: the largest real or imaginary part (a
    # modulus could overflow)
    amax = (torch.view_as_real(M.resolve_conj()).abs().amax(-1) if M.is_complex() else M.abs()).amax(dims)
    e = torch.floor(torch.log2(amax)) + 1
    return torch.where(torch.isfinite(e), e, torch.zeros_like(e))


def ldexp(x: Tensor, e: Tensor) -> Tensor:
    """``x * 2^e`` (e integral, broadcasting against x) in two halves, so that the power of two
    itself never overflows or underflows (float32 holds 2^-149 .. 2^127 only)."""
    h = torch.floor(e / 2)
    return x * torch.exp2(h) * torch.exp2(e - h)


def eye_like(M: Tensor) -> Tensor:
    """A well-conditioned stand-in of M's shape (..., m, n) for elements that are not finite."""
    m, n = M.shape[-2:]
    return torch.eye(m, n, dtype=M.dtype, device=M.device).expand(M.shape)
