"""scipy.linalg's test cases (linalg/tests/test_basic.py: TestInv, TestPinv, TestLstsq and
their keywords) run against neuralinv."""

import numpy as np
import pytest
import scipy.linalg as sl
from numpy.testing import assert_allclose, assert_array_almost_equal

import neuralinv as ni


def test_inv_simple():
    a = np.array([[1, 2], [3, 4]])
    assert_array_almost_equal(a @ ni.inv(a), np.eye(2))
    a = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 10]])
    assert_array_almost_equal(a @ ni.inv(a), np.eye(3))


def test_inv_random():
    rng = np.random.default_rng(1234)
    for n in (20, 200):
        a = rng.random((n, n)) + np.eye(n) * 20
        assert_array_almost_equal(a @ ni.inv(a), np.eye(n))


@pytest.mark.parametrize("assume_a", ["gen", "sym", "her", "pos", "upper triangular", "lower triangular"])
@pytest.mark.parametrize("lower", [False, True])
def test_inv_assume_a_reads_what_scipy_reads(assume_a, lower):
    rng = np.random.default_rng(7)
    B = rng.standard_normal((4, 4))
    a = B @ B.T + 4 * np.eye(4)
    a[0, 3] += 0.5  # not symmetric: the structured options ignore one triangle
    ref = sl.inv(a, assume_a=assume_a, lower=lower)
    assert_allclose(ni.inv(a, assume_a=assume_a, lower=lower), ref, rtol=1e-10, atol=1e-12)


def test_inv_assume_a_diagonal():
    # scipy 1.17.1 returns the off-diagonal entries untouched here; neuralinv inverts the diagonal
    a = np.array([[2.0, 1.0], [3.0, 4.0]])
    assert_allclose(ni.inv(a, assume_a="diagonal"), np.diag([0.5, 0.25]))


def test_inv_keywords_and_errors():
    a = np.array([[2.0, 1.0], [1.0, 3.0]])
    ref = sl.inv(a)
    assert_allclose(ni.inv(a, overwrite_a=True, check_finite=False), ref)
    assert_allclose(a, [[2.0, 1.0], [1.0, 3.0]])  # overwrite_a never writes
    with pytest.raises(np.linalg.LinAlgError):
        ni.inv(np.array([[1.0, 2.0], [2.0, 1.0]]), assume_a="pos")  # not positive definite
    with pytest.raises(ValueError, match="assume_a"):
        ni.inv(a, assume_a="banded")
    with pytest.raises(np.linalg.LinAlgError):
        ni.inv(np.array([[1.0, 2.0], [2.0, 4.0]]))  # singular, as scipy raises
    with pytest.raises(ValueError, match="NaN"):
        ni.inv(np.array([[1.0, np.nan], [2.0, 4.0]]))  # scipy: ValueError from check_finite


def test_float16_policy():
    a = np.eye(3, dtype=np.float16) * 2
    assert sl.inv(a).dtype == np.float32  # scipy
    assert ni.inv(a).dtype == np.float16  # neuralinv: computed in float32, returned in the input dtype


def test_pinv_simple_and_rank():
    a = np.array([[1, 2, 3], [4, 5, 6.0], [7, 8, 10]])
    assert_array_almost_equal(ni.pinv(a), sl.inv(a))
    a = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=float)  # rank 2
    p, rank = ni.pinv(a, return_rank=True)
    ref, ref_rank = sl.pinv(a, return_rank=True)
    assert_array_almost_equal(p, ref)
    assert rank == ref_rank == 2
    p, rank = ni.pinv(a, atol=1e-14, rtol=1e-1, return_rank=True)
    assert rank == sl.pinv(a, atol=1e-14, rtol=1e-1, return_rank=True)[1]


