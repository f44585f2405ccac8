"""The answer does not depend on the scale of A (issue 12, item 3).

Well-conditioned matrices (cond_2 = 10) multiplied by powers of two and of ten across each
dtype's range, all scales in one batch, so every matrix is scaled on its own: every method must
certify them (status OK, dget03 ratio < 30) and match the float64 reference of exactly the matrix
it saw, ``2^-e inv(2^-e A)``, within the error bound the certificate proves. Then the three
observed failures as named regressions, and the edge where the inverse is not representable.
"""

from __future__ import annotations

import math

import pytest
import torch

import neuralinv as ni
from helpers import conditioned
from neuralinv.certify import (
    PASS_RATIO,
    _ratio,
    certificate,
    eps,
    max_exponent,
    norm1,
    pow2_scale,
    ratio_from_norms,
)
from neuralinv.methods import Block, ClosedForm, Gradient, NewtonSchulz
from neuralinv.methods.newton_schulz import scaled_transpose

OK, ILL = int(ni.Status.OK), int(ni.Status.ILL_CONDITIONED)

#: Scales whose inverse is representable with every entry a normal number (cond 10, n <= 8):
#: float64 up to 1e±300, float32 up to 1e±35, as powers of ten and of two.
SCALES = {
    torch.float64: [1.0, 1e-300, 1e-200, 1e-100, 1e-30, 1e30, 1e100, 1e200, 1e300]
    + [2.0**k for k in (-990, -700, -300, 300, 700, 990)],
    torch.float32: [1.0, 1e-35, 1e-25, 1e-19, 1e-10, 1e10, 1e19, 1e25, 1e35]
    + [2.0**k for k in (-115, -80, -40, 40, 80, 115)],
}


def well_conditioned(B: int, n: int, *, seed: int, spd: bool = False) -> torch.Tensor:
    """float64 U diag(s) V^T, singular values from 1 to 0.1 (V = U for SPD), max entry ~1."""
    return conditioned(B, n, 10.0, seed=seed, spd=spd)


def scaled_batch(n: int, dtype: torch.dtype, *, per: int = 2, seed: int = 0, spd: bool = False):
    """The same ``per`` matrices at every scale of SCALES[dtype], one batch, in ``dtype``."""
    scales = SCALES[dtype]
    M = well_conditioned(per, n, seed=seed, spd=spd).repeat(len(scales), 1, 1)
    s = torch.tensor(scales, dtype=torch.float64).repeat_interleave(per)
    return (M * s[:, None, None]).to(dtype)


def scaled_reference(A: torch.Tensor) -> torch.Tensor:
    """float64 ``2^-e inv(2^-e A)``: the inverse of exactly A, computed at a moderate scale."""
    A64 = A.to(torch.float64)
    e = max_exponent(A64)
    return pow2_scale(torch.linalg.inv(pow2_scale(A64, -e)), -e)


def check_scale_free(sol, A, *, allowed=(OK,)):
    """Every answer certified, and within the certificate's error bound of the reference.

    ratio < 30 bounds the relative 1-norm error by 30 n cond_1 eps (docs/methods.md); the
    float64 reference has its own, much smaller, error: hence the 2.
    """
    n = A.shape[-1]
    status = torch.as_tensor(sol.status)
    assert bool(torch.isin(status, torch.tensor(allowed, dtype=status.dtype)).all()), sol.counts()
    assert bool((torch.as_tensor(sol.residual) < PASS_RATIO).all())
    X = torch.as_tensor(sol.inverse).to(torch.float64)
    assert bool(torch.isfinite(X).all())
    ref = scaled_reference(A)
    # Norms of the scaled pair: 1e300 entries would overflow a 1-norm in float64.
    e = max_exponent(A.to(torch.float64))
    refs, Xs = pow2_scale(ref, e), pow2_scale(X, e)
    As = pow2_scale(A.to(torch.float64), -e)
    cond1 = norm1(As) * norm1(refs)
    err = norm1(Xs - refs) / norm1(refs)
    bound = 2 * PASS_RATIO * n * cond1 * eps(A.dtype)
    assert bool((err <= bound).all()), float((err / bound).max())
    return err


def relative_to_unit_scale(X: torch.Tensor, A: torch.Tensor, per: int) -> torch.Tensor:
    """Relative 1-norm difference of each scaled answer, scaled back, from the answer at scale 1
    of the same matrix (only for the power-of-two scales, where A itself scales exactly)."""
    scales = SCALES[A.dtype]
    X = X.to(torch.float64).reshape(len(scales), per, *X.shape[-2:])
    out = []
    for i, s in enumerate(scales):
        if s != 1.0 and math.log2(s).is_integer():
            back = X[i] * s
            out.append(norm1(back - X[0]) / norm1(X[0]))
    return torch.cat(out)


