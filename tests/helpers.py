"""What the tests share (as lineax's tests/helpers.py and torchdiffeq's tests/problems.py):
the one way to run the command line in a subprocess, the matrix generators, and whether the
compiled paths can compile here. The shared trained model is a fixture (tests/conftest.py);
comparisons of two code paths are in tests/agreement.py.

Generators draw from their own ``torch.Generator`` seeded by ``seed`` (never the global RNG),
in float64 (complex128 for complex dtypes), and cast to ``dtype`` last, so a float32 test sees
the float64 matrix rounded once and its float64 reference is that same matrix.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

# ---------------------------------------------------------------------------- the command line

#: Seconds a command may run, or a test wait for a moment of one, before the test fails: one
#: training run of a few hundred steps takes well under a minute on a quiet 2-core machine, but
#: the whole suite ran 6.5x slower beside two CPU-bound jobs (23 min instead of 3.5), and a
#: 90 s wait then failed a crash test. Only a hung run waits this long.
TIMEOUT = 300.0


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a subprocess: this checkout's ``src`` first on PYTHONPATH (so the
    tree under test is imported, not an installed copy), torch on one thread (faster on a
    loaded machine, and what the CLI tests assume), unbuffered output (read while it runs),
    then ``extra``."""
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
            **extra}


#: The signals whose handling the crash tests check: the child gets their default disposition,
#: whatever the suite was started with (a shell's background job ignores SIGINT, nohup ignores
#: SIGHUP, and a child inherits an ignored signal: the CLI then rightly leaves it ignored).
SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def _default_signals() -> None:
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_DFL)


def _text(out) -> str:
    if out is None:
        return ""
    return out.decode(errors="replace") if isinstance(out, bytes) else out


def python(*argv, cwd=None, timeout: float = TIMEOUT, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess:
    """``python *argv`` with :func:`cli_env` (plus ``env``), text output captured. Past
    ``timeout`` seconds the process is killed and the test fails naming the command and what
    it had written so far."""
    cmd = [sys.executable, *map(str, argv)]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd,
                              env=cli_env(**(env or {})), timeout=timeout,
                              preexec_fn=_default_signals)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"`{' '.join(cmd[1:])}` (cwd {cwd}) ran past {timeout:g} s\n"
                    f"--- stdout so far:\n{_text(e.stdout)[-3000:]}\n"
                    f"--- stderr so far:\n{_text(e.stderr)[-3000:]}", pytrace=False)


