"""lstsq, pinv, project and OrthogonalProjection: Penrose conditions, certificates, batch
independence, gradients."""

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

import neuralinv as ni

F64 = torch.float64


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0):
    return torch.randn(*shape, dtype=F64, generator=gen(seed))


def low_rank(batch, m, n, r, seed=0):
    return randn(batch, m, r, seed=seed) @ randn(batch, r, n, seed=seed + 1)


def penrose(A, P):
    """The four Penrose conditions' residuals, each relative to the size of its terms."""
    scale = torch.linalg.matrix_norm(A, 2) * torch.linalg.matrix_norm(P, 2)
    return (
        (A @ P @ A - A).abs().amax((-2, -1)) / torch.linalg.matrix_norm(A, 2),
        (P @ A @ P - P).abs().amax((-2, -1)) / torch.linalg.matrix_norm(P, 2),
        ((A @ P).mT - A @ P).abs().amax((-2, -1)) / scale,
        ((P @ A).mT - P @ A).abs().amax((-2, -1)) / scale,
    )


@pytest.mark.parametrize(
    "A",
    [
        randn(5, 7, 4, seed=1),  # tall
        randn(5, 3, 6, seed=2),  # wide
        low_rank(5, 6, 5, 2, seed=3),  # rank-deficient, repeated zero singular values
        low_rank(5, 4, 7, 1, seed=4),
    ],
    ids=["tall", "wide", "rank2-of-5", "rank1-wide"],
)
def test_pinv_penrose_and_matches_torch(A):
    P = ni.pinv(A)
    assert P.shape == A.shape[:-2] + (A.shape[-1], A.shape[-2])
    for cond in penrose(A, P):
        assert cond.max() < 1e-12
    torch.testing.assert_close(P, torch.linalg.pinv(A), rtol=1e-9, atol=1e-12)


def test_pinv_cutoff_convention_matches_torch():
    # singular values 1, 1e-3, 1e-9: which survive depends on atol / rtol exactly as in torch
    U = torch.linalg.qr(randn(6, 3, seed=5))[0]
    V = torch.linalg.qr(randn(4, 3, seed=6))[0]
    A = U @ torch.diag(torch.tensor([1.0, 1e-3, 1e-9], dtype=F64)) @ V.mT
    for kw in [{}, {"rtol": 1e-6}, {"atol": 1e-2}, {"atol": 1e-6, "rtol": 1e-2}, {"rtol": 0.0}]:
        torch.testing.assert_close(ni.pinv(A, **kw), torch.linalg.pinv(A, **kw), rtol=1e-7, atol=0)
    assert torch.linalg.matrix_rank(ni.pinv(A, rtol=1e-6)) == 2
    assert torch.linalg.matrix_rank(ni.pinv(A, atol=1e-2)) == 1


@pytest.mark.parametrize("shape", [(3, 0), (0, 4), (0, 0), (2, 0, 3, 4), (2, 5, 0)])
def test_pinv_empty_returns_transposed_shape(shape):
    A = torch.zeros(shape, dtype=F64)
    P = ni.pinv(A)
    assert P.shape == shape[:-2] + (shape[-1], shape[-2])
    assert P.shape == torch.linalg.pinv(A).shape


def test_pinv_ridge_is_tikhonov_and_smooth():
    A = low_rank(3, 6, 4, 2, seed=7)
    lam = 0.25
    P = ni.pinv(A, ridge=lam)
    ref = torch.linalg.solve(A.mT @ A + lam * torch.eye(4, dtype=F64), A.mT)
    torch.testing.assert_close(P, ref, rtol=1e-10, atol=1e-12)
    Ag = A.clone().requires_grad_()
    ni.pinv(Ag, ridge=lam).square().sum().backward()
    assert torch.isfinite(Ag.grad).all()


def test_pinv_numpy_in_numpy_out():
    A = np.arange(6.0).reshape(2, 3)
    P = ni.pinv(A)
    assert isinstance(P, np.ndarray) and P.shape == (3, 2)
    np.testing.assert_allclose(P, np.linalg.pinv(A), atol=1e-12)


# ------------------------------------------------------------------------------------- lstsq