METHODS = {
    "lu": dict(method="lu"),
    "cholesky": dict(method="cholesky"),
    "closed_form": dict(method="closed_form"),
    "newton_schulz": dict(method="newton_schulz"),
    "block": dict(method=Block(base="closed_form", base_size=2)),
    "block_ns": dict(method=Block(base="newton_schulz")),
    "auto_closed_form": dict(method="auto"),  # torch path, batch >= 4096: closed_form, then LU
    "auto_native": dict(method="auto"),  # the default: native kernels (n <= 32 on CPU)
    "auto_lu": dict(method="auto"),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_is_scale_free(name, dtype, monkeypatch):
    n = {"closed_form": 3, "auto_closed_form": 3, "auto_native": 3, "block": 5, "block_ns": 7}.get(name, 6)
    per = 280 if name == "auto_closed_form" else 2
    A = scaled_batch(n, dtype, per=per, seed=1, spd=name == "cholesky")
    if name in ("auto_closed_form", "auto_lu"):
        monkeypatch.setenv("NEURALINV_NATIVE", "0")  # auto's torch path
    sol = ni.invert(A, **METHODS[name])
    if name == "auto_closed_form":
        assert sol.stats["primary"] == "closed_form"
    if name == "auto_native":  # numba is a dependency: the kernel must have answered
        assert sol.stats["native"], sol.stats
    check_scale_free(sol, A)
    # Power-of-two scales change only the exponents: the answers agree with scale 1's within
    # rounding (not bit for bit: the method may take another path for a rescaled matrix).
    diff = relative_to_unit_scale(sol.inverse, A, per)
    assert bool((diff <= 1e3 * n * eps(dtype)).all()), float(diff.max())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n", [1, 2, 4])
def test_closed_form_every_size_is_scale_free(n, dtype):
    A = scaled_batch(n, dtype, per=3, seed=n)
    check_scale_free(ClosedForm().invert(A), A)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gradient_has_no_spurious_failure_from_scale(dtype):
    scales = [1e-300, 1e300, 2.0**-700] if dtype == torch.float64 else [1e-35, 1e-25, 1e25, 1e35]
    M = well_conditioned(len(scales), 3, seed=2)
    A = (M * torch.tensor(scales, dtype=torch.float64)[:, None, None]).to(dtype)
    sol = Gradient().invert(A)
    check_scale_free(sol, A)
    assert "rescaled" not in sol.stats  # the descent itself works at every scale


def test_learned_fallback_is_scale_free():
    """The learned method (a 3x3 network): extreme scales are out of its region or scaled into
    it; either way each answer is certified (OUT_OF_REGION: the fallback's certified answer)."""
    A = scaled_batch(3, torch.float32, per=2, seed=3)
    sol = ni.invert(A, method=ni.LearnedInverse.load("builtin:ball3"))
    check_scale_free(sol, A, allowed=(OK, int(ni.Status.OUT_OF_REGION)))


# --- the three observed cases -------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("scale", [1e-100, 1e-200, 1e-300])
def test_closed_form_tiny_well_conditioned_is_not_singular(scale, n):
    A = well_conditioned(4, n, seed=5) * scale  # float64: det underflowed
    sol = ClosedForm().invert(A)
    assert sol.counts() == {"OK": 4}
    check_scale_free(sol, A)


@pytest.mark.parametrize("method", ["lu", "cholesky", "closed_form", "newton_schulz", "gradient", "block", "auto"])
def test_identity_times_1e308_is_ok(method):
    A = torch.eye(2, dtype=torch.float64) * 1e308  # n ||A||_1 overflowed in the certificate
    sol = ni.invert(A, method=method)
    assert int(sol.status) == OK, sol.counts()
    assert float(sol.residual) < PASS_RATIO and float(sol.rcond) == pytest.approx(1.0)
    assert torch.allclose(sol.inverse * 1e308, torch.eye(2, dtype=torch.float64), rtol=1e-15)


@pytest.mark.parametrize("scale", [1e19, 1e25, 1e35, 1e-25, 1e-35])
def test_newton_schulz_float32_converges_at_extreme_scales(scale):
    A = (well_conditioned(4, 5, seed=6) * scale).to(torch.float32)
    sol = NewtonSchulz().invert(A)
    assert sol.counts() == {"OK": 4}
    check_scale_free(sol, A)
    # The iteration itself converges (seed and ratio formed without overflow): no redo, and
    # as many steps as at scale 1.
    assert "rescaled" not in sol.stats
    unit = NewtonSchulz().invert((A.to(torch.float64) / scale).to(torch.float32))
    assert (sol.stats["iterations"] - unit.stats["iterations"]).abs().max() <= 1


# --- the certificate and the building blocks ------------------------------------------------


def test_certificate_of_extreme_pairs_is_finite_and_scale_free():
    M = well_conditioned(3, 4, seed=7)
    X = torch.linalg.inv(M)
    r0, c0 = certificate(M, X)
    for k in (-1000, -500, 500, 1000):  # powers of two: A 2^k and X 2^-k are exact
        r, c = certificate(M * 2.0**k, X * 2.0**-k)
        torch.testing.assert_close(r, r0, rtol=1e-12, atol=0)
        torch.testing.assert_close(c, c0, rtol=1e-12, atol=0)
    # Entries of 1e308 whose 1-norm overflows: certified on the rescaled pair.
    big = torch.tensor([[[1.0, 0.5], [0.5, 1.0]]], dtype=torch.float64) * 1.5e308
    r, c = certificate(big, torch.linalg.inv(big))
    assert float(r) < PASS_RATIO and float(c) == pytest.approx(1 / 3, rel=1e-12)


def test_ratio_keeps_the_dget03_order_for_ordinary_norms():
    g = torch.Generator().manual_seed(8)
    num, nA, nX = (torch.rand(1000, generator=g) * 10 + 0.1 for _ in range(3))
    for n in (1, 3, 16):
        legacy = _ratio(num, n * nA * nX * eps(torch.float32))
        # bitwise: the same elementwise operations in the same order (each correctly rounded)
        assert torch.equal(ratio_from_norms(num, nA, nX, n, torch.float32), legacy)


def test_pow2_scale_is_exact_across_the_whole_range():
    x = torch.tensor([[[1e-45, 3.0e38]]], dtype=torch.float32)  # subnormal and near max
    e = torch.tensor([149])
    assert float(pow2_scale(x[:, :, :1], e)) == 2.0 ** (149 - 149)  # 2^-149 * 2^149
    # bitwise: scaling by powers of two is exact
    assert torch.equal(pow2_scale(pow2_scale(x[:, :, 1:], torch.tensor([-250])), torch.tensor([250])), x[:, :, 1:])


def test_scaled_transpose_is_the_same_seed_at_any_scale():
    M = well_conditioned(2, 4, seed=9).to(torch.float32)
    X0 = scaled_transpose(M)
    for k in (-120, -70, 70, 120):  # products of the norms over/underflow float32 here
        Xk = scaled_transpose(M * 2.0**k)
        torch.testing.assert_close(Xk * 2.0**k, X0, rtol=1e-6, atol=0)


# --- where the inverse is not representable --------------------------------------------------


@pytest.mark.parametrize("method", ["lu", "closed_form", "newton_schulz", "auto", "block"])
@pytest.mark.parametrize(
    "dtype, scale",
    [(torch.float32, 1e-39), (torch.float32, 1e-44), (torch.float64, 1e-310), (torch.float64, 1e-320)],
)
def test_unrepresentable_inverse_is_ill_conditioned_never_ok(method, dtype, scale):
    """Subnormal entries: the true inverse exceeds the dtype's range. The status says so
    (ILL_CONDITIONED, never OK), whatever inf or huge entries the answer holds."""
    A = (torch.tensor([[[2.0, 1.0], [1.0, 2.0]]], dtype=torch.float64) * scale).to(dtype)
    assert float(A.abs().max()) < torch.finfo(dtype).tiny and float(A.abs().max()) > 0
    sol = ni.invert(A, method=method)
    assert int(sol.status) in (ILL, int(ni.Status.NOT_CONVERGED), int(ni.Status.SINGULAR))
    assert int(sol.status) != OK


def test_inverse_near_the_bottom_of_the_range_is_honest():
    """Entries near float32's max make the inverse's entries subnormal, with fewer bits: an
    answer certified OK must still be within its error bound; the others ILL_CONDITIONED."""
    M = well_conditioned(8, 3, seed=10)
    for scale in (1e37, 1e38, 1.1e38):
        A = (M * scale).to(torch.float32)
        sol = ni.invert(A, method="lu")
        assert bool(((sol.status == OK) | (sol.status == ILL)).all())
        ok = sol.status == OK
        if bool(ok.any()):
            check_scale_free(sol.__class__(sol.inverse[ok], sol.status[ok], sol.residual[ok],
                                           sol.rcond[ok], sol.method[ok.numpy()]), A[ok])
