"""`neuralinv bench`: a tiny real run through the CLI, its JSON and plot, and its input errors.
Timings are not asserted (they belong to the benchmark, not the tests)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from helpers import neuralinv
from neuralinv.bench import BenchConfig, parse_sizes, run, well_conditioned
from neuralinv.errors import InputError


def test_bench_cli_writes_sane_json_and_plot(tmp_path):
    out = neuralinv(
        "bench", "--sizes", "2,5", "--batch", "64", "--repeats", "2", "--threads", "1",
        "--methods", "auto,closed_form,lu", "--json", "b.json", "--plot", "b.png",
        cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "torch.linalg.inv" in out.stdout and "closed_form" in out.stdout
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["schema"] == "neuralinv.bench/1"
    assert data["config"]["sizes"] == [2, 5] and data["config"]["dtype"] == "float32"
    assert data["machine"]["torch_threads"] == 1
    rows = data["rows"]
    by = {(r["n"], r["approach"]): r for r in rows}
    expected2 = {"torch.linalg.inv", "numpy.linalg.inv", "auto", "auto:alone", "closed_form",
                 "closed_form:alone", "lu", "lu:alone"}  # fmt: skip
    assert {a for n, a in by if n == 2} == expected2
    # closed_form has no 5x5 formula, so it is left out of that size rather than failing.
    assert {a for n, a in by if n == 5} == expected2 - {"closed_form", "closed_form:alone"}
    for r in rows:
        assert r["batch"] == 64 and len(r["times_s"]) == 2
        assert all(t > 0 for t in r["times_s"])
        assert r["median_s"] == pytest.approx(
            sorted(r["times_s"])[0] / 2 + sorted(r["times_s"])[1] / 2
        )
        assert math.isclose(r["matrices_per_s"], 64 / r["median_s"], rel_tol=1e-9)
        assert r["speedup_vs_torch"] > 0
        # Well-conditioned input: every approach passes the LAPACK test on every matrix.
        assert r["worst_ratio"] < 30 and r["passing"] == 1.0
    assert by[(2, "torch.linalg.inv")]["speedup_vs_torch"] == 1.0
    assert by[(2, "closed_form")]["certified"] and not by[(2, "closed_form:alone")]["certified"]
    assert by[(5, "auto")]["statuses"] == {"OK": 64}
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sizes", "2,x"], "--sizes: 'x' is not an integer"),
        (["--methods", "nope"], "unknown method 'nope'"),
        (["--methods", "learned"], "needs a model"),
        (["--methods", "lu:compile"], "method 'lu' has no compile option"),
        (["--methods", "auto:fast"], "the only suffix is ':compile'"),
        (
            ["--device", "cuda:0"] if not torch.cuda.is_available() else ["--device", "tpu"],
            "device",
        ),
    ],
)
def test_bench_cli_bad_input_exits_2_naming_the_problem(tmp_path, args, message):
    out = neuralinv("bench", *args, cwd=tmp_path)
    assert out.returncode == 2
    assert message in " ".join(out.stderr.split()), out.stderr


def test_bench_library_caps_batch_by_memory_and_scores_extra_methods():
    from neuralinv.methods import NewtonSchulz

    cfg = BenchConfig(sizes=(3, 8), batch=1000, methods=("lu",), references=("torch.linalg.inv",),
                      repeats=1, max_elements=8 * 64, alone=False)  # fmt: skip
    res = run(cfg, extra={"ns-tol3": NewtonSchulz(tol=3.0)})
    rows = {(r.n, r.approach): r for r in res.rows}
    assert rows[(3, "lu")].batch == 56 and rows[(8, "lu")].batch == 8
    assert any("batch capped" in note for note in res.notes)
    assert rows[(8, "ns-tol3")].worst_ratio < 3.0 and rows[(8, "ns-tol3")].certified


def test_well_conditioned_inputs_are_well_conditioned_and_seeded():
    A = well_conditioned(2000, 4, dtype=torch.float64, device="cpu", seed=0)
    s = torch.linalg.svdvals(A)
    assert float((s[:, 0] / s[:, -1]).median()) < 10
    # bitwise: same call, same seed
    assert torch.equal(A, well_conditioned(2000, 4, dtype=torch.float64, device="cpu", seed=0))
    with pytest.raises(InputError, match="at least one size"):
        parse_sizes(" , ")


def test_bench_learned_model_runs_on_its_region_only():
    cfg = BenchConfig(sizes=(2, 3), batch=300, methods=("lu",), references=("torch.linalg.inv",),
                      repeats=1, alone=False, model="builtin:ball3")  # fmt: skip
    res = run(cfg)
    rows = {(r.n, r.approach): r for r in res.rows}
    assert (3, "learned") in rows and (2, "learned") not in rows
    learned = rows[(3, "learned")]
    assert learned.certified and learned.passing == 1.0 and learned.worst_ratio < 30
    assert sum(learned.statuses.values()) == 300
    assert any("region" in note for note in res.notes)


def test_bench_methods_come_from_the_registry_and_supports_decides_the_sizes():
    from neuralinv.methods import METHODS, Method

    # Every registered method that builds by name benches by name (block included, with its
    # default base), and a method's supports() is what leaves it out of a size.
    class TwoOnly(Method):
        name = "two_only"

        def supports(self, n, dtype, device="cpu"):
            return n == 2

        def _invert(self, A):
            return METHODS["lu"]().kernel(A)

    cfg = BenchConfig(sizes=(2, 3), batch=50, methods=("block", "newton_schulz"),
                      references=("torch.linalg.inv",), repeats=1, alone=True)  # fmt: skip
    res = run(cfg, extra={"two_only": TwoOnly()})
    rows = {(r.n, r.approach): r for r in res.rows}
    for n in (2, 3):
        for a in ("block", "block:alone", "newton_schulz"):
            assert rows[(n, a)].worst_ratio < 30, (n, a)
    assert (2, "two_only") in rows and (3, "two_only") not in rows
    assert any("n=3: two_only skipped: two_only does not take 3x3 float32" in note for note in res.notes)


def test_bench_learned_and_its_compiled_path_by_name_with_a_model():
    cfg = BenchConfig(sizes=(3,), batch=500, methods=("learned", "learned:compile"),
                      references=("torch.linalg.inv",), repeats=1, alone=False,
                      model="builtin:ball3-fast")  # fmt: skip
    res = run(cfg)
    rows = {r.approach: r for r in res.rows}
    assert set(rows) == {"torch.linalg.inv", "learned", "learned:compile"}
    for name in ("learned", "learned:compile"):
        assert rows[name].certified and rows[name].passing == 1.0 and rows[name].worst_ratio < 30
    # both prepared before timing: the inductor compile, the native kernel's load
    assert rows["learned:compile"].setup_s is not None and rows["learned"].setup_s is not None
    with pytest.raises(InputError, match="needs a model"):
        BenchConfig(methods=("learned:compile",))


def test_an_approach_that_fails_is_left_out_with_a_note():
    from neuralinv.methods import Method

    class Broken(Method):
        name = "broken"

        def _invert(self, A):
            raise RuntimeError("kaput (as torch's batched CPU LU at n >= 192 under 2 threads)")

    cfg = BenchConfig(sizes=(3,), batch=100, methods=("lu",), references=("torch.linalg.inv",),
                      repeats=1, alone=False)  # fmt: skip
    res = run(cfg, extra={"broken": Broken()})
    assert {r.approach for r in res.rows} == {"torch.linalg.inv", "lu"}
    assert any("broken failed and is left out: RuntimeError: kaput" in note for note in res.notes)