def test_lstsq_full_rank_uses_qr_and_matches_reference():
    A, B = randn(4, 9, 5, seed=10), randn(4, 9, 3, seed=11)
    res = ni.lstsq(A, B)
    assert list(res.method) == ["qr"] * 4
    assert res.rank.tolist() == [5] * 4
    torch.testing.assert_close(
        res.solution, torch.linalg.lstsq(A, B).solution, rtol=1e-10, atol=1e-12
    )
    assert res.all_ok and (res.normal_residual < 1e-14).all()


def test_lstsq_wide_gives_minimum_norm_solution():
    A, B = randn(3, 4, 7, seed=12), randn(3, 4, 2, seed=13)
    res = ni.lstsq(A, B)
    torch.testing.assert_close(res.solution, torch.linalg.pinv(A) @ B, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(A @ res.solution, B, rtol=1e-10, atol=1e-12)
    assert res.all_ok


def test_lstsq_rank_deficient_elements_take_svd_route_and_are_certified():
    A = randn(5, 8, 4, seed=14)
    A[1] = low_rank(1, 8, 4, 2, seed=15)[0]
    A[3] = 0.0
    B = randn(5, 8, 2, seed=16)
    res = ni.lstsq(A, B)
    assert list(res.method) == ["qr", "svd", "qr", "svd", "qr"]
    assert res.rank.tolist() == [4, 2, 4, 0, 4]
    torch.testing.assert_close(res.solution, torch.linalg.pinv(A) @ B, rtol=1e-9, atol=1e-12)
    assert res.all_ok
    # Forced QR: A = 0 gives NaN (certificate fails); the rank-2 element gives a huge X that
    # still satisfies the normal equations to working precision (a least-squares solution of a
    # nearby problem, so the certificate passes) but is far from the minimum-norm one.
    forced = ni.lstsq(A, B, method="qr")
    assert not bool(forced.ok[3]) and not torch.isfinite(forced.solution[3]).any()
    assert bool(forced.ok[1])
    assert torch.linalg.matrix_norm(forced.solution[1]) > 1e6 * torch.linalg.matrix_norm(
        res.solution[1]
    )


def test_lstsq_truncation_is_visible_in_certificate():
    U = torch.linalg.qr(randn(7, 3, seed=17))[0]
    V = torch.linalg.qr(randn(3, 3, seed=18))[0]
    A = U @ torch.diag(torch.tensor([1.0, 0.5, 1e-4], dtype=F64)) @ V.mT
    B = randn(7, 2, seed=19)
    kept = ni.lstsq(A, B, rcond=1e-6)
    cut = ni.lstsq(A, B, rcond=1e-2)
    assert kept.rank.item() == 3 and cut.rank.item() == 2
    assert bool(kept.ok) and not bool(cut.ok)  # discarding 1e-4 is not a least-squares solution


def test_lstsq_ridge_solves_regularised_normal_equations():
    for A in (low_rank(3, 8, 5, 2, seed=20), randn(3, 4, 6, seed=21)):
        B = randn(3, A.shape[-2], 2, seed=22)
        lam = 0.1
        res = ni.lstsq(A, B, ridge=lam)
        n = A.shape[-1]
        ref = torch.linalg.solve(A.mT @ A + lam * torch.eye(n, dtype=F64), A.mT @ B)
        torch.testing.assert_close(res.solution, ref, rtol=1e-10, atol=1e-12)
        assert list(res.method) == ["ridge"] * 3 and res.all_ok


def test_lstsq_broadcast_and_vector_rhs():
    A = randn(2, 3, 6, 4, seed=23)
    B = randn(6, 2, seed=24)  # shared right-hand side
    res = ni.lstsq(A, B)
    assert res.solution.shape == (2, 3, 4, 2)
    torch.testing.assert_close(res.solution, torch.linalg.pinv(A) @ B, rtol=1e-10, atol=1e-12)
    b = randn(2, 3, 6, seed=25)
    x = ni.lstsq(A, b).solution
    assert x.shape == (2, 3, 4)
    torch.testing.assert_close(x, (torch.linalg.pinv(A) @ b.unsqueeze(-1)).squeeze(-1))


def test_lstsq_empty_shapes():
    assert ni.lstsq(torch.zeros(5, 0), torch.ones(5, 2)).solution.shape == (0, 2)
    X = ni.lstsq(torch.zeros(0, 3), torch.zeros(0, 2)).solution
    assert X.shape == (3, 2) and (X == 0).all()
    assert ni.lstsq(torch.zeros(0, 4, 3), torch.zeros(0, 4, 1)).solution.shape == (0, 3, 1)


def test_lstsq_ridge_and_pinv_rank_on_empty_shapes():
    X = ni.lstsq(torch.zeros(5, 0, dtype=F64), torch.ones(5, 2, dtype=F64), ridge=0.5)
    assert X.solution.shape == (0, 2) and X.rank.item() == 0 and X.all_ok
    Ag, Bg = torch.zeros(3, 0, 4, dtype=F64, requires_grad=True), torch.ones(3, 0, 1, dtype=F64)
    r = ni.lstsq(Ag, Bg, ridge=0.5)
    assert r.solution.shape == (3, 4, 1) and (r.solution == 0).all()
    r.solution.sum().backward()  # an empty problem's gradient is zero, not missing
    assert Ag.grad is not None and (Ag.grad == 0).all()
    P, rank = ni.pinv(torch.zeros(2, 0, 3, dtype=F64), return_rank=True)
    assert P.shape == (2, 3, 0) and rank.tolist() == [0, 0]
    P, rank = ni.pinv(low_rank(2, 5, 3, 1, seed=9), ridge=0.1, return_rank=True)
    assert rank.tolist() == [3, 3]  # the ridge system has full rank


def test_lstsq_result_indexes_like_a_tuple():
    res = ni.lstsq(randn(2, 5, 3, seed=8), randn(2, 5, 1, seed=9))
    assert res[-1] is res.singular_values and res[-4] is res.solution and res[np.int64(2)] is res.rank
    assert res[1:3] == (res.residuals, res.rank) and len(res) == 4
    for bad in (4, -5):
        with pytest.raises(IndexError, match="out of range"):
            res[bad]


def test_orthogonal_projection_repr():
    assert repr(ni.OrthogonalProjection(dim=5, rank=2)) == (
        "OrthogonalProjection(basis=(2, 5), complement=False, ridge=0.0)"
    )
    assert "basis" not in repr(ni.OrthogonalProjection(complement=True, ridge=0.5))


def test_lstsq_float32_and_numpy():
    A = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    b = np.ones((6, 1), dtype=np.float32)
    res = ni.lstsq(A, b)
    assert isinstance(res.solution, np.ndarray) and res.solution.dtype == np.float32
    np.testing.assert_allclose(res.solution, np.linalg.lstsq(A, b, rcond=None)[0], rtol=1e-4)
    assert res.all_ok


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: ni.lstsq(torch.ones(3), torch.ones(3)), r"A must have shape .*got shape \(3,\)"),
        (
            lambda: ni.lstsq(torch.ones(4, 3), torch.ones(5, 2)),
            r"B must have shape \(\.\.\., 4, k\).*\(5, 2\)",
        ),
        (lambda: ni.lstsq(torch.ones(2, 4, 3), torch.ones(3, 4, 1)), r"do not broadcast"),
        (lambda: ni.lstsq(torch.ones(4, 3), torch.ones(4, 1), ridge=-1), r"ridge"),
        (lambda: ni.lstsq(torch.ones(4, 3), torch.ones(4, 1), ridge=1, rcond=1e-3), r"ridge"),
        (lambda: ni.lstsq(torch.ones(4, 3), torch.ones(4, 1), method="lu"), r"method"),
        (lambda: ni.pinv(torch.ones(3)), r"A must have shape \(\.\.\., m, n\).*\(3,\)"),
        (lambda: ni.pinv(torch.ones(3, 2), ridge=1.0, rtol=1e-3), r"ridge"),
        (
            lambda: ni.project(torch.ones(5, 4), torch.ones(5, 2, 3)),
            r"feature dimension 4.*\(5, 4\).*\(5, 2, 3\)",
        ),
        (lambda: ni.project(torch.ones(5, 4), torch.ones(6, 2, 4)), r"do not broadcast"),
        (
            lambda: ni.project(torch.ones(5, 4), torch.ones(4)),
            r"basis must have shape \(\.\.\., r, d\)",
        ),
        (lambda: ni.lstsq(torch.ones(4, 3), torch.ones(4, 1), driver="gelsd", lapack_driver="gelsd"), r"not both"),
        (lambda: ni.lstsq(torch.ones(4, 3), torch.ones(4, 1), rcond="small"), r"rcond must be a number"),
        (lambda: ni.lstsq(torch.ones(4, 3), torch.ones(4, 1), cond=True), r"cond must be a number"),
        (lambda: ni.lstsq(torch.ones(4, 3), torch.ones(4, 1), rcond=[1e-3]), r"rcond must be a number"),
        (lambda: ni.lstsq(torch.ones(4, 3), torch.ones(4, 1), rcond=float("inf")), r"finite number"),
        (lambda: ni.pinv(torch.ones(3, 2), rtol=1e-3, rcond=1e-3), r"rtol or rcond"),
        (lambda: ni.pinv(torch.ones(3, 2), rtol=torch.tensor(1j)), r"rtol must hold real numbers"),
        (lambda: ni.pinv(torch.ones(2, 3, 2), atol=torch.ones(3)), r"atol has shape \(3,\).*\(2,\)"),
        (lambda: ni.pinv(torch.ones(2, 3, 2), atol=torch.ones(1, 2)), r"atol has shape \(1, 2\)"),
        (lambda: ni.pinv(torch.ones(3, 2), hermitian=True), r"hermitian=True needs square"),
        (lambda: ni.pinv(torch.eye(3), hermitian=True, ridge=0.1), r"cannot be combined"),
        (lambda: ni.project(torch.ones(5, 4), torch.ones(2, 4), ridge=0.1, rtol=1e-3), r"ridge or rtol"),
        (lambda: ni.OrthogonalProjection(dim=4), r"both dim and rank"),
        (lambda: ni.OrthogonalProjection()(torch.ones(2, 3)), r"no basis"),
    ],
)
def test_bad_input_raises_input_error_naming_it(call, match):
    with pytest.raises(ni.InputError, match=match):
        call()


