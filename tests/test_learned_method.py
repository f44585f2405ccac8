"""Certified learned inversion: network guess + Newton-Schulz where it contracts, exact elsewhere.

The refine/fallback logic is tested with hand-built predictors whose guesses are known (the
linear approximation around the ball's center, a useless guess); the real networks
(a seconds-long training run, the shipped ``builtin:ball3``) are tested at the end.
"""

import warnings

import pytest
import torch

import neuralinv as ni
from agreement import assert_counts_agree, assert_statuses_agree, error_bound, norm1, seeds
from helpers import gen as _gen
from helpers import needs_compiler, network_counts
from neuralinv.certify import residual_ratio
from neuralinv.methods.learned import Learned

BALL = ni.Ball.default(3)


class LinearApproximation:
    """``C - C D C`` around the ball's center: the paper's baseline, a guess that contracts on
    the whole ball (``||I - A X||_2 <= (||D|| ||C||)^2 < 1`` there)."""

    def __init__(self, region=BALL):
        self.region, self.n = region, region.n
        self.calls = []

    def predict(self, A):
        self.calls.append(A.shape[0])
        C = torch.linalg.inv(self.region.center).to(A)
        D = A - self.region.center.to(A)
        return C - C @ D @ C


class Useless:
    """A guess that never contracts: ``-A^T`` gives ``I - A X = I + A A^T``, norm > 1."""

    def __init__(self, region=BALL):
        self.region, self.n = region, region.n

    def predict(self, A):
        return -A.mT


def test_in_region_answered_by_network_after_refinement():
    A = BALL.sample(200, generator=_gen(0))
    sol = ni.invert(A, method=Learned(model=LinearApproximation()))
    assert sol.all_ok and sol.worst_residual < 30
    assert set(sol.method.tolist()) == {"learned"}
    assert network_counts(sol) == {"network": 200, "fallback": 0}
    s = sol.stats
    assert (s["in_region"], s["contracted"], s["refined"], s["network"], s["fallbacks"]) == (
        200, 200, 200, 200, 0)
    # The seed was not already exact: Newton-Schulz did the work, in a few steps.
    assert 1 <= s["max_iterations"] <= 8 and int(s["iterations"].min()) >= 1
    assert torch.allclose(sol.inverse, torch.linalg.inv(A), rtol=1e-10, atol=1e-12)


def test_singular_and_far_inputs_come_back_exact_with_status():
    inside = BALL.sample(4, generator=_gen(1))
    far = 10 * torch.randn(3, 3, 3, generator=_gen(2), dtype=torch.float64)
    singular = torch.tensor([[1.0, 2, 3], [2, 4, 6], [0, 0, 0]], dtype=torch.float64)[None]
    A = torch.cat([inside, far, singular])
    predictor = LinearApproximation()
    sol = ni.invert(A, method=Learned(model=predictor))
    OOR, SING = int(ni.Status.OUT_OF_REGION), int(ni.Status.SINGULAR)
    assert sol.status.tolist() == [0] * 4 + [OOR] * 3 + [SING]
    assert sol.method.tolist() == ["learned"] * 4 + ["lu"] * 4
    # Far inputs: LU's exact answer, certified; the network never saw them.
    # (LU ran on the 4 fallback rows, the reference on these 3: the same LAPACK routine per
    # matrix, but a batched BLAS/LAPACK may round by batch; float64 rounding times cond <~1e3.)
    torch.testing.assert_close(sol.inverse[4:7], torch.linalg.inv(far), rtol=1e-10, atol=1e-12)
    assert (sol.residual[4:7] < 30).all()
    assert torch.isnan(sol.inverse[7]).all()
    assert predictor.calls == [4]
    assert sol.stats["out_of_region"] == 4 and sol.stats["fallbacks"] == 4


def test_inv_warns_out_of_region_and_raises_on_singular():
    A = torch.cat([BALL.sample(2, generator=_gen(3)), 5 * torch.eye(3, dtype=torch.float64)[None]])
    A[2, 0, 1] = 7.0  # not a multiple of the ball's center: no scaling brings it in
    with pytest.warns(ni.OutOfRegionWarning, match=r"\[2\]"):
        X = ni.inv(A, method=Learned(model=LinearApproximation()))
    assert torch.allclose(X, torch.linalg.inv(A))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ni.inv(A[:2], method=Learned(model=LinearApproximation()))
    S = torch.zeros(1, 3, 3, dtype=torch.float64)
    with pytest.raises(ni.SingularMatrixError, match=r"\[0\]"):
        ni.inv(S, method=Learned(model=LinearApproximation()))


