"""Crash consistency, observed by killing real ``python -m neuralinv`` runs.

A run is stopped at a chosen moment: ``NEURALINV_TEST_PAUSE=POINT`` makes the process create a
marker file and sleep when it reaches POINT (see neuralinv.files._pause), and the test then sends the
signal. The waits also accept the moment a temporary file or a new output shows up, so the
same tests catch the writers that had no pause points.
"""

from __future__ import annotations

import hashlib
import re
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helpers import kill, neuralinv, start_neuralinv, wait_for

TEMP = re.compile(r"^\..*\.(tmp|pair)$")


def litter(directory: Path) -> list[str]:
    """Temporary files and journals anywhere under ``directory``."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob(".*") if TEMP.match(p.name))


def output_litter(directory: Path) -> list[str]:
    """:func:`litter` but for the O_TMPFILE probe (``.neuralinv-probe.*``), which has a name for
    an instant before the output's file exists: what a test waits for before it kills a writer
    at its pause point (killed by SIGKILL in that instant, the probe stays, like any named
    temporary file, until the next writer there sweeps it)."""
    return [f for f in litter(directory) if not f.startswith(".neuralinv-probe.")]


def start(args, cwd: Path, point: str | None = None, **env) -> tuple[subprocess.Popen, Path]:
    return start_neuralinv(*args, cwd=cwd, pause=point, env=env)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------ invert
@pytest.mark.parametrize(
    "sig, mode",
    [(signal.SIGKILL, "auto"), (signal.SIGTERM, "auto"), (signal.SIGHUP, "auto"),
     (signal.SIGTERM, "named"), (signal.SIGKILL, "named")],
    ids=["SIGKILL", "SIGTERM", "SIGHUP", "SIGTERM-named", "SIGKILL-named"],
)
def test_killed_invert_keeps_the_old_output_and_leaves_no_temporary_file(tmp_path, sig, mode):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "in.npy", rng.standard_normal((64, 3, 3)) + 4 * np.eye(3))
    out = tmp_path / "out.npy"
    np.save(out, np.zeros((1, 3, 3)))
    old = digest(out)
    proc, marker = start(["invert", "in.npy", "-o", "out.npy", "--method", "lu", "--chunk-size", "4"],
                         tmp_path, "chunk:out.npy", NEURALINV_TMPFILE=mode)
    wait_for(proc, lambda: marker.exists() or bool(output_litter(tmp_path)))
    rc = kill(proc, sig)
    assert rc == -sig  # ended by that signal (SIGTERM/SIGHUP: after cleaning up)
    assert digest(out) == old  # the old output, untouched
    left = litter(tmp_path)
    if sig == signal.SIGKILL and mode == "named":
        # Nothing runs on SIGKILL: the named temporary file stays until the next writer here.
        assert len(left) == 1 and re.match(rf"^\.out\.npy\.{proc.pid}\.[0-9a-f]{{8}}\.tmp$", left[0])
        again = neuralinv("invert", "in.npy", "-o", "other.npy", "--method", "lu", cwd=tmp_path,
                          env={"NEURALINV_TMPFILE": mode})
        assert again.returncode == 0, again.stderr
        assert litter(tmp_path) == []
    else:
        assert left == []


# ---------------------------------------------------------------------------------- generate
def test_generate_killed_between_its_two_files_leaves_a_consistent_pair(tmp_path):
    first = neuralinv("generate", "3", "300", "-o", "d", "--seed", "1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    mats, invs = tmp_path / "d_matrices_3x3.mx", tmp_path / "d_matrices_inverted_3x3.mx"
    old = digest(invs)
    # Killed when one new file is in place (pause point "pair:", or, for a writer without
    # one, as soon as the inverses file changes: it used to be renamed first).
    proc, marker = start(["generate", "3", "300", "-o", "d", "--seed", "2"], tmp_path,
                         f"pair:{mats.name}")
    wait_for(proc, lambda: marker.exists() or digest(invs) != old)
    kill(proc, signal.SIGKILL)
    check = neuralinv("verify", mats.name, invs.name, cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "OK" in check.stdout
    assert litter(tmp_path) == []
    # The pair that survives is the complete new one (the journal was rolled forward).
    clean = tmp_path / "clean"
    clean.mkdir()
    assert neuralinv("generate", "3", "300", "-o", "d", "--seed", "2", cwd=clean).returncode == 0
    assert digest(mats) == digest(clean / mats.name)
    assert digest(invs) == digest(clean / invs.name)


def test_generate_killed_before_its_commit_keeps_the_old_pair(tmp_path):
    assert neuralinv("generate", "3", "50", "-o", "d", "--format", "npz", cwd=tmp_path).returncode == 0
    mats, invs = tmp_path / "d_matrices_3x3.npz", tmp_path / "d_matrices_inverted_3x3.npz"
    before = digest(mats), digest(invs)
    proc, marker = start(["generate", "3", "50", "-o", "d", "--format", "npz", "--seed", "5"],
                         tmp_path, f"commit:{invs.name}")
    wait_for(proc, lambda: marker.exists() or bool(output_litter(tmp_path)))
    assert kill(proc, signal.SIGTERM) == -signal.SIGTERM
    assert (digest(mats), digest(invs)) == before
    assert litter(tmp_path) == []


def test_signal_while_the_tmpfile_probe_has_its_name_leaves_no_probe(tmp_path):
    """The O_TMPFILE probe (the first unnamed output in a directory) has a name for an instant;
    a SIGTERM landing there, in its cleanup before the unlink, left ``.neuralinv-probe.*`` behind
    (CI saw it through a killed training run). The probe is now signal-held, the pause point is
    inside the cleanup: without the hold the exception would skip the unlink."""
    np.save(tmp_path / "in.npy", np.eye(3)[None].repeat(4, 0))
    proc, marker = start(["invert", "in.npy", "-o", "out.npy", "--method", "lu"], tmp_path, "probe",
                         NEURALINV_TMPFILE="auto")
    wait_for(proc, marker.exists)
    assert kill(proc, signal.SIGTERM) == -signal.SIGTERM
    assert litter(tmp_path) == []
    assert not (tmp_path / "out.npy").exists()


# ------------------------------------------------------------------------------------- train
def _train(out: Path, *extra: str) -> list[str]:
    return ["train", "--steps", "80", "--batch-size", "16", "--width", "8", "--val-every", "20",
            "--out", str(out), *extra]


@pytest.mark.parametrize("sig, mode", [(signal.SIGTERM, "auto"), (signal.SIGKILL, "named")],
                         ids=["SIGTERM", "SIGKILL-named"])
def test_killed_training_leaves_no_temporary_file_and_resumes_clean(tmp_path, sig, mode):
    out = tmp_path / "model"
    proc, marker = start(_train(out), tmp_path, "commit:training-state.pt", NEURALINV_TMPFILE=mode)
    wait_for(proc, lambda: marker.exists() or (out.is_dir() and bool(litter(out))))
    assert kill(proc, sig) == -sig
    if sig != signal.SIGKILL:
        assert litter(out) == []
    resumed = neuralinv(*_train(out), cwd=tmp_path, env={"NEURALINV_TMPFILE": mode})
    assert resumed.returncode == 0, resumed.stderr
    assert litter(out) == []
    assert (out / "metrics.json").is_file()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_generate_signalled_between_its_two_renames_finishes_the_pair(tmp_path, sig):
    # SIGTERM/SIGINT in the middle of the pair's renames is held back until both files are
    # new: the process then dies of the signal, and no reader ever sees a torn pair. (Before,
    # the signal interrupted the commit, the second staged file was discarded although the
    # journal named it, and the next reader deleted the journal: new matrices, old inverses.)
    assert neuralinv("generate", "3", "200", "-o", "d", "--seed", "1", cwd=tmp_path).returncode == 0
    mats, invs = tmp_path / "d_matrices_3x3.mx", tmp_path / "d_matrices_inverted_3x3.mx"
    proc, marker = start(["generate", "3", "200", "-o", "d", "--seed", "2"], tmp_path,
                         f"pair:{mats.name}")
    wait_for(proc, lambda: marker.exists())
    assert kill(proc, sig) in (-sig, 128 + sig)  # Ctrl-C exits 130, as shells report it
    clean = tmp_path / "clean"
    clean.mkdir()
    assert neuralinv("generate", "3", "200", "-o", "d", "--seed", "2", cwd=clean).returncode == 0
    assert digest(mats) == digest(clean / mats.name)
    assert digest(invs) == digest(clean / invs.name)
    assert litter(tmp_path) == []


def test_a_signal_right_after_the_tmpfile_probe_leaves_no_probe_file(tmp_path, monkeypatch):
    # The CLI turns SIGTERM/SIGHUP into an exception; one landing just after the probe's link
    # (seen once in a full suite run: a `.neuralinv-probe.<pid>.<hex>.tmp` left behind).
    from neuralinv.cli.signals import _Terminated
    from neuralinv.files import atomic

    if atomic._open_tmpfile(tmp_path, 0o600) is None:
        pytest.skip("no O_TMPFILE here: the probe is never made")
    real = atomic._link_fd

    def link_then_signal(fd, dst):
        real(fd, dst)
        if dst.name.startswith(".neuralinv-probe."):
            raise _Terminated(signal.SIGTERM)  # what the CLI's handler raises, after the link

    monkeypatch.setattr(atomic, "_LINKABLE", {})
    monkeypatch.setattr(atomic, "_link_fd", link_then_signal)
    with pytest.raises(_Terminated):
        atomic.AtomicFile(tmp_path / "out.npy")
    assert litter(tmp_path) == []


#: A stand-in for a command that gets SIGTERM inside a ctypes callback (where LLVM calls back
#: into Python while numba loads a kernel from its cache): Python drops the handler's exception
#: there ("Exception ignored on calling ctypes callback function"), and the command finishes.
DROPPED_SIGNAL = """
import ctypes, os, signal, sys
from neuralinv.cli.signals import main
app_module = sys.modules["neuralinv.cli.app"]  # (neuralinv.cli.app the attribute is the typer app)