# ------------------------------------------------------------------------------------ project


def test_project_idempotent_orthogonal_and_complementary():
    F = randn(50, 6, seed=30)
    W = randn(50, 2, 6, seed=31)
    W[7] = 0.0  # empty span: projection 0
    W[8, 1] = 3 * W[8, 0]  # rank 1
    P = ni.project(F, W)
    C = ni.project(F, W, complement=True)
    torch.testing.assert_close(P + C, F, rtol=0, atol=1e-14)
    torch.testing.assert_close(ni.project(P, W), P, rtol=0, atol=1e-13)  # idempotent
    assert (C.unsqueeze(-2) @ W.mT).abs().max() < 1e-13  # complement is orthogonal to the basis
    assert (P * C).sum(-1).abs().max() < 1e-13
    assert P[7].abs().max() == 0
    ref = (torch.linalg.pinv(W) @ W @ F.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(P, ref, rtol=0, atol=1e-13)


@pytest.mark.parametrize("shared", [False, True], ids=["per-sample basis", "shared basis"])
@pytest.mark.parametrize("kw", [{}, {"rtol": 1e-6}, {"ridge": 0.1}], ids=["qr", "svd", "ridge"])
def test_project_sample_result_independent_of_batch(shared, kw):
    F = randn(300, 40, seed=40)
    W = randn(5, 40, seed=41) if shared else randn(300, 5, 40, seed=41)
    if not shared:
        W[10, 2] = W[10, 0] - W[10, 1]  # one rank-deficient sample among them
    out300 = ni.project(F, W, complement=True, **kw)
    for i in (0, 10, 299):
        alone = ni.project(F[i], W if shared else W[i], complement=True, **kw)
        alone_b = ni.project(F[i : i + 1], W if shared else W[i : i + 1], complement=True, **kw)
        j = min(i, 300 - 7)
        in7 = ni.project(F[j : j + 7], W if shared else W[j : j + 7], complement=True, **kw)
        # Nothing is computed across samples, but not identical bits: a BLAS may take another
        # kernel (gemv for one sample, gemm blocks for 300) and sum in another order. Entries
        # are O(1), so 1e-12 is thousands of ulps of float64 yet far below any cross-sample leak.
        for other in (alone, alone_b[0], in7[i - j]):
            torch.testing.assert_close(other, out300[i], rtol=1e-12, atol=1e-12)


def test_project_ridge_is_gram_solve():
    F, W = randn(20, 5, seed=42), randn(20, 2, 5, seed=43)
    lam = 0.3
    got = ni.project(F, W, ridge=lam)
    gram = W @ W.mT + lam * torch.eye(2, dtype=F64)
    ref = (W.mT @ torch.linalg.solve(gram, W @ F.unsqueeze(-1))).squeeze(-1)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)


