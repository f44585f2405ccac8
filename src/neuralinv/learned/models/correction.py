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

from ..._validate import int_at_least, positive
from ...errors import InputError
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


class UnionCorrection(nn.Module):
    """:class:`Correction` on a union of balls (:class:`~neuralinv.regions.Balls`).

    Each matrix is corrected around the center of the ball it is relatively nearest to
    (``max_ij |A_ij - c_ij| / r`` smallest; a matrix inside some ball gets one that contains
    it), with that ball's own remainder network ``g_k`` and scale::

        X(A) = C_k - C_k D_k C_k + s_k * g_k(D_k / r_k),   k = nearest ball, D_k = A - A0_k

    On a certified ball the linear approximation alone has ``||I - A X||_2 <= (n r /
    sigma_min(A0_k))^2 < 1`` (``I - A (C - C D C) = (D C)^2``), so an untrained model (every
    g starts at zero) already seeds Newton-Schulz on the whole union; training improves the
    seed. One ball gives the same function as :class:`Correction`.
    """

    def __init__(self, centers: Tensor, radii: Tensor, depth: int = 2, width: int = 72,
                 activation: str = "relu"):
        super().__init__()
        c = torch.as_tensor(centers, dtype=torch.float64).detach().cpu()
        if c.ndim != 3 or c.shape[1] != c.shape[2] or c.shape[0] == 0:
            raise InputError(f"centers must be (k, n, n), got shape {tuple(c.shape)}")
        r = torch.as_tensor(radii, dtype=torch.float64).detach().cpu().reshape(-1)
        if r.shape[0] != c.shape[0] or not bool((r > 0).all()):
            raise InputError("radii must be k positive numbers, one per center")
        self.n = int(c.shape[1])
        self.k = int(c.shape[0])
        depth = int_at_least("depth", depth, 1)
        self.register_buffer("center", c.clone())
        self.register_buffer("center_inverse", torch.linalg.inv(c))
        self.register_buffer("in_scale", r.clone())
        self.register_buffer("out_scale", torch.ones(self.k, dtype=torch.float64))
        self.g = nn.ModuleList(
            MLP(self.n, depth, width, activation=activation, zero_last=True) for _ in range(self.k)
        )

    @property
    def target_scale(self) -> Tensor:
        return self.out_scale.max()

    def nearest(self, A: Tensor) -> Tensor:
        c = self.center.to(A.dtype)
        r = self.in_scale.to(A.dtype)
        d = torch.stack([(A - c[j]).abs().flatten(-2).amax(-1) / r[j] for j in range(self.k)], -1)
        return d.argmin(-1)

    def linear(self, A: Tensor, which: Tensor | None = None) -> Tensor:
        """The linear approximation around each matrix's nearest center, in A's dtype."""
        which = self.nearest(A) if which is None else which
        C = self.center_inverse.to(A.dtype)[which]
        D = A - self.center.to(A.dtype)[which]
        return C - C @ D @ C

    def forward(self, A: Tensor) -> Tensor:
        which = self.nearest(A)
        D = A - self.center.to(A.dtype)[which]
        C = self.center_inverse.to(A.dtype)[which]
        X = C - C @ D @ C
        if self.k == 1:
            return X + self.out_scale.to(A.dtype)[0] * self.g[0](D / self.in_scale.to(A.dtype)[0])
        out = torch.zeros_like(X)
        for j in range(self.k):
            idx = (which == j).nonzero().squeeze(-1)
            if idx.numel():
                z = D[idx] / self.in_scale.to(A.dtype)[j]
                out = out.index_put((idx,), self.out_scale.to(A.dtype)[j] * self.g[j](z))
        return X + out

    @torch.no_grad()
    def calibrate(self, A: Tensor, X: Tensor) -> None:
        """Each ball's remainder scale from the sample matrices nearest to it (float64)."""
        A, X = A.to(torch.float64), X.to(torch.float64)
        which = self.nearest(A)
        rest = X - self.linear(A, which)
        for j in range(self.k):
            sel = rest[which == j]
            scale = sel.pow(2).mean().sqrt() if sel.numel() else torch.tensor(0.0)
            self.out_scale[j] = float(scale) if scale > 0 else 1.0


__all__ = ["Correction", "UnionCorrection"]
