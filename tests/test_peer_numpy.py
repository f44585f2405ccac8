"""numpy.linalg's test cases (linalg/tests/test_linalg.py: LstsqCases, PinvCases, InvCases and
their matrix/subclass checks) run against neuralinv, with numpy's inputs and decimals."""

import numpy as np
import pytest
from numpy.testing import assert_almost_equal

import neuralinv as ni

# numpy's LinalgCase inputs (real): square, tall, wide, single and double
CASES = {
    "single": (np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32), np.array([2.0, 1.0], dtype=np.float32)),
    "double": (np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([2.0, 1.0])),
    "double_2": (np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[2.0, 1.0, 4.0], [3.0, 4.0, 6.0]])),
    "8x8": (np.random.default_rng(1234).random((8, 8)), np.random.default_rng(1235).random(8)),
    "tall": (np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), np.array([2.0, 1.0, 3.0])),
    "tall_single": (np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=np.float32),
                    np.array([[2.0, 1.0], [1.0, 3.0], [3.0, 1.0]], dtype=np.float32)),
    "wide": (np.array([[1.0, 2.0, 3.0], [3.0, 4.0, 6.0]]), np.array([2.0, 1.0])),
    "wide_single": (np.array([[1.0, 2.0, 3.0], [3.0, 4.0, 6.0]], dtype=np.float32), np.array([2.0, 1.0], dtype=np.float32)),
}


def decimal(a):
    return 6 if a.dtype == np.float32 else 12


def check_lstsq_case(a, b, rcond, dec, wide):
    """numpy's LstsqCases.do: solution, rank, singular values, residuals (dtype, shape, value)."""
    m, n = a.shape
    s = np.linalg.svd(a, compute_uv=False)
    x, residuals, rank, sv = ni.lstsq(a, b, rcond=rcond)
    if m <= n:
        assert_almost_equal(b, a @ x, decimal=dec)
        assert rank == m
    else:
        assert rank == n
    assert_almost_equal(sv, s, decimal=dec)
    if rank == n and m > n:
        expect = (np.abs(a @ x - b) ** 2).sum(axis=0)
        expect = np.asarray(expect).reshape(-1) if b.ndim == 1 else expect
        assert residuals.shape == expect.shape
    else:
        expect = np.array([])
    assert_almost_equal(residuals, expect, decimal=dec - 2)
    assert np.issubdtype(residuals.dtype, np.floating) and np.issubdtype(sv.dtype, np.floating)
    assert x.dtype == a.dtype and isinstance(x, np.ndarray)
    ref = np.linalg.lstsq(a.astype(wide), b.astype(wide), rcond=rcond)[0]
    assert_almost_equal(x, ref, decimal=dec - 1)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("rcond", [-1, None])
def test_lstsq_cases(name, rcond):
    a, b = CASES[name]
    check_lstsq_case(a, b, rcond, decimal(a), np.float64)


def test_lstsq_float32_rcond_is_float64_accurate():
    # the case: 1.9e-6 error before the float64-residual refinement
    a, b = CASES["single"]
    x = ni.lstsq(a, b, rcond=1e-6).solution
    assert np.abs(x - [-3.0, 2.5]).max() < 1e-6


def test_lstsq_rcond_semantics_and_rank():
    # numpy's test_future_rcond / rank: a cutoff relative to sigma_1
    a = np.array([[0.0, 1.0, 0.0, 1.0, 2.0, 0.0], [0.0, 2.0, 0.0, 0.0, 1.0, 0.0],
                  [1.0, 0.0, 1.0, 0.0, 0.0, 4.0], [0.0, 0.0, 0.0, 2.0, 3.0, 0.0]]).T
    b = np.array([1, 0, 0, 0, 0, 0])
    a[:, 3] = a[:, 0] + a[:, 1]  # rank 3 in exact arithmetic
    for rcond in (-1, None):
        got = ni.lstsq(a, b, rcond=rcond)
        assert got.rank == np.linalg.lstsq(a, b, rcond=rcond)[2] == 3
        # one system: a numpy integer scalar, as numpy's (not a 0-d array)
        assert isinstance(got.rank, np.integer) and np.ndim(got.rank) == 0
    _, _, r, s = ni.lstsq(a, b, rcond=1e-1)
    assert r == int((s > 1e-1 * s[0]).sum())


