"""Correction of the linear approximation around a Ball's center (ours).

With ``C = A0^-1`` and ``D = A - A0``, the Neumann series gives
``A^-1 = C - C D C + C D C D C - ...``. The paper shows (section 5.3) that a trained 2-FC
network mostly rediscovers the first two terms. This model computes them exactly and lets a
small MLP ``g`` learn only the remainder::

    X(A) = C - C D C + s * g(D / r)

where ``r`` is the ball's radius (so g sees entries in [-1, 1]) and ``s`` is the scale of the
remainder on a calibration sample (so g's targets are of order 1). g's last layer starts at
zero: an untrained Correction *is* the linear approximation, and training can only start
from there.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._validate import int_at_least, positive
from ..errors import InputError
from .mlp import MLP


class Correction(nn.Module):
    """(B, n, n) -> (B, n, n) around ``center``; ``radius`` sets g's input scale."""

    def __init__(
        self, center: Tensor, radius: float, depth: int = 2, width: int = 72, activation: str = "relu"
    ):
        super().__init__()
        c = torch.as_tensor(center, dtype=torch.float64).detach().cpu()
        if c.ndim != 2 or c.shape[0] != c.shape[1]:
            raise InputError(f"center must be a square (n, n) matrix, got shape {tuple(c.shape)}")
        self.n = int_at_least("n", c.shape[0], 1)
        depth = int_at_least("depth", depth, 1)
        self.register_buffer("center", c.clone())
        self.register_buffer("center_inverse", torch.linalg.inv(c))
        self.register_buffer("in_scale", torch.tensor(positive("radius", radius), dtype=torch.float64))
        self.register_buffer("out_scale", torch.tensor(1.0, dtype=torch.float64))
        self.g = MLP(self.n, depth, width, activation=activation, zero_last=True)

    @property
    def target_scale(self) -> Tensor:
        return self.out_scale

    def linear(self, A: Tensor) -> Tensor:
        """The linear approximation ``C - C D C`` in A's dtype."""
        C = self.center_inverse.to(A.dtype)
        D = A - self.center.to(A.dtype)
        return C - C @ D @ C

    def forward(self, A: Tensor) -> Tensor:
        D = A - self.center.to(A.dtype)
        return self.linear(A) + self.out_scale.to(A.dtype) * self.g(D / self.in_scale.to(A.dtype))

    @torch.no_grad()
    def calibrate(self, A: Tensor, X: Tensor) -> None:
        """Set the remainder scale from a sample ``A`` with exact inverses ``X`` (float64)."""
        rest = X.to(torch.float64) - self.linear(A.to(torch.float64))
        scale = rest.pow(2).mean().sqrt()
        self.out_scale.fill_(float(scale) if scale > 0 else 1.0)


__all__ = ["Correction"]
