"""`neuralinv invert --model DIR` and `--method block --base DIR`, run as real subprocesses."""

import re

import numpy as np
import pytest
import torch

import neuralinv as ni
from helpers import HAVE_COMPILER
from helpers import neuralinv as run


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A real model directory: the shipped builtin:ball3, saved to disk and loaded by path."""
    out = tmp_path_factory.mktemp("cli-model") / "model"
    model = ni.LearnedInverse.load("builtin:ball3")
    model.save(out)
    return out, model.region


def test_invert_with_model_reports_network_and_fallbacks(model_dir, tmp_path):
    out, region = model_dir
    g = torch.Generator().manual_seed(0)
    A = torch.cat([
        region.sample(47, generator=g),
        10 * torch.randn(2, 3, 3, generator=g, dtype=torch.float64),  # far outside the ball
        torch.zeros(1, 3, 3, dtype=torch.float64),  # singular
    ]).numpy()
    np.save(tmp_path / "A.npy", A)
    r = run("invert", "A.npy", "-o", "X.npy", "--model", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "network answers after refinement: 47 of 50 | fell back: 3 (lu 3)" in r.stdout
    assert re.search(r"status: OK 47, SINGULAR 1, OUT_OF_REGION 2", r.stdout), r.stdout
    X = np.load(tmp_path / "X.npy")
    np.testing.assert_allclose(X[:49], np.linalg.inv(A[:49]), rtol=1e-9, atol=1e-12)
    assert np.isnan(X[49]).all()


def test_block_over_model_and_padding(model_dir, tmp_path):
    out, region = model_dir
    g = torch.Generator().manual_seed(1)
    # 7x7: padded to 9 = three 3x3 leaves; diagonal blocks from the ball, weak coupling.
    A = torch.zeros(12, 7, 7, dtype=torch.float64)
    B = torch.block_diag(*[torch.ones(3, 3)] * 3).to(torch.float64)[:7, :7].bool()
    blocks = torch.block_diag(*[region.center] * 3)[:7, :7]
    A[:] = torch.where(B, blocks, 0.01 * torch.randn(12, 7, 7, generator=g, dtype=torch.float64))
    A[11] = torch.eye(7, dtype=torch.float64)[[3, 4, 5, 6, 0, 1, 2]]  # singular leading block
    np.save(tmp_path / "A7.npy", A.numpy())
    r = run("invert", "A7.npy", "-o", "X7.npy", "--method", "block", "--base", out, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    line = re.search(r"block recursion answers: 11 of 12 \(every leaf from the network: (\d+), "
                     r"some leaves fell back: (\d+)\) \| fell back whole: 1 \(lu 1\)", r.stdout)
    assert line, r.stdout
    assert int(line.group(1)) + int(line.group(2)) == 11
    assert "status: OK 12" in r.stdout
    np.testing.assert_allclose(np.load(tmp_path / "X7.npy"), np.linalg.inv(A.numpy()),
                               rtol=1e-9, atol=1e-12)
    r = run("invert", "A7.npy", "-o", "L7.npy", "--method", "block", "--base", "lu", cwd=tmp_path)
    assert "block recursion answers: 11 of 12 | fell back whole: 1 (lu 1)" in r.stdout


def test_bad_combinations_fail_cleanly(model_dir, tmp_path):
    out, region = model_dir
    np.save(tmp_path / "A4.npy", np.eye(4)[None])
    r = run("invert", "A4.npy", "-o", "X.npy", "--model", out, cwd=tmp_path)
    assert r.returncode == 2 and "inverts 3x3 matrices" in r.stderr and "block" in r.stderr
    assert not (tmp_path / "X.npy").exists()
    r = run("invert", "A4.npy", "-o", "X.npy", "--model", tmp_path / "missing", cwd=tmp_path)
    assert r.returncode == 2 and "no such model directory" in r.stderr


def test_builtin_model_offline(tmp_path):
    ball = ni.LearnedInverse.load("builtin:ball3").region
    A = ball.sample(30, generator=torch.Generator().manual_seed(2)).numpy()
    np.save(tmp_path / "A.npy", A)
    r = run("invert", "A.npy", "-o", "X.npy", "--model", "builtin:ball3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "network answers after refinement: 30 of 30 | fell back: 0 (none)" in r.stdout
    np.testing.assert_allclose(np.load(tmp_path / "X.npy"), np.linalg.inv(A), rtol=1e-9, atol=1e-12)


def test_demo_trains_and_reports_who_answered(tmp_path):
    r = run("demo", "--sizes", "2", "--count", "2", "--learned-steps", "200", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "Learned inversion: network guess + Newton-Schulz, exact fallback" in out
    assert "for 200 steps x 256 fresh matrices" in out
    # 10000 held-out ball matrices + 1000 scaled multiples + 1000 far + 10 singular.
    m = re.search(r"(\d+) of 12010 answers came from the network after Newton-Schulz "
                  r"refinement; (\d+) fell back to exact LU", out)
    assert m, out
    assert int(m.group(1)) + int(m.group(2)) == 12010 and int(m.group(2)) >= 1010
    assert "OOR 1000" in out
    bad = run("demo", "--learned-steps", "-1", cwd=tmp_path)
    assert bad.returncode == 2 and "--learned-steps" in bad.stderr


def test_invert_compile_runs_the_fused_learned_kernel(tmp_path):
    # float32 in-region matrices (the model's dtype) and one singular matrix: the fused kernel
    # settles the first, the eager path sends the other to LU. Compiling takes seconds to half a
    # minute on a cold inductor cache, hence the longer timeout.
    region = ni.Ball.default(3)
    A = torch.cat([region.sample(300, generator=torch.Generator().manual_seed(4)),
                   torch.zeros(1, 3, 3, dtype=torch.float64)]).float().numpy()  # fmt: skip
    np.save(tmp_path / "A.npy", A)
    r = run("invert", "A.npy", "-o", "X.npy", "--model", "builtin:ball3-fast", "--compile",
            cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "status: OK 300, SINGULAR 1" in r.stdout, r.stdout
    assert "network answers after refinement: 300 of 301" in r.stdout
    if HAVE_COMPILER:
        assert "compiled path: 301 of 301 matrices, 300 settled inside the fused kernel" in r.stdout
    else:  # the documented fallback: eager answers, and the reason
        assert "not compiled (" in r.stdout
    X = np.load(tmp_path / "X.npy")
    np.testing.assert_allclose(X[:300], np.linalg.inv(A[:300].astype(np.float64)), rtol=2e-5, atol=2e-5)
    r = run("invert", "A.npy", "-o", "Y.npy", "--method", "lu", "--compile", cwd=tmp_path)
    assert r.returncode == 2 and "--compile goes with --method learned" in r.stderr
    assert not (tmp_path / "Y.npy").exists()