@pytest.mark.parametrize("m, n, k", [(0, 4, 1), (4, 0, 2), (4, 2, 0), (0, 0, 3)])
def test_lstsq_empty(m, n, k):
    a, b = np.ones((m, n)), np.ones((m, k))
    x, res, rank, s = ni.lstsq(a, b)
    ref = np.linalg.lstsq(a, b, rcond=None)
    assert x.shape == ref[0].shape and (x == 0).all()
    assert s.shape == ref[3].shape


def test_lstsq_1d_b_broadcasts_over_a_batch():
    rng = np.random.default_rng(3)
    A, b = rng.standard_normal((5, 6, 3)), rng.standard_normal(6)
    x = ni.lstsq(A, b).solution
    assert x.shape == (5, 3)
    for i in range(5):
        assert_almost_equal(x[i], np.linalg.lstsq(A[i], b, rcond=None)[0], decimal=12)


def test_matrix_and_subclasses_are_kept():
    m = np.matrix([[1.0, 2.0], [3.0, 4.0]])
    for f in (np.linalg.inv, ni.inv, np.linalg.pinv, ni.pinv):
        assert type(f(m)) is np.matrix
    assert type(ni.invert(m).inverse) is np.matrix
    assert_almost_equal(ni.inv(m), np.linalg.inv(m), decimal=14)
    x, res, _, _ = ni.lstsq(m, np.matrix([[1.0], [2.0]]))
    assert type(x) is np.matrix and type(res) is np.matrix

    class Sub(np.ndarray):
        pass

    s = np.eye(3).view(Sub) * 2
    assert type(ni.inv(s)) is Sub and type(np.linalg.inv(s)) is Sub


def test_array_likes():
    class Like:
        def __array__(self, dtype=None, copy=None):
            return np.array([[2.0, 0.0], [0.0, 4.0]])

    assert_almost_equal(ni.inv(Like()), [[0.5, 0], [0, 0.25]])
    assert_almost_equal(ni.inv([[2, 0], [0, 4]]), [[0.5, 0], [0, 0.25]])
    assert ni.inv(np.array([[2, 0], [0, 4]])).dtype == np.float64  # integers: float64, as numpy


@pytest.mark.parametrize("name", ["double", "8x8", "tall", "wide", "single", "tall_single"])
def test_pinv_cases(name):
    # numpy's PinvCases: a @ pinv(a) @ a == a, and agreement with numpy.linalg.pinv
    a = CASES[name][0]
    p = ni.pinv(a)
    assert_almost_equal(a @ p @ a, a, decimal=decimal(a) - 1)
    assert_almost_equal(p, np.linalg.pinv(a), decimal=decimal(a) - 2)
    assert_almost_equal(ni.pinv(a, rcond=1e-15), np.linalg.pinv(a, rcond=1e-15), decimal=decimal(a) - 2)


def test_pinv_hermitian():
    # numpy's PinvHermitianCases: only the lower triangle is read
    rng = np.random.default_rng(5)
    B = rng.standard_normal((4, 4))
    a = B + B.T
    a[1, 2] = 1e3  # an upper entry numpy ignores with hermitian=True
    ref = np.linalg.pinv(a, hermitian=True)
    assert_almost_equal(ni.pinv(a, hermitian=True), ref, decimal=11)
    low = np.tril(a) + np.tril(a, -1).T
    assert_almost_equal(ni.pinv(a, None, True), np.linalg.pinv(low), decimal=11)


@pytest.mark.parametrize("name", ["double", "8x8", "single"])
def test_inv_cases(name):
    a = CASES[name][0]
    x = ni.inv(a)
    assert_almost_equal(a @ x, np.eye(a.shape[0]), decimal=decimal(a) - 1)
    assert x.dtype == a.dtype


def test_inv_0_size_and_batches():
    assert ni.inv(np.zeros((0, 1, 1))).shape == (0, 1, 1)
    a = np.random.default_rng(0).standard_normal((3, 2, 4, 4))
    assert_almost_equal(ni.inv(a), np.linalg.inv(a), decimal=10)


