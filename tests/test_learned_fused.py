"""The fused learned kernel (``Learned(compile=True)`` on a small n <= 4 ``correction`` model)
answers as the eager learned path does: same statuses and labels, iteration counts equal up
to a stopping ratio within rounding of tol (tests/agreement.py), inverses equal up to what
their certificates allow, a certificate that is the certificate of its answers.

Compiling the 3x3 kernel takes tens of seconds on a 2-core machine, so one method object is
compiled per module and shared. Without a C++ compiler the tests that compare the compiled
kernel with the eager path skip (both would run the eager code); the documented fallback
(eager answers, ``stats["compile_error"]``) is checked on every machine with a compilation
made to fail.
"""

from __future__ import annotations

import pytest
import torch

import neuralinv as ni
from agreement import assert_accepted_agree, assert_counts_agree, error_bound, norm1, seeds
from helpers import HAVE_COMPILER, needs_compiler
from helpers import gen as _gen
from neuralinv.certify import certificate, trusted
from neuralinv.kernels import learned_small
from neuralinv.kernels.compiled import CompiledKernel
from neuralinv.kernels.learned_small import FUSED_STEPS
from neuralinv.methods.learned import Learned
from neuralinv.methods.newton_schulz import refine_certified

FAST = "builtin:ball3-fast"


@pytest.fixture(scope="module")
def methods():
    eager = Learned(model=FAST)
    return eager, Learned(model=eager.model, compile=True)


def mixed_batch(region, seed: int) -> torch.Tensor:
    """In-region samples, rows on the ball's surface (both sides, in float32), rows a scalar
    brings into the ball, far ones, a singular one, a non-finite one: float32."""
    g = _gen(seed)
    inside = region.sample(3000, generator=g, dtype=torch.float32)
    D = torch.rand(20, 3, 3, generator=g, dtype=torch.float64) * 2 - 1
    D = D / D.abs().flatten(1).amax(1)[:, None, None] * region.radius
    surface = [(region.center + f * D).float() for f in (1 - 1e-7, 1.0, 1 + 1e-7, 1 + 1e-6)]
    far = 5 * torch.randn(10, 3, 3, generator=g)
    singular = torch.zeros(2, 3, 3)
    singular[1] = torch.arange(1.0, 10.0).reshape(3, 3)
    A = torch.cat([inside, *surface, 2 * inside[:20], far, singular])
    A[5, 1, 1] = float("nan")
    return A


def eager_invert(A, method, monkeypatch):
    """``ni.invert(A, method=method)`` on the eager torch path: the native kernels off (the
    default learned path of a small correction model is otherwise the native fused kernel)."""
    with monkeypatch.context() as m:
        m.setenv("NEURALINV_NATIVE", "0")
        sol = ni.invert(A, method=method)
    assert not sol.stats.get("native")
    return sol


def assert_settled_as_eager(A, a, b, method):
    """A fused path's Solution ``a`` against the eager path's ``b`` on the same batch."""
    # Every input inside the ball is settled in the kernel; scaled ones take the eager path.
    assert a.stats["fused"] == a.stats["in_region"] - a.stats["scaled"] > 3000
    # Statuses, labels and counts do not depend on rounding: region membership is the same
    # float64 test in both paths, in-region matrices (sigma_min >= 0.375) are certified OK
    # within FUSED_STEPS of the 30 allowed either way, and every other row takes the same
    # eager fallback code in both.
    assert a.status.tolist() == b.status.tolist()
    assert a.method.tolist() == b.method.tolist()
    for key in ("in_region", "scaled", "out_of_region", "contracted", "network", "fallbacks"):
        assert a.stats[key] == b.stats[key], key
    # Iteration counts: the kernel and the eager ops round differently (by CPU and compiler),
    # so a matrix whose stopping ratio is within rounding of tol may take one step more in
    # one of them (seen on an AVX-512 Xeon); never elsewhere, never by more.
    net = torch.from_numpy(a.method == "learned")
    ia, ib = a.stats["iterations"], b.stats["iterations"]
    # bitwise: integer step counts, 0 in both for the rows the network path did not refine
    assert torch.equal(ia[~net], ib[~net])
    differ = assert_counts_agree(A[net], seeds(method.model, A[net]), ia[net], ib[net], method.tol)
    assert differ <= 0.01 * int(net.sum())


