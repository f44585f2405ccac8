"""Input and target scaling around a network, fitted once on a calibration sample.

Networks train best when their inputs and targets are of order one. Inverses on a region are
not: on a Ball they sit near ``A0^-1``, on a Box with a determinant filter they spread widely.
``Scaled`` standardises both with constants stored as buffers, so the scaling travels in the
weights file and a loaded model predicts in the original units.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Scaled(nn.Module):
    """``X(A) = out_shift + out_scale * net((A - in_shift) / in_scale)``."""

    def __init__(self, net: nn.Module, n: int):
        super().__init__()
        self.net = net
        self.n = n
        self.register_buffer("in_shift", torch.zeros(n, n, dtype=torch.float64))
        self.register_buffer("in_scale", torch.tensor(1.0, dtype=torch.float64))
        self.register_buffer("out_shift", torch.zeros(n, n, dtype=torch.float64))
        self.register_buffer("out_scale", torch.tensor(1.0, dtype=torch.float64))

    @property
    def target_scale(self) -> Tensor:
        return self.out_scale

    def forward(self, A: Tensor) -> Tensor:
        dt = A.dtype
        z = (A - self.in_shift.to(dt)) / self.in_scale.to(dt)
        return self.out_shift.to(dt) + self.out_scale.to(dt) * self.net(z)

    @torch.no_grad()
    def calibrate(self, A: Tensor, X: Tensor) -> None:
        """Entrywise mean and one overall RMS scale, for the inputs and for the targets."""
        A, X = A.to(torch.float64), X.to(torch.float64)
        for shift, scale, data in (
            (self.in_shift, self.in_scale, A),
            (self.out_shift, self.out_scale, X),
        ):
            mean = data.mean(0)
            rms = (data - mean).pow(2).mean().sqrt()
            shift.copy_(mean)
            scale.fill_(float(rms) if rms > 0 else 1.0)


__all__ = ["Scaled"]
