"""Forward mode, second derivatives and torch.func transforms through ``ni.inv`` and
``ni.invert(...).inverse``, for every registered method, against torch.linalg.inv.

The methods are taken from the registry (``neuralinv.methods.METHODS``), so a new method is
tested here without editing this file; only the inputs a method needs are set per method:
``cholesky`` gets a symmetric positive definite function of the free variable, ``learned`` the
shipped ``builtin:ball3`` model and matrices inside its ball, ``block`` 6x6 matrices (so the
Schur recursion over 3x3 blocks runs), the iterative methods options that converge fully.
"""

from __future__ import annotations

import functools

import pytest
import torch
from torch.func import grad, hessian, jacfwd, jacrev, jvp, vjp, vmap

import neuralinv as ni
from neuralinv.methods import METHODS

DT = torch.float64
OPTIONS = {
    "newton_schulz": {"tol": 1.0},
    "gradient": {"tol": 1.0, "lr": 1.0, "options": {"momentum": 0.5}},
    "learned": {"model": "builtin:ball3"},
}
SIZE = {"block": 6}
ALL = sorted(METHODS)


@functools.cache
def ball_center() -> torch.Tensor:
    return ni.LearnedInverse.load("builtin:ball3").region.center.to(DT)


def free(method: str, batch: tuple[int, ...] = (2,), seed: int = 0) -> torch.Tensor:
    """A batch of the free variable M, of which ``domain`` makes the method's input."""
    n = SIZE.get(method, 3)
    g = torch.Generator().manual_seed(seed)
    if method == "learned":  # inside the ball |A - center|_ij <= 0.15
        return ball_center() + 0.05 * (2 * torch.rand(*batch, n, n, generator=g, dtype=DT) - 1)
    return torch.eye(n, dtype=DT) + torch.randn(*batch, n, n, generator=g, dtype=DT) / (2 * n)


def domain(method: str, M: torch.Tensor) -> torch.Tensor:
    """The method's input as a smooth function of M: the symmetric part for cholesky (SPD, as
    M is close to the identity, under every perturbation the checks make), M itself else."""
    return (M + M.mT) / 2 if method == "cholesky" else M


def ours(method: str, via: str = "inv"):
    opts = OPTIONS.get(method, {})
    if via == "inv":
        return lambda M: ni.inv(domain(method, M), method=method, **opts)
    return lambda M: ni.invert(domain(method, M), method=method, **opts).inverse


def reference(method: str):
    return lambda M: torch.linalg.inv(domain(method, M))


def close(a, b, tol=1e-9):
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@pytest.fixture(params=ALL)
def method(request):
    return request.param


def test_every_method_is_tested_on_its_own_path(method):
    """The inputs above are what each method answers itself (no fallback), certified."""
    sol = ni.invert(domain(method, free(method)), method=method, **OPTIONS.get(method, {}))
    assert sol.all_ok, sol.counts()
    if method not in ("auto",):
        assert set(sol.method.ravel()) == {method}, sol.method_counts()


@pytest.mark.parametrize("via", ["inv", "invert"])
def test_gradcheck_forward_and_backward_ad(method, via):
    # The gradient method takes hundreds of steps per call: one matrix keeps this quick.
    M = free(method, (1,) if method == "gradient" else (2,)).requires_grad_(True)
    assert torch.autograd.gradcheck(
        ours(method, via), (M,), check_forward_ad=True, check_batched_grad=True,
        atol=1e-6, rtol=1e-5,
    )  # fmt: skip


def test_gradgradcheck(method):
    M = free(method, (1,)).requires_grad_(True)
    assert torch.autograd.gradgradcheck(
        ours(method), (M,), check_fwd_over_rev=True, check_batched_grad=True, atol=1e-6, rtol=1e-5
    )


