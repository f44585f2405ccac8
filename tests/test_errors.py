"""Errors that existing code catches: inversion failures are numpy's and torch's LinAlgError;
every other bad input is an InputError (a ValueError) naming the argument, never a raw
TypeError/RuntimeError from deep inside torch; the CLI refuses what cannot be allocated."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch

import neuralinv as ni
from helpers import neuralinv as cli
from neuralinv import _validate
from neuralinv.bench import BenchConfig
from neuralinv.learned import TrainConfig
from neuralinv.methods import METHODS, Gradient, NewtonSchulz

FAILURES = (ni.SingularMatrixError, ni.NotPositiveDefiniteError, ni.NotConvergedError)


# --- inversion failures are LinAlgErrors ------------------------------------------------------


@pytest.mark.parametrize("cls", FAILURES + (ni.InversionError,))
def test_inversion_errors_are_numpy_and_torch_linalg_errors(cls):
    assert issubclass(cls, np.linalg.LinAlgError)
    assert issubclass(cls, torch.linalg.LinAlgError)
    # What those two imply, and what neuralinv always promised.
    assert issubclass(cls, ValueError) and issubclass(cls, RuntimeError)
    assert issubclass(cls, ArithmeticError) and issubclass(cls, ni.InversionError)
    e = cls("boom", [(1,), (2, 3)])
    assert isinstance(e, np.linalg.LinAlgError) and isinstance(e, torch.linalg.LinAlgError)
    assert e.indices == [(1,), (2, 3)] and str(e) == "boom"
    # Bad input is not an inversion failure.
    assert not issubclass(ni.InputError, np.linalg.LinAlgError)


def _singular():
    A = torch.eye(3).repeat(4, 1, 1)
    A[2, 1] = 0
    return A


def test_except_numpy_linalg_error_catches_inv_of_a_singular_matrix():
    with pytest.raises(np.linalg.LinAlgError) as info:  # as ``np.linalg.inv`` would raise
        ni.inv(_singular())
    assert type(info.value) is ni.SingularMatrixError and info.value.indices == [(2,)]
    try:
        ni.inv(_singular().numpy())
    except np.linalg.LinAlgError as exc:  # the idiom of numpy code
        assert exc.indices == [(2,)]
    else:
        pytest.fail("no LinAlgError")


def test_except_torch_linalg_error_and_runtime_error_catch_the_failures():
    with pytest.raises(torch.linalg.LinAlgError, match=r"\[2\]"):
        ni.inv(_singular(), method="lu")
    not_spd = -torch.eye(3)
    with pytest.raises(torch.linalg.LinAlgError) as info:
        ni.inv(not_spd, method="cholesky")
    assert type(info.value) is ni.NotPositiveDefiniteError
    with pytest.raises(RuntimeError) as info:
        ni.inv(torch.randn(2, 6, 6, generator=torch.Generator().manual_seed(0)), method="gradient",
               steps=1)
    assert type(info.value) is ni.NotConvergedError and info.value.indices == [(0,), (1,)]


# --- bad arrays -----------------------------------------------------------------------------


def test_extended_precision_numpy_arrays_are_input_errors():
    with pytest.raises(ni.InputError, match=r"A has dtype float128.*astype\(numpy.float64\)"):
        ni.inv(np.eye(3, dtype=np.longdouble))
    with pytest.raises(ni.InputError, match=r"A has dtype complex256.*astype\(numpy.complex128\)"):
        ni.inv(np.eye(3, dtype=np.clongdouble))
    with pytest.raises(ni.InputError, match="A has dtype float128"):
        ni.pinv(np.ones((3, 2), dtype=np.longdouble))


def _quantized():
    return torch.quantize_per_tensor(torch.eye(3), 0.1, 0, torch.qint8)


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: torch.eye(3, device="meta"), "A is a meta tensor"),
        (lambda: torch.eye(3).to_sparse(), r"A is a sparse tensor \(layout torch.sparse_coo\).*to_dense"),
        (lambda: torch.eye(3).to_sparse_csr(), r"A is a sparse tensor \(layout torch.sparse_csr\)"),
        (_quantized, r"A is a quantized tensor.*dequantize"),
        (lambda: torch.nested.nested_tensor([torch.eye(3), torch.eye(2)]), "A is a nested tensor"),
        (lambda: np.ma.masked_array(np.eye(3), mask=np.eye(3, dtype=bool)), "A is a numpy masked array"),
    ],
)
@pytest.mark.parametrize("entry", ["inv", "invert", "pinv", "svd_gd"])
def test_tensors_without_dense_values_are_input_errors(make, words, entry):
    A = make()
    call = {
        "inv": lambda: ni.inv(A), "invert": lambda: ni.invert(A, method="lu"),
        "pinv": lambda: ni.pinv(A), "svd_gd": lambda: ni.svd_gd(A, steps=1),
    }[entry]
    with pytest.raises(ni.InputError, match=words):
        call()


def test_numbers_too_large_for_float64_are_input_errors():
    with pytest.raises(ni.InputError, match="A is not a rectangular array of numbers"):
        ni.inv([[2**2000, 0], [0, 1]])  # numpy's OverflowError, not a raw one


# --- method options -------------------------------------------------------------------------


def _bool_options():
    found = [
        (name, f.name)
        for name, cls in sorted(METHODS.items())
        for f in dataclasses.fields(cls)
        if f.init and f.type in ("bool", bool)
    ]
    assert ("auto", "spd") in found and ("learned", "refine") in found
    return found


@pytest.mark.parametrize("method, option", _bool_options())
@pytest.mark.parametrize("value", ["no", None, 0, 1.0, [True]])
def test_bool_options_refuse_anything_but_a_bool(method, option, value):
    extra = {"model": "builtin:ball3"} if method == "learned" else {}
    with pytest.raises(ni.InputError, match=re.escape(f"{option} must be True or False, got {value!r}")):
        ni.invert(torch.eye(3), method=method, **extra, **{option: value})
    if value == "no":
        ni.invert(torch.eye(3), method=method, **extra, **{option: np.bool_(False)})  # fine


@pytest.mark.parametrize(
    "method, option",
    [("newton_schulz", "tol"), ("gradient", "tol"), ("cholesky", "symmetry_tol")],
)
@pytest.mark.parametrize("value", [1e9, 2**64, float(2**23) * 1.0001])
def test_absurd_tolerances_name_the_valid_range(method, option, value):
    with pytest.raises(ni.InputError, match=rf"{option} must be in [\(\[]0, 8.38861e\+06\].*got"):
        ni.invert(torch.eye(3), method=method, **{option: value})
    ni.invert(torch.eye(3), method=method, **{option: 2**23})  # the bound itself is valid


@pytest.mark.parametrize("value", ["10", b"10", True])
def test_tolerances_that_are_not_one_number_are_input_errors(value):
    for method in ("newton_schulz", "gradient"):
        with pytest.raises(ni.InputError, match=r"tol must be a number"):
            ni.invert(torch.eye(3), method=method, tol=value)
    with pytest.raises(ni.InputError, match=r"symmetry_tol must be a number"):
        ni.invert(torch.eye(3), method="cholesky", symmetry_tol=value)


@pytest.mark.parametrize("value", [None, 1.0, 3])
def test_newton_schulz_seed_must_be_a_name_or_an_array(value):
    with pytest.raises(ni.InputError, match=r"seed must be 'transpose', 'identity' or an array"):
        NewtonSchulz(seed=value)


@pytest.mark.parametrize("value", [-1, 2**63, 2**64, 1.5, True])
def test_library_seeds_out_of_range_are_input_errors(value):
    msg = rf"seed must be an integer in \[0, 2\*\*63 - 1\], got {value!r}"
    with pytest.raises(ni.InputError, match=msg):
        Gradient(seed=value)
    with pytest.raises(ni.InputError, match=msg):
        TrainConfig(seed=value)
    with pytest.raises(ni.InputError, match=msg):
        ni.svd_gd(torch.eye(3), seed=value, steps=1)
    with pytest.raises(ni.InputError, match=msg):
        BenchConfig(seed=value)
    Gradient(seed=2**63 - 1)


# --- memory ---------------------------------------------------------------------------------


def test_fits_in_memory_names_needed_and_available_bytes():
    with pytest.raises(ni.InputError, match=r"x needs at least 1 GiB \(1,073,741,824 bytes\).*"
                                            r"has 0.5 GiB \(536,870,912 bytes\) available"):
        _validate.fits_in_memory("x", 2**30, 2**29)
    _validate.fits_in_memory("x", 2**29, 2**29)
    avail = _validate.available_memory()
    assert avail is None or avail > 0


HUGE = 1_000_000  # one 10^6 x 10^6 float matrix is 4-8 TB: no machine running the tests has it


@pytest.mark.parametrize(
    "args, words",
    [
        (("generate", HUGE, 1, "-o", "{d}/x"), rf"generate {HUGE} 1 \(3 arrays: float64"),
        (("generate", HUGE, 1, "-o", "{d}/x", "--format", "npy"), "needs at least 2.24e\\+04 GiB"),
        (("bench", "--sizes", f"2,{HUGE}", "--json", "{d}/b.json"), rf"bench --sizes {HUGE} \(3 arrays: float32"),
        (("demo", "--sizes", HUGE, "--count", 1, "--learned-steps", 0), rf"demo --sizes {HUGE} --count 1"),
    ],
)
def test_cli_refuses_sizes_that_cannot_be_allocated(tmp_path, args, words):
    r = cli(*(str(a).format(d=tmp_path) for a in args))
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    err = " ".join(r.stderr.split())
    assert "needs at least" in err and "bytes) available" in err and "Traceback" not in err
    assert re.search(words, err), err
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("seed", [-1, 2**64])
@pytest.mark.parametrize("command", ["generate", "demo"])
def test_cli_refuses_seeds_out_of_range(tmp_path, seed, command):
    args = (["generate", 2, 3, "-o", tmp_path / "x"] if command == "generate"
            else ["demo", "--sizes", 2, "--count", 1, "--learned-steps", 0])
    r = cli(*args, "--seed", seed)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert f"--seed must be an integer in [0, 2**63 - 1], got {seed}" in " ".join(r.stderr.split())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("call", ["rcond", "residual_ratio", "sigma_min"])
@pytest.mark.parametrize("bad", [[1.0, 2.0], "x", np.ones((2, 3)), np.eye(2, dtype=np.longdouble)])
def test_public_certificate_functions_refuse_bad_input(call, bad):
    args = (bad,) if call == "sigma_min" else (bad, np.eye(2))
    with pytest.raises(ni.InputError):
        getattr(ni, call)(*args)


def test_public_certificate_functions_take_numpy_and_mismatched_shapes_are_refused():
    A = np.array([[2.0, 1.0], [1.0, 3.0]])
    X = np.linalg.inv(A)
    assert ni.residual_ratio(A, X) < 30
    assert abs(float(ni.rcond(A, X)) - 1 / (np.abs(A).sum(0).max() * np.abs(X).sum(0).max())) < 1e-12
    assert abs(float(ni.sigma_min(A)) - np.linalg.svd(A, compute_uv=False)[-1]) < 1e-12
    with pytest.raises(ni.InputError, match="same shape"):
        ni.rcond(A, np.eye(3))


def test_block_base_size_out_of_range_is_an_input_error():
    with pytest.raises(ni.InputError, match="base_size"):
        ni.invert(np.eye(4), method="block", base_size=2**64)


def test_train_config_refuses_an_overflowing_learning_rate():
    with pytest.raises(ni.InputError, match=r"lr must be in \(0, 1e\+30\]"):
        TrainConfig(n=3, lr=1e300)


def test_train_refuses_an_absurd_width_before_building_anything(tmp_path):
    from neuralinv.learned.config import ModelConfig

    cfg = TrainConfig(n=3, steps=1, batch_size=2, model=ModelConfig(width=10**9))
    with pytest.raises(ni.InputError, match="numbers per member, more than the limit"):
        ni.train(cfg, tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_messages_for_one_matrix_without_a_batch_name_no_index():
    """numpy says "Singular matrix"; a lone matrix has no batch index to name ("[()]" before)."""
    import warnings

    with pytest.raises(ni.SingularMatrixError, match=r"^singular matrix$") as info:
        ni.inv(np.zeros((3, 3)))
    assert info.value.indices == [()]
    with pytest.raises(ni.InputError, match=r"^A has NaN or Inf entries$"):
        ni.inv(np.array([[1.0, 0.0], [0.0, np.nan]]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ni.inv(np.diag([1.0, 1e-17]))
    assert [str(w.message) for w in caught] == ["ill-conditioned (answer not trusted) at this matrix"]
    with pytest.raises(ni.SingularMatrixError, match=r"batch indices \[1\] \(1 of 2\)"):
        ni.inv(np.stack([np.eye(3), np.zeros((3, 3))]))