def neuralinv(*args, cwd=None, timeout: float = TIMEOUT, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess:
    """``python -m neuralinv *args`` (see :func:`python`)."""
    return python("-m", "neuralinv", *args, cwd=cwd, timeout=timeout, env=env)


def start_neuralinv(*args, cwd, pause: str | None = None, env: dict[str, str] | None = None
                    ) -> tuple[subprocess.Popen, Path]:
    """``python -m neuralinv *args`` started in ``cwd``, not waited for (to signal it mid-run):
    stdout discarded, stderr piped. With ``pause`` (a pause point of neuralinv's test hook,
    ``NEURALINV_TEST_PAUSE``) the run stops there and creates the marker file returned (in
    ``cwd``) for :func:`wait_for`; end it with :func:`kill`."""
    marker = Path(cwd) / f"paused-{time.monotonic_ns()}"
    extra = dict(env or {})
    if pause is not None:
        extra.update(NEURALINV_TEST_PAUSE=pause, NEURALINV_TEST_PAUSE_FILE=str(marker))
    proc = subprocess.Popen([sys.executable, "-m", "neuralinv", *map(str, args)], cwd=cwd,
                            env=cli_env(**extra), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, preexec_fn=_default_signals)
    return proc, marker


def wait_for(proc: subprocess.Popen, condition, timeout: float = TIMEOUT) -> None:
    """Poll until ``condition()`` holds; the test fails if the run ends first (with its
    stderr) or after ``timeout`` seconds (the run is killed)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc {proc.returncode}) before the moment to signal it: "
                        f"{proc.stderr.read().decode(errors='replace')[-2000:]}", pytrace=False)
        if time.monotonic() > deadline:
            kill(proc, signal.SIGKILL)
            pytest.fail(f"timed out after {timeout:g} s waiting for the moment to signal the run",
                        pytrace=False)
        time.sleep(0.001)


def kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> int:
    """Send ``sig``, wait for the end (SIGKILL after 60 s), close stderr; the return code."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    return proc.returncode


# ------------------------------------------------------------------------------ compilers

#: A C++ compiler on PATH: without one the compiled learned paths run their eager code, so a
#: test comparing compiled with eager would compare eager with eager.
HAVE_COMPILER = any(shutil.which(cc) for cc in ("g++", "c++", "clang++"))
needs_compiler = pytest.mark.skipif(
    not HAVE_COMPILER, reason="no C++ compiler (g++, c++, clang++) on PATH: the compiled path "
    "would run the eager code, and the comparison would be eager against eager")


# ------------------------------------------------------------------------------ matrices


def gen(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


def _wide(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype.is_complex else torch.float64


def randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Standard normal entries (complex: real and imaginary parts each of variance 1/2),
    drawn in float64 / complex128 and cast to ``dtype``."""
    return torch.randn(*shape, generator=gen(seed), dtype=_wide(dtype)).to(dtype)


def well_conditioned(batch, n: int, *, seed: int = 0, shift: float = 3.0, spread: float = 1.0,
                     uniform: bool = False, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``shift I + G / spread`` for ``batch`` (an int or a shape) n x n matrices, G standard
    normal (uniform in [0, 1) with ``uniform``; complex for a complex ``dtype``). With
    ``spread`` about sqrt(n) the spectrum of G / spread fills about the unit disc, so
    ``shift`` >= 2.5 keeps cond_2 typically below 10."""
    shape = (*((batch,) if isinstance(batch, int) else batch), n, n)
    draw = torch.rand if uniform else torch.randn
    G = draw(*shape, generator=gen(seed), dtype=_wide(dtype))
    if spread != 1:
        G = G / spread
    return (G + shift * torch.eye(n, dtype=_wide(dtype))).to(dtype)


def conditioned(batch, n: int, cond: float, *, seed: int = 0, spd: bool = False,
                dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``U diag(s) V^T`` for ``batch`` (an int or a shape) n x n matrices: singular values
    log-spaced from 1 down to 1/cond (both ends included, so cond_2 = cond), U and V random
    orthogonal (V = U for SPD, then symmetrized exactly, as an SPD caller's data would be).
    Built in float64, cast to ``dtype``."""
    shape = (batch,) if isinstance(batch, int) else tuple(batch)
    g = gen(seed)
    B = math.prod(shape)
    U, _ = torch.linalg.qr(torch.randn(B, n, n, generator=g, dtype=torch.float64))
    V = U if spd else torch.linalg.qr(torch.randn(B, n, n, generator=g, dtype=torch.float64))[0]
    s = torch.logspace(0, -math.log10(cond), n, dtype=torch.float64) if n > 1 else torch.ones(1)
    A = (U * s.to(torch.float64)) @ V.mT
    if spd:
        A = (A + A.mT) / 2
    return A.reshape(*shape, n, n).to(dtype)


def spd(batch: int, n: int, *, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Symmetric (Hermitian for a complex ``dtype``) positive definite matrices of moderate
    condition: ``M M^H + n I``, M standard normal."""
    M = randn(batch, n, n, seed=seed, dtype=_wide(dtype))
    return (M @ M.mH + n * torch.eye(n, dtype=_wide(dtype))).to(dtype)


def network_counts(sol) -> dict[str, int]:
    """How many answers of a ``learned`` Solution came from the network after refinement (label
    ``learned``), and how many from the exact fallback (every other label)."""
    labels = np.asarray(sol.method).astype(str).ravel()
    network = int((labels == "learned").sum())
    return {"network": network, "fallback": int(labels.size - network)}
