"""Every built-in method against float64 references, on matrices of chosen condition number."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neuralinv as ni
from agreement import assert_statuses_agree, error_bound, norm1
from helpers import conditioned
from neuralinv.certify import PASS_RATIO, residual_ratio
from neuralinv.methods import LU, METHODS, Auto, Cholesky, ClosedForm
from neuralinv.methods.closed_form import closed_form_inverse

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = (torch.float32, torch.float64)
BATCH_SHAPES = ((), (1,), (3,), (2, 3))


def reference(A: torch.Tensor) -> torch.Tensor:
    """The float64 inverse of exactly the matrices the method saw (after its dtype cast)."""
    return torch.linalg.inv(A.to(torch.float64))


def check_against_reference(sol, A, cond, *, must_pass_below):
    """Common assertions: shapes and dtype, the certificate, and the forward error of every
    answer certified OK.

    A ratio r < 30 means ||I - X A||_1 < r n ||A||_1 ||X||_1 eps, and since
    X - A^-1 = (X A - I) A^-1, the relative 1-norm error of X is below that too: about
    30 n cond_1(A) eps. The float64 reference has its own (much smaller) error, hence the 2."""
    n = A.shape[-1]
    Xref = reference(A)
    X = sol.inverse
    assert X.shape == A.shape and X.dtype == A.dtype
    assert sol.status.shape == A.shape[:-2] and sol.residual.shape == A.shape[:-2]
    ok = sol.status == int(ni.Status.OK)
    # The certificate the Solution reports is the one recomputed from scratch here, up to the
    # rounding of its own evaluation (auto's native kernels sum in another order, and in
    # float64 for float32 closed forms: a ratio is a rounding-level number).
    torch.testing.assert_close(
        sol.residual, residual_ratio(A, X), equal_nan=True, atol=2.0, rtol=0.05
    )
    assert bool((sol.residual[ok] < PASS_RATIO).all())
    eps = torch.finfo(A.dtype).eps
    if n:
        A64 = A.to(torch.float64)
        cond1 = norm1(A64) * norm1(Xref)
        err = norm1(X.to(torch.float64) - Xref) / norm1(Xref)
        bound = 2 * PASS_RATIO * n * cond1 * eps
        assert bool((err[ok] <= bound[ok]).all()), float((err / bound)[ok].max())
    if cond * n * eps < must_pass_below:
        assert bool(ok.all()), sol.counts()


shapes = st.sampled_from(BATCH_SHAPES)
dtypes = st.sampled_from(DTYPES)
log_cond = st.floats(0, 6)


@FAST
@given(n=st.integers(1, 64), dtype=dtypes, batch_shape=shapes, lc=log_cond, seed=st.integers(0, 99))
@pytest.mark.parametrize("method", ["lu", "auto"])
def test_exact_methods_match_reference(method, n, dtype, batch_shape, lc, seed):
    cond = 10.0**lc
    A = conditioned(batch_shape, n, cond, seed=seed).to(dtype)
    sol = ni.invert(A, method=method)
    # LU is backward stable: its dget03 ratio passes whatever the conditioning, so every
    # matrix far enough from singular (rcond above eps) must be certified OK.
    check_against_reference(sol, A, cond, must_pass_below=1e-2)
    assert bool((sol.residual < PASS_RATIO).all()), float(sol.residual.max())


@FAST
@given(n=st.integers(1, 4), dtype=dtypes, batch_shape=shapes, lc=log_cond, seed=st.integers(0, 99))
def test_closed_form_matches_reference(n, dtype, batch_shape, lc, seed):
    cond = 10.0**lc
    A = conditioned(batch_shape, n, cond, seed=seed).to(dtype)
    sol = ni.invert(A, method="closed_form")
    check_against_reference(sol, A, cond, must_pass_below=1e-4)


@FAST
@given(n=st.integers(1, 64), dtype=dtypes, batch_shape=shapes, lc=log_cond, seed=st.integers(0, 99))
def test_cholesky_matches_reference_on_spd(n, dtype, batch_shape, lc, seed):
    cond = 10.0**lc
    A = conditioned(batch_shape, n, cond, seed=seed, spd=True).to(dtype)
    sol = ni.invert(A, method="cholesky")
    check_against_reference(sol, A, cond, must_pass_below=1e-3)
    assert not bool((sol.status == int(ni.Status.NOT_SPD)).any()) or cond * eps_of(dtype) > 1e-2


def eps_of(dtype):
    return torch.finfo(dtype).eps


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 64), dtype=dtypes, batch_shape=shapes, lc=log_cond, seed=st.integers(0, 99))
def test_newton_schulz_matches_reference(n, dtype, batch_shape, lc, seed):
    cond = 10.0**lc
    A = conditioned(batch_shape, n, cond, seed=seed).to(dtype)
    sol = ni.invert(A, method="newton_schulz")
    check_against_reference(sol, A, cond, must_pass_below=1e-4)
    # Where it did not converge it says so: never OK with a failing certificate.
    bad = sol.status != int(ni.Status.OK)
    assert bool((sol.residual[~bad] < PASS_RATIO).all())


@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 12), dtype=dtypes, batch_shape=shapes, seed=st.integers(0, 99))
def test_gradient_converges_on_well_conditioned(n, dtype, batch_shape, seed):
    A = conditioned(batch_shape, n, 5.0, seed=seed).to(dtype)
    sol = ni.invert(A, method="gradient")
    check_against_reference(sol, A, 5.0, must_pass_below=1.0)
    hist = sol.stats["loss_history"]
    assert len(hist) == sol.stats["iterations"] + 1
    assert hist[-1] <= hist[0]


@pytest.mark.parametrize("loss", ["left", "right", "both"])
@pytest.mark.parametrize("init", ["transpose", "zeros", "random"])
def test_gradient_losses_and_inits(loss, init):
    A = conditioned((4,), 6, 3.0, seed=1)
    sol = ni.invert(A, method="gradient", loss=loss, init=init)
    assert sol.all_ok, sol.counts()
    torch.testing.assert_close(sol.inverse, reference(A), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "optimizer, lr, options",
    [("lbfgs", 1.0, None), (torch.optim.LBFGS, 1.0, None), ("SGD", 0.5, {"nesterov": True, "momentum": 0.9})],
)
def test_gradient_other_optimizers_float32(optimizer, lr, options):
    A = conditioned((8,), 8, 3.0, seed=2).to(torch.float32)
    sol = ni.invert(A, method="gradient", optimizer=optimizer, lr=lr, options=options)
    assert sol.all_ok, sol.counts()


@pytest.mark.parametrize("loss", ["left", "right"])
@pytest.mark.parametrize("every", [10, 20, 50])
def test_gradient_restarts_keep_the_answer_certified(loss, every):
    # Any restart interval is a change of variables, never a change of the minimiser.
    A = conditioned((6,), 5, 50.0, seed=7)
    sol = ni.invert(A, method="gradient", optimizer="adam", loss=loss, restart=every)
    assert sol.all_ok, (sol.counts(), sol.residual.tolist())
    assert sol.stats["restarts"] >= 1
    torch.testing.assert_close(sol.inverse, reference(A), rtol=1e-9, atol=1e-9)


def test_gradient_restarts_on_a_singular_batch_member_stay_finite():
    A = conditioned((4,), 6, 10.0, seed=8)
    A[2, :, 0] = A[2, :, 1]
    sol = ni.invert(A, method="gradient", optimizer="adam")
    assert sol.status.tolist() == [0, 0, int(ni.Status.NOT_CONVERGED), 0]
    assert bool(torch.isfinite(sol.inverse).all())


def test_gradient_reports_not_converged_honestly():
    A = conditioned((5,), 8, 1e3, seed=3)
    sol = ni.invert(A, method="gradient", steps=5)
    assert (sol.status == int(ni.Status.NOT_CONVERGED)).all()
    assert sol.stats["iterations"] == 5 and len(sol.stats["loss_history"]) == 6
    with pytest.raises(ni.NotConvergedError, match=r"\[0, 1, 2, 3, 4\]"):
        ni.inv(A, method="gradient", steps=5)


def test_gradient_stops_at_tol():
    A = conditioned((3,), 5, 2.0, seed=4)
    loose = ni.invert(A, method="gradient", tol=1e6)
    tight = ni.invert(A, method="gradient", tol=5.0)
    assert loose.stats["iterations"] < tight.stats["iterations"]
    assert bool((tight.residual < 5.0).all())


def test_cholesky_rejects_non_spd_without_silent_answers():
    spd = conditioned((6,), 5, 10.0, seed=5, spd=True)
    A = spd.clone()
    A[1] = -A[1]  # negative definite
    A[2, 0, 1] += 1e-3  # clearly not symmetric, though the lower triangle is that of an SPD
    A[4] = conditioned((), 5, 10.0, seed=6)  # a general matrix
    sol = ni.invert(A, method="cholesky")
    assert sol.status.tolist() == [0, 6, 6, 0, 6, 0]
    assert torch.isnan(sol.inverse[[1, 2, 4]]).all()
    with pytest.raises(ni.NotPositiveDefiniteError, match=r"\[1, 2, 4\]"):
        ni.inv(A, method="cholesky")


def test_cholesky_symmetry_tolerance():
    g = torch.Generator().manual_seed(7)
    M = torch.randn(20, 20, generator=g, dtype=torch.float64)
    A = M @ M.mT + 20 * torch.eye(20, dtype=torch.float64)
    A[3, 7] += 1e-13 * A.abs().max()  # rounding-level asymmetry: accepted by default
    assert ni.invert(A, method="cholesky").status.item() == 0
    assert ni.invert(A, method="cholesky", symmetry_tol=0).status.item() == int(ni.Status.NOT_SPD)


def test_auto_choices():
    # The measured CPU crossovers of the torch path (docs/performance.md): eager closed forms
    # only pay from 4,096 matrices and only up to 3x3.
    assert isinstance(Auto().choose(3, 10), LU)
    assert isinstance(Auto().choose(3, 4096), ClosedForm)
    assert isinstance(Auto().choose(1, 10**5), ClosedForm)
    assert isinstance(Auto().choose(4, 10**5), LU)
    assert isinstance(Auto().choose(5, 10), LU)
    assert isinstance(Auto(spd=True).choose(3, 10), Cholesky)
    assert isinstance(Auto(spd=True).choose(50, 10), Cholesky)


def test_closed_form_refines_answers_whose_certificate_fails():
    # The 4x4 adjugate in float64 is not backward stable: at cond 1e6 raw ratios reach ~180.
    A = conditioned((200,), 4, 1e6, seed=8)
    raw, _ = closed_form_inverse(A)
    assert bool((residual_ratio(A, raw) >= PASS_RATIO).any())  # refinement has work to do
    sol = ni.invert(A, method="closed_form")
    assert sol.all_ok and sol.stats["refined"] > 0
    assert bool((sol.residual < PASS_RATIO).all())
    torch.testing.assert_close(sol.inverse, reference(A), rtol=1e-8, atol=0)


def test_auto_falls_back_to_lu_where_closed_form_fails(monkeypatch):
    monkeypatch.setenv("NEURALINV_NATIVE", "0")  # auto's torch path (native: test_native.py)
    A = conditioned((4096,), 3, 1e13, seed=8)
    direct = ni.invert(A, method="closed_form")
    assert bool((direct.residual >= PASS_RATIO).any())  # the fallback has work to do
    sol = ni.invert(A, method="auto")
    labels = np.asarray(sol.method)
    assert set(labels) == {"closed_form", "lu"}
    assert sol.stats["fallbacks"] == int((labels == "lu").sum())
    assert bool((sol.residual < PASS_RATIO).all())
    assert bool((labels[(direct.residual >= PASS_RATIO).numpy()] == "lu").all())


def test_auto_spd_falls_back_for_non_spd():
    A = conditioned((4,), 6, 10.0, seed=9, spd=True)
    A[2] = conditioned((), 6, 10.0, seed=10)
    sol = ni.invert(A, method="auto", spd=True)
    assert sol.all_ok
    assert list(sol.method) == ["cholesky", "cholesky", "lu", "cholesky"]
    torch.testing.assert_close(sol.inverse, reference(A))


@pytest.mark.parametrize("method", ["lu", "auto", "closed_form", "newton_schulz"])
def test_singular_at_index_3(method):
    A = conditioned((7,), 3, 10.0, seed=11)
    A[3] = torch.tensor([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 1.0, 1.0]])
    sol = ni.invert(A, method=method)
    others = [i for i in range(7) if i != 3]
    assert (sol.status[others] == int(ni.Status.OK)).all()
    assert sol.status[3] != int(ni.Status.OK)
    torch.testing.assert_close(sol.inverse[others], reference(A[others]))
    error = ni.NotConvergedError if method == "newton_schulz" else ni.SingularMatrixError
    with pytest.raises(error, match=r"\[3\] \(1 of 7\)") as info:
        ni.inv(A, method=method)
    assert info.value.indices == [(3,)]


def test_ill_conditioned_warns_with_index():
    A = conditioned((4,), 5, 10.0, seed=12)
    A[2] = conditioned((), 5, 1e18, seed=13)
    sol = ni.invert(A, method="lu")
    assert sol.status.tolist() == [0, 0, int(ni.Status.ILL_CONDITIONED), 0]
    with pytest.warns(ni.IllConditionedWarning, match=r"\[2\]"):
        ni.inv(A, method="lu")


#: The registered methods that cannot be built without arguments, and where they are tested;
#: every other registered method runs in the generic tests below (ALL), so a new one cannot be
#: left out silently: test_every_registered_method_is_in_the_generic_tests fails until it is
#: either buildable by default or listed here.
NEEDS_ARGUMENTS = {"learned": "a trained model: tests/test_learned_method.py, tests/test_autograd.py"}
ALL = sorted(set(METHODS) - set(NEEDS_ARGUMENTS))
# Less momentum than the blog's 0.9 converges in far fewer steps on these easy matrices.
QUICK = {"gradient": {"options": {"momentum": 0.5}}}


def test_every_registered_method_is_in_the_generic_tests():
    for name, cls in METHODS.items():
        if name in NEEDS_ARGUMENTS:
            with pytest.raises(ni.InputError):
                cls()
        else:
            assert cls().name == name


def skip_unless_supported(method: str, n: int, dtype=torch.float64) -> None:
    """The registry's answer (``Method.supports``) decides which generic cases a method takes."""
    if not METHODS[method]().supports(n, dtype, "cpu"):
        pytest.skip(f"{method} does not take {n}x{n} {dtype}")