def test_non_contracting_guess_falls_back_with_lu_status():
    A = BALL.sample(5, generator=_gen(4))
    sol = ni.invert(A, method=Learned(model=Useless()))
    assert sol.all_ok  # LU answered, and LU's status is OK (not OUT_OF_REGION: they are inside)
    assert sol.method.tolist() == ["lu"] * 5
    assert sol.stats["in_region"] == 5 and sol.stats["contracted"] == 0
    assert network_counts(sol) == {"network": 0, "fallback": 5}
    # Bit for bit: every row fell back, so LU ran torch.linalg.inv_ex on this very batch.
    assert torch.equal(sol.inverse, torch.linalg.inv(A))


def test_refine_false_returns_the_raw_guess_and_its_certificate():
    A = BALL.sample(50, generator=_gen(5))
    predictor = LinearApproximation()
    sol = ni.invert(A, method=Learned(model=predictor, refine=False))
    guess = predictor.predict(A)
    # bitwise: all in region, one chunk, so the same predict call on the same batch, and the
    # same certificate call on the same pair
    assert torch.equal(sol.inverse, guess)
    assert torch.equal(sol.residual, residual_ratio(A, guess))
    # A raw guess is nowhere near machine precision: its certificate says so.
    assert (sol.status == int(ni.Status.ILL_CONDITIONED)).all()
    assert sol.stats["contracted"] == 50 and int(sol.stats["iterations"].max()) == 0


def test_input_scaling_into_the_region():
    A = BALL.sample(6, generator=_gen(6))
    big = 2.5 * A  # outside the ball; 0.4 * big is back inside
    inside, s = BALL.scaled_into(big)
    assert inside.all()
    # The scale is the point of the ray closest to the center, so near (not at) 1 / 2.5.
    assert ((s > 0.3) & (s < 0.5)).all()
    assert BALL.contains(s[:, None, None] * big).all()
    sol = ni.invert(big, method=Learned(model=LinearApproximation()))
    assert sol.all_ok and sol.method.tolist() == ["learned"] * 6
    assert sol.stats["scaled"] == 6
    assert torch.allclose(sol.inverse, torch.linalg.inv(big), rtol=1e-10, atol=1e-12)
    # Without scaling they are out of region and answered exactly by LU.
    sol = ni.invert(big, method=Learned(model=LinearApproximation(), scale=False))
    assert (sol.status == int(ni.Status.OUT_OF_REGION)).all() and sol.stats["scaled"] == 0


def test_box_scale_is_the_largest_admissible():
    box = ni.Box(3, -1.0, 1.0, min_abs_det=0.1)
    A = box.sample(20, generator=_gen(7))
    small = 0.1 * A  # entries in range, but |det| shrank by 1000: fails the filter
    assert not box.contains(small).any()
    s = box.candidate_scale(small)
    assert torch.allclose(s * small.abs().flatten(1).amax(1), torch.ones(20, dtype=torch.float64))
    inside, _ = box.scaled_into(small)
    assert inside.all()
    # A matrix no positive scale can bring in: a zero matrix (det 0 at every scale).
    inside, s = box.scaled_into(torch.zeros(1, 3, 3, dtype=torch.float64))
    assert not inside.any() and s.item() == 1


def test_float32_inputs():
    A = BALL.sample(40, generator=_gen(8), dtype=torch.float32)
    sol = ni.invert(A, method=Learned(model=LinearApproximation()))
    assert sol.inverse.dtype == torch.float32
    assert sol.all_ok and sol.worst_residual < 30
    assert network_counts(sol)["network"] == 40


def test_check_region_false_trusts_only_the_contraction_test():
    far = 10 * torch.randn(4, 3, 3, generator=_gen(9), dtype=torch.float64)
    sol = ni.invert(far, method=Learned(model=LinearApproximation(), check_region=False))
    # Far from the center the linear approximation does not contract: LU, with LU's status.
    assert sol.all_ok and sol.method.tolist() == ["lu"] * 4
    assert sol.stats["out_of_region"] == 0 and sol.stats["contracted"] == 0


def test_gradient_is_the_analytic_one():
    A = BALL.sample(3, generator=_gen(10)).requires_grad_(True)
    ni.inv(A, method=Learned(model=LinearApproximation())).sum().backward()
    A2 = A.detach().clone().requires_grad_(True)
    torch.linalg.inv(A2).sum().backward()
    assert torch.allclose(A.grad, A2.grad, rtol=1e-8, atol=1e-10)


