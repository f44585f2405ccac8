"""Regions fitted to data (issue 15, item 1): Ball.fit / Balls.fit, unions in the learned
method, config.toml round trips, and ``neuralinv train --data`` then ``invert --model``."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pytest
import torch

import neuralinv as ni
from helpers import neuralinv as _run
from neuralinv.learned.config import ModelConfig, TrainConfig
from neuralinv.regions import coverage_of, fit_balls, region_from_description


def _clusters(m: int, seed: int, *, spread: float = 0.05, scales: bool = True) -> torch.Tensor:
    """Two clusters of 3x3 matrices (near I and near a permutation), times log-normal scalars."""
    g = torch.Generator().manual_seed(seed)
    base = torch.Generator().manual_seed(123)  # the same two centers for every sample
    c1 = torch.eye(3, dtype=torch.float64) + 0.1 * torch.rand(3, 3, generator=base, dtype=torch.float64)
    perm = torch.tensor([[0.0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=torch.float64)
    c2 = perm + 0.1 * torch.rand(3, 3, generator=base, dtype=torch.float64)
    which = torch.rand(m, generator=g) < 0.5
    c = torch.where(which[:, None, None], c1, c2)
    A = c + spread * (2 * torch.rand(m, 3, 3, generator=g, dtype=torch.float64) - 1)
    if scales:
        A = A * torch.exp(2 * torch.randn(m, 1, 1, generator=g, dtype=torch.float64))
    return A


def _certified(region) -> None:
    for b in region.balls:
        assert b.n * b.radius < b.sigma_min_center  # what Ball.check proves
        b.check()


def test_balls_fit_covers_the_data_and_held_out_data():
    A = _clusters(3000, seed=0)
    region = ni.Balls.fit(A, coverage=0.95)
    rep = region.fit_report
    assert rep.k == region.k >= 2  # two well-separated clusters cannot share a certified ball
    assert rep.covered >= 0.95 and rep.count == 3000 and rep.near_singular == 0
    assert rep.covered == pytest.approx(coverage_of(region, A))
    _certified(region)
    held_out = _clusters(3000, seed=1)
    assert coverage_of(region, held_out) >= 0.93  # same distribution: close to what was asked
    assert abs(sum(region.weights) - 1) < 1e-12
    assert sum(rep.ball_shares) == pytest.approx(rep.covered)


def test_scalar_multiples_need_one_ball_and_ball_fit_returns_a_ball():
    g = torch.Generator().manual_seed(2)
    M = torch.eye(4, dtype=torch.float64) + 0.05 * torch.rand(500, 4, 4, generator=g, dtype=torch.float64)
    A = M * 10 ** (6 * torch.rand(500, 1, 1, generator=g, dtype=torch.float64) - 3)  # 6 decades
    assert ni.Balls.fit(A, coverage=0.99).k == 1
    ball = ni.Ball.fit(A, coverage=0.99)
    assert isinstance(ball, ni.Ball) and ball.fit_report.covered >= 0.99
    ball.check()
    # Without the scaled route the same data need more than one ball (or cannot be covered).
    with pytest.raises(ni.InputError, match="cannot cover"):
        ni.Ball.fit(A, coverage=0.99, scale=False)
    # Exact multiples of one matrix: radius 0 is floored, still one certified ball.
    same = torch.eye(3, dtype=torch.float64)[None] * torch.arange(1.0, 11.0, dtype=torch.float64)[:, None, None]
    assert ni.Ball.fit(same).fit_report.covered == 1.0


def test_near_singular_data_are_refused_with_how_many_and_which():
    A = _clusters(200, seed=3, scales=False)
    g = torch.Generator().manual_seed(4)
    u = torch.randn(30, 3, 1, generator=g, dtype=torch.float64)
    A[:30] = u @ u.mT  # rank one: singular
    with pytest.raises(ni.InputError, match=r"30 of the 200 matrices are near-singular.*matrix 0, 1, 2"):
        ni.Balls.fit(A, coverage=0.99)
    # Within the budget (1 - coverage) they are left out, counted, and go to the exact path.
    region = ni.Balls.fit(A, coverage=0.8)
    assert region.fit_report.near_singular == 30 and region.fit_report.covered >= 0.8
    _certified(region)


@pytest.mark.parametrize(
    ("A", "match"),
    [
        (torch.ones(1, 3, 3), "at least 2 matrices"),
        (torch.full((4, 3, 3), float("nan")), "NaN or Inf"),
        (torch.ones(4, 3, 2), "square"),
    ],
)
def test_fit_refuses_bad_input(A, match):
    with pytest.raises(ni.InputError, match=match):
        fit_balls(A)


def test_fit_with_too_few_balls_says_how_far_it_got():
    with pytest.raises(ni.InputError, match=r"k=1 ball\(s\).*covers"):
        ni.Balls.fit(_clusters(400, seed=5), k=1)


def test_balls_contains_sample_describe_and_toml_round_trip():
    region = ni.Balls.fit(_clusters(1000, seed=6), coverage=0.95)
    g = torch.Generator().manual_seed(0)
    S = region.sample(500, generator=g)
    assert S.shape == (500, 3, 3) and bool(region.contains(S).all())
    assert torch.equal(S, region.sample(500, generator=torch.Generator().manual_seed(0)))  # bitwise: same call
    # Each ball drawn in proportion to its weight.
    owner = region.nearest(S)
    share = torch.bincount(owner, minlength=region.k).double() / 500
    assert torch.allclose(share, torch.tensor(region.weights, dtype=torch.float64), atol=0.08)
    d = region.describe()
    assert d["kind"] == "balls" and len(d["centers"]) == region.k
    assert region_from_description(d) == region
    cfg = TrainConfig(n=3, region=region, model=ModelConfig(arch="correction", width=8))
    back = TrainConfig.from_dict(tomllib.loads(cfg.to_toml()))
    assert back == cfg and back.region == region and hash(back.region) == hash(region)
    with pytest.raises(ni.InputError, match="balls member 0"):
        region_from_description({**d, "radii": [10.0] * region.k})  # not certified


def test_learned_method_on_a_union_routes_scales_and_labels():
    region = ni.Balls.fit(_clusters(1000, seed=7), coverage=0.99)
    cfg = TrainConfig(n=3, region=region, model=ModelConfig(arch="correction", width=8), steps=4,
                      val_every=2, val_size=64, tensorboard=False)
    model = ni.train(cfg)
    assert len(model.members[0].g) == region.k
    fresh = _clusters(400, seed=8)  # scaled by log-normal factors: the scaled route
    other = torch.randn(50, 3, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    A = torch.cat([fresh, other])
    sol = ni.invert(A, method=model)
    labels = np.asarray(sol.method).astype(str)
    inside = region.scaled_into(A).inside.numpy()
    assert inside[:400].mean() >= 0.97 and not inside[400:].any()
    assert (labels[inside] == "learned").all()  # even the untrained-ish net contracts in a ball
    assert (labels[~inside] == "lu").all()
    status = np.asarray(sol.status)
    assert (status[~inside] == int(ni.Status.OUT_OF_REGION)).all()
    assert sol.worst_residual < 30
    assert sol.stats["scaled"] > 0


def test_cli_train_data_then_invert_model(tmp_path):
    A = _clusters(600, seed=10).numpy()
    np.save(tmp_path / "a.npy", A[:400])
    np.save(tmp_path / "b.npy", A[400:])
    fresh = np.concatenate([_clusters(100, seed=11).numpy(), np.random.default_rng(0).normal(size=(20, 3, 3))])
    np.save(tmp_path / "fresh.npy", fresh)
    bad = A[:10].copy()
    bad[7, 1, 1] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    p = _run("train", "--data", "bad.npy", "--out", "m0", cwd=tmp_path)
    assert p.returncode != 0 and "bad.npy: matrix 7 has NaN" in p.stderr and not (tmp_path / "m0").exists()
    p = _run("train", "--data", "a.npy", "--region", "box", "--out", "m0", cwd=tmp_path)
    assert p.returncode != 0 and "drop --region" in p.stderr
    p = _run("train", "--data", "a.npy", "b.npy", "--out", "m", "--steps", "4", "--val-every", "2",
             "--width", "8", "--coverage", "0.95", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "fitted" in p.stdout and "union of" in p.stdout
    fit = json.loads((tmp_path / "m" / "fit.json").read_text())
    assert fit["coverage"] == 0.95 and fit["covered"] >= 0.95 and fit["count"] == 600 and fit["k"] >= 2
    assert [f["name"] for f in fit["files"]] == ["a.npy", "b.npy"]
    import hashlib

    assert fit["files"][0]["sha256"] == hashlib.sha256((tmp_path / "a.npy").read_bytes()).hexdigest()
    cfg = tomllib.loads((tmp_path / "m" / "config.toml").read_text())
    assert cfg["region"]["kind"] == "balls" and cfg["model"]["arch"] == "correction"
    assert cfg["data_share"] == 0.25 and len(cfg["data_sha256"]) == 2
    model = ni.LearnedInverse.load(tmp_path / "m")
    assert model.fit == fit and isinstance(model.region, ni.Balls)
    p = _run("invert", "fresh.npy", "-o", "inv.npy", "--model", "m", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "network answers after refinement:" in p.stdout
    inside = model.region.scaled_into(torch.from_numpy(fresh)).inside
    assert f"network answers after refinement: {int(inside.sum())} of 120" in p.stdout
    assert int(inside[:100].sum()) >= 95 and not bool(inside[100:].any())
    assert f"OUT_OF_REGION {120 - int(inside.sum())}" in p.stdout