def command():
    def callback():
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(1000))  # the handler runs here and raises _Terminated: dropped
    ctypes.CFUNCTYPE(None)(callback)()
    print("finished", flush=True)
    sys.exit(0)

app_module.app = command
main()
"""


def test_a_signal_whose_exception_python_dropped_still_ends_the_run_by_it():
    from helpers import python

    proc = python("-c", DROPPED_SIGNAL)
    assert "finished" in proc.stdout  # the exception was dropped: the command ran on
    assert "Exception ignored" in proc.stderr and "_Terminated" in proc.stderr
    assert proc.returncode == -signal.SIGTERM, (proc.returncode, proc.stderr)


def test_kernel_loading_holds_signals_until_it_ends():
    """A signal during a numba compile or cache load (LLVM's ctypes callbacks) is delivered
    after it, where its handler's exception propagates."""
    import os

    from neuralinv.kernels import native

    class Stop(Exception):
        pass

    def raise_stop(signum, frame):
        raise Stop(signum)

    old = signal.signal(signal.SIGHUP, raise_stop)
    try:
        reached = []
        with pytest.raises(Stop):
            with native.loading():
                os.kill(os.getpid(), signal.SIGHUP)
                sum(range(1000))  # a handler would run here: held instead
                reached.append(True)
        assert reached == [True]
    finally:
        signal.signal(signal.SIGHUP, old)
