"""Higher-order and transformed derivatives of pinv, lstsq and project: double backward,
forward mode, torch.func (vmap, jacrev, jacfwd, hessian), compared with torch.linalg."""

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck
from torch.func import hessian, jacfwd, jacrev, vmap

import neuralinv as ni

F64 = torch.float64


def randn(*shape, seed=0):
    return torch.randn(*shape, dtype=F64, generator=torch.Generator().manual_seed(seed))


def low_rank(batch, m, n, r, seed=0):
    return randn(batch, m, r, seed=seed) @ randn(batch, r, n, seed=seed + 1)


def ridge_ref(A, B, lam):
    return torch.linalg.solve(A.mT @ A + lam * torch.eye(A.shape[-1], dtype=F64), A.mT @ B)


def proj_ref(f, W):
    """f projected on row(W) by torch.linalg.pinv; f (..., d), W (..., r, d)."""
    return (torch.linalg.pinv(W) @ W @ f.unsqueeze(-1)).squeeze(-1)


def req(*ts):
    return tuple(t.clone().requires_grad_() for t in ts)


A_TALL, B_TALL = randn(2, 5, 3, seed=1), randn(2, 5, 2, seed=2)
A_WIDE, B_WIDE = randn(2, 3, 5, seed=3), randn(2, 3, 2, seed=4)
A_DEF = low_rank(2, 5, 3, 2, seed=5)  # rank 2 of 3
F_ROWS, W_BASIS = randn(3, 5, seed=7), randn(3, 2, 5, seed=8)
W_DEF = W_BASIS.clone()
W_DEF[1, 1] = 2 * W_DEF[1, 0]

CASES = {
    "pinv-tall": (ni.pinv, (A_TALL,)),
    "pinv-wide": (ni.pinv, (A_WIDE,)),
    # a cutoff far above the finite-difference steps keeps the rank fixed (fixed-rank derivative)
    "pinv-rank2-rtol": (lambda a: ni.pinv(a, rtol=1e-4), (A_DEF,)),
    "pinv-ridge": (lambda a: ni.pinv(a, ridge=0.3), (A_DEF,)),
    "lstsq-tall": (lambda a, b: ni.lstsq(a, b).solution, (A_TALL, B_TALL)),
    "lstsq-wide": (lambda a, b: ni.lstsq(a, b).solution, (A_WIDE, B_WIDE)),
    "lstsq-svd": (lambda a, b: ni.lstsq(a, b, method="svd").solution, (A_TALL, B_TALL)),
    "lstsq-rank2-rcond": (lambda a, b: ni.lstsq(a, b, rcond=1e-4).solution, (A_DEF, B_TALL)),
    "lstsq-ridge": (lambda a, b: ni.lstsq(a, b, ridge=0.2).solution, (A_WIDE, B_WIDE)),
    "lstsq-vector": (lambda a, b: ni.lstsq(a, b).solution, (A_TALL, B_TALL[..., 0])),
    "project": (lambda f, w: ni.project(f, w, complement=True), (F_ROWS, W_BASIS)),
    "project-shared": (lambda f, w: ni.project(f, w), (F_ROWS, W_BASIS[0])),
    "project-svd-rankdef": (lambda f, w: ni.project(f, w, rtol=1e-4), (F_ROWS, W_DEF)),
    "project-shared-svd": (lambda f, w: ni.project(f, w, rtol=1e-4), (F_ROWS, W_DEF[1])),
    "project-ridge": (lambda f, w: ni.project(f, w, ridge=0.1), (F_ROWS, W_DEF)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck_forward_mode_and_batched(name):
    fn, args = CASES[name]
    assert gradcheck(fn, req(*args), check_forward_ad=True, check_batched_grad=True)


@pytest.mark.parametrize("name", list(CASES))
def test_gradgradcheck(name):
    fn, args = CASES[name]
    assert gradgradcheck(fn, req(*args), check_fwd_over_rev=True, check_batched_grad=True)


def second_derivative(fn, A, V):
    """d/dA <V, d/dA sum(fn(A)^2)>: zero everywhere when a backward is not differentiable."""
    (A,) = req(A)
    (g,) = torch.autograd.grad(fn(A).square().sum(), A, create_graph=True)
    (h,) = torch.autograd.grad((g * V).sum(), A)
    return h


@pytest.mark.parametrize("A", [A_TALL, A_WIDE], ids=["tall", "wide"])
def test_second_derivative_of_pinv_is_torch_s_not_zero(A):
    V = randn(*A.shape, seed=9)
    got = second_derivative(ni.pinv, A, V)
    ref = second_derivative(torch.linalg.pinv, A, V)
    assert ref.abs().max() > 0.1
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-11)
    B = randn(A.shape[0], A.shape[1], 2, seed=10)
    got = second_derivative(lambda a: ni.lstsq(a, B).solution, A, V)
    ref = second_derivative(lambda a: torch.linalg.pinv(a) @ B, A, V)
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-11)