def test_forward_mode_tangent_is_minus_x_da_x(method):
    """The exact failure this file was written for: forward AD used to give no tangent."""
    M = free(method)
    T = torch.randn(M.shape, generator=torch.Generator().manual_seed(5), dtype=DT)
    for via in ("inv", "invert"):
        X, dX = jvp(ours(method, via), (M,), (T,))
        X_ref, dX_ref = jvp(reference(method), (M,), (T,))
        close(X, X_ref)
        close(dX, dX_ref)
        import torch.autograd.forward_ad as fwAD

        with fwAD.dual_level():
            out = ours(method, via)(fwAD.make_dual(M, T))
            tangent = fwAD.unpack_dual(out).tangent
        assert tangent is not None
        close(tangent, dX_ref)


@pytest.mark.parametrize("jac", [jacrev, jacfwd], ids=["jacrev", "jacfwd"])
def test_jacobians_equal_torch_linalg_inv(method, jac):
    M = free(method, (1,), seed=1)
    close(jac(ours(method))(M), jac(reference(method))(M))
    close(jac(ours(method, "invert"))(M), jac(reference(method))(M))


def test_grad_and_vjp_of_a_scalar_loss(method):
    M = free(method, seed=2)
    W = torch.randn(M.shape, generator=torch.Generator().manual_seed(3), dtype=DT)

    def loss(f):
        return lambda m: (f(m) * W).sum() + (f(m) ** 2).sum()

    close(grad(loss(ours(method)))(M), grad(loss(reference(method)))(M))
    out, pull = vjp(ours(method, "invert"), M)
    ref_out, ref_pull = vjp(reference(method), M)
    close(out, ref_out)
    close(pull(W)[0], ref_pull(W)[0])


def test_vmap_equals_a_loop(method):
    M = free(method, (4, 2), seed=4)  # vmapped over 4, each slice a batch of 2
    for via in ("inv", "invert"):
        f = ours(method, via)
        batched = vmap(f)(M)
        looped = torch.stack([f(m) for m in M])
        close(batched, looped)
        close(batched, torch.linalg.inv(domain(method, M)))
    # Another vmapped dimension (the second), nested vmap, and vmap of jacrev (per-sample
    # Jacobians): all the physical batch inverted in one call.
    close(vmap(ours(method), in_dims=1)(M.movedim(0, 1)), looped)
    close(vmap(vmap(ours(method)))(M), looped)
    per_sample = vmap(jacrev(ours(method)))(M[:2, 0])
    close(per_sample, vmap(jacrev(reference(method)))(M[:2, 0]))


@pytest.mark.parametrize(
    "order",
    [
        hessian,
        lambda f: jacfwd(jacfwd(f)),  # forward over forward: silently wrong before the fix
        lambda f: jacrev(jacrev(f)),
        lambda f: jacrev(jacfwd(f)),
        lambda f: jacfwd(hessian(f)),  # third derivatives
    ],
    ids=["hessian", "fwd-fwd", "rev-rev", "rev-fwd", "third"],
)
@pytest.mark.parametrize("method", ["lu", "newton_schulz"])
def test_higher_derivatives_of_a_scalar_loss(method, order):
    M = free(method, (1,), seed=6)[0]

    def loss(f):
        return lambda m: f(m).sin().sum()

    close(order(loss(ours(method)))(M), order(loss(reference(method)))(M), 1e-8)


def test_invert_under_vmap_reports_per_slice_statuses_and_physical_labels():
    A = free("lu", (3, 2))
    A[1, 0] = 0.0  # singular
    sol_shape = {}

    def f(a):
        sol = ni.invert(a, method="lu")
        sol_shape["method"] = sol.method.shape
        return sol.inverse, sol.status, sol.residual, sol.rcond

    X, status, residual, rcond = vmap(f)(A)
    assert status.shape == (3, 2) and residual.shape == (3, 2) and rcond.shape == (3, 2)
    expected = torch.zeros(3, 2, dtype=torch.int8)
    expected[1, 0] = int(ni.Status.SINGULAR)
    assert torch.equal(status, expected)  # bitwise: an exactly zero matrix among well-conditioned ones
    assert torch.isnan(X[1, 0]).all() and torch.isfinite(X[[0, 2]]).all()
    close(X[0], torch.linalg.inv(A[0]))
    # Labels are numpy, not tensors: they describe the physical batch, vmapped dims first.
    assert sol_shape["method"] == (3, 2)


