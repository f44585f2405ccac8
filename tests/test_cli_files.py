"""CLI messages about files name the user's paths (never a temporary file), say what is wrong
with them, and failed runs leave no output directory they created."""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

import numpy as np
import pytest

import neuralinv.files as nio
import neuralinv.files.paths as nio_paths
from helpers import kill, start_neuralinv, wait_for
from helpers import neuralinv as run
from neuralinv.errors import InputError


def error_line(proc) -> str:
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert ".tmp" not in proc.stderr
    return " ".join(lines)


@pytest.fixture
def inputs(tmp_path):
    np.save(tmp_path / "in.npy", np.eye(3)[None] * 2)
    (tmp_path / "dir.npy").mkdir()
    os.mkfifo(tmp_path / "pipe.mx")
    (tmp_path / "null.npy").symlink_to("/dev/null")
    (tmp_path / "file.npy").write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize(
    "given, says",
    [("dir.npy", "dir.npy: the input is a directory, not a file"),
     ("pipe.mx", "pipe.mx: the input is a FIFO (named pipe), not a regular file"),
     ("null.npy", "null.npy: the input is a device, not a regular file"),
     ("file.npy/x.npy", "file.npy/x.npy: no such file (file.npy is not a directory)")],
)
def test_special_inputs_say_what_they_are(inputs, given, says):
    proc = run("invert", given, "-o", "x.npy", cwd=inputs)
    assert says in error_line(proc)
    assert not (inputs / "x.npy").exists()


def test_verify_names_a_directory_given_as_inverses(inputs):
    assert "dir.npy: the input is a directory" in error_line(run("verify", "in.npy", "dir.npy", cwd=inputs))


def test_output_that_is_a_directory_says_so(inputs):
    (inputs / "out.npy").mkdir()
    line = error_line(run("invert", "in.npy", "-o", "out.npy", cwd=inputs))
    assert "out.npy: the output is a directory" in line
    assert list((inputs / "out.npy").iterdir()) == []
    line = error_line(run("generate", "3", "2", "-o", "nodir/x", cwd=inputs))
    assert "nodir/x_matrices_3x3.mx: directory nodir does not exist" in line
    (inputs / "d_matrices_inverted_3x3.mx").mkdir()
    line = error_line(run("generate", "3", "2", "-o", "d", cwd=inputs))
    assert "d_matrices_inverted_3x3.mx: the output is a directory" in line
    assert not (inputs / "d_matrices_3x3.mx").exists()  # neither file of the pair appeared


def test_unreadable_input_names_the_file(tmp_path, monkeypatch):
    path = tmp_path / "m.mx"
    path.write_text("1\nEND\n")
    real_open = open

    def no_permission(file, *a, **k):
        if Path(file) == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr(nio_paths, "open", no_permission, raising=False)
    with pytest.raises(InputError, match=r"m\.mx: cannot read the input \(Permission denied\)"):
        nio.open_matrices(path)


def test_bench_says_which_methods_it_skipped_and_why(tmp_path):
    proc = run("bench", "--sizes", "3,8", "--batch", "16", "--repeats", "1", "--no-alone",
               "--methods", "closed_form,lu", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # The reason is the registry's (ClosedForm.supports), worded by the bench.
    assert "n=8: closed_form skipped: closed_form does not take 8x8 float32 matrices on cpu" in " ".join(proc.stderr.split())
    proc = run("bench", "--sizes", "8", "--batch", "16", "--repeats", "1", "--no-alone",
               "--methods", "closed_form,lu", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "requested but benchmarked at no size: closed_form" in " ".join(proc.stderr.split())


def test_failed_training_removes_the_directory_it_created_but_not_an_existing_one(tmp_path):
    args = ["train", "--steps", "30", "--batch-size", "8", "--width", "4", "--val-every", "10",
            "--lr", "1e30"]
    line = error_line(run(*args, "--out", "new", cwd=tmp_path))
    assert "diverged" in line
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert "diverged" in error_line(run(*args, "--out", "mine", cwd=tmp_path))
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_interrupted_evaluate_removes_the_directory_it_created(tmp_path):
    np.save(tmp_path / "a.npy", np.random.default_rng(0).standard_normal((8, 3, 3)) + 3 * np.eye(3))
    proc, marker = start_neuralinv("evaluate", "--data", "a.npy", "--method", "lu", "--out",
                                   "report", "--no-figures", cwd=tmp_path, pause="commit:report.md")
    # Paused as it writes report.md (or, without that pause point, once metrics.json is there).
    wait_for(proc, lambda: marker.exists() or (tmp_path / "report" / "metrics.json").exists())
    assert kill(proc, signal.SIGTERM) == -signal.SIGTERM
    assert not (tmp_path / "report").exists()


def test_failed_evaluate_keeps_an_existing_directory(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.md").write_text("x")
    line = error_line(run("evaluate", "--data", "missing.npy", "--method", "lu", "--out", "out", cwd=tmp_path))
    assert "missing.npy: no such file" in line
    assert (tmp_path / "out" / "old.md").exists()
