"""The block (Schur-complement) method: exact over exact bases, certified, with fallbacks."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import neuralinv as ni
from helpers import gen, well_conditioned
from neuralinv.methods.block import Block
from neuralinv.methods.learned import Learned


@pytest.mark.parametrize("n", [6, 9, 10])
@pytest.mark.parametrize("base", ["lu", "closed_form"])
def test_block_matches_float64_inverse(n, base):
    A = well_conditioned(40, n, seed=n)
    sol = ni.invert(A, method="block", base=base)
    assert sol.all_ok, sol.counts()
    assert sol.worst_residual < 30
    assert set(sol.method.tolist()) == {"block"}
    ref = torch.linalg.inv(A)
    assert torch.allclose(sol.inverse, ref, rtol=1e-9, atol=1e-11)
    # Identity padding to a multiple of the base size, and every leaf came from the base.
    padded = -(-n // 3) * 3
    assert sol.stats["padded_to"] == padded
    # k blocks split into ceil(k/2) + floor(k/2): one leaf per base block.
    assert sol.stats["leaves"] == {base: 40 * (padded // 3)}
    assert sol.stats["fallbacks"] == 0


@settings(max_examples=25, deadline=None, derandomize=True)
@given(n=st.integers(1, 13), b=st.integers(1, 4), base=st.sampled_from(["lu", "closed_form"]),
       seed=st.integers(0, 2**16))
def test_any_size_any_base_size(n, b, base, seed):
    # Sizes below, at and between multiples of the base size (padding of 0 .. b-1 rows).
    # randn / sqrt(n) has spectral radius about 1: shifted by 2I every matrix is well conditioned.
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(3, n, n, generator=g, dtype=torch.float64) / n**0.5 + 2 * torch.eye(n)
    sol = ni.invert(A, method="block", base=base, base_size=b)
    assert sol.all_ok and sol.worst_residual < 30
    assert sol.stats["padded_to"] == -(-n // b) * b
    assert torch.allclose(sol.inverse, torch.linalg.inv(A), rtol=1e-8, atol=1e-10)


def test_leaf_count_follows_the_recursion():
    # 12 = 4 blocks of 3: split 6 | 6, each 6 split 3 | 3 -> 2 leaves per half, per matrix.
    A = well_conditioned(5, 12, seed=1)
    sol = ni.invert(A, method=Block(base="lu", base_size=3))
    assert sol.stats["leaves"] == {"lu": 5 * 4}
    # 9 = 3 blocks: split 6 | 3, the 6 split 3 | 3 -> 3 leaves per matrix.
    sol = ni.invert(A[:, :9, :9], method=Block(base="lu", base_size=3))
    assert sol.stats["leaves"] == {"lu": 5 * 3}


def test_float32_block_certified():
    A = well_conditioned(30, 10, seed=3, dtype=torch.float32)
    sol = ni.invert(A, method="block", base="closed_form")
    assert sol.inverse.dtype == torch.float32
    assert sol.all_ok and sol.worst_residual < 30


def test_singular_leading_block_falls_back_to_lu():
    # Permutations are perfectly conditioned, but their leading 3x3 (or 2x2) block is singular.
    P = torch.eye(6, dtype=torch.float64)[[3, 4, 5, 0, 1, 2]]
    A = torch.stack([P, well_conditioned(1, 6, seed=5)[0]])
    sol = ni.invert(A, method="block", base="lu")
    assert sol.all_ok
    assert sol.method.tolist() == ["lu", "block"]
    assert sol.stats["fallbacks"] == 1
    assert torch.equal(sol.inverse[0], P.T)  # bitwise: LU of a permutation is exact (0s and 1s)


def test_singular_matrix_reported_not_raised():
    A = well_conditioned(3, 6, seed=7)
    A[1, 4, :] = 0  # a zero row: exactly singular (LU meets an exactly zero pivot)
    sol = ni.invert(A, method="block", base="lu")
    assert sol.status.tolist() == [0, int(ni.Status.SINGULAR), 0]
    assert torch.isnan(sol.inverse[1]).all()
    with pytest.raises(ni.SingularMatrixError, match=r"\[1\]"):
        ni.inv(A, method="block", base="lu")


def test_block_gradient_is_the_analytic_one():
    A = well_conditioned(2, 6, seed=11).requires_grad_(True)
    X = ni.inv(A, method="block")
    X.sum().backward()
    A2 = A.detach().clone().requires_grad_(True)
    torch.linalg.inv(A2).sum().backward()
    assert torch.allclose(A.grad, A2.grad, rtol=1e-8, atol=1e-10)


def test_numpy_batch_shape_preserved():
    A = well_conditioned(6, 7, seed=13).numpy().reshape(2, 3, 7, 7)
    sol = ni.invert(A, method="block", base_size=2)
    assert isinstance(sol.inverse, np.ndarray) and sol.inverse.shape == (2, 3, 7, 7)
    assert sol.method.shape == (2, 3)
    np.testing.assert_allclose(sol.inverse, np.linalg.inv(A), rtol=1e-9, atol=1e-11)


def test_bad_options_are_input_errors():
    with pytest.raises(ni.InputError, match="closed_form"):
        Block(base="closed_form", base_size=5)
    with pytest.raises(ni.InputError, match="base_size"):
        Block(base="lu", base_size=0)
    with pytest.raises(ni.InputError, match="neither a method"):
        Block(base="no_such_method_or_dir")
    with pytest.raises(ni.InputError, match="cannot itself be 'block'"):
        Block(base="block")
    with pytest.raises(ni.InputError, match="needs a model"):
        Block(base="learned")


# -- a learned base (tiny_model: a real trained 3x3 ball model, tests/conftest.py) ------------
def _near_block_diagonal(region, batch, n, seed):
    """Diagonal 3x3 blocks well inside the ball (half its radius), weak coupling elsewhere: the
    leading blocks and the Schur complements (``A22 - O(coupling^2)``) stay in the region."""
    g = torch.Generator().manual_seed(seed)
    k = -(-n // 3)
    c = region.center
    diag = [c + 0.5 * (region.sample(batch, generator=g) - c) for _ in range(k)]
    A = 0.01 * torch.randn(batch, 3 * k, 3 * k, generator=g, dtype=torch.float64)
    for i, D in enumerate(diag):
        A[:, 3 * i:3 * i + 3, 3 * i:3 * i + 3] = D
    return A[:, :n, :n].contiguous()


@pytest.mark.parametrize("n", [6, 9, 10])
def test_block_over_learned_base(tiny_model, n):
    A = _near_block_diagonal(tiny_model.region, 30, n, seed=n)
    sol = ni.invert(A, method="block", base=tiny_model)
    assert sol.all_ok and sol.worst_residual < 30
    labels = sol.method.tolist()
    assert set(labels) <= {"block", "block+lu"}
    assert sol.stats["base"] == "learned" and sol.stats["base_size"] == 3
    assert torch.allclose(sol.inverse, torch.linalg.inv(A), rtol=1e-9, atol=1e-12)
    leaves = sol.stats["leaves"]
    full = n // 3  # leaves that are real blocks of A, all inside the region: the network's
    assert leaves.get("learned", 0) >= 30 * full
    assert sum(leaves.values()) == 30 * -(-n // 3)
    # "block+lu" marks exactly the matrices with a leaf the network handed to LU.
    assert ("block+lu" in labels) == ("lu" in leaves)
    assert labels.count("block+lu") <= leaves.get("lu", 0)


def test_block_labels_say_which_leaves_came_from_the_network(tiny_model):
    region = tiny_model.region
    g = gen(17)
    A = _near_block_diagonal(region, 8, 6, seed=17)
    # In the last four, the second diagonal block is a scaled cyclic permutation: far outside
    # the ball and no multiple of a matrix in it, so its leaf (the Schur complement) goes to LU.
    P = 2 * torch.eye(3, dtype=torch.float64)[[1, 2, 0]]
    A[4:, 3:, 3:] = P + 0.01 * torch.randn(4, 3, 3, generator=g, dtype=torch.float64)
    sol = ni.invert(A, method="block", base=tiny_model)
    assert sol.all_ok
    assert sol.method.tolist() == ["block"] * 4 + ["block+lu"] * 4
    assert sol.stats["leaves"] == {"learned": 12, "lu": 4}
    assert torch.allclose(sol.inverse, torch.linalg.inv(A), rtol=1e-9, atol=1e-12)


def test_block_over_learned_base_size_must_match(tiny_model):
    with pytest.raises(ni.InputError, match="learned base inverts 3x3"):
        Block(base=tiny_model, base_size=2)
    with pytest.raises(ni.InputError, match="learned base inverts 3x3"):
        Block(base=Learned(model=tiny_model), base_size=4)
