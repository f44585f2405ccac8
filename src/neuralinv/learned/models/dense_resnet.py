"""DeepMatrixInversion's network: a dense-growth residual MLP.

An input dense layer of ``units`` (ReLU), then ``blocks`` residual blocks. Each block grows its
input by 4 dense sub-layers of ``2 * units`` ReLU units, each seeing the concatenation of
everything before it (DenseNet style), then projects back to ``units`` and adds the result to
the skip. The projection starts at zero, so every block starts as the identity and the network
starts as a shallow MLP, which keeps early training stable however many blocks there are.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..._validate import int_at_least

#: Dense-growth sub-layers per block, as in DeepMatrixInversion.
SUBLAYERS = 4


class DenseBlock(nn.Module):
    def __init__(self, units: int):
        super().__init__()
        growth = 2 * units
        self.layers = nn.ModuleList(
            nn.Linear(units + i * growth, growth) for i in range(SUBLAYERS)
        )
        self.project = nn.Linear(units + SUBLAYERS * growth, units)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def forward(self, h: Tensor) -> Tensor:
        x = h
        for layer in self.layers:
            x = torch.cat([x, torch.relu(layer(x))], dim=-1)
        return h + self.project(x)


class DenseResNet(nn.Module):
    """(B, n, n) -> (B, n, n)."""

    def __init__(self, n: int, units: int = 64, blocks: int = 2):
        super().__init__()
        self.n = int_at_least("n", n, 1)
        units = int_at_least("units", units, 1)
        blocks = int_at_least("blocks", blocks, 0)
        self.inp = nn.Linear(n * n, units)
        self.blocks = nn.ModuleList(DenseBlock(units) for _ in range(blocks))
        self.out = nn.Linear(units, n * n)

    def forward(self, A: Tensor) -> Tensor:
        n = self.n
        h = torch.relu(self.inp(A.reshape(*A.shape[:-2], n * n)))
        for block in self.blocks:
            h = block(h)
        return self.out(h).reshape(*A.shape[:-2], n, n)


__all__ = ["DenseBlock", "DenseResNet"]