@pytest.mark.parametrize("method", ALL)
@pytest.mark.parametrize("shape", [(0, 3, 3), (0, 0), (2, 0, 0), (4, 0, 3, 3)])
def test_empty_batches(method, shape):
    skip_unless_supported(method, shape[-1])
    for dtype in (torch.float32, torch.float64):
        sol = ni.invert(torch.zeros(shape, dtype=dtype), method=method)
        assert sol.inverse.shape == shape and sol.inverse.dtype == dtype
        assert sol.status.shape == shape[:-2] and sol.residual.shape == shape[:-2]
        assert sol.all_ok
    out = ni.invert(np.zeros(shape), method=method)
    assert isinstance(out.inverse, np.ndarray) and out.inverse.shape == shape


@pytest.mark.parametrize("method", ALL)
def test_views_equal_contiguous_copies(method):
    n = 3
    skip_unless_supported(method, n)
    base = conditioned((4,), 2 * n, 2.0, seed=14, spd=True)
    views = [base[:, :n, :n].mT, base[:, ::2, ::2], base[::2, 1::2, 1::2], base[:1, :n, :n].expand(3, n, n)]
    for v in views:
        assert not v.is_contiguous()
        got = ni.invert(v, method=method, **QUICK.get(method, {}))
        want = ni.invert(v.contiguous(), method=method, **QUICK.get(method, {}))
        # Not bit for bit: a BLAS may round products of transposed or strided operands
        # differently from contiguous ones (another kernel), and an iterative method may then
        # stop a step apart. Statuses agree up to a certificate within rounding of a threshold
        # (none here, cond 2: all OK), and answers within the sum of what their certificates
        # allow (tests/agreement.py).
        assert got.all_ok
        assert_statuses_agree(got, want, n, v.dtype, at_most=1)
        bound = error_bound(v, got.inverse, got.residual) + error_bound(v, want.inverse, want.residual)
        assert bool((norm1(got.inverse - want.inverse) <= bound).all())
    # Negative numpy strides have no torch view: the input is copied first, so the same
    # computation runs on the same values and the answers are identical bits.
    a = base.numpy()[::-1, ::2, ::2]
    np.testing.assert_array_equal(
        ni.invert(a, method=method, **QUICK.get(method, {})).inverse,
        ni.invert(a.copy(), method=method, **QUICK.get(method, {})).inverse,
    )