def test_project_empty_basis_and_batch():
    F = randn(4, 3, seed=44)
    assert (ni.project(F, torch.zeros(4, 0, 3, dtype=F64)) == 0).all()
    torch.testing.assert_close(ni.project(F, torch.zeros(0, 3, dtype=F64), complement=True), F)
    assert ni.project(torch.zeros(0, 3), torch.ones(0, 2, 3)).shape == (0, 3)


# ---------------------------------------------------------------------------------- gradients


def test_gradcheck_lstsq_all_routes():
    A, B = randn(2, 6, 4, seed=50), randn(2, 6, 2, seed=51)
    Aw, Bw = randn(2, 3, 5, seed=52), randn(2, 3, 2, seed=53)
    Ad = low_rank(2, 6, 4, 2, seed=54)

    def sol(**kw):
        return lambda a, b: ni.lstsq(a, b, **kw).solution

    for fn, (a, b) in [
        (sol(), (A, B)),
        (sol(), (Aw, Bw)),
        # a cutoff well above the finite-difference perturbations keeps the rank fixed
        (sol(rcond=1e-4), (Ad, B)),
        (sol(ridge=0.2), (Ad, B)),
        (sol(ridge=0.2), (Aw, Bw)),
    ]:
        assert gradcheck(fn, (a.clone().requires_grad_(), b.clone().requires_grad_()))


