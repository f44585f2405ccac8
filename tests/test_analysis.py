"""Section 5.3 analysis: activation patterns of a 2-layer ReLU network and their affine maps."""

import json

import numpy as np
import pytest
import torch

import neuralinv as ni
from helpers import neuralinv
from neuralinv.errors import InputError
from neuralinv.evaluation.analysis import analyze_network, linear_approximation, two_layer_weights
from neuralinv.learned.config import ModelConfig, TrainConfig
from neuralinv.learned.models import MLP, Scaled

CENTER = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
BALL = ni.Ball(CENTER, 0.25)  # every entry stays positive: a11 in [1.75, 2.25], others >= 0.75


def hand_built(kink: float = 1.0) -> MLP:
    """f(x) = L x + c + kink * relu(x_0 - 2) e_0, written as Linear -> ReLU -> Linear.

    Units 0-3 are relu(x_i) (always active on BALL), 4-7 relu(-x_i) (never active), so
    L x = L relu(x) - L relu(-x); unit 8 is relu(x_0 - 2), active on half the ball.
    """
    L, c = linear_approximation(CENTER.numpy())
    W1 = np.vstack([np.eye(4), -np.eye(4), [[1.0, 0, 0, 0]]])
    b1 = np.zeros(9)
    b1[8] = -2.0
    e0 = np.zeros((4, 1))
    e0[0, 0] = kink
    W2 = np.hstack([L, -L, e0])
    net = MLP(2, depth=2, width=9).double()
    with torch.no_grad():
        net.net[0].weight.copy_(torch.from_numpy(W1))
        net.net[0].bias.copy_(torch.from_numpy(b1))
        net.net[2].weight.copy_(torch.from_numpy(W2))
        net.net[2].bias.copy_(torch.from_numpy(c))
    return net


def test_recovers_the_known_affine_pieces_exactly():
    a = analyze_network(hand_built(), BALL, samples=4000, seed=1, linprog=True)
    L, c = linear_approximation(CENTER.numpy())
    shares = [p.share for p in a.pieces]
    assert shares == sorted(shares, reverse=True)  # largest share first
    by = {p.pattern: p for p in a.pieces}
    assert set(by) == {"111100000", "111100001"}  # exactly two patterns occur
    off, on = by["111100000"], by["111100001"]
    np.testing.assert_array_equal(off.weight, L)  # exact: the same floating-point products
    np.testing.assert_array_equal(off.bias, c)
    expected_w, expected_b = L.copy(), c.copy()
    expected_w[0, 0] += 1.0
    expected_b[0] -= 2.0
    np.testing.assert_allclose(on.weight, expected_w, rtol=0, atol=1e-15)
    np.testing.assert_allclose(on.bias, expected_b, rtol=0, atol=1e-15)
    assert (off.weight_diff, off.bias_diff) == (0.0, 0.0)
    assert on.weight_diff == pytest.approx(1.0) and on.bias_diff == pytest.approx(2.0)
    # a11 is uniform on [1.75, 2.25]: half the samples are past the kink.
    assert on.share == pytest.approx(0.5, abs=0.03) and on.share + off.share == 1.0
    # The LP bound of |f - linear| on each polytope within the ball: 0 and (2.25 - 2) * 1.
    assert off.max_deviation == pytest.approx(0.0, abs=1e-9)
    assert on.max_deviation == pytest.approx(0.25, abs=1e-9)
    assert a.linear_mae < a.network_mae  # the kink only adds error


def test_scaled_wrapper_is_folded_into_the_pieces():
    torch.manual_seed(0)
    net = Scaled(MLP(2, 2, 6).double(), 2)
    with torch.no_grad():
        net.in_shift.copy_(CENTER)
        net.in_scale.fill_(0.3)
        net.out_shift.copy_(torch.linalg.inv(CENTER))
        net.out_scale.fill_(0.05)
    W1, b1, W2, b2 = two_layer_weights(net)
    A = BALL.sample(64, generator=torch.Generator().manual_seed(2))
    mine = np.maximum(A.reshape(64, 4).numpy() @ W1.T + b1, 0) @ W2.T + b2
    with torch.no_grad():
        np.testing.assert_allclose(mine, net(A).reshape(64, 4).numpy(), rtol=1e-12, atol=1e-12)
    a = analyze_network(net, BALL, samples=500)
    assert sum(p.count for p in a.pieces) == 500


def test_refuses_networks_it_cannot_read():
    with pytest.raises(InputError, match="2-layer ReLU MLP"):
        analyze_network(MLP(2, 3, 8).double(), BALL, samples=10)
    with pytest.raises(InputError, match="samples"):
        analyze_network(hand_built(), BALL, samples=0)


def test_cli_analyze_a_trained_model(tmp_path, one_thread):
    cfg = TrainConfig(n=2, region=BALL, model=ModelConfig("mlp", 2, 8), steps=40, batch_size=64,
                      lr=1e-2, val_every=20, val_size=256, tensorboard=False)
    ni.train(cfg, tmp_path / "m")
    r = neuralinv("analyze", "--model", tmp_path / "m", "--samples", "2000", "--linprog", "--out",
                  tmp_path / "an")
    assert r.returncode == 0, r.stderr
    assert "activation patterns" in r.stdout and "linear approximation MAE" in r.stdout
    data = json.loads((tmp_path / "an" / "analysis.json").read_text())
    assert data["samples"] == 2000 and data["hidden"] == 8
    assert sum(p["share"] for p in data["pieces"]) == pytest.approx(1.0)
    assert all(p["max_deviation"] is None or p["max_deviation"] >= 0 for p in data["pieces"])
    deep = TrainConfig(n=2, region=BALL, model=ModelConfig("mlp", 3, 8), steps=2, val_every=1, val_size=16, tensorboard=False)
    ni.train(deep, tmp_path / "deep")
    bad = neuralinv("analyze", "--model", tmp_path / "deep")
    assert bad.returncode == 2 and "2-layer ReLU MLP" in bad.stderr