@pytest.mark.parametrize("method", ALL)
def test_input_never_modified(method):
    for n in (2, 3):
        skip_unless_supported(method, n)
    for shape, n in (((), 2), ((1,), 3), ((2,), 2)):  # reshapes of the input are views of it
        A = conditioned(shape, n, 5.0, seed=15, spd=True)
        keep = A.clone()
        ni.invert(A, method=method, **QUICK.get(method, {}))
        assert torch.equal(A, keep)  # bitwise: untouched input vs its copy
    A = conditioned((3,), 3, 5.0, seed=15, spd=True)
    A[1, 0, 0] = float("nan")  # the NaN screen must not write into the caller's array
    keep = A.clone()
    ni.invert(A, method=method, **QUICK.get(method, {}))
    # bitwise: untouched input vs its copy
    assert torch.equal(A.isnan(), keep.isnan()) and torch.equal(A.nan_to_num(), keep.nan_to_num())
    a = keep.numpy().copy()
    a_keep = a.copy()
    ni.invert(a, method=method, **QUICK.get(method, {}))
    np.testing.assert_array_equal(a, a_keep)  # bitwise: the untouched numpy input vs its copy


def test_dtypes():
    ints = torch.tensor([[2, 1], [1, 1]], dtype=torch.int32)
    for x in (ints, ints.numpy(), ints.to(torch.int64), torch.eye(3, dtype=torch.bool)):
        X = ni.invert(x).inverse
        assert X.dtype in (torch.float64, np.float64)
    # bitwise: the inverse of this integer matrix of determinant 1 is exact in float64
    np.testing.assert_array_equal(ni.inv(ints.numpy()), [[1.0, -1.0], [-1.0, 2.0]])
    A = conditioned((3,), 6, 10.0, seed=16)
    for low in (torch.float16, torch.bfloat16):
        Al = A.to(low)
        sol = ni.invert(Al, method="lu")
        assert sol.inverse.dtype == low
        # computed in float32, then rounded once to the input's dtype; bitwise: the same
        # inv_ex call on the same float32 batch
        assert torch.equal(sol.inverse, torch.linalg.inv(Al.to(torch.float32)).to(low))
        assert sol.residual.dtype == torch.float32
    h = ni.invert(A.numpy().astype(np.float16))
    assert isinstance(h.inverse, np.ndarray) and h.inverse.dtype == np.float16