def test_bad_arguments_are_input_errors():
    with pytest.raises(ni.InputError, match="3x3"):
        ni.invert(torch.eye(4)[None], method=Learned(model=LinearApproximation()))
    with pytest.raises(ni.InputError, match="needs model"):
        ni.invert(torch.eye(3)[None], method="learned")
    with pytest.raises(ni.InputError, match="lacks predict"):
        Learned(model=object())
    with pytest.raises(ni.InputError, match="fallback"):
        Learned(model=LinearApproximation(), fallback=Learned(model=LinearApproximation()))
    with pytest.raises(ni.InputError, match="tol"):
        Learned(model=LinearApproximation(), tol=100.0)


# -- real networks (tiny_model: tests/conftest.py) -------------------------------------------
def test_real_network_answers_in_region_after_refinement(tiny_model):
    A = tiny_model.region.sample(500, generator=_gen(20))
    sol = ni.invert(A, method=tiny_model)
    assert sol.all_ok and sol.worst_residual < 30
    assert network_counts(sol) == {"network": 500, "fallback": 0}
    assert sol.stats["contracted"] == 500 and sol.stats["max_iterations"] >= 1
    assert torch.allclose(sol.inverse, torch.linalg.inv(A), rtol=1e-10, atol=1e-12)
    # The raw guess is the network's own: close, but far from exact.
    raw = ni.invert(A, method=tiny_model, refine=False)
    assert torch.equal(raw.inverse, tiny_model.predict(A))  # bitwise: same predict, same batch
    err = (raw.inverse - torch.linalg.inv(A)).abs().mean().item()
    assert 1e-6 < err < 0.5
    assert (raw.status == int(ni.Status.ILL_CONDITIONED)).all()


def test_predict_takes_numpy_and_never_moves_the_model(tiny_model):
    import copy

    import numpy as np

    A = tiny_model.region.sample(30, generator=_gen(40))
    got = tiny_model.predict(A.numpy())
    assert isinstance(got, np.ndarray) and got.dtype == np.float64 and got.shape == (30, 3, 3)
    np.testing.assert_array_equal(got, tiny_model.predict(A).numpy())  # bitwise: same call
    # A model elsewhere than the input: a clear error, and the model stays where it was.
    elsewhere = ni.LearnedInverse(tiny_model.config, [copy.deepcopy(m).to("meta") for m in tiny_model.members])
    with pytest.raises(ni.InputError, match=r"A is on cpu but the model is on meta; move one"):
        elsewhere.predict(A)
    assert elsewhere.device.type == "meta"
    moved = ni.LearnedInverse(tiny_model.config, [copy.deepcopy(m) for m in tiny_model.members])
    assert moved.to("meta") is moved and moved.device.type == "meta"


def test_learned_supports_the_models_size_dtypes_and_device(tiny_model):
    method = Learned(model=tiny_model)
    assert method.supports(3, torch.float32) and method.supports(3, torch.float64, "cpu")
    assert not method.supports(4, torch.float64)
    assert not method.supports(3, torch.int64) and not method.supports(3, torch.complex128)
    assert not method.supports(3, torch.float64, "meta")
    assert ni.methods.resolve(tiny_model, refine=False) == Learned(model=tiny_model, refine=False)


def test_real_network_mixed_batch(tiny_model):
    inside = tiny_model.region.sample(3, generator=_gen(21))
    scaled = 3.0 * tiny_model.region.sample(2, generator=_gen(22))
    far = 10 * torch.randn(2, 3, 3, generator=_gen(23), dtype=torch.float64)
    singular = torch.zeros(1, 3, 3, dtype=torch.float64)
    A = torch.cat([inside, scaled, far, singular])
    sol = ni.invert(A, method=tiny_model)
    OOR, SING = int(ni.Status.OUT_OF_REGION), int(ni.Status.SINGULAR)
    assert sol.status.tolist() == [0] * 5 + [OOR] * 2 + [SING]
    assert sol.method.tolist() == ["learned"] * 5 + ["lu"] * 3
    assert sol.stats["scaled"] == 2
    assert torch.allclose(sol.inverse[:7], torch.linalg.inv(A[:7]), rtol=1e-10, atol=1e-12)
    with pytest.warns(ni.OutOfRegionWarning, match=r"\[5, 6\]"):
        ni.inv(A[:7], method=tiny_model)