# --- complex cases ------------------------------------------------------------------------------
# Ported from numpy/linalg/tests/test_linalg.py: the complex LinalgCase inputs of CASES
# ("csingle", "cdouble", "cdouble_2", "csingle_nsq", "cdouble_nsq", "cdouble_nsq_1",
# "cdouble_nsq_2", "cdouble_nsq_1_2") and of HERMITIAN_CASES ("hcsingle", "hcdouble"), run through
# LstsqCases, PinvCases, PinvHermitianCases and InvCases with numpy's decimals (6 for csingle,
# 12 for cdouble; pinv 5 / 11); TestInv.test_types for the complex dtypes.
_SQ = np.array([[1.0 + 2j, 2 + 3j], [3 + 4j, 4 + 5j]])
_TALL = np.array([[1.0 + 1j, 2.0 + 2j], [3.0 - 3j, 4.0 - 9j], [5.0 - 4j, 6.0 + 8j]])
_WIDE = np.array([[1.0 + 1j, 2.0 + 2j, 3.0 - 3j], [3.0 - 5j, 4.0 + 9j, 6.0 + 2j]])
COMPLEX_CASES = {
    "csingle": (_SQ.astype(np.complex64), np.array([2.0 + 1j, 1.0 + 2j], dtype=np.complex64)),
    "cdouble": (_SQ, np.array([2.0 + 1j, 1.0 + 2j])),
    "cdouble_2": (_SQ, np.array([[2.0 + 1j, 1.0 + 2j, 1 + 3j], [1 - 2j, 1 - 3j, 1 - 6j]])),
    "csingle_nsq": (_TALL.astype(np.complex64), np.array([2.0 + 1j, 1.0 + 2j, 3.0 - 3j], dtype=np.complex64)),
    "cdouble_nsq": (_TALL, np.array([2.0 + 1j, 1.0 + 2j, 3.0 - 3j])),
    "cdouble_nsq_1": (_WIDE, np.array([2.0 + 1j, 1.0 + 2j])),
    "cdouble_nsq_2": (_TALL, np.array([[2.0 + 1j, 1.0 + 2j], [1 - 1j, 2 - 2j], [1 - 1j, 2 - 2j]])),
    "cdouble_nsq_1_2": (_WIDE, np.array([[2.0 + 1j, 1.0 + 2j], [1 - 1j, 2 - 2j]])),
}


def cdecimal(a):
    return 6 if a.dtype == np.complex64 else 12


@pytest.mark.parametrize("name", sorted(COMPLEX_CASES))
@pytest.mark.parametrize("rcond", [-1, None])
def test_lstsq_complex_cases(name, rcond):
    a, b = COMPLEX_CASES[name]
    check_lstsq_case(a, b, rcond, cdecimal(a), np.complex128)


@pytest.mark.parametrize("name", sorted(COMPLEX_CASES))
def test_pinv_complex_cases(name):
    a = COMPLEX_CASES[name][0]
    p = ni.pinv(a)
    assert p.dtype == a.dtype
    assert_almost_equal(a @ p @ a, a, decimal=5 if a.dtype == np.complex64 else 11)
    assert_almost_equal(p, np.linalg.pinv(a), decimal=cdecimal(a) - 2)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_pinv_hermitian_complex_cases(dtype):
    a = np.array([[1.0, 2.0 + 3j], [2.0 - 3j, 4.0]], dtype=dtype)  # "hcsingle", "hcdouble"
    p = ni.pinv(a, hermitian=True)
    assert_almost_equal(a @ p @ a, a, decimal=5 if dtype == np.complex64 else 11)
    assert_almost_equal(p, np.linalg.pinv(a, hermitian=True), decimal=cdecimal(a) - 2)


@pytest.mark.parametrize("name", ["csingle", "cdouble"])
def test_inv_complex_cases(name):
    a = COMPLEX_CASES[name][0]
    x = ni.inv(a)
    assert_almost_equal(a @ x, np.eye(2), decimal=cdecimal(a) - 1)
    assert x.dtype == a.dtype
    b = np.stack([a, 2 * a, 3j * a])  # numpy's generalized (stacked) variant
    assert_almost_equal(ni.inv(b), np.linalg.inv(b), decimal=cdecimal(a) - 1)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_inv_types_complex(dtype):
    x = np.array([[1, 0.5], [0.5, 1]], dtype=dtype)
    assert ni.inv(x).dtype == dtype
    assert ni.inv(np.zeros((0, 1, 1), dtype=dtype)).dtype == dtype


def test_pinv_negative_rcond_means_no_cutoff_as_numpy():
    a = np.diag([1.0, 1e-18, 0.5])
    got = ni.pinv(a, rcond=-1)
    want = np.linalg.pinv(a, rcond=-1)  # 1/1e-18 kept: no cutoff
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(ni.pinv(a, rcond=1e-15), np.linalg.pinv(a, rcond=1e-15), rtol=1e-12)