def test_numpy_in_numpy_out():
    A = conditioned((2, 3), 4, 10.0, seed=17).numpy()
    sol = ni.invert(A, method="lu")
    for arr in (sol.inverse, sol.status, sol.residual, sol.rcond):
        assert isinstance(arr, np.ndarray)
    assert sol.inverse.shape == (2, 3, 4, 4) and sol.status.shape == (2, 3)
    np.testing.assert_allclose(sol.inverse, np.linalg.inv(A), rtol=1e-10, atol=1e-12)
    assert isinstance(ni.inv(A.tolist()), np.ndarray)


def test_nonfinite_input_reported_per_matrix():
    A = conditioned((4,), 3, 5.0, seed=18)
    A[1, 2, 2] = float("inf")
    sol = ni.invert(A)
    assert sol.status.tolist() == [0, int(ni.Status.NONFINITE), 0, 0]
    assert torch.isnan(sol.inverse[1]).all()
    with pytest.raises(ni.InputError, match=r"\[1\]"):
        ni.inv(A)


def test_gradient_divergence_is_not_converged_and_stops_early():
    A = torch.diag(torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64))
    # Curvature of the scaled loss reaches 2, so plain descent with lr 1.5 diverges.
    # (A fixed rate: the plateau schedule would halve it and recover.)
    sol = ni.invert(A, method="gradient", lr=1.5, init="zeros", options={"momentum": 0.0},
                    schedule="none")
    assert sol.status.item() == int(ni.Status.NOT_CONVERGED)
    assert sol.stats["iterations"] < 2000
    assert not np.isfinite(sol.stats["loss_history"][-1])


