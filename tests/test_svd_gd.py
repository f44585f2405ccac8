"""svd_gd: the gradient-descent SVD against torch.linalg.svd."""

import numpy as np
import pytest
import torch

import neuralinv as ni

F64 = torch.float64


def test_recovers_singular_values_and_vectors_of_5x4():
    A = torch.randn(5, 4, dtype=F64, generator=torch.Generator().manual_seed(4))
    res = ni.svd_gd(A, optimizer="adam", steps=1000, lr=0.1)
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)
    assert (res.S - S).abs().max() < 1e-3
    assert (res.S[:-1] >= res.S[1:]).all()  # sorted descending
    # same singular vectors up to the fixed signs: |U^T U_ref| = I
    torch.testing.assert_close(
        res.U.mT @ U, torch.diag(torch.sign((res.U.mT @ U).diagonal())), atol=1e-3, rtol=0
    )
    torch.testing.assert_close(
        res.V.mT @ Vh.mT, torch.diag(torch.sign((res.V.mT @ Vh.mT).diagonal())), atol=1e-3, rtol=0
    )
    # sign convention: largest-magnitude entry of each U column is positive
    pick = res.U.abs().argmax(0)
    assert (res.U[pick, torch.arange(4)] > 0).all()
    assert res.reconstruction_error < 1e-3 and res.orthogonality_error < 1e-3
    assert res.loss_history.shape == (1000,)
    assert res.loss_history[-1] < 1e-6 * res.loss_history[0]


def test_batched_scaled_and_wide():
    g = torch.Generator().manual_seed(7)
    A = (
        torch.randn(3, 3, 6, dtype=F64, generator=g)
        * torch.tensor([1e-3, 1.0, 1e3], dtype=F64)[:, None, None]
    )
    res = ni.svd_gd(A, steps=1000, lr=0.1)
    S = torch.linalg.svdvals(A)
    assert res.S.shape == (3, 3) and res.U.shape == (3, 3, 3) and res.V.shape == (3, 6, 3)
    # relative accuracy is the same at every scale: A is scaled to unit RMS inside
    assert ((res.S - S).abs() / S[..., :1]).max() < 1e-3


def test_sign_step_prevents_the_stall_of_plain_descent():
    # The 5x4 matrix of the first test: plain descent (the blog's) collapses the smallest
    # component to s = 0 from these starts, because S = s^2 and a column of the square V cannot
    # change sign continuously; the sign step recovers it from every start.
    A = torch.randn(5, 4, dtype=F64, generator=torch.Generator().manual_seed(4))
    S = torch.linalg.svdvals(A)
    for seed in (0, 2):
        plain = ni.svd_gd(A, steps=800, lr=0.1, seed=seed, sign_step=False)
        assert plain.S[-1] < 1e-6 and plain.reconstruction_error > 0.1
        fixed = ni.svd_gd(A, steps=800, lr=0.1, seed=seed)
        assert (fixed.S - S).abs().max() < 1e-3, seed


def test_other_optimizers_run_and_reduce_loss():
    A = torch.randn(4, 3, dtype=F64, generator=torch.Generator().manual_seed(2))
    for name, lr in (("sgd", 0.05), ("rmsprop", 0.01), ("lbfgs", 1.0)):
        res = ni.svd_gd(A, optimizer=name, steps=150, lr=lr)
        assert torch.isfinite(res.S).all()
        assert res.loss_history[-1] < 0.1 * res.loss_history[0], name


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"optimizer": "adagrad"}, "optimizer"),
        ({"steps": 0}, "steps"),
        ({"lr": -1.0}, "lr"),
    ],
)
def test_bad_arguments(kw, match):
    with pytest.raises(ni.InputError, match=match):
        ni.svd_gd(torch.ones(3, 2), **kw)


def test_bad_shapes_and_values():
    with pytest.raises(ni.InputError, match=r"A must have shape .*\(4,\)"):
        ni.svd_gd(torch.ones(4))
    A = torch.ones(2, 3, 3)
    A[1, 0, 0] = float("nan")
    with pytest.raises(ni.InputError, match=r"NaN or Inf .*\[\[1\]\]"):
        ni.svd_gd(A)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numpy_in_numpy_out(dtype):
    # Numpy in, numpy out (as ni.invert): every field is an ndarray of A's float dtype, with
    # the values of the same call on a tensor.
    A = np.random.default_rng(3).standard_normal((2, 4, 3)).astype(dtype)
    res = ni.svd_gd(A, steps=300)
    ref = ni.svd_gd(torch.from_numpy(A), steps=300)
    for name in ("U", "S", "V", "loss_history", "reconstruction_error", "orthogonality_error"):
        got, want = getattr(res, name), getattr(ref, name)
        assert isinstance(got, np.ndarray), name
        assert got.shape == tuple(want.shape) and got.dtype == want.numpy().dtype, name
        np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-6 if dtype == np.float32 else 1e-12)
    assert res.S.dtype == dtype
    np.testing.assert_allclose(res.S, np.linalg.svd(A.astype(np.float64), compute_uv=False), atol=1e-4)
