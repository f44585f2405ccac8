"""The native kernels of ``auto`` (kernels/native.py, methods/native.py) against float64
references and against the torch path: answers, certificates, statuses, labels, fallbacks.

Speed is the benchmark's business (``neuralinv bench``), never a timed test here. Every
comparison across code paths uses tolerances.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import helpers
import neuralinv as ni
from agreement import assert_statuses_agree
from helpers import python
from neuralinv.certify import PASS_RATIO, certificate, trusted
from neuralinv.kernels import native
from neuralinv.solution import Status

pytest.importorskip("numba")

SIZES = (1, 2, 3, 4, 5, 8, 16, 17, 32)
DTYPES = (torch.float32, torch.float64)
EPS = {torch.float32: float(torch.finfo(torch.float32).eps), torch.float64: 2.2e-16}


def tensors(sol, rows=None):
    """Status, residual and rcond of a Solution as tensors (the native path answers in numpy
    arrays shared as tensors), optionally only ``rows``, for tests/agreement.py."""
    pick = (lambda t: t) if rows is None else (lambda t: t[rows])
    return SimpleNamespace(**{k: pick(torch.as_tensor(getattr(sol, k))) for k in ("status", "residual", "rcond")})


def well_conditioned(B, n, dtype, seed=0):
    """``2.5 I + G / sqrt(n)`` (cond_2 typically below 10), seeded by ``seed + n``."""
    return helpers.well_conditioned(B, n, seed=seed + n, shift=2.5, spread=n**0.5, dtype=dtype)


def with_cond(B, n, cond, dtype, seed=0):
    """Random matrices with 2-norm condition number ``cond`` (log-spaced singular values)."""
    return helpers.conditioned(B, n, cond, seed=seed + 7 * n, dtype=dtype)


NATIVE_LABELS = {"native_closed_form", "native_gauss_jordan"}


def check_certified(A, sol, kernels=NATIVE_LABELS):
    """Every OK answer is certified by the torch certificate too and close to the float64
    inverse (relative error bounded by the residual times cond, with room for rounding);
    every non-OK answer matches what LU alone reports; labels are ``kernels``' or lu."""
    A64 = A.double()
    n, dtype = A.shape[-1], A.dtype
    X = torch.as_tensor(sol.inverse)
    status = torch.as_tensor(sol.status)
    ok = status == int(Status.OK)
    if A.shape[0] == 0:
        return
    assert set(np.unique(sol.method.astype(str))) <= set(kernels) | {"lu"}
    if bool(ok.any()):
        r, c = certificate(A[ok], X[ok])
        assert bool((r < PASS_RATIO * 1.01).all()), float(r.max())
        assert bool(trusted(r, c, n, dtype).float().mean() > 0.99)
        torch.testing.assert_close(torch.as_tensor(sol.residual)[ok].double(), r.double(), rtol=0.1, atol=5.0)
        torch.testing.assert_close(torch.as_tensor(sol.rcond)[ok].double(), c.double(), rtol=1e-3, atol=0)
        ref = torch.linalg.inv(A64[ok])
        err = torch.linalg.matrix_norm(X[ok].double() - ref, ord=1)
        bound = 4 * PASS_RATIO * n * EPS[dtype] * torch.linalg.matrix_norm(ref, ord=1) / c.double()
        assert bool((err <= bound + 1e-300).all())
    # A failing native answer is recomputed by LU: every other non-OK matrix is LU's verdict.
    failed = (~ok & (status != int(Status.NONFINITE))).numpy()
    assert (sol.method[failed] == "lu").all()
    fell_back = torch.as_tensor(sol.method == "lu")
    if bool(fell_back.any()):
        # LU alone on those rows: the same LAPACK call on the same values, but through another
        # entry point (ni.invert vs the native fallback), so statuses are compared up to a
        # certificate within rounding of a threshold (tests/agreement.py).
        lu = ni.invert(A[fell_back], method="lu")
        assert_statuses_agree(tensors(sol, fell_back), tensors(lu), n, dtype,
                              at_most=max(1, int(fell_back.sum()) // 20))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_random_batches_and_lane_remainders(n, dtype):
    for B in (0, 1, 63, 130):
        A = well_conditioned(B, n, dtype, seed=B)
        sol = ni.invert(A)
        assert sol.stats.get("native", True) is True
        assert tuple(torch.as_tensor(sol.inverse).shape) == (B, n, n)
        if B:
            assert sol.all_ok, sol.counts()
            kind = "native_closed_form" if n <= 4 else "native_gauss_jordan"
            assert set(sol.method) == {kind}
            assert sol.stats["primary"] == kind
        check_certified(A, sol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", (2, 3, 4, 5, 8, 16, 32))
def test_ill_conditioned(n, dtype):
    conds = (1e3, 1e5, 1e7) if dtype == torch.float32 else (1e6, 1e10, 1e14)
    A = torch.cat([with_cond(40, n, c, dtype) for c in conds])
    sol = ni.invert(A)
    check_certified(A, sol)
    lu = ni.invert(A, method="lu")
    # Same statuses as LU up to borderline cases of the certificate itself.
    same = np.mean(np.asarray(sol.status) == np.asarray(lu.status))
    assert same >= 0.95


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", (1, 2, 3, 4, 5, 12, 32))
@pytest.mark.parametrize("scale", (1e-30, 1e30))
def test_scaled(n, dtype, scale):
    A = well_conditioned(70, n, dtype)
    sol = ni.invert(A * scale)
    assert sol.all_ok, sol.counts()
    check_certified(A * scale, sol)
    base = ni.invert(A)
    ref = torch.as_tensor(base.inverse).double()
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(
        torch.as_tensor(sol.inverse).double() * scale, ref, rtol=tol, atol=tol * float(ref.abs().max())
    )


def hard_cases(B: int, n: int, dtype: torch.dtype) -> torch.Tensor:
    """Well-conditioned matrices but for the first six: 0 exactly singular, 1-3 with NaN / Inf
    entries, and (n > 1) 4 a permutation that needs pivoting, 5 with two equal rows."""
    A = well_conditioned(B, n, dtype)
    A[0] = 0  # exactly singular: LU's zero pivot
    A[1, 0, 0] = float("nan")
    A[2, -1, -1] = float("inf")
    A[3, :, 0] = -float("inf")
    if n > 1:
        A[4] = torch.eye(n, dtype=dtype).flip(0)  # needs pivoting: unpivoted elimination fails
        A[5, 1] = A[5, 0]  # two equal rows
    return A


def check_hard_cases(A: torch.Tensor, sol, *, nonfinite_label: str | None = None,
                     pivoted_label: str | None = None) -> None:
    """The statuses of ``ni.invert(A)`` of :func:`hard_cases` (shared by the numba and the
    Triton kernels' tests): SINGULAR by LU, NONFINITE with NaN answer and certificate (labelled
    ``nonfinite_label`` when given), the pivot-needing matrix OK (labelled ``pivoted_label``
    when given), two equal rows not OK, the rest OK; the same counts as LU; ni.inv raises."""
    n, dtype = A.shape[-1], A.dtype
    status = np.asarray(sol.status)
    assert status[0] == Status.SINGULAR and sol.method[0] == "lu"
    for b in (1, 2, 3):
        assert status[b] == Status.NONFINITE
        assert nonfinite_label is None or sol.method[b] == nonfinite_label
        assert np.isnan(np.asarray(sol.inverse[b])).all()
        assert np.isnan(float(sol.residual[b])) and np.isnan(float(sol.rcond[b]))
    if n > 1:
        assert status[4] == Status.OK
        assert pivoted_label is None or sol.method[4] == pivoted_label
        torch.testing.assert_close(torch.as_tensor(sol.inverse[4]), torch.eye(n, dtype=dtype).flip(0))
        assert status[5] != Status.OK
    assert (status[6:] == Status.OK).all()
    # The same statuses as the torch path.
    assert sol.counts() == ni.invert(A, method="lu").counts()
    with pytest.raises(ni.InputError):
        ni.inv(A)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", (1, 2, 3, 4, 5, 9, 32))
def test_singular_nonfinite_and_pivoting(n, dtype):
    A = hard_cases(70, n, dtype)
    check_hard_cases(A, ni.invert(A))


def test_overflowing_float64_goes_to_lu():
    A = well_conditioned(10, 4, torch.float64) * 1e200  # determinant overflows: closed form fails
    sol = ni.invert(A)
    assert sol.all_ok and set(sol.method) == {"lu"} and sol.stats["fallbacks"] == 10


@pytest.mark.parametrize("n", (3, 8))
def test_non_contiguous_numpy_and_batch_shapes(n):
    A = well_conditioned(2 * 3 * 5, n, torch.float64).reshape(2, 3, 5, n, n)
    view = A.transpose(-1, -2)[:, :, ::2]
    assert not view.is_contiguous()
    sol = ni.invert(view)
    assert sol.all_ok and tuple(sol.status.shape) == (2, 3, 3)
    torch.testing.assert_close(sol.inverse, torch.linalg.inv(view), rtol=1e-10, atol=1e-12)
    sol_np = ni.invert(view.numpy().astype(np.float32))
    assert isinstance(sol_np.inverse, np.ndarray) and sol_np.inverse.dtype == np.float32
    np.testing.assert_allclose(sol_np.inverse, torch.linalg.inv(view).numpy(), rtol=1e-4, atol=1e-5)
    assert sol_np.method.shape == (2, 3, 3)
    half = ni.invert(view.to(torch.float16))
    assert half.inverse.dtype == torch.float16 and half.all_ok


def test_threads_split_the_batch_with_the_same_answers():
    A = well_conditioned(3000, 8, torch.float32)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ni.invert(A)
        torch.set_num_threads(2)
        two = ni.invert(A)
    finally:
        torch.set_num_threads(old)
    torch.testing.assert_close(one.inverse, two.inverse, rtol=1e-6, atol=1e-7)
    # Another thread count splits the batch differently: statuses up to a certificate within
    # rounding of a threshold (none here: cond ~ 2).
    assert_statuses_agree(tensors(one), tensors(two), 8, torch.float32, at_most=3)


def _mixed(B, n, dtype):
    """Well-conditioned matrices with singular, NaN and pivoting ones spread over the batch
    (so over several chunks of a threaded run)."""
    A = well_conditioned(B, n, dtype)
    A[::97] = 0
    A[5::89, 0, 0] = float("nan")
    A[11::83] = torch.eye(n, dtype=dtype).flip(0)
    return A


@pytest.mark.parametrize(("n", "dtype", "B"), [(3, torch.float32, 20_001), (4, torch.float64, 5_003),
                                               (8, torch.float32, 1_111), (17, torch.float64, 130)])
def test_openmp_team_pool_and_one_thread_agree(n, dtype, B, monkeypatch):
    """The three ways a batch runs (torch's OpenMP team, the fallback pool, the calling thread)
    give the same answers, statuses and fallback counts, chunk and lane remainders included."""
    A = _mixed(B, n, dtype)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ni.invert(A)
        torch.set_num_threads(2)
        parallel, where = native.team_runtime()
        if sys.platform == "linux" and any(p.name.startswith("libgomp") for p in
                                           (Path(torch.__file__).parent / "lib").iterdir()):
            assert parallel is not None and "gomp" in where  # torch's own runtime was found
        calls = []
        run_team = native._run_team
        monkeypatch.setattr(native, "_run_team", lambda *a: calls.append(1) or run_team(*a))
        team = ni.invert(A)
        assert calls == ([1] if parallel is not None else [])
        monkeypatch.setattr(native, "_team", [None, "disabled by the test"])
        pool = ni.invert(A)
        assert len(calls) <= 1
    finally:
        torch.set_num_threads(old)
    for other in (team, pool):
        # Each matrix is computed by the same kernel code on every path (the team entry links
        # the same compiled kernel, but LLVM optimises the linked module again): tolerances.
        torch.testing.assert_close(torch.as_tensor(other.inverse), torch.as_tensor(one.inverse),
                                   rtol=1e-6, atol=1e-7, equal_nan=True)
        assert other.counts() == one.counts()
        assert (other.method == one.method).all()  # bitwise: labels are strings
        assert other.stats["fallbacks"] == one.stats["fallbacks"] > 0
    check_certified(A, team)


def test_team_block_layout_matches_the_kernels():
    from neuralinv.kernels import _numba_kernels as K

    assert (native._TEAM_SLOTS, native._TEAM_BAD) == (K.TEAM_SLOTS, K.TEAM_BAD)


def test_autograd_input_uses_the_kernel_inside_method_invert():
    A = well_conditioned(5, 3, torch.float64).requires_grad_(True)
    sol = ni.invert(A)
    assert sol.stats["native"] is True and set(sol.method) == {"native_closed_form"}
    sol.inverse.sum().backward()
    B = A.detach().clone().requires_grad_(True)
    torch.linalg.inv(B).sum().backward()
    torch.testing.assert_close(A.grad, B.grad)


def test_env_var_disables_the_native_path(monkeypatch):
    A = well_conditioned(50, 3, torch.float32)
    monkeypatch.setenv(native.ENV, "0")
    sol = ni.invert(A)
    assert sol.stats["native"] is False and native.ENV in sol.stats["native_reason"]
    assert "native_closed_form" not in set(sol.method)
    monkeypatch.delenv(native.ENV)
    fast = ni.invert(A)
    torch.testing.assert_close(sol.inverse, fast.inverse, rtol=1e-5, atol=1e-6)
    # The torch path vs the native kernel: statuses up to rounding at a threshold.
    assert_statuses_agree(tensors(sol), tensors(fast), 3, torch.float32, at_most=1)


def test_missing_numba_falls_back_to_torch(monkeypatch):
    monkeypatch.setattr(native, "_kernels", {})
    monkeypatch.setattr(native, "_failures", {})
    monkeypatch.setitem(sys.modules, "neuralinv.kernels._numba_kernels", None)  # import fails
    A = well_conditioned(20, 6, torch.float64)
    sol = ni.invert(A)
    assert sol.all_ok and set(sol.method) == {"lu"}
    assert sol.stats["native"] is False and "unavailable" in sol.stats["native_reason"]
    assert ni.invert(A[:0]).inverse.shape == (0, 6, 6)


def test_unsupported_sizes_use_the_torch_path():
    sol = ni.invert(well_conditioned(4, 33, torch.float64))
    assert sol.stats["native"] is False and "n=33" in sol.stats["native_reason"]
    spd = ni.invert(well_conditioned(4, 3, torch.float64) @ well_conditioned(4, 3, torch.float64).mT, spd=True)
    assert spd.stats["native"] is False


def test_kernel_constants_agree():
    from neuralinv.kernels import _numba_kernels as K

    assert K.FALLBACK == native.FALLBACK and K.NONFINITE == int(Status.NONFINITE)
    assert K.SMALL_LANES == 64  # written as a literal in the generated _fused1 .. _fused4


def _child(queue):
    # torch's own OpenMP pool is not usable with several threads in a forked child (GNU
    # OpenMP hangs: that is why DataLoader workers run torch single-threaded), so the data is
    # made on one thread; the native kernels use their own pool and may use two.
    torch.set_num_threads(1)
    A = well_conditioned(4000, 8, torch.float32)
    torch.set_num_threads(2)
    sol = ni.invert(A)  # only small torch ops (below torch's parallel grain) besides the kernel
    torch.set_num_threads(1)
    pool_here = native._pool is not None and native._pool[0] == os.getpid()
    queue.put((sol.all_ok, float(np.asarray(sol.residual).max()), pool_here))


def _loader_item(i):
    A = well_conditioned(2000, 5, torch.float64, seed=i)
    return torch.as_tensor(ni.invert(A).status)


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_fork_after_threaded_use():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert ni.invert(well_conditioned(4000, 8, torch.float32)).all_ok  # pool threads started
        ctx = mp.get_context("fork")
        q = ctx.Queue()
        p = ctx.Process(target=_child, args=(q,))
        p.start()
        p.join(120)
        assert p.exitcode == 0, "forked child hung or crashed"
        ok, worst, pool_here = q.get(timeout=5)
        assert ok and worst < PASS_RATIO and pool_here
        for status in torch.utils.data.DataLoader(
            _ItemDataset(), batch_size=None, num_workers=1, multiprocessing_context="fork", timeout=120
        ):
            assert bool((status == 0).all())
    finally:
        torch.set_num_threads(old)


class _ItemDataset(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        return _loader_item(i)


def test_first_use_under_a_transform_keeps_the_native_path_and_the_tangent():
    # The first call of a process inside torch.func.jvp must neither drop the tangent nor
    # leave the kernel marked unavailable for the rest of the process.
    code = (
        "import torch, neuralinv as ni\n"
        "A = torch.randn(4, 3, 3, dtype=torch.float64) + 3 * torch.eye(3, dtype=torch.float64)\n"
        "T = torch.randn_like(A)\n"
        "_, t = torch.func.jvp(ni.inv, (A,), (T,))\n"
        "_, r = torch.func.jvp(torch.linalg.inv, (A,), (T,))\n"
        "assert torch.allclose(t, r, rtol=1e-10, atol=1e-12), (t - r).abs().max()\n"
        "s = ni.invert(A)\n"
        "assert s.stats['native'], s.stats\n"
        "print('ok')\n"
    )
    r = python("-c", code)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def check_rcond_edge(n: int, B: int, label: str) -> None:
    """float32 matrices of condition 1e6 .. 3e7 (rcond near eps), where unpivoted elimination
    reaches the certificate's edge: the kernel keeps only answers with ||I - XA||_1 < 1/8 (its
    residual summed in float64), so every one labelled ``label`` is within that of the inverse;
    before, answers with a true residual >= 1 and relative errors of 0.3-0.4 were labelled OK."""
    g = torch.Generator().manual_seed(n)
    U = torch.linalg.qr(torch.randn(B, n, n, generator=g, dtype=torch.float64))[0]
    V = torch.linalg.qr(torch.randn(B, n, n, generator=g, dtype=torch.float64))[0]
    c = 10 ** (6 + 1.5 * torch.rand(B, 1, generator=g, dtype=torch.float64))
    A = ((U * (c ** -torch.linspace(0, 1, n, dtype=torch.float64))[:, None, :]) @ V.mT).float()
    sol = ni.invert(A)
    kernel_ok = torch.from_numpy(sol.method == label) & (sol.status == 0)
    assert int(kernel_ok.sum()) > 10  # the kernel still answers many of them
    X, Ad = sol.inverse[kernel_ok].double(), A[kernel_ok].double()
    true = (torch.eye(n, dtype=torch.float64) - X @ Ad).abs().sum(-2).amax(-1)
    assert float(true.max()) < 0.13
    ref = torch.linalg.inv(Ad)
    err = (X - ref).abs().sum(-2).amax(-1) / ref.abs().sum(-2).amax(-1)
    assert float(err.max()) < 0.13


@pytest.mark.parametrize("n", [5, 8, 16])
def test_native_answers_near_the_rcond_edge_are_as_good_as_lu(n):
    check_rcond_edge(n, 4000, "native_gauss_jordan")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_fork_while_the_kernel_lock_is_held_leaves_the_child_usable():
    # A DataLoader worker forked while another thread compiles a kernel (seconds, under the
    # lock) inherits the lock held; the child must get a fresh one.
    with native._lock:
        pid = os.fork()
        if pid == 0:  # child: a held inherited lock would block here
            ok = native._lock.acquire(timeout=5)
            os._exit(0 if ok and native._pool is None else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_counts_of_native_and_mixed_solutions_match_a_plain_count():
    from collections import Counter

    cases = [(well_conditioned(B, 3, torch.float32), True) for B in (300, 2000)]  # filled, broadcast
    for A, one_name in cases + [(_mixed(300, 3, torch.float32), False)]:
        sol = ni.invert(A)
        plain_status = Counter(Status(int(v)).name for v in np.asarray(sol.status).ravel())
        plain_method = Counter(str(v) for v in np.asarray(sol.method).ravel())
        assert sol.counts() == dict(plain_status)
        assert sol.method_counts() == dict(sorted(plain_method.items()))
        # All native: one name broadcast, read-only (solution.py); mixed: an ordinary array.
        assert sol.method.flags.writeable is not one_name
    assert ni.invert(A[:0]).counts() == {} and ni.invert(A[:0]).method_counts() == {}


def test_warm_builds_every_kernel_and_a_later_process_loads_them_from_the_cache():
    # The default cache (kernels/__pycache__): `make install` has warmed it, so the first run
    # loads (a checkout that was never warmed compiles here once: ~10-30 s).
    first = helpers.neuralinv("warm", "--dtype", "float32")
    assert first.returncode == 0, first.stderr
    rows = [line for line in first.stdout.splitlines() if line.startswith("│ float32")]
    assert len(rows) == 7 and all((" cache " in r) != ("compiled" in r) for r in rows), first.stdout
    again = helpers.neuralinv("warm", "--dtype", "float32")
    rows = [line for line in again.stdout.splitlines() if line.startswith("│ float32")]
    assert len(rows) == 7 and all(" cache " in r for r in rows), again.stdout
    # The two parts ran in two processes at once; the rows keep warm()'s order.
    details = [r.split("│")[5].strip() for r in rows]
    assert details == ["native_closed_form", "team_small_float32", "native_gauss_jordan",
                       "team_gauss_jordan_float32", "norms1", "learned_lanes3", "team_learned3_float32"]
    bad = helpers.neuralinv("warm", "--dtype", "float16")
    assert bad.returncode == 2 and "--dtype must be" in bad.stderr


def test_warm_reports_unavailable_kernels_and_refuses_unknown_dtypes(monkeypatch):
    from neuralinv.kernels import warm

    with pytest.raises(ni.InputError, match="float16"):
        warm.warm(("float16",))
    with pytest.raises(ni.InputError, match="everything"):
        warm.warm(("float32",), ("everything",))
    monkeypatch.setattr(native, "_kernels", {})
    monkeypatch.setattr(native, "_failures", {})
    monkeypatch.setattr(native, "_entries", {})
    monkeypatch.setitem(sys.modules, "neuralinv.kernels._numba_kernels", None)  # import fails
    rows = warm.warm(("float64",))
    exact = [r for r in rows if not r.kernel.startswith("learned")]
    assert len(exact) == 5 and not any(r.ready for r in exact)
    assert all("ModuleNotFoundError" in r.detail for r in exact), exact
    assert all(r.dtype == "float64" and r.cached is None for r in exact)