@needs_compiler
def test_fused_answers_as_the_eager_path(methods, monkeypatch):
    eager, fused = methods
    A = mixed_batch(eager.model.region, 1)
    a, b = ni.invert(A, method=fused), eager_invert(A, eager, monkeypatch)
    assert a.stats["compiled"] is True, a.stats.get("compile_error")
    assert_settled_as_eager(A, a, b, eager)
    assert a.counts()["OUT_OF_REGION"] > 0
    # The zero matrix is SINGULAR; arange(1..9) is singular too, but whether float32 LU's last
    # pivot rounds to exactly 0 depends on the BLAS (FMA): SINGULAR, or ILL_CONDITIONED.
    assert a.status.tolist()[-2] == int(ni.Status.SINGULAR)
    assert a.status.tolist()[-1] in (int(ni.Status.SINGULAR), int(ni.Status.ILL_CONDITIONED))
    ok = a.status == int(ni.Status.OK)
    # The answers: each within what its certificate allows of the float64 inverse, so the
    # two paths' answers within the sum of their bounds (one Newton-Schulz step more or less
    # moves an answer by about its residual, above a fixed rtol on small entries).
    ref = torch.linalg.inv(A[ok].double())
    bound_a = error_bound(A[ok], a.inverse[ok], a.residual[ok])
    bound_b = error_bound(A[ok], b.inverse[ok], b.residual[ok])
    assert bool((norm1(a.inverse[ok].double() - ref) <= bound_a).all())
    assert bool((norm1(b.inverse[ok].double() - ref) <= bound_b).all())
    assert bool((norm1(a.inverse[ok].double() - b.inverse[ok].double()) <= bound_a + bound_b).all())
    assert float(bound_a.max()) < 1e-4  # the bound itself is small: tol * n * eps * cond ~ 1e-5
    # The reported certificate is the certificate of the answers: the same definition, summed
    # in the kernel's order (rounding-level differences of a rounding-level ratio).
    ratio, rc = certificate(A[ok], a.inverse[ok])
    assert torch.allclose(a.residual[ok], ratio, atol=1.0)
    assert torch.allclose(a.rcond[ok], rc, rtol=1e-5)
    assert bool(trusted(a.residual[ok], a.rcond[ok], 3, torch.float32).all())
    assert float(a.residual[ok].max()) < 10  # tol


@pytest.fixture(scope="module")
def twin(methods):
    """2000 in-region float32 samples, the kernel's plan and weights, and what the kernel's
    eager twin (the CPU twin of a GPU build) answers for them."""
    model = methods[0].model
    A = model.region.sample(2000, generator=_gen(2), dtype=torch.float32)
    plan, weights = learned_small.plan(model, model.region, torch.float32, steps=FUSED_STEPS,
                                       tol=10.0)
    return A, plan, weights, learned_small.make_kernel(plan)(A, *weights.tensors)


def test_kernel_twin_equals_refine_certified(methods, twin):
    eager, _ = methods
    model = eager.model
    A, _, _, (X, accepted, ratio, rc, iters) = twin
    assert bool(accepted.all())  # every in-region sample settles within 3 steps
    # Eager twin = the eager learned path: guess, refine_certified's stopping rule and count.
    X0 = model.predict(A)
    r = refine_certified(A, X0, tol=10.0, max_iter=30)
    # The same stopping rule in other code: counts equal up to a ratio within rounding of tol.
    assert assert_counts_agree(A, X0, iters, r.iterations, 10.0) <= 0.01 * len(A)
    assert torch.allclose(X, r.X, rtol=1e-5, atol=1e-6)
    cert = certificate(A, X)
    assert torch.allclose(ratio, cert[0], atol=1.0) and torch.allclose(rc, cert[1], rtol=1e-5)


@needs_compiler
def test_kernel_compiled_equals_its_eager_twin(methods, twin):
    eager, _ = methods
    model = eager.model
    A, plan, weights, (X, accepted, ratio, rc, iters) = twin
    X0 = model.predict(A)
    kernel = learned_small.compiled(plan, weights)
    out, reason = kernel(A)
    assert reason is None
    # Compiled vs its eager twin: the same formulas, but the C++ compiler may contract or
    # reorder them differently on other CPUs, so counts (and acceptance) near tol may differ.
    assert assert_accepted_agree(A, X0, (out[1], out[4]), (accepted, iters), FUSED_STEPS,
                                 10.0) <= 0.01 * len(A)
    assert torch.allclose(out[0], X, rtol=1e-6, atol=1e-7)
    assert torch.allclose(out[2], ratio, atol=0.5)
    # One kernel per model: the same weights, loaded again, find it compiled.
    again = Learned(model=FAST, compile=True)
    assert learned_small.compiled(again._compiled.fused.plan, again._compiled.fused.weights) is kernel


