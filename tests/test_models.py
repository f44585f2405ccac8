"""The networks: shapes, the paper's layer layout, and the starting points we rely on."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from neuralinv.errors import InputError
from neuralinv.learned.models import MLP, MODELS, Correction, DenseResNet, Scaled, build_model
from neuralinv.regions import Ball, Box


def _linears(m: nn.Module) -> list[nn.Linear]:
    return [x for x in m.modules() if isinstance(x, nn.Linear)]


def test_registry_names():
    assert set(MODELS) == {"mlp", "dense_resnet", "correction"}


@pytest.mark.parametrize("arch", sorted(MODELS))
@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_every_model_maps_batches_of_matrices_to_matrices(arch, n):
    model = build_model(arch, Ball.default(n), depth=2, width=8, blocks=1, scaling="standardize")
    A = Ball.default(n).sample(4, generator=torch.Generator().manual_seed(0)).float()
    assert model.float()(A).shape == (4, n, n)


@pytest.mark.parametrize("depth", [2, 3])
def test_mlp_is_the_papers_fc_network(depth):
    m = MLP(3, depth=depth, width=72)
    lin = _linears(m)
    assert len(lin) == depth
    assert lin[0].in_features == 9 and lin[-1].out_features == 9
    assert all(layer.out_features == 72 for layer in lin[:-1])
    assert sum(isinstance(x, nn.ReLU) for x in m.modules()) == depth - 1


def test_dense_resnet_layout_and_identity_blocks_at_start():
    units = 8
    net = DenseResNet(3, units=units, blocks=2)
    for block in net.blocks:
        assert [layer.in_features for layer in block.layers] == [8, 24, 40, 56]
        assert all(layer.out_features == 2 * units for layer in block.layers)
        assert block.project.in_features == 9 * units and block.project.out_features == units
    A = torch.randn(5, 3, 3)
    # Zero-initialised projections: each block starts as the identity on its skip path.
    shallow = net.out(torch.relu(net.inp(A.reshape(5, 9)))).reshape(5, 3, 3)
    torch.testing.assert_close(net(A), shallow)


def test_correction_starts_at_the_linear_approximation():
    ball = Ball.default(3)
    model = Correction(ball.center, ball.radius, depth=2, width=16).double()
    A = ball.sample(32, generator=torch.Generator().manual_seed(1))
    C = torch.linalg.inv(ball.center)
    D = A - ball.center
    torch.testing.assert_close(model(A), C - C @ D @ C, rtol=0, atol=1e-14)
    # ... and its remainder scale is fitted to what is left after it.
    X = torch.linalg.inv(A)
    model.calibrate(A, X)
    rest = X - (C - C @ D @ C)
    assert float(model.target_scale) == pytest.approx(float(rest.pow(2).mean().sqrt()))
    assert 0 < float(model.target_scale) < 0.1


def test_correction_needs_a_ball():
    with pytest.raises(InputError, match="ball"):
        build_model("correction", Box(3), depth=2, width=8, blocks=1, scaling="standardize")


def test_unknown_arch():
    with pytest.raises(InputError, match="unknown arch"):
        build_model("transformer", Box(3), depth=2, width=8, blocks=1, scaling="none")


def test_scaled_standardises_inputs_and_targets():
    box = Box(3, -1, 1, min_abs_det=0.1)
    A = box.sample(2048, generator=torch.Generator().manual_seed(2))
    X = torch.linalg.inv(A)
    seen = {}

    class Spy(nn.Module):
        def forward(self, z):
            seen["z"] = z
            return torch.zeros_like(z)

    m = Scaled(Spy(), 3)
    m.calibrate(A, X)
    out = m(A)
    z = seen["z"]
    assert z.mean().abs() < 1e-12 and float(z.pow(2).mean()) == pytest.approx(1.0)
    torch.testing.assert_close(out, X.mean(0).expand_as(out))  # net 0 -> mean target
    assert float(m.target_scale) == pytest.approx(float((X - X.mean(0)).pow(2).mean().sqrt()))


def test_bad_sizes_are_input_errors():
    with pytest.raises(InputError, match="depth"):
        MLP(3, depth=0)
    with pytest.raises(InputError, match="width"):
        MLP(3, width=0)


@pytest.mark.parametrize("activation", ["relu", "gelu", "silu", "tanh"])
def test_activation_is_configurable(activation):
    from neuralinv.learned.models.mlp import ACTIVATIONS

    m = MLP(3, depth=3, width=8, activation=activation)
    acts = [x for x in m.modules() if isinstance(x, ACTIVATIONS[activation])]
    assert len(acts) == 2
    with pytest.raises(InputError, match="activation"):
        MLP(3, activation="softplus")
