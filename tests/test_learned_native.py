"""The default learned path of small ``correction`` models: the native fused kernel
(kernels/native_learned.py, kernels/_numba_learned.py) answers as the eager torch path does
(statuses, labels, counts; iterations up to a stopping ratio within rounding of tol; inverses
within what their certificates allow), and as its reference formulas
(``learned_small.make_kernel`` run eagerly) for other dtypes, activations and ensembles; threads,
the switch and an unavailable kernel fall back as documented.
"""

from __future__ import annotations

import pytest
import torch

import neuralinv as ni
from agreement import assert_accepted_agree, error_bound, norm1
from helpers import gen as _gen
from helpers import python
from neuralinv.certify import certificate
from neuralinv.kernels import learned_small, native
from neuralinv.kernels.native_learned import NativeFused
from neuralinv.methods.learned import Learned
from test_learned_fused import FAST, assert_settled_as_eager, eager_invert, mixed_batch

pytest.importorskip("numba")


@pytest.fixture(scope="module")
def method():
    return Learned(model=FAST)


def test_default_path_answers_as_the_eager_path(method, monkeypatch):
    A = mixed_batch(method.model.region, 1)
    a, b = ni.invert(A, method=method), eager_invert(A, method, monkeypatch)
    assert a.stats["native"] is True and a.stats["compiled"] is False
    assert_settled_as_eager(A, a, b, method)
    ok = a.status == int(ni.Status.OK)
    ref = torch.linalg.inv(A[ok].double())
    bound_a = error_bound(A[ok], a.inverse[ok], a.residual[ok])
    bound_b = error_bound(A[ok], b.inverse[ok], b.residual[ok])
    assert bool((norm1(a.inverse[ok].double() - ref) <= bound_a).all())
    assert bool((norm1(a.inverse[ok].double() - b.inverse[ok].double()) <= bound_a + bound_b).all())
    ratio, rc = certificate(A[ok], a.inverse[ok])
    assert torch.allclose(a.residual[ok], ratio, atol=1.0)
    assert torch.allclose(a.rcond[ok], rc, rtol=1e-5)
    assert float(a.residual[ok].max()) < method.tol


def _hand_made(activation: str, dtype: torch.dtype, members: int = 2, n: int = 3):
    """A model of ``members`` hand-made correction members (g n^2-5-5-n^2, random weights) on
    the shipped model's ball (n = 3) or the default ball of another n."""
    from neuralinv.learned.models import Correction

    config = ni.LearnedInverse.load(FAST).config
    config = config if n == 3 else config.override(n=n)
    torch.manual_seed(7)
    out = []
    for _ in range(members):
        m = Correction(config.region.center, config.region.radius, depth=3, width=5, activation=activation)
        with torch.no_grad():
            for p in m.g.parameters():
                p.normal_(0, 0.05)
            m.out_scale.fill_(0.003)
        out.append(m.to(dtype).eval())
    return ni.LearnedInverse(config, out)


@pytest.mark.parametrize(("activation", "dtype", "members", "n"), [
    ("silu", torch.float32, 1, 3), ("relu", torch.float32, 2, 3), ("tanh", torch.float64, 2, 3),
    ("gelu", torch.float64, 1, 3), ("silu", torch.float64, 1, 3),
    # every size's generated code (kernels/_numba_learned.py: _head{n}, _steps{n}_{k})
    ("silu", torch.float32, 2, 1), ("tanh", torch.float32, 1, 2), ("relu", torch.float64, 1, 2),
    ("silu", torch.float32, 1, 4), ("gelu", torch.float64, 2, 4),
])
def test_kernel_equals_its_reference_formulas(activation, dtype, members, n):
    shipped = (activation, dtype, members, n) == ("silu", torch.float32, 1, 3)
    model = ni.LearnedInverse.load(FAST) if shipped else _hand_made(activation, dtype, members, n)
    region = model.region
    A = region.sample(700, generator=_gen(8), dtype=dtype)
    A[::50] += 3 * region.radius  # some outside the ball (every entry moved by 3 radii): never accepted
    plan, weights = learned_small.plan(model, region, dtype, steps=3, tol=10.0)
    X, accepted, ratio, rc, iters = learned_small.make_kernel(plan)(A, *weights.tensors)
    got = NativeFused(plan, weights)(A)
    assert got is not None, NativeFused(plan, weights).failed
    # The same formulas in another loop order and with FMAs: acceptance and counts equal up
    # to a ratio within rounding of tol (tests/agreement.py), values to rounding.
    X0 = model.predict(A)
    assert assert_accepted_agree(A, X0, (got.accepted, got.iterations), (accepted, iters), 3,
                                 10.0) <= 0.01 * len(A)
    assert not bool(got.accepted[::50].any())
    # Where both accepted after the same number of steps, values agree to rounding; a step
    # more or less moves an answer by about its residual: within the two certified bounds.
    both = got.accepted & accepted
    same = both & (got.iterations == iters)
    assert int(same.sum()) >= 0.95 * int(both.sum())
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(got.X[same], X[same], **tol)
    # The ratio counts rounding units: the kernel's fused residual (no rounding of X A) and the
    # reference's rounded products differ by about one unit each way (most visibly at n = 1).
    torch.testing.assert_close(got.ratio[same], ratio[same], rtol=0.05, atol=1.5)
    torch.testing.assert_close(got.rcond[both], rc[both], rtol=1e-4, atol=0.0)
    bound = error_bound(A[both], got.X[both], got.ratio[both]) + error_bound(A[both], X[both], ratio[both])
    assert bool((norm1(got.X[both].double() - X[both].double()) <= bound).all())