def test_ratio_of_an_overflowing_answer_fails():
    A = torch.eye(2, dtype=torch.float64)
    X = torch.full((2, 2), 1e308, dtype=torch.float64)
    assert residual_ratio(A, X).item() == float("inf")


@pytest.mark.parametrize("method", ["lu", "auto", "newton_schulz", "block", "cholesky"])
def test_exactly_singular_matrices_are_never_certified(method):
    # Integer entries, last row the sum of the others: singular in exact arithmetic and in
    # float64. Whatever X a method returns, ||I - X A|| >= 1, so OK would be a false proof.
    g = torch.Generator().manual_seed(19)
    A = torch.randint(-3, 4, (32, 16, 16), generator=g).to(torch.float64)
    A[:, -1] = A[:, :-1].sum(dim=1)
    if method == "cholesky":
        A = A @ A.mT  # symmetric positive semidefinite, singular
    sol = ni.invert(A, method=method, **({"max_iter": 30} if method == "newton_schulz" else {}))
    assert not bool((sol.status == int(ni.Status.OK)).any()), sol.counts()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", ALL)
def test_cuda_matches_cpu(method):
    skip_unless_supported(method, 4)
    A = conditioned((2, 3), 4, 10.0, seed=20, spd=True)
    for dtype in DTYPES:
        cpu = ni.invert(A.to(dtype), method=method, **QUICK.get(method, {}))
        gpu = ni.invert(A.to(dtype).cuda(), method=method, **QUICK.get(method, {}))
        assert gpu.inverse.device.type == "cuda" and gpu.status.device.type == "cuda"
        # Another device rounds differently: statuses up to a certificate within rounding of
        # a threshold (none expected at cond 10).
        assert_statuses_agree(gpu, cpu, 4, dtype, at_most=1)
        torch.testing.assert_close(gpu.inverse.cpu(), cpu.inverse, rtol=1e-4, atol=1e-5)


