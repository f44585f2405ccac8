"""The Triton kernel of the GPU path (kernels/gpu.py) run by Triton's interpreter on CPU
tensors, through ``ni.invert`` / ``ni.inv`` exactly as a CUDA batch is (``methods.native``'s
device test replaced), against float64 references, LU and the numba kernels.

Not collected by the suite itself (the file name does not start with ``test_``): Triton reads
``TRITON_INTERPRET`` once, when it is imported, so tests/test_gpu_kernel.py runs this file in
a pytest subprocess with ``TRITON_INTERPRET=1``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import neuralinv as ni
from agreement import assert_statuses_agree
from neuralinv.kernels import gpu
from neuralinv.methods import native as native_method
from neuralinv.solution import Status
from test_native import (
    DTYPES,
    check_certified,
    check_hard_cases,
    check_rcond_edge,
    hard_cases,
    tensors,
    well_conditioned,
    with_cond,
)

LABEL = {gpu.NAME}
SIZES = (1, 2, 3, 4, 5, 8, 16, 17, 32)

assert os.environ.get("TRITON_INTERPRET") == "1" and gpu.interpreted(), "run by tests/test_gpu_kernel.py"


@pytest.fixture(autouse=True)
def cpu_tensors_take_the_gpu_path(monkeypatch):
    monkeypatch.setattr(native_method, "_on_gpu", lambda A: True)


def block(n: int) -> int:
    """Matrices per program of the kernel at this n."""
    return gpu.constants(n)["BLOCK"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_random_batches_and_block_remainders(n, dtype):
    for B in (0, 1, block(n) + 1):
        A = well_conditioned(B, n, dtype, seed=B)
        sol = ni.invert(A)
        assert tuple(torch.as_tensor(sol.inverse).shape) == (B, n, n)
        if B:
            assert sol.stats["native"] is True and sol.stats["primary"] == gpu.NAME
            assert sol.all_ok, sol.counts()
            assert set(sol.method) == LABEL
        check_certified(A, sol, LABEL)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", (2, 3, 5, 16))
def test_ill_conditioned(n, dtype):
    conds = (1e3, 1e5, 1e7) if dtype == torch.float32 else (1e6, 1e10, 1e14)
    A = torch.cat([with_cond(12, n, c, dtype) for c in conds])
    sol = ni.invert(A)
    check_certified(A, sol, LABEL)
    lu = ni.invert(A, method="lu")
    assert np.mean(np.asarray(sol.status) == np.asarray(lu.status)) >= 0.9


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", (1, 3, 5, 32))
@pytest.mark.parametrize("scale", (1e-30, 1e30))
def test_scaled(n, dtype, scale):
    A = well_conditioned(5, n, dtype)
    sol = ni.invert(A * scale)
    assert sol.all_ok and set(sol.method) == LABEL, sol.counts()
    check_certified(A * scale, sol, LABEL)
    ref = torch.linalg.inv(A.double())
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(sol.inverse.double() * scale, ref, rtol=tol, atol=tol * float(ref.abs().max()))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", (1, 2, 3, 9))
def test_singular_nonfinite_and_pivoting(n, dtype):
    A = hard_cases(12, n, dtype)
    # The unpivoted kernel cannot answer the pivot-needing matrix: the fallback (LU) does.
    check_hard_cases(A, ni.invert(A), nonfinite_label=gpu.NAME, pivoted_label="lu")
    with pytest.raises(np.linalg.LinAlgError):
        ni.inv(A[:1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", (3, 8, 12))
def test_agrees_with_the_numba_kernels(n, dtype, monkeypatch):
    A = torch.cat([well_conditioned(9, n, dtype), with_cond(9, n, 1e4, dtype)])
    gpu_sol = ni.invert(A)
    monkeypatch.setattr(native_method, "_on_gpu", lambda A: False)
    cpu_sol = ni.invert(A)
    assert set(cpu_sol.method) <= {"native_closed_form", "native_gauss_jordan", "lu"}
    # Two kernels, two summation orders: statuses up to a certificate within rounding of a threshold.
    assert_statuses_agree(tensors(gpu_sol), tensors(cpu_sol), n, dtype, at_most=1)
    both = torch.as_tensor((np.asarray(gpu_sol.status) == 0) & (np.asarray(cpu_sol.status) == 0))
    # Both within the certificate's error bound of the inverse: within twice it of each other.
    diff = torch.linalg.matrix_norm((gpu_sol.inverse[both] - cpu_sol.inverse[both]).double(), ord=1)
    size = torch.linalg.matrix_norm(cpu_sol.inverse[both].double(), ord=1)
    eps = torch.finfo(dtype).eps
    assert bool((diff <= 2 * 4 * 30 * n * eps / cpu_sol.rcond[both].double() * size).all())
    torch.testing.assert_close(gpu_sol.residual[both], cpu_sol.residual[both], rtol=0.2, atol=1.0)
    torch.testing.assert_close(gpu_sol.rcond[both], cpu_sol.rcond[both], rtol=1e-3, atol=0)


def test_non_contiguous_numpy_batch_shapes_and_half():
    A = well_conditioned(2 * 3 * 4, 5, torch.float64).reshape(2, 3, 4, 5, 5)
    view = A.transpose(-1, -2)[:, :, ::2]
    assert not view.is_contiguous()
    sol = ni.invert(view)
    assert sol.all_ok and tuple(sol.status.shape) == (2, 3, 2) and set(sol.method.ravel()) == LABEL
    torch.testing.assert_close(sol.inverse, torch.linalg.inv(view), rtol=1e-10, atol=1e-12)
    sol_np = ni.invert(view.numpy().astype(np.float32))
    assert isinstance(sol_np.inverse, np.ndarray) and sol_np.inverse.dtype == np.float32
    assert isinstance(sol_np.status, np.ndarray) and sol_np.method.shape == (2, 3, 2)
    np.testing.assert_allclose(sol_np.inverse, torch.linalg.inv(view).numpy(), rtol=1e-4, atol=1e-5)
    half = ni.invert(view.to(torch.float16))
    assert half.inverse.dtype == torch.float16 and half.all_ok
    one = ni.inv(view[0, 0, 0])  # a single matrix: 0-d statuses, as on the torch path
    torch.testing.assert_close(one, torch.linalg.inv(view[0, 0, 0]), rtol=1e-10, atol=1e-12)


def test_autograd_uses_the_kernel_and_matches_torch():
    A = well_conditioned(4, 6, torch.float64).requires_grad_(True)
    sol = ni.invert(A)
    assert sol.stats["native"] is True and set(sol.method) == LABEL
    sol.inverse.sum().backward()
    B = A.detach().clone().requires_grad_(True)
    torch.linalg.inv(B).sum().backward()
    torch.testing.assert_close(A.grad, B.grad)


def test_the_kernel_alone_on_an_empty_batch_and_its_outputs():
    A = well_conditioned(3, 4, torch.float32)
    out, label = gpu.invert(A)
    X, cert, status = out
    assert label == gpu.NAME and X.dtype == cert.dtype == torch.float32 and status.dtype == torch.int8
    assert cert.shape == (2, 3) and (status == 0).all()
    empty, _ = gpu.invert(A[:0])
    assert [t.shape for t in empty] == [(0, 4, 4), (2, 0), (0,)]
    assert gpu.unavailable(torch.zeros(1, 33, 33)) == "no Triton kernel for n=33 (1 <= n <= 32)"
    assert "bfloat16" in gpu.unavailable(torch.zeros(1, 3, 3, dtype=torch.bfloat16))


@pytest.mark.parametrize("dtype", DTYPES)
def test_pivot_growth_fails_the_certificate_and_goes_to_lu(dtype):
    # A tiny first pivot: unpivoted elimination loses digits (ratio ~100-230, ||I - XA|| < 1/8),
    # which the ratio test (< 30) catches; pivoted LU answers it.
    A = torch.tensor([[1e-4, 1.0, 0.5], [1.0, 1.0, 0.3], [0.2, 0.7, 1.0]], dtype=dtype)[None]
    (X, cert, status), _ = gpu.invert(A)
    assert int(status[0]) == native_method._native.FALLBACK and float(cert[0, 0]) > 30
    sol = ni.invert(A)
    assert sol.method[0] == "lu" and int(sol.status[0]) == Status.OK and float(sol.residual[0]) < 30
    torch.testing.assert_close(sol.inverse.double(), torch.linalg.inv(A.double()), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("n", (5, 8))
def test_answers_near_the_rcond_edge_are_as_good_as_lu(n):
    check_rcond_edge(n, 200, gpu.NAME)  # as the numba kernel's test, on fewer matrices
