import json
import math
import tomllib

import numpy as np
import pytest
import torch

from neuralinv import Ball, Box, InputError
from neuralinv.regions import distance_to_singular, region_from_description


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_box_deepmatrixinversion_filter_is_respected_and_does_something():
    box = Box(3, -1, 1, min_abs_det=0.1)
    A = box.sample(4000, generator=gen(1))
    assert A.shape == (4000, 3, 3) and A.dtype == torch.float64
    assert (torch.linalg.det(A).abs() > 0.1).all()
    assert ((A >= -1) & (A < 1)).all()
    assert box.contains(A).all()
    # Without the filter about a quarter of the matrices would have been rejected.
    raw = Box(3).sample(4000, generator=gen(1))
    rejected = (torch.linalg.det(raw).abs() <= 0.1).double().mean().item()
    assert 0.15 < rejected < 0.35
    assert not box.contains(raw).all()


def test_box_min_sigma_filter_and_float32():
    box = Box(4, -2, 2, min_sigma=0.5)
    A = box.sample(500, generator=gen(2), dtype=torch.float32)
    assert A.dtype == torch.float32
    assert (torch.linalg.svdvals(A.double())[:, -1] > 0.5).all()
    assert box.contains(A).all()


def test_box_sampling_is_deterministic_per_seed():
    box = Box(3, -1, 1, min_abs_det=0.1)
    a = box.sample(300, generator=gen(5))
    b = box.sample(300, generator=gen(5))
    c = box.sample(300, generator=gen(6))
    assert torch.equal(a, b)  # bitwise: same call, same seed
    assert not torch.equal(a, c)  # another seed, other samples


def test_box_contains_rejects_out_of_range_and_near_singular():
    box = Box(2, -1, 1, min_abs_det=0.1)
    A = torch.tensor([[[0.5, 0.0], [0.0, 0.5]], [[1.5, 0.0], [0.0, 0.5]], [[0.2, 0.0], [0.0, 0.2]]])
    assert box.contains(A).tolist() == [True, False, False]
    with pytest.raises(InputError, match=r"\(\.\.\., 2, 2\)"):
        box.contains(torch.eye(3))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n=3, low=1, high=1), "low must be < high"),
        (dict(n=0), "n must be an integer >= 1"),
        (dict(n=3, low=-0.1, high=0.1, min_abs_det=0.1), "Hadamard"),
        (dict(n=2, low=-1, high=1, min_sigma=2.0), "unreachable"),
        (dict(n=2, low=-1, high=float("inf")), "finite"),
    ],
)
def test_box_refuses_bad_arguments(kwargs, match):
    with pytest.raises(InputError, match=match):
        Box(**kwargs)


def test_box_too_strict_filter_fails_fast_with_acceptance_numbers():
    # Reachable by Hadamard's bound (5.196) but practically never drawn.
    with pytest.raises(InputError, match=r"accepted only 0 of \d+ draws"):
        Box(3, -1, 1, min_abs_det=5.0).sample(10, generator=gen())


def test_ball_check_accepts_safe_ball():
    ball = Ball(torch.eye(3), 0.3)  # n r = 0.9 < sigma_min(I) = 1
    assert ball.n == 3 and ball.margin == pytest.approx(0.1)
    A = ball.sample(2000, generator=gen(3))
    assert ball.contains(A).all()
    # Weyl: every sample keeps sigma_min >= sigma_min(center) - n r.
    assert (distance_to_singular(A) >= ball.margin - 1e-12).all()


def test_ball_check_refuses_ball_touching_a_singular_matrix():
    # I - J/3 (J all ones) is singular and lies at entrywise distance exactly 1/3 from I.
    touching = torch.eye(3, dtype=torch.float64) - torch.ones(3, 3, dtype=torch.float64) / 3
    assert float(distance_to_singular(touching)) < 1e-15
    with pytest.raises(InputError, match=r"n\*radius = 3\*0\.333333 = 1 >= sigma_min\(center\) = 1"):
        Ball(torch.eye(3), 1 / 3)
    with pytest.raises(InputError, match=r"over by 0\.5.*radius < 0\.333333"):
        Ball(torch.eye(3), 0.5)
    # A singular center is refused whatever the radius.
    with pytest.raises(InputError, match="may contain singular"):
        Ball(touching, 1e-9)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_ball_default_is_documented_and_safe(n):
    ball = Ball.default(n)
    s = float(distance_to_singular(ball.center))
    assert s >= 0.75
    # s / (2n) rounded down to 6 significant digits: at most 1e-5 below it, never above.
    assert s / (2 * n) * (1 - 1e-5) <= ball.radius <= s / (2 * n)
    assert Ball.default(n) == ball  # deterministic (exact: the stored values are portable)
    A = ball.sample(200, generator=gen(n))
    assert ball.contains(A).all()
    assert (distance_to_singular(A) >= s / 2 - 1e-12).all()


