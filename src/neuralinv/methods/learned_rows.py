"""The learned method's per-matrix record of its network path (:class:`NetworkRows`).

For every matrix of a batch: whether it lies in the model's region and by which scale ``s`` it
was brought there, whether the network's refined answer is used, whether its guess contracted,
its Newton-Schulz steps and its certificate. :class:`~neuralinv.methods.learned.Learned` fills
one chunk by chunk (or takes one from the fused kernel) and reads it once to build its
:class:`~neuralinv.methods.partial.Partial`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor


class Guessed(NamedTuple):
    """What the network path decided for the matrices it was given."""

    X: Tensor
    use: Tensor  # refined to tol (or, without refinement, every guess)
    contracted: Tensor
    iters: Tensor | None
    cert: tuple[Tensor, Tensor] | None


class NetworkRows(NamedTuple):
    """Per-matrix outcome of the network path for a whole batch: answers and what decided them.
    ``cert`` is None where the caller certifies (n <= SMALL_N, strided input, no refinement)."""

    X: Tensor
    inside: Tensor
    s: Tensor
    use: Tensor
    contracted: Tensor
    iters: Tensor
    cert: tuple[Tensor, Tensor] | None

    @classmethod
    def empty(cls, A: Tensor, *, certified: bool) -> NetworkRows:
        """Every matrix in the region, unscaled, not (yet) answered by the network."""
        B, dev = A.shape[0], A.device
        return cls(
            X=torch.empty_like(A),  # every row is written: by the network path or the fallback
            inside=torch.ones(B, dtype=torch.bool, device=dev),
            s=torch.ones(B, dtype=A.dtype, device=dev),
            use=torch.zeros(B, dtype=torch.bool, device=dev),
            contracted=torch.zeros(B, dtype=torch.bool, device=dev),
            iters=torch.zeros(B, dtype=torch.int32, device=dev),
            cert=(torch.empty(B, dtype=A.dtype, device=dev), torch.empty(B, dtype=A.dtype, device=dev))
            if certified else None,
        )

    @classmethod
    def from_fused(cls, fused: Any) -> NetworkRows:
        """The fused kernel's rows (:class:`~neuralinv.kernels.learned_small.FusedResult`): the
        accepted ones answered, certified and in the region; the others still to decide."""
        acc = fused.accepted
        return cls(fused.X, acc.clone(), torch.ones(acc.shape[0], dtype=fused.X.dtype, device=acc.device),
                   acc.clone(), acc.clone(), fused.iterations, (fused.ratio, fused.rcond))

    def put(self, rows: Any, g: Guessed | NetworkRows, *, copy_X: bool = True) -> None:
        """Write ``g``'s outcome for the matrices ``rows`` (a slice or indices) into these
        (with a NetworkRows, its region test and scales too)."""
        if copy_X:
            self.X[rows] = g.X
        self.use[rows] = g.use
        self.contracted[rows] = g.contracted
        if g.iters is not None:
            self.iters[rows] = g.iters
        if self.cert is not None and g.cert is not None:
            self.cert[0][rows], self.cert[1][rows] = g.cert
        if isinstance(g, NetworkRows):
            self.inside[rows], self.s[rows] = g.inside, g.s


__all__ = ["Guessed", "NetworkRows"]
