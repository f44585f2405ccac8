"""Complex matrices (complex64 / complex128): every exact method, the certificate, pinv / lstsq /
project, autograd, numpy in / out, and the refusal of the real-only methods.

References are computed in complex128 by numpy/torch; tolerances scale with n, eps of the real
counterpart (complex64 -> float32's) and the condition number, as for the real tests.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import scipy.linalg as sl
import torch

import helpers
import neuralinv as ni
from neuralinv._validate import real_dtype
from neuralinv.methods import LU
from neuralinv.methods.base import _SCREEN, unscreened

CDTYPES = [torch.complex64, torch.complex128]
EPS = {torch.complex64: float(np.finfo(np.float32).eps), torch.complex128: float(np.finfo(np.float64).eps)}
EXACT = ["lu", "cholesky", "closed_form", "newton_schulz", "block", "auto"]


def crandn(*shape, seed=0):
    return helpers.randn(*shape, seed=seed, dtype=torch.complex128)


def hpd(B, n, seed=0, dtype=torch.complex128):
    """Hermitian positive definite matrices of moderate condition (``M M^H + n I``)."""
    return helpers.spd(B, n, seed=seed, dtype=dtype)


def general(B, n, seed=0, dtype=torch.complex128):
    """``2 I + G``, G complex standard normal."""
    return helpers.well_conditioned(B, n, seed=seed, shift=2, dtype=dtype)


def rel_err(X, ref):
    X, ref = X.to(torch.complex128), ref.to(torch.complex128)
    return torch.linalg.matrix_norm(X - ref, ord=1) / torch.linalg.matrix_norm(ref, ord=1)


def cond1(A):
    A = A.to(torch.complex128)
    return torch.linalg.matrix_norm(A, ord=1) * torch.linalg.matrix_norm(torch.linalg.inv(A), ord=1)


@pytest.mark.parametrize("dtype", CDTYPES)
@pytest.mark.parametrize("method", EXACT)
@pytest.mark.parametrize("n", [1, 2, 3, 4, 6, 17])
def test_every_exact_method_inverts_complex(method, dtype, n):
    if method == "closed_form" and n > 4:
        pytest.skip("closed_form is for n <= 4")
    A = hpd(8, n, seed=n, dtype=dtype) if method == "cholesky" else general(8, n, seed=n, dtype=dtype)
    sol = ni.invert(A, method=method)
    assert sol.inverse.dtype == dtype
    assert sol.residual.dtype == sol.rcond.dtype == real_dtype(dtype)
    assert sol.all_ok, sol.status
    assert bool((sol.residual < 30).all())
    ref = torch.linalg.inv(A.to(torch.complex128))
    bound = 30 * n * EPS[dtype] * cond1(A)
    assert bool((rel_err(sol.inverse, ref) <= bound).all()), (rel_err(sol.inverse, ref), bound)


@pytest.mark.parametrize("dtype", CDTYPES)
def test_cholesky_needs_hermitian_not_symmetric(dtype):
    H = hpd(4, 5, seed=3, dtype=dtype)
    # complex symmetric (A = A^T) but not Hermitian: potrf would read only the lower triangle
    S = H.tril() + H.tril(-1).mT
    sol = ni.invert(torch.stack([H[0], S[1]]), method="cholesky")
    assert sol.status.tolist() == [int(ni.Status.OK), int(ni.Status.NOT_SPD)]
    with pytest.raises(ni.NotPositiveDefiniteError):
        ni.inv(S, method="cholesky")
    # auto with spd=True: cholesky, and LU answers the matrix that breaks the promise
    assert ni.invert(S, method="auto", spd=True).all_ok


@pytest.mark.parametrize("dtype", CDTYPES)
@pytest.mark.parametrize("method", ["lu", "closed_form", "auto", "block"])
def test_singular_complex_is_singular(method, dtype):
    # rank one: rows (1, i) and (i, -1) = i * (1, i); exactly zero determinant and pivot
    S = torch.tensor([[1, 1j], [1j, -1]], dtype=dtype)
    A = torch.stack([S, general(1, 2, dtype=dtype)[0]])
    sol = ni.invert(A, method=method)
    assert sol.status[0] == int(ni.Status.SINGULAR)
    assert sol.status[1] == int(ni.Status.OK)
    assert bool(torch.isnan(sol.inverse[0]).all())
    with pytest.raises(ni.SingularMatrixError) as info:
        ni.inv(A, method=method)
    assert info.value.indices == [(0,)]


@pytest.mark.parametrize("dtype", CDTYPES)
def test_nearly_singular_complex_is_ill_conditioned(dtype):
    S = torch.tensor([[1, 1j], [1j, -1 + 1e-20]], dtype=dtype) if dtype == torch.complex128 else None
    if S is None:
        S = torch.tensor([[1, 1j], [1j, -1 + 1e-10]], dtype=dtype)
    st = int(ni.invert(S, method="newton_schulz").status)
    assert st in (int(ni.Status.ILL_CONDITIONED), int(ni.Status.NOT_CONVERGED))


@pytest.mark.parametrize("dtype", CDTYPES)
def test_certificate_against_complex128_reference(dtype):
    A = general(6, 5, seed=7, dtype=dtype)
    # an answer with a residual far above rounding, so working precision does not matter
    X = (torch.linalg.inv(A.to(torch.complex128)) + 1e-3 * crandn(6, 5, 5, seed=8)).to(dtype)
    A2, X2 = A.to(torch.complex128).numpy(), X.to(torch.complex128).numpy()
    n1 = lambda M: np.abs(M).sum(-2).max(-1)  # noqa: E731  (moduli, as zlange)
    E = np.eye(5) - X2 @ A2
    want = n1(E) / (5 * n1(A2) * n1(X2) * EPS[dtype])
    got = ni.residual_ratio(A, X)
    assert got.dtype == real_dtype(dtype)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-3)
    np.testing.assert_allclose(ni.rcond(A, X).numpy(), 1 / (n1(A2) * n1(X2)), rtol=1e-5)
    np.testing.assert_allclose(
        ni.sigma_min(A).numpy(), np.linalg.svd(A2, compute_uv=False)[..., -1], rtol=1e-5
    )
    # numpy in -> numpy out, real
    r = ni.residual_ratio(A.numpy(), X.numpy())
    assert isinstance(r, np.ndarray) and not np.iscomplexobj(r)


@pytest.mark.parametrize("dtype", CDTYPES)
@pytest.mark.parametrize("method", ["lu", "closed_form", "newton_schulz", "auto"])
def test_extreme_scales_are_certified(method, dtype):
    big = 1e30 if dtype == torch.complex64 else 1e250
    for scale in (1 / big, big):
        A = general(4, 3, seed=11, dtype=torch.complex128)
        sol = ni.invert((A * scale).to(dtype), method=method)
        assert sol.all_ok, (scale, sol.status, sol.residual)
        ref = torch.linalg.inv(A) / scale
        assert bool((rel_err(sol.inverse, ref) < 1e3 * EPS[dtype] * cond1(A)).all())


def test_nonfinite_complex_and_check_finite():
    A = general(3, 3, seed=2, dtype=torch.complex64)
    A[1, 0, 0] = complex(float("nan"), 0)
    A[2, 1, 1] = complex(0, float("inf"))
    for method in ("lu", "closed_form", "newton_schulz", "auto"):
        for check in (True, False):
            sol = ni.invert(A, method=method, check_finite=check)
            assert sol.status.tolist() == [0, 5, 5], (method, check)
            assert bool(torch.isnan(sol.inverse[1:]).all())
            assert bool(torch.isnan(sol.residual[1:]).all())


@dataclass(frozen=True)
class _Seeing(LU):
    """LU that records whether the batch it was given was all finite."""

    seen: list = None  # type: ignore[assignment]
    name = "seeing"

    def _invert(self, A):
        self.seen.append(bool(torch.isfinite(A).all()))
        return super()._invert(A)


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_check_finite_false_skips_the_screen(dtype):
    A = torch.eye(3, dtype=dtype).repeat(2, 1, 1)
    A[1, 0, 0] = float("nan")
    m = _Seeing(seen=[])
    assert ni.invert(A, method=m).status.tolist() == [0, 5]
    assert m.seen == [True]  # screened: the NaN matrix was replaced before the method
    assert ni.invert(A, method=m, check_finite=False).status.tolist() == [0, 5]
    assert m.seen == [True, False]  # not screened: the method saw it, the certificate caught it
    assert _SCREEN.get() is True
    with unscreened():
        assert _SCREEN.get() is False
    assert _SCREEN.get() is True
    with pytest.raises(ni.InputError, match="check_finite"):
        ni.invert(A, check_finite="no")


@pytest.mark.parametrize(
    "method, options",
    [
        ("gradient", {}),
        ("learned", {"model": "builtin:ball3"}),
        ("block", {"base": "builtin:ball3"}),  # a learned base: real-only too
        ("block", {"fallback": "gradient"}),
    ],
)
def test_real_only_methods_refuse_complex(method, options):
    with pytest.raises(ni.InputError, match="complex64") as info:
        ni.invert(torch.eye(3, dtype=torch.complex64), method=method, **options)
    for name in ("lu", "cholesky", "closed_form", "newton_schulz", "auto"):
        assert name in str(info.value)
    with pytest.raises(ni.InputError, match="complex"):
        ni.svd_gd(np.eye(3, dtype=np.complex128))


def test_auto_routes_complex_to_torch():
    A = general(16, 5, seed=4, dtype=torch.complex64)
    sol = ni.invert(A)
    assert sol.all_ok and sol.stats.get("native") is not True
    # n <= 3 from 4096 matrices: closed_form, certified in complex
    sol = ni.invert(general(5000, 3, seed=5, dtype=torch.complex64))
    assert sol.all_ok and sol.stats["primary"] == "closed_form"


def test_numpy_in_numpy_out_and_lists():
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((3, 4, 4)) + 1j * rng.standard_normal((3, 4, 4)) + 3 * np.eye(4))
    for dt in (np.complex64, np.complex128):
        x = ni.inv(a.astype(dt))
        assert isinstance(x, np.ndarray) and x.dtype == dt
        tol = 1e-4 if dt == np.complex64 else 1e-12
        np.testing.assert_allclose(x, np.linalg.inv(a), rtol=tol, atol=tol)
    x = ni.inv([[1 + 1j, 2], [0, 1j]])
    assert x.dtype == np.complex128
    np.testing.assert_allclose(x, np.linalg.inv(np.array([[1 + 1j, 2], [0, 1j]])), atol=1e-15)
    m = ni.inv(np.matrix([[1 + 1j, 0], [0, 2]]))
    assert isinstance(m, np.matrix) and m.dtype == np.complex128
    # complex32 (chalf, experimental in torch) computes in complex64, as float16 in float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        h = (2 * torch.eye(2)).to(torch.complex32)
        x = ni.inv(h)
    assert x.dtype == torch.complex32 and ni.invert(h).residual.dtype == torch.float32
    torch.testing.assert_close(x.to(torch.complex64), 0.5 * torch.eye(2, dtype=torch.complex64))


def test_assume_a_complex_matches_scipy():
    H = hpd(1, 4, seed=9)[0].numpy()
    for assume_a in ("her", "pos", "sym"):
        for lower in (False, True):
            M = (np.tril(H) if lower else np.triu(H)) + 1j * np.diag([0.3, 0.1, 0.2, 0.4])
            want = sl.inv(M, assume_a=assume_a, lower=lower)
            for arg in (M, torch.from_numpy(M)):
                got = ni.inv(arg, assume_a=assume_a, lower=lower)
                got = got.numpy() if isinstance(got, torch.Tensor) else got
                np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


# --- autograd ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["lu", "closed_form", "newton_schulz", "block", "auto"])
def test_gradcheck_inv_complex128(method):
    A = general(2, 3, seed=12).requires_grad_()
    f = lambda A: ni.inv(A, method=method)  # noqa: E731
    assert torch.autograd.gradcheck(f, (A,))
    assert torch.autograd.gradcheck(
        f, (A,), check_forward_ad=True, check_backward_ad=False, check_undefined_grad=False
    )


def test_inv_gradient_is_torch_convention():
    A = general(2, 4, seed=13).requires_grad_()
    G = crandn(2, 4, 4, seed=14)
    (g_ni,) = torch.autograd.grad(ni.inv(A), A, G)
    (g_t,) = torch.autograd.grad(torch.linalg.inv(A), A, G)
    torch.testing.assert_close(g_ni, g_t)
    assert torch.autograd.gradgradcheck(lambda A: ni.inv(A, method="lu"), (A,))
    # vmap over complex batches
    torch.testing.assert_close(torch.func.vmap(ni.inv)(A.detach()), torch.linalg.inv(A.detach()))


@pytest.mark.parametrize("shape", [(4, 3), (3, 4), (3, 3)])
def test_gradcheck_pinv_lstsq_complex128(shape):
    A = crandn(2, *shape, seed=15).requires_grad_()
    B = crandn(2, shape[0], 2, seed=16).requires_grad_()
    fwd = dict(check_forward_ad=True, check_backward_ad=False, check_undefined_grad=False)
    for f in (lambda A: ni.pinv(A), lambda A: ni.pinv(A, rtol=1e-10)):
        assert torch.autograd.gradcheck(f, (A,))
        assert torch.autograd.gradcheck(f, (A,), **fwd)
    for kw in ({}, {"method": "svd"}, {"ridge": 0.1}):
        g = lambda A, B, kw=kw: ni.lstsq(A, B, **kw).solution  # noqa: E731
        assert torch.autograd.gradcheck(g, (A, B))
        assert torch.autograd.gradcheck(g, (A, B), **fwd)
    # torch's own complex pinv gradient
    G = crandn(2, shape[1], shape[0], seed=17)
    (g_ni,) = torch.autograd.grad(ni.pinv(A), A, G)
    (g_t,) = torch.autograd.grad(torch.linalg.pinv(A), A, G)
    torch.testing.assert_close(g_ni, g_t)


def test_gradcheck_pinv_hermitian_and_project():
    H = hpd(1, 4, seed=18)[0].requires_grad_()
    assert torch.autograd.gradcheck(lambda A: ni.pinv(A, hermitian=True), (H,))
    W = crandn(2, 5, seed=19).requires_grad_()
    Wb = crandn(3, 2, 5, seed=20).requires_grad_()
    F = crandn(3, 5, seed=21).requires_grad_()
    fwd = dict(check_forward_ad=True, check_backward_ad=False, check_undefined_grad=False)
    for basis in (W, Wb):
        for kw in ({}, {"rtol": 1e-8}, {"ridge": 0.1}, {"complement": True}):
            f = lambda F, W, kw=kw: ni.project(F, W, **kw)  # noqa: E731
            assert torch.autograd.gradcheck(f, (F, basis))
            assert torch.autograd.gradcheck(f, (F, basis), **fwd)


# --- pinv, lstsq, project ---------------------------------------------------------------------


def _c(rng, *shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (4, 4)])
def test_pinv_lstsq_match_numpy(shape):
    rng = np.random.default_rng(1)
    A, B = _c(rng, *shape), _c(rng, shape[0], 2)
    np.testing.assert_allclose(ni.pinv(A), np.linalg.pinv(A), atol=1e-13)
    assert ni.pinv(A.astype(np.complex64)).dtype == np.complex64
    x, res, rank, sv = ni.lstsq(A, B)
    wx, wres, wrank, wsv = np.linalg.lstsq(A, B, rcond=None)
    np.testing.assert_allclose(x, wx, atol=1e-13)
    np.testing.assert_allclose(res, wres, rtol=1e-10)
    assert res.dtype == np.float64 and sv.dtype == np.float64 and rank == wrank
    np.testing.assert_allclose(sv, wsv, rtol=1e-12)
    x32 = ni.lstsq(A.astype(np.complex64), B.astype(np.complex64))
    assert x32[0].dtype == np.complex64 and x32[1].dtype == np.float32
    np.testing.assert_allclose(x32[0], wx, atol=1e-5)
    # rank deficient
    D = _c(rng, 5, 2) @ _c(rng, 2, 4)
    np.testing.assert_allclose(ni.pinv(D), np.linalg.pinv(D), atol=1e-12)
    assert int(ni.lstsq(D, _c(rng, 5, 1)).rank) == 2


def test_pinv_hermitian_and_per_matrix_rtol():
    H = hpd(3, 4, seed=22).numpy()
    H[1] = H[1] @ np.diag([1, 1, 1, 0]) @ H[1]  # singular Hermitian
    np.testing.assert_allclose(ni.pinv(H, hermitian=True), np.linalg.pinv(H, hermitian=True), atol=1e-10)
    Ht = torch.from_numpy(H)
    got = ni.pinv(Ht, rtol=torch.tensor([1e-12, 1e-12, 0.5]))
    torch.testing.assert_close(got, torch.linalg.pinv(Ht, rtol=torch.tensor([1e-12, 1e-12, 0.5])))


def test_lstsq_mixed_real_and_complex_promotes():
    rng = np.random.default_rng(2)
    A, B = _c(rng, 5, 3), rng.standard_normal((5, 2))
    for a, b in ((A, B), (A.real.copy(), B + 1j)):
        x = ni.lstsq(a, b)[0]
        want = np.linalg.lstsq(a, b, rcond=None)[0]
        assert x.dtype == want.dtype == np.complex128
        np.testing.assert_allclose(x, want, atol=1e-13)
    got = ni.lstsq(torch.from_numpy(B.astype(np.float32)[:, :1].repeat(3, 1)), torch.from_numpy(A.astype(np.complex64)))
    assert got.solution.dtype == torch.complex64


def test_project_complex_is_orthogonal():
    rng = np.random.default_rng(3)
    W, F = _c(rng, 2, 5), _c(rng, 4, 5)
    P = ni.project(F, W)
    assert P.dtype == np.complex128
    np.testing.assert_allclose((F - P) @ W.conj().T, 0, atol=1e-13)  # residual orthogonal to the rows
    np.testing.assert_allclose(ni.project(P, W), P, atol=1e-13)  # idempotent
    np.testing.assert_allclose(P, F @ np.linalg.pinv(W) @ W, atol=1e-13)
    np.testing.assert_allclose(ni.project(F, W, rtol=1e-10), P, atol=1e-13)
    np.testing.assert_allclose(ni.project(F, W, ridge=1e-12), P, atol=1e-9)
    layer = ni.OrthogonalProjection(complement=True)
    out = layer(torch.from_numpy(F), torch.from_numpy(W))
    np.testing.assert_allclose(out.numpy(), F - P, atol=1e-13)
