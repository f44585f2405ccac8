"""A low-precision network guess (bfloat16 / float16) refined in the input's precision (issue 15.3)."""

import numpy as np
import pytest
import torch

import neuralinv as ni
from neuralinv.errors import InputError
from neuralinv.learned.models import MLP, Cast, Correction, Scaled, build_model, low_precision
from neuralinv.methods.learned import Learned


@pytest.fixture(scope="module")
def ball3():
    return ni.LearnedInverse.load("builtin:ball3")


def test_low_precision_casts_only_the_learned_part(ball3):
    member = ball3.members[0]
    low = low_precision(member, torch.bfloat16)
    assert isinstance(low, Correction) and isinstance(low.g, Cast)
    assert all(p.dtype == torch.bfloat16 for p in low.g.parameters())
    # The linear approximation's constants keep their precision, and the original is untouched.
    assert low.center_inverse.dtype == member.center_inverse.dtype == torch.float32
    assert torch.equal(low.center_inverse, member.center_inverse)  # bitwise: a copy of the same constant
    assert all(p.dtype == torch.float32 for p in member.parameters())
    A = ball3.region.sample(2000, generator=torch.Generator().manual_seed(1), dtype=torch.float32)
    with torch.no_grad():
        exact, cheap = member(A), low(A)
        lin = member.linear(A)
    assert cheap.dtype == torch.float32
    # bfloat16 rounds only the remainder s * g(D / r), which is small next to C - C D C.
    err, rest = (cheap - exact).abs().max(), (exact - lin).abs().max()
    assert 0 < err < 0.05 * rest


def test_low_precision_of_other_architectures():
    region = ni.Ball.default(3)
    scaled = build_model("mlp", region, depth=2, width=16, blocks=2, scaling="standardize").eval()
    assert isinstance(scaled, Scaled)
    low = low_precision(scaled, torch.float16)
    assert isinstance(low.net, Cast) and low.in_shift.dtype == scaled.in_shift.dtype == torch.float64
    plain = MLP(3, 2, 8).eval()
    whole = low_precision(plain, torch.bfloat16)
    assert isinstance(whole, Cast)
    A = region.sample(64, generator=torch.Generator().manual_seed(2), dtype=torch.float32)
    with torch.no_grad():
        assert whole(A).dtype == torch.float32
        assert torch.allclose(whole(A), plain(A), atol=0.05)
        assert torch.allclose(low(A), scaled(A), atol=0.05)
    with pytest.raises(InputError, match="bfloat16 or float16"):
        low_precision(plain, torch.float64)


def test_predict_with_a_low_precision_guess(ball3):
    A = ball3.region.sample(500, generator=torch.Generator().manual_seed(3))
    full = ball3.predict(A)
    for g in ("bfloat16", torch.float16):
        X = ball3.predict(A, guess_dtype=g)
        assert X.dtype == torch.float64 and X.shape == A.shape
        d = float((X - full).abs().max())
        assert 0 < d < 1e-3  # a different, nearly as good guess
    Xn = ball3.predict(A.numpy(), guess_dtype="bfloat16")
    assert isinstance(Xn, np.ndarray) and np.allclose(Xn, ball3.predict(A, guess_dtype="bfloat16").numpy())
    assert ball3.predict(A, guess_dtype=None).equal(full)
    with pytest.raises(InputError, match="guess_dtype must be"):
        ball3.predict(A, guess_dtype="int8")
    ball3.to("cpu")  # moving the model drops the low-precision copies; they come back on use
    assert "_low" not in ball3.__dict__
    assert ball3.predict(A, guess_dtype="bfloat16").allclose(full, atol=1e-3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_learned_with_a_bfloat16_guess_answers_as_the_model_precision_does(ball3, dtype):
    region = ball3.region
    A = region.sample(3000, generator=torch.Generator().manual_seed(4), dtype=dtype)
    A = torch.cat([A, 3 * A[:100], torch.full((10, 3, 3), 5.0, dtype=dtype)])
    a = ni.invert(A, method=Learned(model=ball3))
    b = ni.invert(A, method=Learned(model=ball3, guess_dtype="bfloat16"))
    assert b.status.tolist() == a.status.tolist()
    assert list(b.method) == list(a.method)
    assert b.stats["network"] == a.stats["network"] == 3100
    ok = a.status == int(ni.Status.OK)
    assert float(b.residual[ok].max()) < 30
    ref = torch.linalg.inv(A[ok].double())
    rel = (b.inverse[ok].double() - ref).abs().amax((1, 2)) / ref.abs().amax((1, 2))
    assert float(rel.max()) < (1e-4 if dtype == torch.float32 else 1e-12)


def test_guess_dtype_options_are_checked():
    with pytest.raises(InputError, match="guess_dtype must be"):
        Learned(model="builtin:ball3-fast", guess_dtype="float64")
    with pytest.raises(InputError, match="compile"):
        Learned(model="builtin:ball3-fast", guess_dtype="bfloat16", compile=True)
    m = Learned(model="builtin:ball3-fast", guess_dtype="bfloat16")
    assert m.guess_dtype is torch.bfloat16
