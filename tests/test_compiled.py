"""kernels/compiled.py: the opt-in compilation behind ``Learned(compile=True)`` never fails the
caller, and its entry-by-entry certificate is the certificate; the removed inductor options of
``closed_form`` and ``auto`` are refused by name (compiled learned paths: test_learned_fused.py
and test_learned_method.py)."""

from __future__ import annotations

import math

import pytest
import torch

import neuralinv as ni
from helpers import well_conditioned
from neuralinv.certify import certificate, ratio_from_norms
from neuralinv.kernels.compiled import CompiledKernel, compile_kernel, describe, residual_norms


def test_a_kernel_that_fails_to_compile_is_recorded_not_raised():
    def broken(A):
        raise RuntimeError("no kernel today")

    kernel = compile_kernel(broken, torch.eye(3).repeat(4, 1, 1), name="broken_n3")
    assert isinstance(kernel, CompiledKernel)
    assert kernel.compiled is False and "no kernel today" in kernel.reason
    assert kernel.compile_s >= 0
    # Called anyway, it answers (None, why) and the caller runs its eager code.
    assert kernel(torch.eye(3)[None]) == (None, kernel.reason)


def test_describe_is_one_bounded_line():
    text = describe(ValueError("first line\nsecond line " + "x" * 1000))
    assert text == "ValueError: first line"
    assert len(describe(RuntimeError("y" * 1000))) == 300


@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_residual_norms_are_the_certificate(n, dtype):
    A = well_conditioned(64, n, seed=n, shift=2.5, spread=math.sqrt(n), dtype=dtype)
    X = torch.linalg.inv(A.double()).to(dtype)
    X[0] += 0.01  # one answer with a visible residual
    a = [A[:, i, j] for i in range(n) for j in range(n)]
    x = [X[:, i, j] for i in range(n) for j in range(n)]
    E, num, norm_a, norm_x = residual_norms(x, a, n)
    E_ref = torch.eye(n, dtype=dtype) - X @ A
    # Another summation order than the batched product: equal up to rounding of a sum of n terms.
    tol = 4 * n * torch.finfo(dtype).eps
    torch.testing.assert_close(torch.stack(E, -1).reshape(-1, n, n), E_ref, rtol=0, atol=tol)
    ratio, rcond = certificate(A, X)
    mine = ratio_from_norms(num, norm_a, norm_x, n, dtype)
    torch.testing.assert_close(mine, ratio, rtol=0.05, atol=2.0)
    torch.testing.assert_close(1.0 / (norm_a * norm_x), rcond, rtol=1e-5, atol=0)
    assert float(mine[0]) > 1e3 and float(mine[1:].max()) < 30


@pytest.mark.parametrize("method", ["closed_form", "auto"])
def test_removed_compile_option_is_an_unknown_option(method):
    # ClosedForm(compile=True) / Auto(compile=True) ran inductor kernels the native kernels
    # outran (docs/performance.md, attempt 62); the option is gone, named in the error.
    with pytest.raises(ni.InputError, match=f"unknown option 'compile' for method '{method}'"):
        ni.invert(torch.eye(2), method=method, compile=True)
    with pytest.raises(TypeError):
        ni.METHODS[method](compile=True)