def test_inv_under_vmap_raises_naming_physical_batch_indices():
    A = free("lu", (3, 2))
    A[2, 1] = 0.0
    with pytest.raises(ni.SingularMatrixError, match=r"\[\(2, 1\)\] \(1 of 6\)") as err:
        vmap(lambda a: ni.inv(a, method="lu"))(A)
    assert err.value.indices == [(2, 1)]
    # Nested vmap: the outer vmapped dimension first, then the inner one, then A's own.
    B = free("lu", (2, 3, 1))
    B[0, 2, 0] = 0.0
    with pytest.raises(ni.SingularMatrixError) as err:
        vmap(vmap(lambda a: ni.inv(a, method="lu")))(B)
    assert err.value.indices == [(0, 2, 0)]
    # in_dims=1: the vmapped dimension still comes first.
    with pytest.raises(ni.SingularMatrixError) as err:
        vmap(lambda a: ni.inv(a, method="lu"), in_dims=1)(A.movedim(0, 1))
    assert err.value.indices == [(2, 1)]


def test_inv_under_grad_raises_and_warns_as_without_it():
    A = free("lu", (3,))
    A[1] = 0.0
    with pytest.raises(ni.SingularMatrixError) as err:
        grad(lambda a: ni.inv(a, method="lu").sum())(A)
    assert err.value.indices == [(1,)]
    with pytest.raises(ni.SingularMatrixError):
        ni.inv(A.clone().requires_grad_(True), method="lu")
    idx = torch.arange(12, dtype=DT)
    bad = 1 / (idx[:, None] + idx + 1)  # Hilbert: rcond ~ 1e-17 < eps
    with pytest.warns(ni.IllConditionedWarning):
        grad(lambda a: ni.inv(a, method="lu").sum())(bad)


def test_nonfinite_input_under_transforms_raises_input_error():
    A = free("lu", (2,))
    A[0, 0, 0] = float("nan")
    with pytest.raises(ni.InputError, match=r"\[0\]"):
        vmap(lambda a: ni.inv(a, method="lu"))(A)
    with pytest.raises(ni.InputError):
        grad(lambda a: ni.inv(a, method="lu").sum())(A)


def test_float32_half_and_empty_batches_under_transforms():
    M = free("lu", (2,)).to(torch.float32)
    X, dX = jvp(ours("lu"), (M,), (torch.ones_like(M),))
    assert X.dtype == dX.dtype == torch.float32
    close(dX, jvp(reference("lu"), (M,), (torch.ones_like(M),))[1], 1e-4)
    H = free("lu", (2,)).to(torch.float16).requires_grad_(True)
    ni.inv(H, method="lu").float().sum().backward()
    assert H.grad.dtype == torch.float16 and torch.isfinite(H.grad).all()
    E = torch.zeros(0, 3, 3, dtype=DT)
    assert vmap(ours("lu"))(torch.zeros(2, 0, 3, 3, dtype=DT)).shape == (2, 0, 3, 3)
    assert jacrev(ours("lu"))(E).shape == (0, 3, 3, 0, 3, 3)


def test_plain_inputs_take_no_autograd_path():
    """numpy in and tensors outside autograd never reach the autograd Function."""
    from neuralinv import _autograd

    calls = []
    original = _autograd._Invert.apply
    _autograd._Invert.apply = lambda *a: calls.append(1) or original(*a)
    try:
        A = free("lu")
        assert not ni.inv(A, method="lu").requires_grad
        assert isinstance(ni.inv(A.numpy(), method="lu"), type(A.numpy()))
        with torch.no_grad():
            ni.inv(A.clone().requires_grad_(True), method="lu")
        assert calls == []
        ni.inv(A.clone().requires_grad_(True), method="lu")
        assert calls == [1]
    finally:
        _autograd._Invert.apply = original
