"""The paper's fully connected ReLU networks ("2-FC" and "3-FC" MLPs).

``depth`` counts the linear layers, as the paper does: depth 2 is ``Linear -> ReLU -> Linear``
(one hidden layer of ``width`` units), depth 3 adds a second hidden layer. The paper's 3x3
models use ``width = 72`` (8 n^2).
"""

from __future__ import annotations

from torch import Tensor, nn

from ..._validate import int_at_least
from ...errors import InputError

#: Activations between the linear layers. The paper uses ReLU; smooth ones fit the smooth
#: (quadratic and higher) remainder of the inverse with far fewer units.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


class MLP(nn.Module):
    """(B, n, n) -> (B, n, n): flatten, ``depth`` linear layers with ``activation`` between,
    reshape."""

    def __init__(
        self,
        n: int,
        depth: int = 2,
        width: int = 72,
        *,
        activation: str = "relu",
        zero_last: bool = False,
    ):
        super().__init__()
        self.n = int_at_least("n", n, 1)
        depth = int_at_least("depth", depth, 1)
        width = int_at_least("width", width, 1)
        if activation not in ACTIVATIONS:
            raise InputError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}")
        dims = [n * n] + [width] * (depth - 1) + [n * n]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(a, b))
            if i < depth - 1:
                layers.append(ACTIVATIONS[activation]())
        if zero_last:
            # Start as the zero function, so a model that adds this net starts at its base.
            nn.init.zeros_(layers[-1].weight)
            nn.init.zeros_(layers[-1].bias)
        self.net = nn.Sequential(*layers)

    def forward(self, A: Tensor) -> Tensor:
        n = self.n
        return self.net(A.reshape(*A.shape[:-2], n * n)).reshape(*A.shape[:-2], n, n)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["ACTIVATIONS", "MLP", "count_parameters"]