def test_threads_switch_and_an_unavailable_kernel(method, monkeypatch):
    A = method.model.region.sample(20_000, generator=_gen(9), dtype=torch.float32)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ni.invert(A, method=method)
        torch.set_num_threads(2)
        team = ni.invert(A, method=method)
        monkeypatch.setattr(native, "_team", [None, "disabled by the test"])
        pool = ni.invert(A, method=method)
    finally:
        torch.set_num_threads(old)
    for other in (team, pool):
        assert other.stats["native"] and other.stats["fused"] == one.stats["fused"] == len(A)
        assert other.status.tolist() == one.status.tolist()
        torch.testing.assert_close(other.inverse, one.inverse, rtol=1e-6, atol=1e-7)
    # NEURALINV_NATIVE=0: the eager path; a kernel that cannot be built: the eager path too.
    off = eager_invert(A[:100], method, monkeypatch)
    assert off.all_ok and off.stats["fused"] == 0
    broken = Learned(model=method.model)
    monkeypatch.setattr(broken._natives[torch.float32], "failed", "RuntimeError: no numba here")
    sol = ni.invert(A[:100], method=broken)
    assert sol.all_ok and sol.stats["native"] is False and sol.stats["fused"] == 0
    assert sol.stats["native_error"] == "RuntimeError: no numba here"


def test_which_models_get_the_native_kernel():
    assert Learned(model="builtin:ball3")._natives == {}  # 3 x 6,633 weights: too many
    assert Learned(model="builtin:ball16")._natives == {}  # n > 4
    assert Learned(model=FAST, compile=True)._natives == {}  # the compiled kernel instead
    assert Learned(model=FAST, check_region=False)._natives == {}
    assert Learned(model=FAST, refine=False)._natives == {}
    assert Learned(model=FAST, guess_dtype="bfloat16")._natives == {}
    # float64 input, float32 model: the float64 kernel (the weights converted, up to 4 steps),
    # every matrix of the ball settled by it, answers as the eager path's.
    method = Learned(model=FAST)
    assert set(method._natives) == {torch.float32, torch.float64}
    A = ni.LearnedInverse.load(FAST).region.sample(300, generator=_gen(3)).double()
    sol = ni.invert(A, method=method)
    assert sol.all_ok and sol.stats["native"] is True and sol.stats["fused"] == len(A)
    assert int(sol.stats["iterations"].max()) <= 4 and float(sol.residual.max()) < method.tol
    ref = torch.linalg.inv(A)
    assert bool((norm1(sol.inverse - ref) <= error_bound(A, sol.inverse, sol.residual)).all())


def test_team_block_layout_matches_the_kernel():
    from neuralinv.kernels import _numba_learned as K
    from neuralinv.kernels import native_learned

    assert native_learned.TEAM_SLOTS == K.TEAM_SLOTS


def test_without_numba_the_learned_method_builds_and_answers_eagerly():
    # Building Learned must not import numba (the kernel loads on first use); without numba
    # the eager path answers and says why.
    code = (
        "import sys; sys.modules['numba'] = None\n"
        "import torch, neuralinv as ni\n"
        "from neuralinv.methods.learned import Learned\n"
        "m = Learned(model='builtin:ball3-fast')\n"
        "A = m.model.region.sample(50, generator=torch.Generator().manual_seed(0)).float()\n"
        "s = ni.invert(A, method=m)\n"
        "assert s.all_ok and s.stats['native'] is False and s.stats['fused'] == 0, s.stats\n"
        "assert 'unavailable' in s.stats['native_error'], s.stats\n"
        "print('ok')\n"
    )
    out = python("-c", code)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


def test_generated_code_is_current():
    """The straight-line part of the kernel is what tests/learned_codegen.py writes (edit the
    generator, then run it, rather than the generated text)."""
    import learned_codegen

    assert learned_codegen.current() == (learned_codegen.source(), learned_codegen.entries())


def test_most_steps_mirror_the_kernels():
    from neuralinv.kernels import _numba_learned, native_learned

    assert {str(k).removeprefix("torch."): v for k, v in native_learned.MOST_STEPS.items()} == _numba_learned.MOST_STEPS