@pytest.mark.parametrize("driver", [None, "gelsd", "gelsy", "gelss"])
def test_lstsq_like_scipy(driver):
    rng = np.random.default_rng(3)
    for m, n in ((6, 3), (3, 6), (4, 4)):
        a, b = rng.standard_normal((m, n)), rng.standard_normal((m, 2))
        x, res, rank, s = sl.lstsq(a, b, lapack_driver=driver)
        got = ni.lstsq(a, b, lapack_driver=driver, check_finite=False, overwrite_a=True, overwrite_b=True)
        assert_allclose(got.solution, x, rtol=1e-10, atol=1e-12)
        assert got[2] == rank
        if m > n and driver != "gelsy":
            assert_allclose(got.residuals, res, rtol=1e-10)
    a, b = np.array([[1.0, 2], [3, 4], [5, 7]]), np.array([1.0, 2, 2])
    assert_allclose(ni.lstsq(a, b, cond=1e-8).solution, sl.lstsq(a, b, cond=1e-8)[0])
    with pytest.raises(ValueError, match="not both"):
        ni.lstsq(a, b, rcond=1e-3, cond=1e-3)


# --- complex cases ------------------------------------------------------------------------------
# Ported from scipy/linalg/tests/test_basic.py: TestInv.test_simple_complex,
# TestInv.test_random_complex, TestInv.test_empty (its complex dtypes), TestPinv.test_simple_complex
# and TestLstsq.test_random_complex_exact (its tolerances: 400 eps for complex64, 1000 eps for
# complex128; n = 20, every driver).


def test_inv_simple_complex():
    a = [[1, 2], [3, 4j]]
    assert_array_almost_equal(np.dot(a, ni.inv(a)), [[1, 0], [0, 1]])


def test_inv_random_complex():
    rng = np.random.default_rng(1234)
    n = 20
    for _ in range(4):
        a = rng.random((n, n)) + 2j * rng.random((n, n))
        for i in range(n):
            a[i, i] = 20 * (0.1 + a[i, i])
        assert_array_almost_equal(a @ ni.inv(a), np.eye(n))


@pytest.mark.parametrize("dt", [int, float, np.float32, complex, np.complex64])
def test_inv_empty(dt):
    a = np.empty((0, 0), dtype=dt)
    a_inv = ni.inv(a)
    assert a_inv.size == 0
    assert a_inv.dtype == sl.inv(np.eye(2, dtype=dt)).dtype


def test_pinv_simple_complex():
    a = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 10]], dtype=float) + 1j * np.array(
        [[10, 8, 7], [6, 5, 4], [3, 2, 1]], dtype=float
    )
    assert_array_almost_equal(ni.pinv(a), sl.inv(a))


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("driver", ["gelsd", "gelsy", "gelss"])
def test_lstsq_random_complex_exact(dtype, driver):
    rng = np.random.default_rng(1234)
    n = 20
    a = np.asarray(rng.random((n, n)) + 1j * rng.random((n, n)), dtype=dtype)
    for i in range(n):
        a[i, i] = 20 * (0.1 + a[i, i])
    eps = np.finfo(np.float32 if dtype == np.complex64 else np.float64).eps
    tol = (400 if dtype == np.complex64 else 1000) * eps
    for _ in range(2):
        b = np.asarray(rng.random((n, 3)), dtype=dtype)
        x, _, r, _ = ni.lstsq(a, b, lapack_driver=driver, overwrite_a=True, overwrite_b=True)
        assert r == n
        assert x.dtype == dtype
        assert_allclose(a @ x, b, rtol=tol, atol=tol)


def test_inv_check_finite_false_skips_the_screen_but_reports():
    # scipy's check_finite=False skips its screen (garbage or a LAPACK error for NaN); neuralinv
    # skips the up-front screen and still reports the matrix (InputError naming the NaN)
    a = np.array([[1.0, np.nan], [2.0, 4.0]]) + 0j
    with pytest.raises(ValueError, match="NaN"):
        ni.inv(a, check_finite=False)
    assert_allclose(ni.inv(np.array([[2.0, 1j], [0, 1]]), check_finite=False), sl.inv(np.array([[2.0, 1j], [0, 1]])))