def test_ball_default_radius_is_a_short_decimal_the_same_on_every_machine():
    # The SVD behind sigma_min rounds differently on other CPUs/BLAS (last bits), so the radius
    # is rounded down to 6 significant digits; pinned here for the sizes of the shipped models.
    assert Ball.default(3).radius == 0.151467 and Ball.default(16).radius == 0.0299424
    from decimal import Decimal

    for n in range(1, 65):
        r = Ball.default(n).radius
        assert len(Decimal(repr(r)).normalize().as_tuple().digits) <= 6, (n, r)
        # Portability margin: an SVD differing by up to 1e-12 relative (far more than the few
        # ulps seen between machines) rounds to the same radius, i.e. the unrounded value is not
        # within 1e-12 of a 6-digit boundary. numpy's SVD is an independent float64 reference.
        x = np.linalg.svd(Ball.default(n).center.numpy(), compute_uv=False)[-1] / (2 * n)
        step = 10.0 ** (math.floor(math.log10(x)) - 5)
        frac = x / step - math.floor(x / step)
        assert 1e-12 * x / step < frac < 1 - 1e-12 * x / step, (n, x)
        assert r == pytest.approx(math.floor(x / step) * step, rel=1e-12)


def test_ball_refuses_bad_center_and_radius():
    with pytest.raises(InputError, match="square"):
        Ball(torch.ones(2, 3), 0.1)
    with pytest.raises(InputError, match="non-finite"):
        Ball(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), 0.1)
    with pytest.raises(InputError, match="radius"):
        Ball(torch.eye(2), -0.1)


def _toml(d: dict) -> str:
    """A minimal TOML writer for flat dicts of str/int/float/list-of-lists (what describe gives)."""
    lines = []
    for k, v in d.items():
        lines.append(f"{k} = {json.dumps(v) if not isinstance(v, float) else repr(v)}")
    return "\n".join(lines)


@pytest.mark.parametrize(
    "region",
    [
        Box(3, -1, 1, min_abs_det=0.1),
        Box(4, -2.5, 0.5, min_sigma=0.01),
        Box(2),
        Ball.default(3),
        Ball(np.diag([1.0, 2.0, 3.0, 4.0]), 0.2),
    ],
)
def test_describe_round_trips_through_toml(region):
    d = region.describe()
    back = region_from_description(tomllib.loads(_toml(d)))
    assert back == region
    assert back.describe() == d


@pytest.mark.parametrize(
    "d, match",
    [
        ({"kind": "cone", "n": 3}, "'box' or 'ball'"),
        ({"kind": "box"}, "needs 'n'"),
        ({"kind": "box", "n": 3, "radius": 1.0}, "unknown key"),
        ({"kind": "ball", "center": [[1.0]]}, "needs 'radius'"),
        ({"kind": "ball", "center": [[1.0, 0.0], [0.0]], "radius": 0.1}, "center"),
        ({"kind": "ball", "n": 3, "center": [[1.0, 0.0], [0.0, 1.0]], "radius": 0.1}, "n=3"),
        ({"kind": "ball", "center": [[1.0, 0.0], [0.0, 1.0]], "radius": 0.6}, "singular"),
        ([1, 2], "must be a dict"),
    ],
)
def test_region_from_description_refuses_bad_dicts(d, match):
    with pytest.raises(InputError, match=match):
        region_from_description(d)


def test_distance_to_singular_matches_numpy():
    A = torch.randn(7, 4, 4, generator=gen(4), dtype=torch.float64)
    ref = np.linalg.svd(A.numpy(), compute_uv=False)[:, -1]
    np.testing.assert_allclose(distance_to_singular(A).numpy(), ref, rtol=1e-12)
    np.testing.assert_allclose(distance_to_singular(A.numpy()[0]).item(), ref[0], rtol=1e-12)
    with pytest.raises(InputError):
        distance_to_singular(torch.ones(3))


def test_generator_device_mismatch_is_refused():
    with pytest.raises(InputError, match="generator is on cpu"):
        Box(2).sample(3, generator=gen(), device="meta")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sampling_on_cuda_with_cuda_generator():
    g = torch.Generator(device="cuda").manual_seed(0)
    A = Box(3, min_abs_det=0.1).sample(100, generator=g)
    assert A.device.type == "cuda" and Box(3, min_abs_det=0.1).contains(A).all()
    g = torch.Generator(device="cuda").manual_seed(0)
    B = Ball.default(3).sample(100, generator=g, dtype=torch.float32)
    assert B.device.type == "cuda" and Ball.default(3).contains(B).all()
    assert math.isfinite(float(distance_to_singular(B).min()))
