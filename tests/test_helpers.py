"""The shared test helpers (tests/helpers.py) do what the tests that use them rely on."""

import pytest
import torch

import helpers


def test_runner_fails_past_its_timeout_naming_the_command_and_its_output():
    code = ("import sys, time; print('so far', flush=True); print('err', file=sys.stderr, "
            "flush=True); time.sleep(60)")
    with pytest.raises(pytest.fail.Exception) as info:
        helpers.python("-c", code, timeout=3)
    text = str(info.value)
    assert "ran past 3 s" in text and "time.sleep(60)" in text
    assert "so far" in text and "err" in text


def test_runner_uses_this_checkout_on_one_thread():
    code = ("import importlib.util, os; print(importlib.util.find_spec('neuralinv').origin); "
            "print(os.environ['OMP_NUM_THREADS'])")  # finds the package without importing torch
    r = helpers.python("-c", code)
    assert r.returncode == 0, r.stderr
    where, threads = r.stdout.split()
    assert where.startswith(str(helpers.SRC)) and threads == "1"


def test_generators_are_seeded_cast_last_and_leave_the_global_rng_alone():
    state = torch.get_rng_state()
    a = helpers.conditioned((2, 3), 5, 1e4, seed=3, dtype=torch.float32)
    assert torch.equal(torch.get_rng_state(), state)  # bitwise: the global generator's bytes, untouched
    # bitwise: the same seed and operations, in float64, then one rounding to float32
    assert torch.equal(a, helpers.conditioned((2, 3), 5, 1e4, seed=3).float())
    assert not torch.equal(a, helpers.conditioned((2, 3), 5, 1e4, seed=4, dtype=torch.float32))
    # bitwise: complex draws made in complex128, then one rounding to complex64
    assert torch.equal(helpers.randn(4, 3, seed=1, dtype=torch.complex64),
                       helpers.randn(4, 3, seed=1, dtype=torch.complex128).to(torch.complex64))


@pytest.mark.parametrize("cond", [1.0, 10.0, 1e8])
def test_conditioned_has_the_condition_asked_for(cond):
    A = helpers.conditioned(6, 4, cond, seed=0)
    s = torch.linalg.svdvals(A)
    torch.testing.assert_close(s[:, 0] / s[:, -1], torch.full((6,), cond, dtype=torch.float64),
                               rtol=1e-6, atol=0)
    S = helpers.conditioned(6, 4, cond, seed=0, spd=True)
    # symmetric to rounding, not bitwise: U diag(s) U^T is a BLAS product, whose (i, j) and
    # (j, i) entries may be summed in different orders on another CPU
    torch.testing.assert_close(S, S.mT, rtol=1e-14, atol=1e-14)
    assert bool((torch.linalg.eigvalsh(S) > 0).all())


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_spd_and_well_conditioned(dtype):
    H = helpers.spd(5, 4, seed=2, dtype=dtype)
    torch.testing.assert_close(H, H.mH, rtol=1e-14, atol=1e-14)  # M M^H: a BLAS product (above)
    assert bool((torch.linalg.eigvalsh(H) >= 4 - 1e-12).all())
    A = helpers.well_conditioned(50, 8, seed=1, shift=2.5, spread=8**0.5, dtype=dtype)
    assert A.dtype == dtype and float(torch.linalg.cond(A).max()) < 30
