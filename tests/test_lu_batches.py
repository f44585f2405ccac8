"""LU around torch 2.13's batched CPU LU failure (methods.lu.inverse_ex).

With several threads, torch's batched CPU LU calls MKL getrf concurrently
(pytorch/pytorch#142815): here a batch hung at n = 150 and from n = 152 came back wrong or
raised. neuralinv inverts such batches one matrix at a time, and redoes any batch that fails
with the pivot error.
"""

from __future__ import annotations

import pytest
import torch

import neuralinv as ni
from neuralinv.bench import well_conditioned
from neuralinv.methods import lu

PIVOT_ERROR = (
    "Pivots given to lu_solve must all be greater or equal to 1. "
    "Did you properly pass the result of lu_factor?"
)


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def recording(monkeypatch, fail_batched: bool = False):
    """Wrap torch.linalg.inv_ex, recording the shape of each call (optionally failing batches)."""
    real = torch.linalg.inv_ex
    shapes = []

    def inv_ex(A, *args, **kwargs):
        shapes.append(tuple(A.shape))
        if fail_batched and A.ndim > 2:
            raise RuntimeError(PIVOT_ERROR)
        return real(A, *args, **kwargs)

    monkeypatch.setattr(torch.linalg, "inv_ex", inv_ex)
    return shapes


def test_large_cpu_batches_under_threads_go_one_matrix_at_a_time(two_threads, monkeypatch):
    n = lu.PER_MATRIX_FROM + 32
    A = well_conditioned(6, n, dtype=torch.float32, device="cpu", seed=1)
    shapes = recording(monkeypatch)
    sol = ni.invert(A, method="lu")
    assert shapes == [(n, n)] * 6
    assert sol.all_ok and sol.worst_residual < 30
    # (torch.linalg.inv of the whole float64 batch raised the pivot error here, under 2 threads)
    ref = torch.stack([torch.linalg.inv(a.double()) for a in A]).float()
    assert torch.allclose(sol.inverse, ref, rtol=1e-4, atol=1e-5)
    # Below the size, or on one thread, the batch goes in one call as before.
    shapes.clear()
    ni.invert(A[:, :8, :8], method="lu")
    torch.set_num_threads(1)
    ni.invert(A[:2], method="lu")
    assert shapes == [(6, 8, 8), (2, n, n)]


def test_a_batch_failing_with_the_pivot_error_is_redone_one_at_a_time(monkeypatch):
    A = well_conditioned(5, 7, dtype=torch.float64, device="cpu", seed=2)
    A[3] = 0  # singular: the per-matrix info reports it
    shapes = recording(monkeypatch, fail_batched=True)
    sol = ni.invert(A, method="lu")
    assert shapes[0] == (5, 7, 7) and shapes[1:] == [(7, 7)] * 5
    assert sol.status.tolist() == [0, 0, 0, int(ni.Status.SINGULAR), 0]
    ok = [0, 1, 2, 4]
    assert torch.allclose(sol.inverse[ok], torch.linalg.inv(A[ok]), rtol=1e-10, atol=1e-12)
    # Any other error is not ours to hide.
    def other(*args, **kwargs):
        raise RuntimeError("other")

    monkeypatch.setattr(torch.linalg, "inv_ex", other)
    with pytest.raises(RuntimeError, match="other"):
        lu.inverse_ex(A)


def test_reference_inverse_of_the_evaluation_uses_it(two_threads):
    from neuralinv.evaluation.metrics import reference_inverse

    n = lu.PER_MATRIX_FROM + 32
    A = well_conditioned(3, n, dtype=torch.float32, device="cpu", seed=3)
    X, ok = reference_inverse(A.reshape(1, 3, n, n))
    assert X.shape == (1, 3, n, n) and bool(ok.all())
    one_by_one = torch.stack([torch.linalg.inv(a.double()) for a in A])
    assert torch.allclose(X[0], one_by_one, rtol=1e-12, atol=1e-14)
