"""Every method's gradient is the analytic derivative of the inverse: torch.linalg.inv's."""

from __future__ import annotations

import pytest
import torch

import helpers
import neuralinv as ni
from neuralinv.methods import METHODS as REGISTRY

N = 3
# Options that make the iterative methods converge fully on these small, easy matrices, and the
# learned method's model (its ball around a matrix near I holds these inputs; see as_input).
OPTIONS = {
    "newton_schulz": {"tol": 1.0},
    "gradient": {"tol": 1.0, "lr": 1.0, "options": {"momentum": 0.5}},
    "learned": {"model": "builtin:ball3"},
}
METHODS = sorted(REGISTRY)


def well_conditioned(batch=2, n=N, seed=0):
    """``I + G / n``, G standard normal."""
    return helpers.well_conditioned(batch, n, seed=seed, shift=1, spread=n)


def as_input(method, M):
    """Cholesky needs SPD input under every perturbation gradcheck makes, so it is fed a
    symmetric function of the free variable; the learned model inputs inside its ball (a
    contraction of M towards the ball's center); the others take it as is."""
    if method == "cholesky":
        return M @ M.mT + torch.eye(M.shape[-1], dtype=M.dtype)
    if method == "learned":
        center = ni.LearnedInverse.load("builtin:ball3").region.center.to(M.dtype)
        return center + 0.1 * (M - torch.eye(M.shape[-1], dtype=M.dtype))
    return M


def inverse(method, M):
    sol = ni.invert(as_input(method, M), method=method, **OPTIONS.get(method, {}))
    assert sol.all_ok, sol.counts()
    return sol.inverse


@pytest.mark.parametrize("method", METHODS)
def test_gradcheck(method):
    # The gradient method takes hundreds of steps per call: one matrix keeps gradcheck quick.
    M = well_conditioned(batch=1 if method == "gradient" else 2).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda m: inverse(method, m), (M,), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_gradients_equal_torch_linalg_inv(method):
    M = well_conditioned(batch=4, seed=1)
    W = torch.randn(4, N, N, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    grads = []
    for f in (lambda m: inverse(method, m), lambda m: torch.linalg.inv(as_input(method, m))):
        m = M.clone().requires_grad_(True)
        (f(m) * W).sum().backward()
        grads.append(m.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_second_derivatives(method):
    M = well_conditioned(batch=1).requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda m: inverse(method, m), (M,))


def test_double_backward_equals_torch_linalg_inv():
    M = well_conditioned(batch=2, seed=4)
    out = []
    for f in (lambda m: ni.inv(m, method="newton_schulz", tol=1.0), torch.linalg.inv):
        m = M.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(f(m).square().sum(), m, create_graph=True)
        (gg,) = torch.autograd.grad(g.sin().sum(), m)
        out.append((g, gg))
    torch.testing.assert_close(out[0], out[1], rtol=1e-9, atol=1e-10)


def test_forward_mode_tangent():
    """Forward AD once gave no tangent at all (issue 12): it is -X dA X, as torch.linalg.inv's."""
    import torch.autograd.forward_ad as fwAD

    M = well_conditioned()
    T = torch.randn(M.shape, generator=torch.Generator().manual_seed(7), dtype=M.dtype)
    with fwAD.dual_level():
        tangents = [
            fwAD.unpack_dual(f(fwAD.make_dual(M, T))).tangent
            for f in (lambda m: ni.inv(m, method="lu"), torch.linalg.inv)
        ]
    assert tangents[0] is not None
    torch.testing.assert_close(tangents[0], tangents[1], rtol=1e-10, atol=1e-12)


def test_backward_through_vmap_of_a_tensor_that_requires_grad():
    M = well_conditioned(batch=4, seed=5)
    grads = []
    for f in (lambda a: ni.inv(a, method="lu"), torch.linalg.inv):
        m = M.clone().requires_grad_(True)
        torch.func.vmap(f)(m).sum().backward()
        grads.append(m.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-12)


def test_gradient_flows_through_batch_shapes_and_float32():
    M = well_conditioned(batch=6, seed=3).reshape(2, 3, N, N).to(torch.float32)
    M.requires_grad_(True)
    X = ni.inv(M, method="lu")
    assert X.shape == (2, 3, N, N) and X.requires_grad
    X.sum().backward()
    ref = M.detach().clone().requires_grad_(True)
    torch.linalg.inv(ref).sum().backward()
    assert M.grad.dtype == torch.float32
    torch.testing.assert_close(M.grad, ref.grad, rtol=1e-4, atol=1e-5)


def test_no_graph_without_requires_grad():
    X = ni.inv(well_conditioned(), method="newton_schulz")
    assert not X.requires_grad