def test_kernel_leaves_what_it_cannot_settle_to_the_eager_path(methods):
    eager, _ = methods
    model = eager.model
    region = model.region
    plan, weights = learned_small.plan(model, region, torch.float32, steps=1, tol=10.0)
    kernel = learned_small.make_kernel(plan)
    A = region.sample(200, generator=_gen(3), dtype=torch.float32)
    # One step is too few for most in-region matrices (they need 2-3): not accepted. Not a
    # rounding question: after one step the ratios are in the hundreds (median ~800, none
    # within 2x of tol = 10; 0 of 200 accepted when measured), so the margin is the whole half.
    X, accepted, *_ = kernel(A, *weights.tensors)
    assert int(accepted.sum()) < 100
    # Region membership is Ball.contains' own float64 decision, also on the surface: rows just
    # inside are settled in the kernel, rows just outside (or far) never.
    plan3 = learned_small.plan(model, region, torch.float32, steps=3, tol=10.0)[0]
    D = torch.rand(30, 3, 3, generator=_gen(6), dtype=torch.float64) * 2 - 1
    D = D / D.abs().flatten(1).amax(1)[:, None, None] * region.radius
    edge = torch.cat([(region.center + f * D).float() for f in (1 - 1e-7, 1.0, 1 + 1e-7, 1.5)])
    _, accepted, *_ = learned_small.make_kernel(plan3)(edge, *weights.tensors)
    inside = region.contains(edge)
    # bitwise: membership is float64 subtraction and max (exact, no rounding choice), and the
    # rows inside stop at step 2 (ratio <= 8.6 < tol) of the 3 allowed: a step more still accepts.
    assert torch.equal(accepted, inside)
    assert 0 < int(inside[30:90].sum()) < 60 and not bool(inside[90:].any())


def test_models_the_kernel_does_not_unroll():
    big = ni.LearnedInverse.load("builtin:ball3")  # 3 members x 6,633 parameters
    why = learned_small.plan(big, big.region, torch.float32, steps=3, tol=10.0)
    assert isinstance(why, str) and "weights" in why
    n16 = ni.LearnedInverse.load("builtin:ball16")
    why = learned_small.plan(n16, n16.region, torch.float32, steps=3, tol=10.0)
    assert isinstance(why, str) and "n <= 4" in why
    assert Learned(model=big, compile=True)._compiled.fused is None
    assert Learned(model=FAST, compile=True, check_region=False)._compiled.fused is None
    assert Learned(model=FAST, compile=True, refine=False)._compiled.fused is None


def test_failed_compilation_gives_the_eager_answers(methods, monkeypatch):
    eager, _ = methods
    method = Learned(model=eager.model, compile=True)
    failing = CompiledKernel(lambda *a: None, False, "RuntimeError: no C++ compiler", 0.0)
    monkeypatch.setattr(learned_small, "compiled", lambda plan, weights: failing)
    monkeypatch.setattr(method._compiled.guess, "failed", "RuntimeError: no C++ compiler")
    A = eager.model.region.sample(50, generator=_gen(4), dtype=torch.float32)
    a, b = ni.invert(A, method=method), eager_invert(A, eager, monkeypatch)
    assert a.stats["compiled"] is False and a.stats["fused"] == 0
    assert a.stats["compile_error"] == "RuntimeError: no C++ compiler"
    # bitwise: both kernels failed, so the same eager code runs on the same batch
    assert torch.equal(a.inverse, b.inverse) and a.status.tolist() == b.status.tolist()


def test_other_dtypes_and_a_batch_of_one(methods):
    eager, fused = methods
    A = eager.model.region.sample(40, generator=_gen(5), dtype=torch.float64)
    a = ni.invert(A, method=fused)  # float64 input, float32 model: the eager path
    assert a.all_ok and a.stats["fused"] == 0
    one = ni.invert(A[:1].float(), method=fused)  # padded to two inside the compiled kernel
    assert one.all_ok and one.method.tolist() == ["learned"]
    if HAVE_COMPILER:
        assert one.stats["fused"] == 1
    assert torch.allclose(one.inverse, torch.linalg.inv(A[:1]).float(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_kernel_twin_on_an_ensemble_with_another_activation(activation):
    # Two hand-made members (g 9-5-5-9, random weights): the kernel's mean of members and its
    # activation are those of LearnedInverse.predict.
    from neuralinv.learned.models import Correction

    base = ni.LearnedInverse.load(FAST)
    region = base.region
    torch.manual_seed(7)
    members = []
    for _ in range(2):
        m = Correction(region.center, region.radius, depth=3, width=5, activation=activation)
        with torch.no_grad():
            for p in m.g.parameters():
                p.normal_(0, 0.05)
            m.out_scale.fill_(0.003)
        members.append(m.float().eval())
    model = ni.LearnedInverse(base.config, members)
    A = region.sample(500, generator=_gen(8), dtype=torch.float32)
    plan, weights = learned_small.plan(model, region, torch.float32, steps=3, tol=10.0)
    assert plan.members == 2 and plan.layers == ((5, 9), (5, 5), (9, 5))
    X, accepted, ratio, rc, iters = learned_small.make_kernel(plan)(A, *weights.tensors)
    r = refine_certified(A, model.predict(A), tol=10.0, max_iter=3)
    mine = r.converged & (r.iterations <= 3)
    X0 = model.predict(A)
    assert assert_accepted_agree(A, X0, (accepted, iters), (mine, r.iterations), 3,
                                 10.0) <= 0.01 * len(A)
    same = accepted & mine & (iters == r.iterations)
    assert int(same.sum()) >= 0.9 * len(A)
    assert torch.allclose(X[same], r.X[same], rtol=1e-5, atol=1e-6)
