"""What runs without importing torch: ``import neuralinv``, the command line's start, and
``neuralinv invert`` of a file the native kernels certify (files/streaming.py's native chunks,
docs/performance.md attempt 77); and that the results are those of the torch path.

Each "without torch" claim is checked in a fresh subprocess (this test process has torch
loaded), by asking that process at exit whether ``torch`` is in ``sys.modules``.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import neuralinv as ni
from helpers import python
from neuralinv.files.streaming import invert_file
from neuralinv.kernels import native

#: Runs ``python -m neuralinv ARGS`` (or only the imports given as -c code before it) and
#: prints, at exit, whether torch was imported.
AT_EXIT = "import atexit, sys; atexit.register(lambda: print('TORCH LOADED', 'torch' in sys.modules)); "


def torch_loaded(proc, returncode: int = 0) -> bool:
    assert proc.returncode == returncode, proc.stderr
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("TORCH LOADED")]
    assert len(line) == 1, proc.stdout
    return line[0].split()[-1] == "True"


def run_cli(*args, cwd=None, env=None):
    code = AT_EXIT + (
        "import runpy; sys.argv = ['neuralinv', *sys.argv[1:]]; "
        "runpy.run_module('neuralinv', run_name='__main__', alter_sys=True)"
    )
    return python("-c", code, *args, cwd=cwd, env=env)


@pytest.mark.parametrize("code", ["import neuralinv", "import neuralinv.cli",
                                  "import neuralinv.errors, neuralinv.solution, neuralinv.files"])
def test_imports_without_torch(code):
    assert not torch_loaded(python("-c", AT_EXIT + code))


def test_help_without_torch():
    proc = run_cli("--help")
    assert "invert" in proc.stdout and not torch_loaded(proc)
    proc = run_cli("invert", "--help")
    assert "newton_schulz" in proc.stdout and not torch_loaded(proc)


def dget03(A: np.ndarray, X: np.ndarray) -> np.ndarray:
    """LAPACK's ratio of the answers X in float64 arithmetic, in units of their dtype's eps."""
    A64, X64 = A.astype(np.float64), X.astype(np.float64)
    n = A.shape[-1]
    norm = lambda M: np.abs(M).sum(axis=-2).max(axis=-1)  # noqa: E731  1-norm per matrix
    return norm(np.eye(n) - X64 @ A64) / (n * norm(A64) * norm(X64) * np.finfo(A.dtype).eps)


def test_errors_of_invert_without_torch(tmp_path):
    np.save(tmp_path / "rect.npy", np.zeros((2, 3, 4)))
    for args in (("missing.npy", "-o", "x.npy"), ("rect.npy", "-o", "x.npy"),
                 ("rect.npy", "-o", "no/such/dir/x.npy")):
        proc = run_cli("invert", *args, cwd=tmp_path)
        assert not torch_loaded(proc, returncode=2), args
        assert proc.stderr.startswith("error:"), proc.stderr


def test_is_inversion_error():
    import neuralinv.errors as E

    assert E.is_inversion_error(E.SingularMatrixError("x"))
    assert E.is_inversion_error(E.NotConvergedError("x"))
    for other in (ArithmeticError("x"), ZeroDivisionError("x"), np.linalg.LinAlgError("x"),
                  E.InputError("x"), KeyboardInterrupt()):
        assert not E.is_inversion_error(other)


def test_submodules_and_star_imports():
    code = ("import neuralinv, types; "
            "assert all(isinstance(getattr(neuralinv, m), types.ModuleType) for m in "
            "('methods', 'errors', 'api', 'files', 'certify', 'kernels', 'learned', 'solution')); "
            "ns = {}; exec('from neuralinv.errors import *', ns); "
            "assert {'InversionError', 'SingularMatrixError', 'InputError'} <= set(ns); "
            "ns = {}; exec('from neuralinv import *', ns); "
            "import neuralinv as ni; assert all(ns[k] is getattr(ni, k) for k in ni.__all__); "
            "print('ok')")
    proc = python("-c", code)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def well_conditioned(B: int, n: int, dtype, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (2.5 * np.eye(n) + rng.standard_normal((B, n, n)) / np.sqrt(n)).astype(dtype)


@pytest.mark.parametrize("n, dtype", [(3, np.float32), (7, np.float64)])
def test_invert_a_certified_file_without_torch(tmp_path, n, dtype):
    A = well_conditioned(300, n, dtype)
    np.save(tmp_path / "a.npy", A)
    proc = run_cli("invert", "a.npy", "-o", "x.npy", "--chunk-size", "128", cwd=tmp_path)
    assert not torch_loaded(proc)
    label = "native_closed_form" if n <= 4 else "native_gauss_jordan"
    assert f"300 matrices | method: {label} 300 |" in proc.stdout and "status: OK 300" in proc.stdout
    X = np.load(tmp_path / "x.npy")
    assert X.dtype == dtype
    # The same answers as ni.invert in this (torch) process: the same kernel, though its
    # shares of the batch may differ (vector body or remainder): compared with a tolerance.
    sol = ni.invert(A)
    tol = 8 * np.finfo(dtype).eps
    np.testing.assert_allclose(X, sol.inverse, rtol=tol, atol=tol)
    assert (dget03(A, X) < 30).all()


def test_a_file_with_singular_input_loads_torch_for_those_chunks(tmp_path):
    A = well_conditioned(200, 3, np.float32)
    A[150] = 0.0
    np.save(tmp_path / "a.npy", A)
    proc = run_cli("invert", "a.npy", "-o", "x.npy", "--chunk-size", "64", cwd=tmp_path)
    assert torch_loaded(proc)  # the third chunk needs LU
    assert "OK 199" in proc.stdout and "SINGULAR 1" in proc.stdout
    assert "first not OK: matrix 150" in proc.stdout
    assert "lu 1" in proc.stdout and "native_closed_form 199" in proc.stdout


def hard_file(n: int, dtype) -> np.ndarray:
    """Chunks of 64 where the kernels certify everything, and chunks with a singular, a NaN,
    an ill-conditioned and a pivot-needing matrix."""
    A = well_conditioned(64 * 5, n, dtype, seed=1)
    A[70] = 0.0
    A[71, 0, 0] = np.nan
    A[140] = np.diag(np.r_[1.0, np.full(n - 1, 1e-9)]).astype(dtype)
    P = np.eye(n, dtype=dtype)[::-1].copy()
    A[200] = P  # zero leading pivot: the unpivoted kernels cannot, LU can
    return A


@pytest.mark.parametrize("n, dtype", [(3, np.float32), (6, np.float32), (16, np.float64),
                                      (40, np.float64)])
def test_native_chunks_give_the_results_of_auto(tmp_path, n, dtype):
    A = hard_file(n, dtype)
    np.save(tmp_path / "a.npy", A)
    fast = invert_file(tmp_path / "a.npy", tmp_path / "fast.npy", chunk_size=64)
    # A Method instance is not the default: every chunk goes through Auto.invert.
    slow = invert_file(tmp_path / "a.npy", tmp_path / "slow.npy", method=ni.Auto(), chunk_size=64)
    for field in ("count", "n", "chunks", "status_counts", "method_counts", "first_not_ok"):
        assert getattr(fast, field) == getattr(slow, field), field
    assert fast.status_counts["OK"] < A.shape[0]  # the hard matrices are in the file
    np.testing.assert_allclose(fast.worst_residual, slow.worst_residual, rtol=1e-3)
    Xf, Xs = np.load(tmp_path / "fast.npy"), np.load(tmp_path / "slow.npy")
    assert Xf.dtype == Xs.dtype == dtype
    tol = 8 * np.finfo(dtype).eps
    np.testing.assert_allclose(Xf, Xs, rtol=tol, atol=tol)  # NaN where the other has NaN


def test_files_the_kernels_do_not_take_go_to_auto(tmp_path):
    big_endian = well_conditioned(100, 3, ">f4")
    np.save(tmp_path / "be.npy", big_endian)
    res = invert_file(tmp_path / "be.npy", tmp_path / "x.npy")
    assert res.status_counts == {"OK": 100}
    X = np.load(tmp_path / "x.npy")
    np.testing.assert_allclose(X, np.linalg.inv(big_endian.astype(np.float64)), rtol=1e-5, atol=1e-6)
    half = well_conditioned(10, 3, np.float16)
    np.save(tmp_path / "h.npy", half)
    res = invert_file(tmp_path / "h.npy", tmp_path / "xh.npy")
    assert res.status_counts == {"OK": 10} and np.load(tmp_path / "xh.npy").dtype == np.float16


def test_native_switch_off_goes_to_auto(tmp_path, monkeypatch):
    np.save(tmp_path / "a.npy", well_conditioned(50, 3, np.float32))
    monkeypatch.setenv(native.ENV, "0")
    res = invert_file(tmp_path / "a.npy", tmp_path / "x.npy")
    assert res.status_counts == {"OK": 50} and "native_closed_form" not in res.method_counts


def test_lazy_package_names():
    import neuralinv.api
    import neuralinv.errors
    import neuralinv.methods

    assert ni.inv is neuralinv.api.inv and ni.Auto is neuralinv.methods.Auto
    assert ni.SingularMatrixError is neuralinv.errors.SingularMatrixError
    assert set(ni.__all__) <= set(dir(ni))
    for name in ni.__all__:
        assert getattr(ni, name) is not None
    with pytest.raises(AttributeError, match="no_such_name"):
        ni.no_such_name  # noqa: B018


def test_svd_gd_is_the_function_whatever_was_imported_first():
    code = ("import neuralinv.gradient_svd, neuralinv as ni, inspect; "
            "print(inspect.isfunction(ni.svd_gd))")
    proc = python("-c", code)
    assert proc.returncode == 0 and proc.stdout.strip() == "True", proc.stderr


def test_linalg_errors_belong_to_neuralinv_errors():
    import neuralinv.errors as E

    for name in ("InversionError", "SingularMatrixError", "NotConvergedError",
                 "NotPositiveDefiniteError"):
        cls = getattr(E, name)
        assert cls.__module__ == "neuralinv.errors" and cls.__qualname__ == name
        assert pickle.loads(pickle.dumps(cls)) is cls
        assert issubclass(cls, np.linalg.LinAlgError)
        assert name in dir(E)
    with pytest.raises(AttributeError):
        E.NoSuchError  # noqa: B018
    err = pickle.loads(pickle.dumps(E.SingularMatrixError("singular")))
    assert type(err) is E.SingularMatrixError and str(err) == "singular"


def test_cli_method_names_are_the_registry():
    from neuralinv.cli.app import COMPILE_METHODS, METHOD_NAMES
    from neuralinv.methods import METHODS, with_option

    assert METHOD_NAMES == ", ".join(sorted(METHODS))
    assert COMPILE_METHODS == ", ".join(with_option("compile"))


def test_threads_before_torch_is_loaded():
    code = ("import sys, os; from neuralinv.kernels import native; "
            "print(native.threads(), 'torch' in sys.modules)")
    proc = python("-c", code, env={"OMP_NUM_THREADS": "3"})
    assert proc.stdout.split() == ["3", "False"], proc.stderr
    proc = python("-c", code, env={"OMP_NUM_THREADS": ""})
    import os

    assert proc.stdout.split() == [str(len(os.sched_getaffinity(0))), "False"], proc.stderr
    import torch

    assert native.threads() == torch.get_num_threads()  # this process has torch


def test_dtype_names():
    import torch

    assert native.dtype_name(torch.float32) == native.dtype_name(np.float32) == "float32"
    assert native.dtype_name(np.dtype("float64")) == native.dtype_name(torch.float64) == "float64"
    for other in (np.dtype(">f4"), np.float16, torch.float16, torch.complex64, np.int32, "x"):
        assert native.dtype_name(other) is None
