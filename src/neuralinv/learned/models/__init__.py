"""Networks that map a batch of matrices (B, n, n) to guesses of their inverses (B, n, n).

``MODELS`` names the architectures; :func:`build_model` turns a model config and a region
into an (untrained, uncalibrated) network ready for training or for loading weights into.
"""

from __future__ import annotations

from torch import nn

from ...errors import InputError
from .cast import LOW_PRECISION, Cast, low_precision
from .correction import Correction, UnionCorrection
from .dense_resnet import DenseResNet
from .mlp import ACTIVATIONS, MLP, count_parameters
from .scaled import Scaled

MODELS: dict[str, type[nn.Module]] = {
    "mlp": MLP,
    "dense_resnet": DenseResNet,
    "correction": Correction,
}


def build_model(
    arch: str, region, *, depth: int, width: int, blocks: int, scaling: str, activation: str = "relu"
) -> nn.Module:
    """The network for ``arch`` on ``region`` (a Box, Ball or Balls).

    mlp: ``depth`` linear layers of ``width``; dense_resnet: ``width`` units, ``blocks`` blocks;
    correction: needs a Ball (or Balls: :class:`UnionCorrection`, one g per ball, each matrix
    corrected around its nearest center), and g is an mlp of ``depth`` and ``width``. With
    ``scaling="standardize"`` mlp and dense_resnet are wrapped in :class:`Scaled`; correction
    always scales its remainder (``scaling="none"`` leaves that scale at 1). ``activation``
    applies to mlp and to correction's g (dense_resnet is ReLU, as in DeepMatrixInversion).
    """
    n = region.n
    if arch == "mlp":
        net: nn.Module = MLP(n, depth, width, activation=activation)
    elif arch == "dense_resnet":
        net = DenseResNet(n, width, blocks)
    elif arch == "correction":
        if hasattr(region, "balls"):  # a union of balls: correct around the nearest center
            return UnionCorrection(region.centers, region.radii, depth, width, activation)
        if not hasattr(region, "center"):
            raise InputError(
                f"arch 'correction' corrects the linear approximation around a Ball's center; "
                f"region {region.describe()['kind']!r} has no center (use region ball)"
            )
        return Correction(region.center, region.radius, depth, width, activation)
    else:
        raise InputError(f"unknown arch {arch!r}; valid: {', '.join(MODELS)}")
    return Scaled(net, n) if scaling == "standardize" else net


__all__ = ["ACTIVATIONS", "LOW_PRECISION", "MLP", "MODELS", "Cast", "Correction", "DenseResNet", "Scaled",
           "UnionCorrection", "build_model", "count_parameters", "low_precision"]
