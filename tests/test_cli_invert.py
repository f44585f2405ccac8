"""``neuralinv invert`` run for real, as a subprocess, on real files."""

from __future__ import annotations

import numpy as np

from helpers import neuralinv as run


def test_invert_npy_with_lu(tmp_path):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((6, 5, 5)) + 5 * np.eye(5)
    A[3] = 0.0  # singular: reported, not fatal
    np.save(tmp_path / "in.npy", A)
    proc = run("invert", "in.npy", "-o", "out.npy", "--method", "lu", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    X = np.load(tmp_path / "out.npy")
    assert X.shape == A.shape and X.dtype == np.float64
    ok = [0, 1, 2, 4, 5]
    np.testing.assert_allclose(X[ok], np.linalg.inv(A[ok]), rtol=1e-12, atol=1e-14)
    assert np.isnan(X[3]).all()
    out = proc.stdout
    assert "6 matrices" in out and "lu 6" in out
    assert "worst residual ratio" in out and "OK 5" in out and "SINGULAR 1" in out


def test_invert_default_method_float32(tmp_path):
    A = (np.eye(3, dtype=np.float32) * np.arange(1, 5, dtype=np.float32)[:, None, None])
    np.save(tmp_path / "a.npy", A)
    proc = run("invert", "a.npy", "-o", "x.npy", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    X = np.load(tmp_path / "x.npy")
    assert X.dtype == np.float32
    np.testing.assert_allclose(X, np.linalg.inv(A), rtol=1e-6)
    assert "4 matrices" in proc.stdout and "OK 4" in proc.stdout


def one_line_error(proc) -> str:
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_bad_inputs_fail_with_one_line(tmp_path):
    np.save(tmp_path / "rect.npy", np.zeros((2, 3, 4)))
    np.save(tmp_path / "sq.npy", np.eye(3))
    (tmp_path / "junk.npy").write_bytes(b"not a numpy file at all")

    line = one_line_error(run("invert", "missing.npy", "-o", "o.npy", cwd=tmp_path))
    assert "missing.npy" in line

    line = one_line_error(run("invert", "rect.npy", "-o", "o.npy", cwd=tmp_path))
    assert "square" in line and "(2, 3, 4)" in line

    line = one_line_error(run("invert", "junk.npy", "-o", "o.npy", cwd=tmp_path))
    assert "junk.npy" in line

    line = one_line_error(run("invert", "sq.npy", "-o", "o.npy", "--method", "qr", cwd=tmp_path))
    assert "unknown method 'qr'" in line and "lu" in line and "newton_schulz" in line

    # Nothing half-written is left behind by any failure.
    assert not (tmp_path / "o.npy").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.npy", "rect.npy", "sq.npy"]


def test_invert_help_names_every_registered_method(tmp_path):
    from neuralinv.methods import METHODS

    proc = run("invert", "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    missing = [name for name in METHODS if name not in text]
    assert not missing, f"--method help omits {missing}"


def test_chunk_size_and_ragged_row_messages(tmp_path):
    np.save(tmp_path / "a.npy", np.eye(3)[None])
    line = one_line_error(run("invert", "a.npy", "-o", "x.npy", "--chunk-size", "0", cwd=tmp_path))
    assert "--chunk-size must be an integer >= 1, got 0" in line
    (tmp_path / "r.mx").write_text("1,2,3\n4\nEND\n")
    line = one_line_error(run("invert", "r.mx", "-o", "x.npy", cwd=tmp_path))
    assert "r.mx:2: row has 1 value but the rows above it (from line 1) have 3" in line