def test_model_directory_by_name(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "m")
    A = tiny_model.region.sample(20, generator=_gen(24), dtype=torch.float32)
    by_name = ni.invert(A, method="learned", model=str(tmp_path / "m"), max_iter=10)
    direct = ni.invert(A, method=tiny_model, max_iter=10)
    assert torch.equal(by_name.inverse, direct.inverse)  # bitwise: the same model from a file, same call
    assert by_name.all_ok and network_counts(by_name)["network"] == 20
    with pytest.raises(ni.InputError, match="no such model directory"):
        ni.invert(A, method="learned", model=str(tmp_path / "missing"))


def test_demo_summary_counts(tiny_model):
    from neuralinv.learned.demo import held_out_batch, run_learned_demo

    batch = held_out_batch(tiny_model.region, count=400)
    demo = run_learned_demo(tiny_model, batch)
    ball, multiples, outside, singular = demo.groups
    assert (ball.count, ball.network, ball.scaled, ball.fell_back) == (400, 400, 0, 0)
    assert ball.status == {"OK": 400} and ball.worst_residual < 30 and ball.max_error < 1e-12
    assert (multiples.network, multiples.scaled) == (40, 40) and multiples.status == {"OK": 40}
    assert outside.network == 0 and outside.status == {"OUT_OF_REGION": 40}
    assert singular.network == 0 and "OK" not in singular.status
    A = batch["in the ball (held out)"]
    exact = torch.linalg.inv(A)
    assert demo.raw_mae == pytest.approx((tiny_model.predict(A) - exact).abs().mean().item())
    C = torch.linalg.inv(tiny_model.region.center)
    linear = C - C @ (A - tiny_model.region.center) @ C
    assert demo.linear_mae == pytest.approx((linear - exact).abs().mean().item())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_learned_and_block():
    A = BALL.sample(64, generator=_gen(30)).cuda()
    far = 10 * torch.randn(2, 3, 3, generator=_gen(31), dtype=torch.float64).cuda()
    sol = ni.invert(torch.cat([A, far]), method=Learned(model=LinearApproximation()))
    assert sol.inverse.is_cuda
    assert sol.status.tolist() == [0] * 64 + [int(ni.Status.OUT_OF_REGION)] * 2
    A6 = torch.block_diag(BALL.center, BALL.center).cuda().expand(4, 6, 6).contiguous()
    sol = ni.invert(A6, method="block", base=Learned(model=LinearApproximation()))
    assert sol.all_ok and sol.stats["leaves"] == {"learned": 8}


def test_builtin_ball3():
    method = Learned(model="builtin:ball3")
    region = method.model.region
    assert method.n == 3
    A = region.sample(300, generator=_gen(25))
    sol = ni.invert(A, method="learned", model="builtin:ball3")
    assert sol.all_ok and sol.worst_residual < 30
    assert network_counts(sol) == {"network": 300, "fallback": 0}
    far = 10 * torch.randn(2, 3, 3, generator=_gen(26), dtype=torch.float64)
    sol = ni.invert(far, method=method)
    assert (sol.status == int(ni.Status.OUT_OF_REGION)).all() and sol.method.tolist() == ["lu"] * 2


def test_demo_section():
    from neuralinv.cli.render import LEARNED_COLUMNS, learned_cells, learned_notes
    from neuralinv.learned import demo

    result = demo.run(steps=100, count=400)
    rows, notes = learned_cells(result), learned_notes(result)
    assert [r[0] for r in rows] == [
        "in the ball (held out)", "3 x a matrix of the ball", "entries uniform in [-1, 1]", "singular"]
    assert all(len(r) == len(LEARNED_COLUMNS) for r in rows)
    assert rows[2][2:5] == ("0", "0", "40")
    assert any("fell back to exact LU" in note for note in notes)
    total = 400 + 40 + 40 + 1
    network = sum(g.network for g in result.groups)
    assert f"{network} of {total} answers came from the network" in " ".join(notes)


# -- the n > 4 fast path: chunks, certificate from the last Newton-Schulz residual -----------
BALL16 = ni.Ball.default(16)


def _seeds16(count, seed):
    """In-region 16x16 float32 matrices and seeds that stop at different steps: exact inverses
    (step 0), the linear approximation (about two steps), a cruder guess, and one seed that
    does not contract (last row)."""
    A = BALL16.sample(count, generator=_gen(seed), dtype=torch.float32)
    X0 = LinearApproximation(BALL16).predict(A)
    q = count // 4
    X0[:q] = torch.linalg.inv(A[:q].double()).float()
    X0[q:2 * q] += 0.02 * torch.randn(q, 16, 16, generator=_gen(seed + 1))
    X0[-1] = -A[-1].mT
    return A, X0