def test_gradcheck_project():
    F = randn(3, 5, seed=60)
    W = randn(3, 2, 5, seed=61)
    Wd = W.clone()
    Wd[1, 1] = 2 * Wd[1, 0]
    for fn, w in [
        (lambda f, w: ni.project(f, w, complement=True), W),
        (lambda f, w: ni.project(f, w), W[0]),  # shared basis
        (lambda f, w: ni.project(f, w, rtol=1e-4), Wd),  # rank-deficient sample, SVD route
        (lambda f, w: ni.project(f, w, rtol=1e-4), Wd[1]),  # shared rank-1 basis, SVD route
        (lambda f, w: ni.project(f, w, ridge=0.1), Wd),
    ]:
        assert gradcheck(fn, (F.clone().requires_grad_(), w.clone().requires_grad_()))


def test_gradients_finite_on_rank_deficient_inputs():
    A = low_rank(4, 7, 5, 2, seed=70)  # three zero singular values each
    A[2] = 0.0
    B = randn(4, 7, 3, seed=71)
    for kw in ({"ridge": 1e-3}, {"rcond": 1e-8}, {}):
        Ag, Bg = A.clone().requires_grad_(), B.clone().requires_grad_()
        ni.lstsq(Ag, Bg, **kw).solution.square().sum().backward()
        assert torch.isfinite(Ag.grad).all() and torch.isfinite(Bg.grad).all(), kw
    # differentiating a hand-made pinv through torch.linalg.svd is what goes wrong here
    Ag = A.clone().requires_grad_()
    U, S, Vh = torch.linalg.svd(Ag, full_matrices=False)
    sinv = torch.where(S > 1e-8 * S[..., :1], 1 / S, torch.zeros_like(S))
    (Vh.mT @ (sinv.unsqueeze(-1) * U.mT)).square().sum().backward()
    assert not torch.isfinite(Ag.grad).all()
    Ag = A.clone().requires_grad_()
    ni.pinv(Ag).square().sum().backward()
    assert torch.isfinite(Ag.grad).all()


