"""lstsq, pinv, project: which type and dtype comes out for which inputs, and one meaning per
name on LstsqResult (docs/nonsquare.md, "Types and names")."""

import traceback

import numpy as np
import pytest
import torch

import neuralinv as ni

RNG = np.random.default_rng(0)
A = RNG.standard_normal((3, 6, 4))  # tall, full rank
B = RNG.standard_normal((3, 6, 2))
F = RNG.standard_normal((5, 4))
W = RNG.standard_normal((2, 4))  # a shared basis of two rows


def _is_numpy(res) -> bool:
    """Every array field of an LstsqResult is numpy (True) or every one is a tensor (False)."""
    arrays = [res.solution, res.residuals, res.rank, res.singular_values, res.status, res.normal_residual]
    kinds = {isinstance(x, np.ndarray) for x in arrays}
    assert kinds in ({True}, {False}) and all(isinstance(x, (np.ndarray, torch.Tensor)) for x in arrays)
    return kinds == {True}


@pytest.mark.parametrize(
    "a, b, numpy_out",
    [
        (A, B, True),
        (A.tolist(), B, True),  # array-likes count as numpy
        (A, torch.from_numpy(B), False),  # a tensor on either side: tensors out
        (torch.from_numpy(A), B, False),
        (torch.from_numpy(A), torch.from_numpy(B), False),
    ],
    ids=["numpy,numpy", "list,numpy", "numpy,torch", "torch,numpy", "torch,torch"],
)
def test_lstsq_numpy_out_only_when_neither_is_a_tensor(a, b, numpy_out):
    res = ni.lstsq(a, b)
    assert _is_numpy(res) is numpy_out
    x = res.solution if numpy_out else res.solution.numpy()
    np.testing.assert_allclose(x, np.linalg.pinv(A) @ B, rtol=1e-10, atol=1e-12)


def test_lstsq_mixed_types_keep_the_tensors_gradient():
    Bt = torch.from_numpy(B).requires_grad_()
    ni.lstsq(A, Bt).solution.sum().backward()
    # d(sum A^+ B)/dB = (A^+)^T 1
    want = np.linalg.pinv(A).transpose(0, 2, 1) @ np.ones((3, 4, 2))
    np.testing.assert_allclose(Bt.grad.numpy(), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "f, w, numpy_out",
    [
        (F, W, True),
        (F.tolist(), W.tolist(), True),
        (F, torch.from_numpy(W), False),  # was numpy (F decided) and dropped W's gradient
        (torch.from_numpy(F), W, False),
    ],
    ids=["numpy,numpy", "list,list", "numpy,torch", "torch,numpy"],
)
def test_project_numpy_out_only_when_neither_is_a_tensor(f, w, numpy_out):
    out = ni.project(f, w)
    assert isinstance(out, np.ndarray) is numpy_out and isinstance(out, (np.ndarray, torch.Tensor))
    got = out if numpy_out else out.numpy()
    np.testing.assert_allclose(got, F @ np.linalg.pinv(W) @ W, rtol=1e-10, atol=1e-12)


def test_learnable_basis_gets_its_gradient_from_numpy_features():
    layer = ni.OrthogonalProjection(dim=4, rank=2, generator=torch.Generator().manual_seed(1)).double()
    out = layer(F)  # numpy features, a Parameter basis
    assert isinstance(out, torch.Tensor) and out.requires_grad
    out.square().sum().backward()
    Wp = layer.basis.detach().clone().requires_grad_()
    ni.project(torch.from_numpy(F), Wp).square().sum().backward()
    torch.testing.assert_close(layer.basis.grad, Wp.grad, rtol=1e-12, atol=1e-14)
    assert float(layer.basis.grad.abs().max()) > 0


def test_pinv_type_follows_a_not_its_cutoffs():
    P, rank = ni.pinv(A, rtol=torch.tensor([1e-12, 1e-12, 0.9]), return_rank=True)
    assert isinstance(P, np.ndarray) and isinstance(rank, np.ndarray)
    assert rank.tolist() == [4, 4, 1]
    Pt, rank_t = ni.pinv(torch.from_numpy(A), return_rank=True)
    assert isinstance(Pt, torch.Tensor) and isinstance(rank_t, torch.Tensor)
    np.testing.assert_allclose(Pt.numpy(), np.linalg.pinv(A), rtol=1e-10, atol=1e-12)


def test_project_promotes_dtypes_as_numpy():
    # a real F on a complex basis: the projection is complex (it was cast to real, dropping
    # the imaginary part with a warning)
    Wc = W + 1j * RNG.standard_normal((2, 4))
    out = ni.project(F, Wc)
    assert out.dtype == np.complex128
    np.testing.assert_allclose(out, F @ np.linalg.pinv(Wc) @ Wc, rtol=1e-10, atol=1e-12)
    mixed = ni.project(F.astype(np.float32), W)
    assert mixed.dtype == np.result_type(np.float32, np.float64) == np.float64
    np.testing.assert_allclose(mixed, F.astype(np.float32) @ np.linalg.pinv(W) @ W, rtol=1e-6)
    assert ni.project(F.astype(np.float32), W.astype(np.float32)).dtype == np.float32


def test_lstsq_result_names_mean_one_thing_each():
    res = ni.lstsq(A, B)
    R = A @ (np.linalg.pinv(A) @ B) - B
    # residuals: numpy's and torch's squared column norms of A X - B
    np.testing.assert_allclose(res.residuals, (R**2).sum(-2), rtol=1e-10)
    torch_res = torch.linalg.lstsq(torch.from_numpy(A), torch.from_numpy(B), driver="gelsd").residuals
    np.testing.assert_allclose(res.residuals, torch_res.numpy(), rtol=1e-10)
    # normal_residual: the certificate, ||A^T (A X - B)||_F / (||A||_F (||A||_F ||X||_F + ||B||_F)),
    # passing at <= tol. A truncation that drops singular value 1e-2 leaves a real (not
    # rounding-level) value in it, which the formula must reproduce.
    U = np.linalg.qr(RNG.standard_normal((6, 3)))[0]
    V = np.linalg.qr(RNG.standard_normal((3, 3)))[0]
    M = U @ np.diag([1.0, 0.5, 1e-2]) @ V.T
    b = RNG.standard_normal((6, 1))
    cut = ni.lstsq(M, b, rcond=0.05)
    X = cut.solution
    num = np.linalg.norm(M.T @ (M @ X - b))
    den = np.linalg.norm(M) * (np.linalg.norm(M) * np.linalg.norm(X) + np.linalg.norm(b))
    np.testing.assert_allclose(cut.normal_residual, num / den, rtol=1e-8)
    assert cut.normal_residual > 1e-6 > cut.tol and not cut.all_ok
    assert (res.normal_residual <= res.tol).all() and res.all_ok and list(res.ok) == [True] * 3
    # the certificate's former name is gone, with an error that names all three (Python's own
    # message would suggest "residuals", which means something else)
    with pytest.raises(AttributeError, match="normal_residual") as info:
        res.residual  # noqa: B018
    assert "Did you mean" not in "".join(traceback.format_exception(info.value))
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        res.nonsense  # noqa: B018
    assert hasattr(res, "residuals") and not hasattr(res, "residual")