def test_refine_certified_returns_exactly_the_certificate():
    from neuralinv.certify import certificate
    from neuralinv.methods.newton_schulz import guess_contracts, refine, refine_certified

    A, X0 = _seeds16(40, 30)
    seed = X0.clone()
    runs = [refine_certified(A, X0, tol=10.0, max_iter=30, screen=guess_contracts, work=w)
            for w in (None, {})]
    assert torch.equal(X0, seed)  # bitwise (a copy): the seed is not modified
    for r in runs:
        ratio, rc = certificate(A, r.X)
        # What Method.invert would compute on these answers: the same definition, but
        # refine_certified formed each residual on the active rows (a gathered batch of another
        # size, which a BLAS may round differently) and summed its norms in torch, certificate
        # on the whole batch with the native norms kernel (n >= 8 on CPU: another summation
        # order). Equal up to rounding of the residual (O(1) in ratio units).
        torch.testing.assert_close(r.certificate[0], ratio, rtol=0.05, atol=2.0)
        torch.testing.assert_close(r.certificate[1], rc, rtol=1e-5, atol=0.0)
        assert r.converged[:-1].all() and not r.converged[-1] and not r.contracted[-1]
        assert r.contracted[:-1].all()
        assert (r.iterations[:10] == 0).all() and int(r.iterations.max()) >= 2
        # refine without the screen, on the batch less its last row: the same stopping rule on
        # batches of other sizes, so counts equal up to a ratio within rounding of tol, and
        # answers within the sum of their certified error bounds (tests/agreement.py).
        X, its, conv = refine(A[:-1], X0[:-1], tol=10.0, max_iter=30)
        assert conv.all()
        assert assert_counts_agree(A[:-1], X0[:-1], r.iterations[:-1], its, 10.0) <= 2
        bound = error_bound(A[:-1], r.X[:-1], r.certificate[0][:-1])
        bound += error_bound(A[:-1], X, certificate(A[:-1], X)[0])
        assert bool((norm1(r.X[:-1].double() - X.double()) <= bound).all())
        assert float(bound.max()) < 1e-3
    # Reused buffers give the same iterates as fresh tensors: bit for bit, as the same call on
    # the same input (work only keeps the temporaries: same operations, same batch sizes).
    assert torch.equal(runs[0].X, runs[1].X) and torch.equal(runs[0].iterations, runs[1].iterations)
    # n <= 4 certificates take another summation order: none is returned there.
    A3 = BALL.sample(5, generator=_gen(31))
    r3 = refine_certified(A3, LinearApproximation().predict(A3), tol=10.0, max_iter=30)
    assert r3.certificate is None and r3.converged.all()


def test_learned_n16_chunks_and_fallbacks(monkeypatch):
    from neuralinv.certify import certificate
    from neuralinv.methods import learned

    inside = BALL16.sample(37, generator=_gen(32), dtype=torch.float32)
    scaled = 2.0 * BALL16.sample(2, generator=_gen(33), dtype=torch.float32)
    far = 5 * torch.randn(2, 16, 16, generator=_gen(34))
    singular = torch.zeros(1, 16, 16)
    A = torch.cat([inside[:20], far[:1], scaled, singular, inside[20:], far[1:]])
    method = Learned(model=LinearApproximation(BALL16))
    one = ni.invert(A, method=method)
    monkeypatch.setattr(learned, "CHUNK_ELEMENTS", 8 * 256)  # 6 chunks of 8 matrices
    many = ni.invert(A, method=method)
    OOR, SING = int(ni.Status.OUT_OF_REGION), int(ni.Status.SINGULAR)
    expected = [0] * 20 + [OOR] + [0] * 2 + [SING] + [0] * 17 + [OOR]
    # Exact, in both: OUT_OF_REGION and SINGULAR by construction (far, zero), and every
    # in-region row stops at ratio < tol = 10, a third of PASS_RATIO, so it is OK either way.
    for sol in (one, many):
        assert sol.status.tolist() == expected
        assert network_counts(sol) == {"network": 39, "fallback": 3}
        assert sol.stats["scaled"] == 2 and sol.stats["contracted"] == 39
        # The reused certificate is the one certify.certificate gives on the final answers:
        # the same operations, here on the whole batch rather than on each chunk, which the
        # BLAS may round differently (a rounding-level ratio, so atol 1 in its units).
        ratio, rc = certificate(A, torch.nan_to_num(sol.inverse))
        ok = ~torch.isnan(sol.inverse).flatten(1).any(1)
        torch.testing.assert_close(sol.residual[ok], ratio[ok], rtol=0, atol=1.0)
        torch.testing.assert_close(sol.rcond[ok], rc[ok], rtol=1e-5, atol=0)
    # Chunks of 8 and the whole batch are the same operations on batches of other sizes; the
    # BLAS may round those differently (kernel choice by size), so: fallback rows (LU on each
    # matrix) and counts up to a stopping ratio within rounding of tol, answers within what
    # their certificates allow (tests/agreement.py).
    net = torch.from_numpy(one.method == "learned")
    assert net.tolist() == torch.from_numpy(many.method == "learned").tolist()
    X0 = seeds(method.model, A[net])
    assert_counts_agree(A[net], X0, one.stats["iterations"][net], many.stats["iterations"][net],
                        method.tol)
    bound = error_bound(A[net], one.inverse[net], one.residual[net])
    bound += error_bound(A[net], many.inverse[net], many.residual[net])
    assert bool((norm1(one.inverse[net].double() - many.inverse[net].double()) <= bound).all())
    assert float(bound.max()) < 1e-3
    torch.testing.assert_close(one.inverse[~net], many.inverse[~net], equal_nan=True,
                               rtol=1e-5, atol=1e-6)


