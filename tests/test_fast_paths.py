"""Every fast path computes what the reference computes: the closed forms against float64
torch.linalg.inv (statuses included, on random, ill-conditioned and singular input), and the
fast certificate / norm paths against their plain definitions."""

from __future__ import annotations

import math

import pytest
import torch

import neuralinv as ni
from agreement import assert_statuses_agree, near
from helpers import conditioned, well_conditioned
from neuralinv.certify import PASS_RATIO, certificate, eps, norm1, rcond, residual_ratio
from neuralinv.errors import InputError
from neuralinv.methods import LU, Auto
from neuralinv.methods.closed_form import closed_form_inverse

SIZES = (1, 2, 3, 4)
DTYPES = (torch.float32, torch.float64)


def plain_norm1(M: torch.Tensor) -> torch.Tensor:
    return M.abs().sum(dim=-2).amax(dim=-1)


def plain_certificate(A: torch.Tensor, X: torch.Tensor):
    """The definitions, written out with bmm and a plain reduction."""
    n = A.shape[-1]
    E = torch.eye(n, dtype=A.dtype) - X @ A
    num, nA, nX = plain_norm1(E), plain_norm1(A), plain_norm1(X)
    den = n * nA * nX * eps(A.dtype)
    ratio = num / den
    fails = ((den == 0) & (num > 0)) | (torch.isinf(den) & ~torch.isnan(num))
    return torch.where(fails, torch.full_like(ratio, float("inf")), ratio), 1.0 / (nA * nX)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_closed_form_matches_float64_reference_on_random_input(n, dtype):
    A = well_conditioned(500, n, seed=n, shift=2.5, spread=math.sqrt(n), dtype=dtype)
    sol = ni.invert(A, method="closed_form")
    ref = torch.linalg.inv(A.to(torch.float64))
    assert sol.inverse.dtype == dtype and sol.inverse.shape == A.shape
    assert sol.all_ok, sol.counts()
    assert float(sol.residual.max()) < PASS_RATIO
    # Well conditioned (cond_1 < ~50 here): a few eps of the working precision.
    err = (sol.inverse.to(torch.float64) - ref).abs().max() / ref.abs().max()
    assert float(err) < 200 * eps(dtype)
    # And the same statuses as LU (all OK: cond_1 < ~50 leaves every certificate far from a
    # threshold, so this holds on any CPU; the helper would only excuse a boundary row).
    lu = ni.invert(A, method="lu")
    assert_statuses_agree(sol, lu, n, dtype, at_most=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", (2, 3, 4))
def test_closed_form_statuses_match_lu_on_ill_conditioned_input(n, dtype):
    # Condition numbers from 1 to 1e25: wherever LU's verdict is clear (rcond 100x away from
    # the eps threshold, or exactly singular), closed_form's must be the same.
    A = torch.cat([conditioned(16, n, c, seed=n, dtype=dtype) for c in (1e1, 1e3, 1e5, 1e12, 1e25)])
    cf = ni.invert(A, method="closed_form")
    lu = ni.invert(A, method="lu")
    e = eps(dtype)
    clear_ok = (lu.status == 0) & (lu.rcond > 100 * e) & (lu.residual < PASS_RATIO / 3)
    clear_fail = (lu.status == int(ni.Status.SINGULAR)) | (lu.rcond < e / 100)
    assert int(clear_ok.sum()) >= 32 and int(clear_fail.sum()) >= 4
    assert bool((cf.status[clear_fail] != 0).all())
    if dtype == torch.float32:
        # Computed in float64, so as good as LU wherever LU is clearly good.
        assert bool((cf.status[clear_ok] == 0).all())
    else:
        # In float64 the adjugate is not backward stable when the two smallest singular
        # values are both small (n >= 3): the certificate then says ILL_CONDITIONED rather
        # than certifying a poor answer, and auto recomputes those by LU.
        assert bool((cf.status[:32] == 0).all())  # cond <= 1e3: always fine
        auto = ni.invert(A, method="auto")
        assert bool((auto.status[clear_ok] == 0).all())
    ok = cf.status == int(ni.Status.OK)
    assert bool((cf.residual[ok] < PASS_RATIO).all())
    ref = torch.linalg.inv_ex(A[ok].to(torch.float64))[0]  # some rounded inputs are singular
    cond1 = plain_norm1(A[ok].to(torch.float64)) * plain_norm1(ref)
    err = plain_norm1(cf.inverse[ok].to(torch.float64) - ref) / plain_norm1(ref)
    assert bool((err <= 2 * PASS_RATIO * n * cond1 * e).all())


@pytest.mark.parametrize("dtype", DTYPES)
def test_closed_form_exactly_singular_is_singular_like_lu(dtype):
    mats = [
        torch.zeros(3, 3),
        torch.tensor([[1.0, 2, 3], [2, 4, 6], [0, 1, 5]]),  # dependent rows
        torch.tensor([[1.0, 2, 3], [4, 5, 6], [7, 8, 9]]),  # rank 2
        torch.eye(3),
    ]
    A = torch.stack(mats).to(dtype)
    cf = ni.invert(A, method="closed_form")
    lu = ni.invert(A, method="lu")
    S = int(ni.Status.SINGULAR)
    assert cf.status.tolist() == [S, S, S, 0]
    # LU may round the last pivot of the rank-2 matrix to a tiny nonzero (ILL_CONDITIONED);
    # the exact determinant says SINGULAR. Either way no answer is certified.
    # bitwise: boolean masks (which answers are certified), no float values compared
    assert torch.equal(cf.status == 0, lu.status == 0)
    assert lu.status[:2].tolist() == [S, S]
    # bitwise: the identity's cofactors and determinant are exact
    assert torch.isnan(cf.inverse[:3]).all() and torch.equal(
        cf.inverse[3], torch.eye(3, dtype=dtype)
    )
    for n in (1, 2, 4):
        assert ni.invert(
            torch.zeros(2, n, n, dtype=dtype), method="closed_form"
        ).status.tolist() == [S, S]


def test_closed_form_nonfinite_input_and_batch_shapes():
    A = torch.eye(2).repeat(2, 3, 1, 1) * 2
    A[1, 2, 0, 1] = float("inf")
    sol = ni.invert(A, method="closed_form")
    assert sol.status.shape == (2, 3)
    assert int(sol.status[1, 2]) == int(ni.Status.NONFINITE)
    assert int((sol.status == 0).sum()) == 5
    torch.testing.assert_close(sol.inverse[0, 0], torch.eye(2) / 2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_closed_form_never_modifies_its_input(dtype):
    # B = 1 once aliased the caller's tensor through a no-op .contiguous().
    for shape in ((2, 2), (1, 3, 3), (4, 4)):
        A = torch.arange(1.0, 1 + math.prod(shape), dtype=dtype).reshape(shape)
        A = A + 10 * torch.eye(shape[-1], dtype=dtype)
        before = A.clone()
        X = ni.inv(A, method="closed_form")
        assert torch.equal(A, before)  # bitwise: untouched input vs its copy
        torch.testing.assert_close(X, torch.linalg.inv(before))


def test_closed_form_refuses_n_above_4_naming_n():
    for A in (torch.eye(5), torch.zeros(0, 6, 6)):
        with pytest.raises(InputError, match=rf"n={A.shape[-1]}"):
            ni.invert(A, method="closed_form")
    with pytest.raises(InputError, match="n=5"):
        closed_form_inverse(torch.eye(5)[None])


def test_closed_form_gradient_is_the_inverse_gradient():
    A = (torch.eye(3, dtype=torch.float64) * 2 + 0.1).requires_grad_()
    (ni.invert(A, method="closed_form").inverse.sum()).backward()
    g1 = A.grad.clone()
    A.grad = None
    torch.linalg.inv(A).sum().backward()
    torch.testing.assert_close(g1, A.grad)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", (1, 2, 3, 4, 5, 7))
def test_certificate_fast_paths_equal_the_definitions(n, dtype):
    g = torch.Generator().manual_seed(100 + n)
    A = torch.randn(2, 3, n, n, generator=g, dtype=torch.float64).to(dtype)
    X = torch.linalg.inv(A)
    X[0, 1] = float("nan")  # no answer: NaN ratio
    X[1, 0] = 0  # zero X: infinite ratio
    X[1, 1] = float("inf")  # overflowed X: infinite ratio
    res, rc = certificate(A, X)
    ref_res, ref_rc = plain_certificate(A, X)
    assert res.shape == rc.shape == (2, 3)
    # Same quantity in a different summation order: equal up to rounding of the residual
    # itself (a few eps relative to ||X|| ||A||, i.e. O(1) in ratio units).
    torch.testing.assert_close(res, ref_res, equal_nan=True, atol=2.0, rtol=0.05)
    torch.testing.assert_close(rc, ref_rc, equal_nan=True)
    # bitwise: which ratios are NaN or inf is set by construction (NaN, zero, inf X)
    assert torch.equal(torch.isnan(res), torch.isnan(ref_res))
    assert torch.equal(torch.isinf(res), torch.isinf(ref_res))
    torch.testing.assert_close(residual_ratio(A, X), res, equal_nan=True)
    torch.testing.assert_close(rcond(A, X), rc, equal_nan=True)
    # Pass/fail decisions agree on a badly conditioned batch too, except where a ratio is
    # within rounding of the threshold (2x; the two sums agree to O(1) in ratio units).
    Ah = conditioned(50, n, 1e6, seed=n, dtype=dtype)
    Xh = torch.linalg.inv(Ah)
    fast, plain = residual_ratio(Ah, Xh), plain_certificate(Ah, Xh)[0]
    differ = (fast < PASS_RATIO) != (plain < PASS_RATIO)
    assert bool((near(fast, PASS_RATIO) | near(plain, PASS_RATIO))[differ].all())
    assert int(differ.sum()) <= 2


def test_certificate_edge_shapes():
    for shape in ((3, 3), (0, 2, 2), (0, 5, 5), (4, 0, 0)):
        A = torch.eye(shape[-1]).expand(shape).clone()
        res, rc = certificate(A, A)
        assert res.shape == rc.shape == shape[:-2]
        assert bool((res == 0).all()) and bool((rc == 1).all())


@pytest.mark.parametrize("n", (1, 2, 3, 4, 6))
def test_norm1_fast_path_equals_definition(n):
    g = torch.Generator().manual_seed(n)
    M = torch.randn(7, 2, n, n, generator=g)
    M[3, 1, 0, n - 1] = float("nan")
    torch.testing.assert_close(norm1(M), plain_norm1(M), equal_nan=True)
    assert bool(torch.isnan(norm1(M)[3, 1]))


def test_base_certify_unchanged_for_lu_on_mixed_batch():
    # The certify path (flat finiteness check, masked NaN fill, shared norms) on a batch
    # mixing OK, singular, non-finite and ill-conditioned matrices.
    A = torch.stack(
        [
            torch.eye(3) * 2,
            torch.zeros(3, 3),
            torch.full((3, 3), float("nan")),
            conditioned(1, 3, 1e12, seed=1, dtype=torch.float32)[0],
        ]
    )
    sol = ni.invert(A, method="lu")
    assert sol.status.tolist() == [
        0,
        int(ni.Status.SINGULAR),
        int(ni.Status.NONFINITE),
        int(ni.Status.ILL_CONDITIONED),
    ]
    assert torch.isnan(sol.inverse[1:3]).all()
    res, rc = plain_certificate(A[[0, 3]], torch.linalg.inv(A[[0, 3]]))
    torch.testing.assert_close(sol.rcond[[0, 3]], rc)


@pytest.mark.parametrize("n", (2, 3, 4, 8))
def test_auto_fast_path_agrees_with_lu(n):
    for dtype in DTYPES:
        A = torch.cat([conditioned(40, n, c, seed=n) for c in (10.0, 1e6, 1e9)]).to(dtype)
        A = torch.cat([A, conditioned(8, n, 1e25, seed=n + 1).to(dtype)])
        A[5] = 0
        check_auto_against_lu(A)


def check_auto_against_lu(A):
    auto, lu = Auto().invert(A), LU().invert(A)
    # Auto runs LU too here (or closed_form with LU as its fallback): statuses agree up to a
    # certificate within 2x of a threshold, or a zero pivot / determinant of a matrix that is
    # singular to working precision (cond 1e25: SINGULAR in one, ILL_CONDITIONED in the other).
    assert_statuses_agree(auto, lu, A.shape[-1], A.dtype, at_most=2)
    ok = auto.status == 0
    ref = torch.linalg.inv(A[ok].to(torch.float64))
    err = plain_norm1(auto.inverse[ok].to(torch.float64) - ref) / plain_norm1(ref)
    assert bool((err <= 2 * PASS_RATIO * A.shape[-1] * (1 / auto.rcond[ok]) * eps(A.dtype)).all())


@pytest.mark.parametrize("n", (2, 3, 4))
def test_chunked_paths_cover_large_batches(n):
    # More than two chunks of 16,384 (the last one partial), with a singular and a
    # non-finite matrix placed in different chunks.
    A = well_conditioned(40_001, n, seed=7 + n, shift=2.5, spread=math.sqrt(n), dtype=torch.float32)
    A[20_000] = 0
    A[40_000, 0, 0] = float("nan")
    sol = ni.invert(A, method="closed_form")
    counts = sol.counts()
    assert counts == {"OK": 39_999, "SINGULAR": 1, "NONFINITE": 1}
    assert int(sol.status[20_000]) == int(ni.Status.SINGULAR)
    good = sol.status == 0
    ref = torch.linalg.inv(A[good].double())
    assert float((sol.inverse[good].double() - ref).abs().max() / ref.abs().max()) < 1e-5
    X = sol.inverse.clone()
    X[~good] = torch.linalg.inv(torch.eye(n) * 2)
    res, rc = certificate(A[good], X[good])
    ref_res, ref_rc = plain_certificate(A[good], X[good])
    torch.testing.assert_close(rc, ref_rc)
    torch.testing.assert_close(res, ref_res, atol=2.0, rtol=0.05)


@pytest.mark.parametrize("n", (3, 8))
def test_auto_certifies_once_and_reports_the_plain_certificate(n, monkeypatch):
    import neuralinv.methods.auto as auto_module
    import neuralinv.methods.certified as certified_module
    import neuralinv.methods.closed_form as closed_form_module
    import neuralinv.methods.partial as partial_module

    calls: dict[str, list[int]] = {"auto": [], "base": [], "closed_form": []}

    def recording(where):
        def wrapped(A, X):
            calls[where].append(A.shape[0])
            return certificate(A, X)

        return wrapped

    monkeypatch.setattr(auto_module, "certificate", recording("auto"))
    # "base": the shared certification (methods/certified.py) and fallbacks (methods/partial.py)
    monkeypatch.setattr(certified_module, "certificate", recording("base"))
    monkeypatch.setattr(partial_module, "certificate", recording("base"))
    monkeypatch.setattr(closed_form_module, "certificate", recording("closed_form"))
    monkeypatch.setenv("NEURALINV_NATIVE", "0")  # auto's torch path (native: test_native.py)
    per = 1024 if n <= 3 else 30  # 3x3: a batch large enough for auto to pick closed_form
    A = torch.cat([conditioned(per, n, c, seed=n) for c in (10.0, 1e6, 1e9, 1e25)])
    A = A.to(torch.float32)
    B = A.shape[0]
    A[4] = 0
    A[7, 0, 1] = float("nan")
    sol = Auto().invert(A)
    if n <= 3:
        assert sol.stats["primary"] == "closed_form"
        # closed_form certified all B once (then only the rows it refined), auto reused
        # that for its fallback test, and only the rows LU recomputed were certified again.
        refined = sol.stats["refined"]
        assert calls["closed_form"][0] == B and calls["auto"] == []
        assert all(k == refined > 0 for k in calls["closed_form"][1:])
        assert len(calls["closed_form"]) <= 3  # at most two refinement steps
        assert calls["base"] == [sol.stats["fallbacks"]] and sol.stats["fallbacks"] > 0
    else:  # LU is the primary: one certificate, in Method.invert
        assert calls == {"auto": [], "base": [B], "closed_form": []}
    # What the Solution reports is exactly the certificate of its answers.
    X = sol.inverse
    res, rc = plain_certificate(A, X)
    torch.testing.assert_close(sol.residual, res, equal_nan=True, atol=2.0, rtol=0.05)
    torch.testing.assert_close(sol.rcond, rc, equal_nan=True)
    # certify.certificate on the whole batch, against the reused one (computed on the whole
    # batch, then on the refined / LU rows as separate batches): the same per-matrix
    # operations at other batch positions, which a vectorised kernel with a contracted
    # scalar tail, or a BLAS choosing its kernel by batch size, may round differently. Equal
    # up to rounding of the residual; and bit for bit on most rows.
    exact = certificate(A, X)
    torch.testing.assert_close(sol.residual, exact[0], equal_nan=True, atol=2.0, rtol=0.05)
    torch.testing.assert_close(sol.rcond, exact[1], equal_nan=True, atol=0.0, rtol=1e-5)
    same = sol.residual.nan_to_num(-1.0) == exact[0].nan_to_num(-1.0)
    assert int(same.sum()) >= 0.9 * B
    assert sol.status[4] == int(ni.Status.SINGULAR) and sol.status[7] == int(ni.Status.NONFINITE)
    # Same statuses as LU, except where the closed form (float64 inside) found a more accurate
    # answer that its certificate proves and LU's does not (cond 1e6 in float32: rcond ~ 4 eps).
    lu = LU().invert(A)
    differ = sol.status != lu.status
    assert bool((sol.status[differ] == int(ni.Status.OK)).all())
    assert bool((lu.status[differ] == int(ni.Status.ILL_CONDITIONED)).all())
    assert bool((sol.residual[differ] < lu.residual[differ]).all())
    assert int(differ.sum()) <= B // 100


def test_fill_from_recertifies_only_the_replaced_rows():
    from neuralinv.methods.partial import Partial, fill_from, ok_status

    g = torch.Generator().manual_seed(3)
    A = torch.randn(6, 3, 3, generator=g, dtype=torch.float64) + 3 * torch.eye(3)
    X = torch.linalg.inv(A)
    X[2] = 0  # a bad answer, replaced by LU below
    cert = certificate(A, X)
    part = Partial(X, ok_status(6, A.device), certificate=cert)
    mask = torch.zeros(6, dtype=torch.bool)
    mask[2] = True
    out = fill_from(A, part, mask, LU(), "closed_form")
    assert out.method.tolist() == ["closed_form"] * 2 + ["lu"] + ["closed_form"] * 3
    res, rc = out.certificate
    # fill_from recertified row 2 alone (a batch of one), the reference certifies all six:
    # per-matrix the same operations, but at another batch position (see above), so equal up
    # to rounding of the residual; the rows not replaced keep cert exactly (a copy).
    ref_res, ref_rc = certificate(A, out.inverse)
    torch.testing.assert_close(res, ref_res, atol=2.0, rtol=0.05)
    torch.testing.assert_close(rc, ref_rc, atol=0.0, rtol=1e-12)
    keep = ~mask
    # bitwise: the rows fill_from did not replace are copied, not recomputed
    assert torch.equal(res[keep], cert[0][keep]) and torch.equal(rc[keep], cert[1][keep])
    # bitwise: a zero X has an infinite ratio (and part's certificate is not written into)
    assert torch.equal(cert[0][mask], torch.full((1,), float("inf"), dtype=torch.float64))
    assert float(res[2]) < PASS_RATIO  # part's own certificate was not modified in place