# ----------------------------------------------------------------------------- torch.func


def flat(out):
    return torch.cat([t.reshape(-1) for t in (out if isinstance(out, tuple) else (out,))])


FUNC_CASES = {
    "pinv": (ni.pinv, torch.linalg.pinv, (randn(4, 5, 3, seed=20),)),
    "pinv-wide": (ni.pinv, torch.linalg.pinv, (randn(4, 2, 5, seed=21),)),
    "lstsq": (
        lambda a, b: ni.lstsq(a, b).solution,
        lambda a, b: torch.linalg.lstsq(a, b).solution,
        (randn(4, 6, 3, seed=22), randn(4, 6, 2, seed=23)),
    ),
    "lstsq-wide": (
        lambda a, b: ni.lstsq(a, b).solution,
        lambda a, b: torch.linalg.pinv(a) @ b,
        (randn(4, 3, 6, seed=24), randn(4, 3, 2, seed=25)),
    ),
    "lstsq-svd": (
        lambda a, b: ni.lstsq(a, b, method="svd").solution,
        lambda a, b: torch.linalg.lstsq(a, b).solution,
        (randn(4, 6, 3, seed=26), randn(4, 6, 2, seed=27)),
    ),
    "lstsq-ridge": (
        lambda a, b: ni.lstsq(a, b, ridge=0.4).solution,
        lambda a, b: ridge_ref(a, b, 0.4),
        (randn(4, 6, 3, seed=28), randn(4, 6, 2, seed=29)),
    ),
    "project": (
        lambda f, w: ni.project(f, w),
        proj_ref,
        (randn(4, 3, 6, seed=30), randn(4, 3, 2, 6, seed=31)),
    ),
    "project-shared": (
        lambda f, w: ni.project(f, w, complement=True),
        lambda f, w: f - f @ (torch.linalg.pinv(w) @ w),
        (randn(4, 3, 6, seed=32), randn(4, 2, 6, seed=33)),
    ),
    "project-svd": (
        lambda f, w: ni.project(f, w, rtol=1e-8),
        proj_ref,
        (randn(4, 3, 6, seed=34), randn(4, 3, 2, 6, seed=35)),
    ),
    "project-ridge": (
        lambda f, w: ni.project(f, w, ridge=0.2),
        lambda f, w: (
            w.mT @ torch.linalg.solve(w @ w.mT + 0.2 * torch.eye(2, dtype=F64), w @ f[..., None])
        )[..., 0],
        (randn(4, 3, 6, seed=36), randn(4, 3, 2, 6, seed=37)),
    ),
}


@pytest.mark.parametrize("name", list(FUNC_CASES))
def test_vmap_jacrev_jacfwd_match_torch_linalg(name):
    ours, ref, args = FUNC_CASES[name]
    torch.testing.assert_close(vmap(ours)(*args), ref(*args), rtol=1e-10, atol=1e-12)
    argnums = tuple(range(len(args)))
    one = tuple(a[0] for a in args)  # the transforms on a single problem
    for transform in (jacrev, jacfwd):
        got = flat(transform(ours, argnums=argnums)(*one))
        want = flat(transform(ref, argnums=argnums)(*one))
        assert want.abs().max() > 0.01
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)
    # jacobians of a whole batch, vmapped: the rules compose
    got = vmap(jacrev(ours, argnums=argnums))(*args)
    torch.testing.assert_close(flat(got), flat(vmap(jacrev(ref, argnums=argnums))(*args)))
    # vmap over the vmapped dimension of only one argument
    got = vmap(ours, in_dims=(0,) + (None,) * (len(args) - 1))(*((args[0],) + one[1:]))
    want = vmap(ref, in_dims=(0,) + (None,) * (len(args) - 1))(*((args[0],) + one[1:]))
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_hessian_and_vectorized_jacobian():
    A = randn(5, 3, seed=40)
    h = hessian(lambda a: ni.pinv(a).square().sum())(A)
    torch.testing.assert_close(h, hessian(lambda a: torch.linalg.pinv(a).square().sum())(A))
    b = randn(5, seed=41)
    jac = torch.autograd.functional.jacobian
    got = jac(lambda a: ni.lstsq(a, b).solution, A, vectorize=True)
    torch.testing.assert_close(got, jac(lambda a: torch.linalg.pinv(a) @ b, A, vectorize=True))
    f, W = randn(4, 5, seed=42), randn(2, 5, seed=43)
    got = jac(lambda w: ni.project(f, w), W, vectorize=True)
    torch.testing.assert_close(got, jac(lambda w: f @ (torch.linalg.pinv(w) @ w), W))


