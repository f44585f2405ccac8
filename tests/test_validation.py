"""Every bad input gets a typed InputError that names the problem, before any work is done."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import neuralinv as ni
from neuralinv.methods import Cholesky, Gradient, NewtonSchulz, resolve


@pytest.mark.parametrize(
    "A, shape",
    [
        (torch.zeros(3), r"\(3,\)"),
        (torch.tensor(1.0), r"\(\)"),
        (np.zeros(5), r"\(5,\)"),
        ([1.0, 2.0], r"\(2,\)"),
    ],
)
def test_too_few_dimensions_names_shape(A, shape):
    with pytest.raises(ni.InputError, match=rf"at least 2 dimensions, got shape {shape}"):
        ni.invert(A)


@pytest.mark.parametrize("shape", [(2, 3), (4, 3, 2), (0, 1, 2)])
def test_non_square_names_shape(shape):
    with pytest.raises(ni.InputError, match="square") as info:
        ni.inv(torch.zeros(shape))
    assert str(tuple(shape)) in str(info.value)


@pytest.mark.parametrize(
    "A, words",
    [
        (np.array([["a", "b"], ["c", "d"]]), "real numbers"),
        (np.array([[1, None], [2, 3]], dtype=object), "real numbers"),
        ([[1.0, 2.0], [3.0]], "rectangular"),
        ({"a": 1}, "torch.Tensor, a numpy.ndarray or an array-like"),
        ("matrix", "torch.Tensor, a numpy.ndarray or an array-like"),
    ],
)
def test_unsupported_values(A, words):
    with pytest.raises(ni.InputError, match=words):
        ni.invert(A)


def test_input_error_is_a_value_error():
    assert issubclass(ni.InputError, ValueError)
    assert issubclass(ni.SingularMatrixError, ni.InversionError)


def test_unknown_method_lists_every_valid_name():
    with pytest.raises(ni.InputError, match="unknown method 'qr'") as info:
        ni.invert(torch.eye(2), method="qr")
    for name in ni.METHODS:
        assert repr(name)[1:-1] in str(info.value)
    with pytest.raises(ni.InputError, match="method must be a name"):
        ni.invert(torch.eye(2), method=42)


@pytest.mark.parametrize(
    "method, options, words",
    [
        ("newton_schulz", {"tol": -1.0}, "tol must be a finite number > 0"),
        ("newton_schulz", {"tol": float("nan")}, "tol"),
        ("newton_schulz", {"max_iter": 0}, "max_iter must be an integer >= 1"),
        ("newton_schulz", {"max_iter": 2.5}, "max_iter"),
        ("newton_schulz", {"seed": "ones"}, "seed must be one of"),
        ("gradient", {"optimizer": "adamm"}, "unknown optimizer 'adamm'.*adam.*lbfgs.*sgd"),
        ("gradient", {"restart": 0}, "restart must be .auto., None or an integer >= 1, got 0"),
        ("gradient", {"restart": "often"}, "restart must be .auto., None or an integer >= 1"),
        ("gradient", {"restart": 10, "loss": "both"}, "restart needs loss=.left. or .right."),
        ("gradient", {"optimizer": torch.nn.Linear}, "unknown optimizer"),
        ("gradient", {"lr": -0.1}, "lr must be a finite number > 0"),
        ("gradient", {"lr": 0}, "lr must be"),
        ("gradient", {"steps": 0}, "steps must be an integer >= 1"),
        ("gradient", {"tol": -5}, "tol must be"),
        ("gradient", {"loss": "mse"}, "loss must be one of 'left', 'right', 'both'"),
        ("gradient", {"init": "ones"}, "init must be one of"),
        ("gradient", {"options": {"betas": (0.9, 0.99)}}, "bad options for optimizer SGD"),
        ("gradient", {"optimizer": "adam", "options": {"betas": (2.0, 0.9)}}, "Adam"),
        ("gradient", {"options": [("momentum", 0.9)]}, "options must be a dict"),
        ("cholesky", {"symmetry_tol": -1}, "symmetry_tol must be a finite number >= 0"),
        ("lu", {"tol": 1.0}, r"unknown option 'tol' for method 'lu'; its options: \(none\)"),
        ("auto", {"spd": True, "steps": 3}, "unknown option 'steps' for method 'auto'; its options: spd"),
    ],
)
def test_bad_options_rejected_when_the_method_is_built(method, options, words):
    with pytest.raises(ni.InputError, match=words):
        resolve(method, **options)  # no matrix anywhere: the error comes before any work
    with pytest.raises(ni.InputError, match=words):
        ni.invert(torch.eye(2), method=method, **options)


def test_method_classes_validate_on_construction():
    with pytest.raises(ni.InputError):
        NewtonSchulz(max_iter=0)
    with pytest.raises(ni.InputError):
        Gradient(optimizer="nope")
    with pytest.raises(ni.InputError):
        Cholesky(symmetry_tol=-1.0)
    # Valid optimizers, by name in any case or as a class
    for opt in ("adam", "Adam", "SGD", "rmsprop", "lbfgs", torch.optim.Adagrad):
        Gradient(optimizer=opt)


def test_options_with_a_built_method_are_refused():
    with pytest.raises(ni.InputError, match="already-built method"):
        ni.invert(torch.eye(2), method=NewtonSchulz(), tol=5.0)


def test_closed_form_refuses_large_n_before_work():
    with pytest.raises(ni.InputError, match="up to 4x4; got n=5"):
        ni.invert(torch.zeros(0, 5, 5), method="closed_form")


def test_nan_inf_reported_or_raised_naming_indices():
    A = torch.eye(3).repeat(5, 1, 1)
    A[1, 0, 0] = float("nan")
    A[4, 2, 1] = -float("inf")
    sol = ni.invert(A)
    assert sol.status.tolist() == [0, 5, 0, 0, 5]
    with pytest.raises(ni.InputError, match=r"NaN or Inf entries in batch elements \[1, 4\] \(2 of 5\)"):
        ni.inv(A)


def test_indices_in_deep_batches_are_tuples():
    A = torch.eye(2).repeat(2, 3, 1, 1)
    A[1, 2] = 0
    with pytest.raises(ni.SingularMatrixError, match=r"\[\(1, 2\)\]") as info:
        ni.inv(A, method="lu")
    assert info.value.indices == [(1, 2)]


def test_long_index_lists_are_elided_but_counted():
    A = torch.zeros(30, 2, 2)
    with pytest.raises(ni.SingularMatrixError, match=r"\.\.\. \(10 more\)\] \(30 of 30\)") as info:
        ni.inv(A, method="lu")
    assert len(info.value.indices) == 30


@pytest.mark.parametrize(
    "call, listed",
    [
        (lambda: ni.pinv(np.eye(2), hermitan=True), "'hermitan'; its keywords: A, rtol, hermitian"),
        (lambda: ni.lstsq(np.eye(2), np.ones(2), rcondd=1e-3), "'rcondd'; its keywords: A, B, rcond"),
        (lambda: ni.project(np.ones((3, 2)), np.eye(2), compliment=True), "'compliment'; its keywords: F, basis, complement"),
    ],
)
def test_unknown_keywords_of_the_nonsquare_functions_list_the_valid_ones(call, listed):
    with pytest.raises(ni.InputError, match=listed):
        call()
