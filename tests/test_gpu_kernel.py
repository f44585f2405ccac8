"""The GPU path of ``auto`` (kernels/gpu.py, a Triton kernel) on a machine without a GPU: the
kernel itself runs in Triton's interpreter (tests/interpreted/triton_kernel_cases.py, in a
pytest subprocess with ``TRITON_INTERPRET=1``); here, what happens when it cannot run.

No GPU figure comes from these tests: they check answers, statuses and fallbacks, not speed.
"""

from __future__ import annotations

import pytest
import torch

import neuralinv as ni
from helpers import ROOT, python, well_conditioned
from neuralinv.kernels import gpu
from neuralinv.methods import native as native_method

pytest.importorskip("triton")


@pytest.mark.slow
def test_the_kernel_in_the_triton_interpreter():
    cases = ROOT / "tests" / "interpreted" / "triton_kernel_cases.py"
    out = python("-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::RuntimeWarning",
                 "--rootdir", ROOT, "-c", ROOT / "pyproject.toml", cases,
                 cwd=ROOT, env={"TRITON_INTERPRET": "1"})  # fmt: skip
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    assert " passed" in out.stdout and "failed" not in out.stdout and "skipped" not in out.stdout


def test_cpu_tensors_outside_the_interpreter_take_the_torch_path(monkeypatch):
    monkeypatch.setattr(native_method, "_on_gpu", lambda A: True)
    A = well_conditioned(20, 5, dtype=torch.float64)
    sol = ni.invert(A)
    assert sol.all_ok and set(sol.method) == {"lu"}
    assert sol.stats["native"] is False and sol.stats["native_reason"] == "no Triton kernel for device cpu"
    torch.testing.assert_close(sol.inverse, torch.linalg.inv(A))


def test_a_kernel_that_cannot_be_built_is_tried_once_per_variant(monkeypatch):
    calls = []

    def broken(A):
        calls.append(tuple(A.shape))
        raise RuntimeError("no CUDA toolchain\nsecond line")

    monkeypatch.setattr(native_method, "_on_gpu", lambda A: True)
    monkeypatch.setattr(gpu, "unavailable", lambda A: None)
    monkeypatch.setattr(gpu, "run", broken)
    monkeypatch.setattr(gpu, "_failures", {})
    monkeypatch.setattr(gpu, "_ran", set())
    A = well_conditioned(6, 3, dtype=torch.float32)
    first, second = ni.invert(A), ni.invert(A)
    assert calls == [(6, 3, 3)]
    for sol in (first, second):
        assert sol.all_ok and sol.stats["native"] is False
        assert sol.stats["native_reason"] == "Triton kernel unavailable: RuntimeError: no CUDA toolchain"
    ni.invert(well_conditioned(6, 8, dtype=torch.float32))  # another variant (tile 8): tried too
    ni.invert(well_conditioned(6, 4, dtype=torch.float32))  # n = 3 and 4 share the 4x4 tile
    assert calls == [(6, 3, 3), (6, 8, 8)]


def test_errors_of_a_variant_that_ran_and_out_of_memory_are_raised(monkeypatch):
    A = well_conditioned(2, 3, dtype=torch.float32)
    monkeypatch.setattr(gpu, "unavailable", lambda A: None)
    monkeypatch.setattr(gpu, "_failures", {})
    monkeypatch.setattr(gpu, "_ran", {(torch.float32, 4)})
    monkeypatch.setattr(gpu, "run", lambda A: (_ for _ in ()).throw(RuntimeError("launch failed")))
    with pytest.raises(RuntimeError, match="launch failed"):
        gpu.invert(A)
    monkeypatch.setattr(gpu, "_ran", set())
    monkeypatch.setattr(gpu, "run", lambda A: (_ for _ in ()).throw(torch.OutOfMemoryError("oom")))
    with pytest.raises(torch.OutOfMemoryError):
        gpu.invert(A)
    assert gpu._failures == {}


def test_without_triton_auto_answers_on_torch():
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import torch, neuralinv as ni\n"
        "from neuralinv.methods import native\n"
        "native._on_gpu = lambda A: True\n"
        "A = torch.randn(8, 4, 4, generator=torch.Generator().manual_seed(0)) + 4 * torch.eye(4)\n"
        "sol = ni.invert(A)\n"
        "assert sol.all_ok and set(sol.method) == {'lu'}, sol.method\n"
        "print(sol.stats['native'], sol.stats['native_reason'])\n"
    )
    out = python("-c", code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("False triton not installed")


def test_kernel_constants_agree_with_the_cpu_kernels():
    from neuralinv.kernels import _numba_kernels as K

    assert gpu.UNPIVOTED_MARGIN == K.UNPIVOTED_MARGIN
    assert native_method._native.FALLBACK == K.FALLBACK
    assert gpu.MAX_N == native_method._native.MAX_N


def test_the_cpu_path_never_imports_triton():
    code = ("import sys, torch, neuralinv as ni\n"
            "ni.inv(torch.eye(3) * 2); ni.invert(torch.eye(40) * 2)\n"
            "print('triton' in sys.modules, 'neuralinv.kernels.gpu' in sys.modules)\n")  # fmt: skip
    out = python("-c", code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("arch", (80, 90))
def test_the_kernel_compiles_for_nvidia_gpus(arch, tmp_path, monkeypatch):
    """Triton's real compiler (not the interpreter) lowers the kernel to a cubin for an A100
    (sm_80) and an H100 (sm_90) target, with the ptxas its wheel ships: no GPU needed."""
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))  # not the user's ~/.triton
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fn = triton.jit(gpu._gauss_jordan_certified)
    for dtype, n in (("fp32", 3), ("fp64", 5), ("fp32", 32)):
        consts = gpu.constants(n)
        sig = {"A": f"*{dtype}", "X": f"*{dtype}", "cert": f"*{dtype}", "status": "*i8",
               "B": "i32", "n": "i32", "eps": "fp32", **dict.fromkeys(consts, "constexpr")}  # fmt: skip
        names = list(sig)
        src = ASTSource(fn, sig, constexprs={(names.index(k),): v for k, v in consts.items()})
        kernel = triton.compile(src, target=GPUTarget("cuda", arch, 32), options={"enable_fp_fusion": True})
        assert len(kernel.asm["cubin"]) > 1000
        assert f".target sm_{arch}" in kernel.asm["ptx"]
