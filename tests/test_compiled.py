"""The compiled fused path (``compile=True``) computes what the eager paths compute.

One kernel is compiled per (n, dtype, device); compiling costs seconds, so these tests compile
two: n = 3 float32 and n = 2 float64. Where no C++ compiler exists the tests check the
documented fallback instead: the eager answer with ``stats["compiled"] = False`` and a reason.
"""

from __future__ import annotations

import math
import shutil

import pytest
import torch

import neuralinv as ni
from agreement import assert_statuses_agree, at_boundary, error_bound, near
from neuralinv.certify import PASS_RATIO, certificate, eps
from neuralinv.kernels.compiled import CompiledKernel, compiled_kernel
from neuralinv.kernels.fused_small import inverse_certificate
from neuralinv.methods import Auto, ClosedForm

HAVE_COMPILER = any(shutil.which(cc) for cc in ("g++", "c++", "clang++"))
S, NF, ILL = int(ni.Status.SINGULAR), int(ni.Status.NONFINITE), int(ni.Status.ILL_CONDITIONED)


def with_cond(B: int, n: int, cond: float, *, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(B, n, n, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(B, n, n, generator=g, dtype=torch.float64))
    s = torch.logspace(0, -math.log10(cond), n, dtype=torch.float64)
    return (U * s) @ V.mT


def mixed_batch(n: int, dtype: torch.dtype, B: int) -> torch.Tensor:
    """Random well-conditioned matrices, then ill-conditioned ones (cond 1e3 .. 1e25), exactly
    singular ones and non-finite ones, in one batch of B + 56 matrices."""
    g = torch.Generator().manual_seed(10 * n)
    A = torch.randn(B, n, n, generator=g, dtype=torch.float64) / math.sqrt(n)
    A.diagonal(dim1=-2, dim2=-1).add_(2.5)
    ill = torch.cat([with_cond(8, n, c, seed=n) for c in (1e3, 1e6, 1e9, 1e12, 1e16, 1e25)])
    sing = torch.zeros(8, n, n, dtype=torch.float64)
    sing[1:] = torch.arange(1.0, n * n + 1, dtype=torch.float64).reshape(n, n)  # rank <= 2
    sing[2:, :, -1] = sing[2:, :, 0]  # and dependent columns
    A = torch.cat([A, ill, sing]).to(dtype)
    A[3, 0, 0] = float("nan")
    A[-9, -1, -1] = float("inf")
    return A


def expect_compiled(sol) -> None:
    if HAVE_COMPILER:
        assert sol.stats["compiled"] is True, sol.stats.get("compile_error")
    else:  # the documented fallback, not a skip
        assert sol.stats["compiled"] is False and sol.stats["compile_error"]


@pytest.mark.parametrize(("n", "dtype"), [(3, torch.float32), (2, torch.float64)])
def test_compiled_closed_form_equals_eager_paths_and_reference(n, dtype):
    # 16,384 * 2 + 5 matrices: over the eager path's chunk boundaries, odd-sized.
    A = mixed_batch(n, dtype, 2 * 16384 + 5)
    fast = ni.invert(A, method="closed_form", compile=True)
    eager = ni.invert(A, method="closed_form")
    expect_compiled(fast)
    # Same statuses as the eager certified path (and OK, SINGULAR, NONFINITE, ILL all occur),
    # up to rounding: the kernel may contract a*b - c*d into an FMA where eager rounds twice,
    # so a certificate within 2x of a threshold, or a zero determinant of a matrix singular to
    # working precision (cond 1e16, 1e25), may be decided the other way (tests/agreement.py).
    assert_statuses_agree(fast, eager, n, dtype, at_most=3)
    assert int((fast.status == eager.status).sum()) >= len(A) - 16 - 3  # 16 rows of cond >= 1e16
    counts = fast.counts()
    assert counts["SINGULAR"] >= 2 and counts["NONFINITE"] == 2 and counts["ILL_CONDITIONED"] >= 4
    assert counts["OK"] >= 2 * 16384
    # The same answers up to rounding: the same formulas in the same order, but the C++
    # compiler may contract a*b - c*d into an FMA (by CPU and flags) where eager rounds twice;
    # with cancellation that is relative to cond, so compare normwise against 2 n eps cond_1.
    # A ratio within 2x of 10 (closed_form refines answers above 10) may be refined in one path
    # only, moving the answer by about its residual: those are compared within the sum of both
    # paths' certified error bounds instead.
    ok = (fast.status == 0) & (eager.status == 0)
    cond = A[ok].double().abs().sum(-2).amax(-1) * eager.inverse[ok].double().abs().sum(-2).amax(-1)
    gap = (fast.inverse[ok].double() - eager.inverse[ok].double()).abs().sum(-2).amax(-1)
    tight = gap <= 2 * n * eps(dtype) * cond * eager.inverse[ok].double().abs().sum(-2).amax(-1)
    refined_once = near(fast.residual[ok], 10.0) | near(eager.residual[ok], 10.0)
    assert bool((tight | refined_once).all())
    bound = error_bound(A[ok], fast.inverse[ok], fast.residual[ok])
    bound += error_bound(A[ok], eager.inverse[ok], eager.residual[ok])
    assert bool((gap <= bound).all())
    ok = fast.status == 0
    assert torch.isnan(fast.inverse[~ok & (fast.status != ILL)]).all()
    # The certificate of the fused loop is the certificate of the answers, up to summation order.
    res, rc = certificate(A[ok], fast.inverse[ok])
    torch.testing.assert_close(fast.residual[ok], res, atol=2.0, rtol=0.05)
    torch.testing.assert_close(fast.rcond[ok], rc)
    assert bool(fast.residual[fast.status == S].isnan().all())
    # And against the float64 reference.
    ref = torch.linalg.inv(A[ok].double())
    cond1 = ref.abs().sum(-2).amax(-1) * A[ok].double().abs().sum(-2).amax(-1)
    err = (fast.inverse[ok].double() - ref).abs().sum(-2).amax(-1) / ref.abs().sum(-2).amax(-1)
    assert bool((err <= 2 * PASS_RATIO * n * cond1 * eps(dtype)).all())
    assert float(fast.residual[ok].max()) < PASS_RATIO


@pytest.mark.parametrize(("n", "dtype"), [(3, torch.float32), (2, torch.float64)])
def test_compiled_kernel_equals_its_eager_twin(n, dtype):
    A = mixed_batch(n, dtype, 1001)
    A = torch.where(torch.isfinite(A).all(dim=(-2, -1))[:, None, None], A, torch.eye(n, dtype=dtype))
    kernel = compiled_kernel(inverse_certificate, n, dtype, A.device)
    assert kernel.compiled is HAVE_COMPILER, kernel.reason
    out, reason = kernel(A)
    if not HAVE_COMPILER:
        assert out is None and reason
        return
    twin = inverse_certificate(A)
    # The same formulas, but the C++ compiler may contract a*b - c*d into an FMA (by CPU and
    # flags): a determinant that is exactly zero in one rounding may be a tiny nonzero in the
    # other, only for matrices singular to working precision (the other side's rcond < 2 eps).
    flags = out[1] != twin[1]
    rc_other = torch.where(out[1], twin[3], out[3])
    assert bool((rc_other[flags] < 2 * eps(dtype)).all())
    assert int(flags.sum()) <= 16  # the rows of cond >= 1e16
    answered = ~out[1] & ~twin[1]
    # Answers normwise within 2 n eps cond_1 of each other (cancellation is relative to cond),
    # for the matrices the certificate can speak for (rcond above 2 eps).
    inv1 = lambda M: M.double().abs().sum(-2).amax(-1)  # noqa: E731
    fine = answered & (twin[3] > 2 * eps(dtype))
    gap = inv1(out[0][fine].double() - twin[0][fine].double())
    assert bool((gap <= 2 * n * eps(dtype) * inv1(A[fine]) * inv1(twin[0][fine]) ** 2).all())
    # Certificates equal up to rounding of the residual (O(1) in ratio units, relative 1e-6
    # in rcond) where the answers are (almost) the same; exactly equal on most rows.
    torch.testing.assert_close(out[2][fine], twin[2][fine], rtol=0.05, atol=2.0)
    torch.testing.assert_close(out[3][fine], twin[3][fine], rtol=1e-5, atol=0.0)
    assert int((out[0][answered] == twin[0][answered]).all(-1).all(-1).sum()) >= 0.9 * int(answered.sum())


def test_compiled_batch_sizes_do_not_recompile():
    from torch._dynamo.utils import counters

    A = mixed_batch(3, torch.float32, 40)
    ni.invert(A[:7], method="closed_form", compile=True)  # built (or taken from the cache)
    before = counters["stats"]["unique_graphs"]
    for B in (1, 2, 5, 63, 64):
        fast = ni.invert(A[:B], method="closed_form", compile=True)
        expect_compiled(fast)
        # Compiled vs eager: equal statuses up to a certificate at a threshold (FMA contraction).
        assert_statuses_agree(fast, ni.invert(A[:B], method="closed_form"), 3, torch.float32,
                              at_most=1)
    fast = ni.invert(A[:12].reshape(2, 2, 3, 3, 3), method="closed_form", compile=True)
    assert fast.status.shape == (2, 2, 3)
    empty = ni.invert(torch.zeros(0, 3, 3), method="closed_form", compile=True)
    assert empty.inverse.shape == (0, 3, 3) and empty.status.shape == (0,)
    assert counters["stats"]["unique_graphs"] == before  # batch sizes 1 .. 64: no recompile


def test_auto_compile_equals_auto_statuses_labels_and_fallbacks(monkeypatch):
    monkeypatch.setenv("NEURALINV_NATIVE", "0")  # the eager torch path of auto
    A = mixed_batch(3, torch.float32, 4096)  # large enough for eager auto to pick closed_form
    fast, eager = Auto(compile=True).invert(A), Auto().invert(A)
    assert eager.stats["primary"] == "closed_form"
    expect_compiled(fast)
    # Statuses, labels and fallback counts up to rounding (FMA contraction in the kernel): a row
    # whose closed-form certificate is within 2x of a threshold may be kept in one path and
    # handed to LU in the other; the path that kept it shows that certificate.
    assert_statuses_agree(fast, eager, 3, torch.float32, at_most=3)
    relabelled = torch.from_numpy(fast.method != eager.method)
    kept_fast = torch.from_numpy(fast.method == "closed_form") & relabelled
    kept_eager = torch.from_numpy(eager.method == "closed_form") & relabelled
    edge_fast = at_boundary(fast.residual, fast.rcond, 3, torch.float32)
    edge_eager = at_boundary(eager.residual, eager.rcond, 3, torch.float32)
    assert bool(edge_fast[kept_fast].all()) and bool(edge_eager[kept_eager].all())
    assert int(relabelled.sum()) <= 3
    assert abs(fast.stats["fallbacks"] - eager.stats["fallbacks"]) <= int(relabelled.sum())
    assert fast.stats["fallbacks"] > 0 and eager.stats["fallbacks"] > 0
    ok = (fast.status == 0) & (eager.status == 0) & ~relabelled
    # Up to rounding, as in test_compiled_closed_form_equals_eager_paths_and_reference.
    norm1 = lambda M: M.double().abs().sum(-2).amax(-1)  # noqa: E731
    gap = norm1(fast.inverse[ok] - eager.inverse[ok].double())
    tight = gap <= 2 * 3 * eps(torch.float32) * norm1(A[ok]) * norm1(eager.inverse[ok]) ** 2
    bound = error_bound(A[ok], fast.inverse[ok], fast.residual[ok])
    bound += error_bound(A[ok], eager.inverse[ok], eager.residual[ok])
    refined_once = near(fast.residual[ok], 10.0) | near(eager.residual[ok], 10.0)
    assert bool((tight | refined_once).all()) and bool((gap <= bound).all())
    # Certified once: LU's rows carry LU's certificate of their answers, the rest the fused one.
    # (certify.certificate on this subset, against the one on the fallback batch: the same
    # per-matrix operations, but vectorised at other batch positions, which may round a
    # contracted scalar tail differently: equal up to rounding of the residual.)
    ok = fast.status == 0
    lu = torch.from_numpy(fast.method == "lu")
    res, rc = certificate(A[lu & ok], fast.inverse[lu & ok])
    torch.testing.assert_close(fast.residual[lu & ok], res, rtol=0.05, atol=2.0)
    torch.testing.assert_close(fast.rcond[lu & ok], rc, rtol=1e-5, atol=0.0)


def test_compiled_gradient_is_the_inverse_gradient():
    A = (torch.eye(3) * 2 + 0.1 * torch.arange(9.0).reshape(3, 3)).repeat(4, 1, 1)
    A.requires_grad_()
    sol = ni.invert(A, method="closed_form", compile=True)
    expect_compiled(sol)
    sol.inverse.square().sum().backward()
    g = A.grad.clone()
    A.grad = None
    torch.linalg.inv(A).square().sum().backward()
    torch.testing.assert_close(g, A.grad)


def test_compile_failure_falls_back_to_the_eager_path(monkeypatch):
    def broken(A):
        raise RuntimeError("no kernel today")

    kernel = compiled_kernel(broken, 3, torch.float32, torch.device("cpu"))
    assert kernel.compiled is False and "no kernel today" in kernel.reason
    assert kernel(torch.eye(3)[None]) == (None, kernel.reason)
    # closed_form then answers eagerly and says why.
    import neuralinv.kernels.compiled as compiled_module

    failing = CompiledKernel(broken, False, "RuntimeError: no C++ compiler", 0.0)
    monkeypatch.setattr(compiled_module, "compiled_kernel", lambda *args: failing)
    A = mixed_batch(3, torch.float32, 20)
    sol = ClosedForm(compile=True).invert(A)
    assert sol.stats["compiled"] is False
    assert sol.stats["compile_error"] == "RuntimeError: no C++ compiler"
    eager = ClosedForm().invert(A)
    # Bit for bit: with the kernel failed, the very same eager function runs on the very same
    # batch (one path, one call), so nothing rounds differently.
    assert torch.equal(sol.status, eager.status)
    assert torch.equal(sol.residual.nan_to_num(), eager.residual.nan_to_num())


def test_compile_option_is_off_by_default_and_resolvable():
    assert ClosedForm().compile is False and Auto().compile is False
    sol = ni.invert(torch.eye(2)[None] * 4, method="auto")
    assert "compiled" not in sol.stats
    with pytest.raises(ni.InputError, match="compile"):
        ni.invert(torch.eye(2), method="lu", compile=True)