def test_lstsq_result_under_vmap_has_status_and_no_method_labels():
    A, B = randn(3, 6, 3, seed=50), randn(3, 6, 1, seed=51)
    A[1, 0, 0] = float("nan")

    def fields(a, b):
        res = ni.lstsq(a, b)
        assert res.method is None  # per-element labels cannot be read inside a transform
        return res.solution, res.status, res.rank

    X, status, rank = vmap(fields)(A, B)
    assert status.tolist() == [0, 5, 0] and rank.tolist() == [3, -1, 3]
    assert torch.isnan(X[1]).all()
    torch.testing.assert_close(X[[0, 2]], torch.linalg.lstsq(A[[0, 2]], B[[0, 2]]).solution)
    assert list(ni.lstsq(A, B).method) == ["qr", "none", "qr"]  # outside transforms: labels


def test_one_sided_derivatives_match_torch():
    # gradient and tangent with respect to B (or F) alone: the branches that skip A's (W's) terms
    A, B = A_TALL, B_TALL
    (Bg,) = req(B)
    (gB,) = torch.autograd.grad(ni.lstsq(A, Bg).solution.square().sum(), Bg)
    (Br,) = req(B)
    (want,) = torch.autograd.grad((torch.linalg.pinv(A) @ Br).square().sum(), Br)
    torch.testing.assert_close(gB, want, rtol=1e-10, atol=1e-12)
    dB = randn(*B.shape, seed=60)
    _, tangent = torch.func.jvp(lambda b: ni.lstsq(A, b).solution, (B,), (dB,))
    torch.testing.assert_close(tangent, torch.linalg.pinv(A) @ dB, rtol=1e-10, atol=1e-12)
    dF = randn(*F_ROWS.shape, seed=61)
    _, tangent = torch.func.jvp(lambda f: ni.project(f, W_BASIS), (F_ROWS,), (dF,))
    torch.testing.assert_close(tangent, proj_ref(dF, W_BASIS), rtol=1e-10, atol=1e-12)


def test_vmap_with_per_matrix_cutoffs_and_over_an_empty_batch():
    A = low_rank(3, 5, 4, 2, seed=62) + 1e-6 * randn(3, 5, 4, seed=63)
    rtol, atol = torch.tensor([1e-9, 1e-3, 1e-3], dtype=F64), torch.tensor([0.0, 0.0, 1e-2], dtype=F64)
    got = vmap(lambda a, r, t: ni.pinv(a, rtol=r, atol=t))(A, rtol, atol)
    want = torch.linalg.pinv(A, rtol=rtol, atol=atol)
    assert torch.linalg.matrix_rank(got).tolist() == [4, 2, 2]
    torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10)
    empty = torch.zeros(0, 5, 3, dtype=F64)
    assert vmap(ni.pinv)(empty).shape == (0, 3, 5)
    assert vmap(lambda a: ni.lstsq(a, B_TALL[0]).solution)(empty).shape == (0, 3, 2)


def test_singular_values_are_empty_under_vmap():
    def sv(a, b):
        return ni.lstsq(a, b).singular_values

    assert vmap(sv)(A_TALL, B_TALL).shape == (2, 0)
    torch.testing.assert_close(ni.lstsq(A_TALL, B_TALL).singular_values, torch.linalg.svdvals(A_TALL))