def test_orthogonal_projection_module_trains_and_is_batch_agnostic():
    torch.manual_seed(0)
    layer = ni.OrthogonalProjection(dim=6, rank=2, complement=True, generator=gen(80)).double()
    assert layer.basis.shape == (2, 6)
    # learn a basis whose complement removes a fixed nuisance plane from the features
    nuisance = torch.linalg.qr(randn(6, 2, seed=81))[0].mT
    opt = torch.optim.Adam(layer.parameters(), lr=0.05)
    g = gen(82)
    first = None
    for _ in range(150):
        clean = torch.randn(64, 6, dtype=F64, generator=g)
        clean = clean - (clean @ nuisance.mT) @ nuisance
        x = clean + torch.randn(64, 2, dtype=F64, generator=g) @ nuisance * 5
        loss = (layer(x) - clean).square().mean()
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 1e-3 * first
    x = randn(9, 6, seed=83)
    # A batch of one vs of nine: a BLAS may block the products differently, so up to rounding.
    torch.testing.assert_close(layer(x)[4], layer(x[4:5])[0], rtol=1e-12, atol=1e-14)
    # per-sample basis given at call time
    per = ni.OrthogonalProjection(complement=False)
    y = randn(9, 1, 6, seed=84)
    out = per(x, y)
    torch.testing.assert_close(
        out, (x * y[:, 0]).sum(-1, keepdim=True) / y[:, 0].square().sum(-1, keepdim=True) * y[:, 0]
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    A = low_rank(6, 9, 5, 3, seed=90)
    A[0] = randn(9, 5, seed=91)
    B = randn(6, 9, 2, seed=92)
    F, W = randn(6, 5, seed=93), randn(6, 2, 5, seed=94)
    cpu = ni.lstsq(A, B)
    gpu = ni.lstsq(A.cuda(), B.cuda())
    assert gpu.solution.is_cuda and list(gpu.method) == list(cpu.method) and gpu.all_ok
    torch.testing.assert_close(gpu.solution.cpu(), cpu.solution, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(ni.pinv(A.cuda()).cpu(), ni.pinv(A), rtol=1e-9, atol=1e-11)
    out = ni.project(F.cuda(), W.cuda(), complement=True)
    torch.testing.assert_close(out.cpu(), ni.project(F, W, complement=True), rtol=1e-12, atol=1e-12)
    Wg = W.cuda().requires_grad_()
    ni.project(F.cuda(), Wg, rtol=1e-6).sum().backward()
    assert torch.isfinite(Wg.grad).all()


# ---------------------------------------------------------------------- NaN / Inf batch elements

NAN, INF = float("nan"), float("inf")


def test_pinv_nonfinite_element_is_nan_not_zeros_and_others_unchanged():
    # the example: torch.linalg.pinv (and ni.pinv before) returned all zeros here
    P = ni.pinv([[INF, 1, 2], [1, 2, 3]])
    assert isinstance(P, np.ndarray) and P.shape == (3, 2) and np.isnan(P).all()
    A = randn(5, 4, 3, seed=100)
    A[1, 2, 0] = NAN  # torch.linalg.pinv raises a LinAlgError for the whole batch
    A[3, 0, 1] = -INF
    for kw in ({}, {"rtol": 1e-6}, {"atol": 1e-3}, {"ridge": 0.5}):
        P = ni.pinv(A, **kw)
        assert torch.isnan(P[[1, 3]]).all(), kw
        good = [0, 2, 4]
        if "ridge" in kw:
            ref = torch.linalg.solve(
                A[good].mT @ A[good] + 0.5 * torch.eye(3, dtype=F64), A[good].mT
            )
        else:
            ref = torch.linalg.pinv(A[good], **kw)
        torch.testing.assert_close(P[good], ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "kw",
    [{}, {"method": "svd"}, {"method": "qr"}, {"rcond": 1e-8}, {"ridge": 0.1}],
    ids=["auto", "svd", "qr", "rcond", "ridge"],
)
def test_lstsq_nonfinite_elements_get_nan_and_status_others_solved(kw):
    A, B = randn(6, 7, 4, seed=101), randn(6, 7, 2, seed=102)
    A[1, 0, 0] = NAN
    B[4, 3, 1] = INF
    A[2] = low_rank(1, 7, 4, 2, seed=103)[0]  # a rank-deficient neighbour on the svd route
    if kw.get("method") == "qr":
        A[2] = randn(7, 4, seed=104)
    res = ni.lstsq(A, B, **kw)
    bad, good = [1, 4], [0, 2, 3, 5]
    assert torch.isnan(res.solution[bad]).all()
    assert (
        res.status.tolist()
        == [0, 5, 0, 0, 5, 0]
        == [int(ni.Status.NONFINITE) if i in bad else int(ni.Status.OK) for i in range(6)]
    )
    assert res.rank[bad].tolist() == [-1, -1] and (res.rank[good] >= 2).all()
    assert list(res.method[bad]) == ["none", "none"]
    assert not res.ok[bad].any() and res.ok[good].all() and not res.all_ok
    if "ridge" in kw:
        ref = torch.linalg.solve(
            A[good].mT @ A[good] + 0.1 * torch.eye(4, dtype=F64), A[good].mT @ B[good]
        )
    else:
        ref = torch.linalg.pinv(A[good]) @ B[good]
    torch.testing.assert_close(res.solution[good], ref, rtol=1e-9, atol=1e-11)


def test_lstsq_status_numpy_and_failed_certificate():
    A = np.random.default_rng(105).standard_normal((3, 6, 3))
    A[0, 0, 0] = np.nan
    res = ni.lstsq(A, np.ones((6, 1)))
    assert isinstance(res.status, np.ndarray) and res.status.tolist() == [5, 0, 0]
    assert np.isnan(res.solution[0]).all() and np.isfinite(res.solution[1:]).all()
    # a truncation that discards a singular value that matters: computed, certificate fails
    U = torch.linalg.qr(randn(7, 3, seed=106))[0]
    M = U @ torch.diag(torch.tensor([1.0, 0.5, 1e-4], dtype=F64))
    cut = ni.lstsq(M, randn(7, 1, seed=107), rcond=1e-2)
    assert cut.status.item() == int(ni.Status.ILL_CONDITIONED)


def test_lstsq_nonfinite_element_does_not_touch_other_gradients():
    A, B = randn(4, 6, 3, seed=108), randn(4, 6, 2, seed=109)
    Abad = A.clone()
    Abad[2, 1, 1] = NAN
    grads = []
    for M in (A, Abad):
        Ag = M.clone().requires_grad_()
        X = ni.lstsq(Ag, B).solution
        X[[0, 1, 3]].square().sum().backward()
        grads.append(Ag.grad)
    torch.testing.assert_close(grads[1][[0, 1, 3]], grads[0][[0, 1, 3]], rtol=1e-12, atol=1e-14)
    assert torch.isnan(grads[1][2]).all()  # the NaN element's gradient is NaN, never a number


@pytest.mark.parametrize("kw", [{}, {"rtol": 1e-6}, {"ridge": 0.1}], ids=["qr", "svd", "ridge"])
def test_project_nonfinite_samples_get_nan_rows(kw):
    F, W = randn(6, 5, seed=110), randn(6, 2, 5, seed=111)
    F[1, 2] = INF
    W[4, 1, 0] = NAN
    for complement in (False, True):
        out = ni.project(F, W, complement=complement, **kw)
        assert torch.isnan(out[[1, 4]]).all()
        good = [0, 2, 3, 5]
        ref = ni.project(F[good], W[good], complement=complement, **kw)
        # the others: as without the bad ones, up to rounding (a batch of another size)
        torch.testing.assert_close(out[good], ref, rtol=1e-10, atol=1e-12)
    # a shared basis with a NaN: every sample is NaN; with Inf in the basis, not zeros
    assert torch.isnan(ni.project(F, W[4], **kw)).all()
    Winf = W[0].clone()
    Winf[0, 0] = INF
    assert torch.isnan(ni.project(F[0], Winf, **kw)).all()


# ------------------------------------------------------------------------------- scale audit


@pytest.mark.parametrize("dtype, scales", [(F64, (1e300, 1e-300)), (torch.float32, (1e30, 1e-30))])
def test_pinv_and_lstsq_are_scale_invariant(dtype, scales):
    rt = 1e-9 if dtype == F64 else 2e-4
    for A in (randn(3, 6, 4, seed=120), randn(3, 3, 5, seed=121), low_rank(3, 6, 4, 2, seed=122)):
        A = A.to(dtype)
        B = randn(3, A.shape[-2], 2, seed=123).to(dtype)
        P0 = ni.pinv(A)
        X0 = ni.lstsq(A, B)
        assert X0.all_ok
        for c in scales:
            torch.testing.assert_close(ni.pinv(c * A) * c, P0, rtol=rt, atol=rt * P0.abs().max())
            for cb in (1.0, c):
                X = ni.lstsq(c * A, cb * B)
                assert list(X.method) == list(X0.method) and X.rank.tolist() == X0.rank.tolist()
                # the certificate neither overflows nor underflows
                assert X.all_ok, (c, cb, X.normal_residual)
                torch.testing.assert_close(
                    X.solution * (c / cb), X0.solution, rtol=rt, atol=rt * X0.solution.abs().max()
                )


def test_pinv_atol_and_ridge_scale_with_the_data():
    A = low_rank(2, 6, 4, 2, seed=124) + 1e-7 * randn(2, 6, 4, seed=125)
    for c in (1e150, 1e-150):
        torch.testing.assert_close(ni.pinv(c * A, atol=c * 1e-3) * c, ni.pinv(A, atol=1e-3))
        # ridge is absolute (units of A^T A): pinv(cA, ridge=c^2 lam) = pinv(A, ridge=lam) / c
        torch.testing.assert_close(
            ni.pinv(c * A, ridge=c * c * 0.1) * c, ni.pinv(A, ridge=0.1), rtol=1e-9, atol=1e-12
        )
        B = randn(2, 6, 1, seed=126)
        r = ni.lstsq(c * A, B, ridge=c * c * 0.1)
        assert r.all_ok
        torch.testing.assert_close(r.solution * c, ni.lstsq(A, B, ridge=0.1).solution)


def test_project_is_scale_invariant_and_ridge_does_not_overflow():
    # the example: the Gram matrix overflowed and the answer was 0
    # (float32 F, a float64 basis: the result is float64, as numpy promotes; 1e300 is inf in float32)
    out = ni.project(torch.ones((1, 4)), [[1e300, 0, 0, 0], [0, 1e300, 0, 0]], ridge=1.0)
    torch.testing.assert_close(out, torch.tensor([[1.0, 1, 0, 0]], dtype=F64), rtol=0, atol=1e-12)
    F, W = randn(20, 6, seed=127), randn(20, 3, 6, seed=128)
    W[3, 2] = W[3, 0] + W[3, 1]  # a rank-deficient sample (svd route)
    for dtype, scales in ((F64, (1e300, 1e-300)), (torch.float32, (1e30, 1e-30))):
        tol = 1e-12 if dtype == F64 else 2e-5
        f, w = F.to(dtype), W.to(dtype)
        for kw in ({}, {"rtol": 1e-6}):
            ref = ni.project(f, w, **kw)
            for c in scales:
                torch.testing.assert_close(ni.project(f, c * w, **kw), ref, rtol=0, atol=tol)
                torch.testing.assert_close(
                    ni.project(f, c * w[0], **kw), ni.project(f, w[0], **kw), rtol=0, atol=tol
                )
    # ridge: absolute, in the units of W W^T: project(F, cW, ridge=c^2 lam) = project(F, W, lam)
    ref = ni.project(F, W, ridge=0.3)
    for c in (1e150, 1e-150):
        torch.testing.assert_close(ni.project(F, c * W, ridge=c * c * 0.3), ref, rtol=0, atol=1e-12)


def test_project_ridge_on_rank_deficient_basis_with_tiny_ridge():
    # the Gram/Cholesky solve raised a LinAlgError here (W W^T + 1e-20 I is singular in floats)
    W = torch.tensor([[1.0, 2, 0, 0], [2.0, 4, 0, 0]], dtype=F64)
    out = ni.project(torch.ones(1, 4, dtype=F64), W, ridge=1e-20)
    torch.testing.assert_close(out, torch.tensor([[0.6, 1.2, 0, 0]], dtype=F64))
