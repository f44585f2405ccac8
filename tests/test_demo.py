"""The demo: its collection, its sections, and the command that prints them."""

from __future__ import annotations

import torch

from helpers import neuralinv
from neuralinv.cli.render import demo_table, method_cells, method_columns
from neuralinv.demo import KINDS, DemoConfig, MethodsSection, collection, run_demo


def test_collection_kinds():
    data = collection(6, 5, seed=1)
    assert tuple(data) == KINDS
    for A in data.values():
        assert A.shape == (5, 6, 6) and A.dtype == torch.float64
    torch.testing.assert_close(data["SPD"], data["SPD"].mT, rtol=0, atol=0)
    assert bool((torch.linalg.eigvalsh(data["SPD"]) >= 1 - 1e-12).all())
    assert (torch.linalg.matrix_rank(data["singular"]) == 5).all()
    cond = torch.linalg.cond(data["ill-conditioned"])
    assert cond.min() > 1e7 and cond.max() > 1e15
    assert torch.equal(collection(6, 5, seed=1)["random"], data["random"])  # bitwise: same call, same seed


def test_run_demo_rows():
    sections = run_demo(DemoConfig(sizes=(3,), count=4, methods=("lu", "cholesky", "closed_form")))
    assert len(sections) == 1 and isinstance(sections[0], MethodsSection)
    rows = {r.method: r for r in sections[0].rows}
    assert set(rows) == {"lu", "cholesky", "closed_form"}
    lu = rows["lu"]
    # Exact counts, on any CPU: the random and SPD kinds have ratios < 0.2 and rcond > 0.01
    # (far from 30 and eps), the singular kind is exactly singular (integer entries, the last
    # row the exact sum of the others), for which ||I - X A||_1 >= 1 whatever X: never OK.
    # Cholesky refuses the random kind by its symmetry test, not by rounding.
    assert lu.statuses["random"] == {"OK": 4} and lu.statuses["SPD"] == {"OK": 4}
    assert "OK" not in lu.statuses["singular"]
    assert lu.worst_residual < 30 and lu.matrices_per_s > 0
    assert rows["cholesky"].statuses["random"] == {"NOT_SPD": 4}
    # The CLI's table of the section: one cell per column, statuses by their short names.
    assert method_cells(rows["cholesky"])[3] == "4 NOTSPD"
    table, notes = demo_table(sections[0])
    assert [c.header for c in table.columns] == list(method_columns()) and table.row_count == 3
    assert all(len(method_cells(r)) == len(method_columns()) for r in sections[0].rows)


def test_methods_that_cannot_run_are_noted():
    (section,) = run_demo(DemoConfig(sizes=(5,), count=2, methods=("closed_form", "lu")))
    assert [r.method for r in section.rows] == ["lu"]
    assert [name for name, _ in section.skipped] == ["closed_form"]
    _, notes = demo_table(section)
    assert any(note.startswith("closed_form: not run (it does not take 5x5") for note in notes)


def test_demo_command_prints_tables():
    proc = neuralinv("demo", "--sizes", "3", "--count", "3", "--learned-steps", "200", timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Every method on 3x3 matrices" in out
    for word in ("matrices/s", "worst ratio", "ill-conditioned", "lu", "newton_schulz", "gradient"):
        assert word in out
    bad = neuralinv("demo", "--sizes", "x")
    assert bad.returncode != 0 and "--sizes" in bad.stderr