def test_newton_schulz_seeds_single_or_batched():
    A = conditioned((2, 3), 4, 5.0, seed=21)
    X = reference(A)
    rough = X + 1e-3 * torch.randn(X.shape, generator=torch.Generator().manual_seed(0), dtype=X.dtype)
    from_rough = ni.invert(A, method="newton_schulz", seed=rough)  # A's batch shape
    cold = ni.invert(A, method="newton_schulz")
    assert from_rough.all_ok and cold.all_ok
    assert from_rough.stats["iterations"].max() < cold.stats["iterations"].min()
    flat = ni.invert(A, method="newton_schulz", seed=rough.reshape(6, 4, 4))
    assert torch.equal(flat.inverse, from_rough.inverse)  # bitwise: same seeds, only reshaped
    I = ni.invert(A / 10 + torch.eye(4, dtype=A.dtype), method="newton_schulz", seed=torch.eye(4))
    assert I.all_ok
    with pytest.raises(ni.InputError, match=r"seed of shape \(3, 4, 4\)"):
        ni.invert(A, method="newton_schulz", seed=rough[0])


def test_gradient_default_schedule_keeps_sgd_at_its_fixed_rate():
    # The plateau rule halved SGD's (momentum) rate on this easy 2x2 and it stopped converging.
    A = conditioned((), 2, 5.0, seed=0).to(torch.float64)
    sol = ni.invert(A, method="gradient")
    assert sol.all_ok, (sol.counts(), float(sol.residual))
    assert sol.stats["lr_halvings"] == 0
    adam = ni.invert(A, method="gradient", optimizer="adam")
    assert adam.all_ok and adam.stats["lr_halvings"] > 0  # the adaptive ones keep the plateau rule
