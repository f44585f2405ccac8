"""Suite-wide guard: no test may leak a change of process-global torch state.

``methods.lu`` picks its code path by ``torch.get_num_threads()``, the default dtype changes
what every ``torch.tensor`` literal is, and grad mode / deterministic algorithms / anomaly
mode / the float32 matmul precision change what later tests compute. A test that changes one
of them and does not put it back makes the results of the tests after it depend on the order
they run in (and on which tests run in the same xdist worker).

The autouse fixture below snapshots that state before each test and compares after it: a
difference is put back and reported as an error of that test's teardown, naming what leaked.
Before each test it also compares with the state the session started with, which catches a
module-scoped fixture that changed it for its whole module (reported at that test's setup).
Tests that need another setting change it in a fixture or ``try/finally`` that restores it.

The global RNG state is put back silently after each test (tests seed their own generators;
a test that calls ``torch.manual_seed`` must not shift the draws of the tests after it). The
number of interop threads is not checked: torch cannot set it again once work has started.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

# Property tests draw their examples from a fixed seed (derandomize) and keep no database, so
# every run, on every machine, tries the same examples: a CI run cannot turn red on an example
# no earlier run saw. NEURALINV_HYPOTHESIS=explore draws fresh random examples (for hunting).
settings.register_profile("fixed", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile("explore" if os.environ.get("NEURALINV_HYPOTHESIS") == "explore" else "fixed")

#: Environment variables set by others, not by tests: pytest sets PYTEST_CURRENT_TEST for each
#: phase of each test; torch's inductor sets its own (cache directories, ...) when it compiles.
_NOT_OURS = ("PYTEST_CURRENT_TEST", "TORCHINDUCTOR_", "_TORCHINDUCTOR_", "TRITON_")


def _ours(key: str) -> bool:
    return not key.startswith(_NOT_OURS)


def _snapshot() -> dict:
    return {
        "torch.get_num_threads()": torch.get_num_threads(),
        "torch.get_default_dtype()": torch.get_default_dtype(),
        "torch.is_grad_enabled()": torch.is_grad_enabled(),
        "torch.are_deterministic_algorithms_enabled()": torch.are_deterministic_algorithms_enabled(),
        "torch.is_deterministic_algorithms_warn_only_enabled()":
            torch.is_deterministic_algorithms_warn_only_enabled(),
        "torch.is_anomaly_enabled()": torch.is_anomaly_enabled(),
        "torch.get_float32_matmul_precision()": torch.get_float32_matmul_precision(),
        "os.environ": {k: v for k, v in os.environ.items() if _ours(k)},
        "os.getcwd()": os.getcwd(),
    }


def _restore(state: dict) -> None:
    torch.set_num_threads(state["torch.get_num_threads()"])
    torch.set_default_dtype(state["torch.get_default_dtype()"])
    torch.set_grad_enabled(state["torch.is_grad_enabled()"])
    torch.use_deterministic_algorithms(
        state["torch.are_deterministic_algorithms_enabled()"],
        warn_only=state["torch.is_deterministic_algorithms_warn_only_enabled()"],
    )
    torch.set_anomaly_enabled(state["torch.is_anomaly_enabled()"])
    torch.set_float32_matmul_precision(state["torch.get_float32_matmul_precision()"])
    for key in {k for k in os.environ if _ours(k)} - set(state["os.environ"]):
        del os.environ[key]
    os.environ.update(state["os.environ"])
    os.chdir(state["os.getcwd()"])


def _report(before: dict, after: dict, when: str) -> None:
    leaked = sorted(k for k in before if before[k] != after[k])
    if not leaked:
        return
    # Everything is put back before the report, so the tests after this one are not affected.
    _restore(before)
    detail = [f"{k}: {before[k]!r} -> {after[k]!r}" for k in leaked if k != "os.environ"]
    if "os.environ" in leaked:
        changed = set(before["os.environ"].items()) ^ set(after["os.environ"].items())
        detail.append(f"os.environ keys changed: {sorted({k for k, _ in changed})}")
    pytest.fail(f"{when} leaked a change of global state (restored now): {'; '.join(detail)}")


@pytest.fixture(scope="session")
def _baseline() -> dict:
    """The state the session started with (OMP_NUM_THREADS decides the thread count)."""
    return _snapshot()


@pytest.fixture(autouse=True)
def _no_leaked_global_state(_baseline):
    # A fixture of module or session scope runs before this one: if it changed the state
    # (and so every test of its module runs under the change), say so here.
    _report(_baseline, _snapshot(), "a fixture of wider scope (or a plugin) set up for this test")
    before = _snapshot()
    rng = torch.get_rng_state()
    yield
    torch.set_rng_state(rng)
    _report(before, _snapshot(), "the test")


@pytest.fixture
def one_thread():
    """Torch on one thread for the test (training is faster so on a loaded machine); the
    session's count is put back."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A real trained model directory, trained once per session (per xdist worker): the
    default mlp on the default 3x3 ball, 100 steps (a fraction of a second), good enough that
    every in-region matrix contracts under Newton-Schulz from its guess, far from exact. Tests
    read it, never write into it (save a copy elsewhere)."""
    import neuralinv as ni

    out = tmp_path_factory.mktemp("tiny-model") / "model"
    config = ni.TrainConfig(n=3, steps=100, batch_size=128, val_every=100, val_size=256,
                            tensorboard=False, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # faster on a loaded machine; the session's count is put back
    try:
        ni.train(config, out)
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    """The :func:`tiny_model_dir` model, loaded (a LearnedInverse; shared, so not modified)."""
    import neuralinv as ni

    return ni.LearnedInverse.load(tiny_model_dir)