def test_float32_region_test_agrees_with_float64():
    A = BALL16.sample(3000, generator=_gen(35), dtype=torch.float32)
    # Rows whose largest distance from the center is the radius, or a rounding away from it.
    D = BALL16.sample(200, generator=_gen(36)) - BALL16.center
    D = D / D.abs().flatten(1).amax(1)[:, None, None] * BALL16.radius
    edge = [(BALL16.center + f * D).float() for f in (1 - 1e-7, 1.0, 1 + 1e-7, 1 + 1e-6)]
    B = torch.cat([A, *edge, 2 * A[:10]])
    got = BALL16.contains(B)
    # bitwise: Ball.contains decides a float32 batch as in float64 by construction (its margin
    # covers float32 rounding; the rows within it are decided in float64); B.double() is exact
    assert torch.equal(got, BALL16.contains(B.double()))
    assert 0 < int(got[3000:3800].sum()) < 800  # the edge rows fall on both sides


def test_builtin_ball16():
    method = Learned(model="builtin:ball16")
    region = method.model.region
    assert method.n == 16 and region == ni.Ball.default(16)
    A = region.sample(300, generator=_gen(37), dtype=torch.float32)
    sol = ni.invert(A, method=method)
    assert sol.all_ok and sol.worst_residual < 30
    assert network_counts(sol) == {"network": 300, "fallback": 0}
    # Measured: every matrix stops after 2 steps, its ratio then <= 0.17 (tol 10) and >= 18 after
    # one; a count may move by one step only near tol (tests/agreement.py): 3 is a margin.
    assert 1 <= sol.stats["max_iterations"] <= 3
    far = 5 * torch.randn(2, 16, 16, generator=_gen(38))
    sol = ni.invert(far, method=method)
    assert (sol.status == int(ni.Status.OUT_OF_REGION)).all() and sol.method.tolist() == ["lu"] * 2


@needs_compiler
def test_compiled_guess_gives_the_same_certified_answers():
    eager = Learned(model="builtin:ball16")
    compiled = Learned(model=eager.model, compile=True)
    A = eager.model.region.sample(300, generator=_gen(39), dtype=torch.float32)
    a, b = ni.invert(A, method=compiled), ni.invert(A, method=eager)
    assert a.stats["compiled"] and not b.stats["compiled"]
    # Compiled vs eager guesses round differently: statuses up to a stopping ratio within
    # rounding of tol (or a certificate threshold); all OK here.
    assert a.all_ok
    assert_statuses_agree(a, b, 16, torch.float32, at_most=3, tol=eager.tol)
    assert network_counts(a) == {"network": 300, "fallback": 0}
    assert torch.allclose(a.inverse, b.inverse, rtol=1e-5, atol=1e-6)
    # The compiled members compute the eager guess (up to rounding).
    assert torch.allclose(compiled._predict(A), eager.model.predict(A), rtol=1e-5, atol=1e-6)
    # A batch of one is not compiled again (dynamo would specialise it): predict answers it,
    # so bit for bit (the same eager call on the same input).
    assert torch.equal(compiled._predict(A[:1]), eager.model.predict(A[:1]))
