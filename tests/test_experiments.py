"""Every experiment's --quick mode runs (in a subprocess) and writes sane outputs."""

import json
from pathlib import Path

import pytest

from helpers import ROOT, python

SHARED = ROOT.parent / "shared" / "data" / "deepmatrixinversion"
PNG = b"\x89PNG\r\n\x1a\n"


def run_quick(name: str, out: Path) -> dict:
    r = python(ROOT / "experiments" / f"{name}.py", "--quick", "--out", out, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads((out / "results.json").read_text())
    assert data["run"]["quick"] is True and data["run"]["torch_threads"] == 1
    md = (out / "results.md").read_text()
    for fig in data["figures"]:
        assert (out / fig).read_bytes()[:8] == PNG
        assert f"({fig})" in md
    return data


def test_paper_table1(tmp_path):
    data = run_quick("paper_table1", tmp_path)["data"]
    assert set(data) == {"2x2 SPD", "2x2 general", "3x3", "16x16"}
    for entry in data.values():
        assert 0 < entry["linear_approximation_mae"] < 0.05
        for depth in ("2-FC", "3-FC"):
            assert all(0 < m < 1 for m in entry[depth])
    big = data["16x16"]
    # The best affine map is fitted by least squares: near the linear approximation, which is
    # one affine map (the quick mode fits it on 2,000 samples, so it may be a little worse).
    assert 0.5 * big["linear_approximation_mae"] < big["best_affine_mae"] < 2 * big["linear_approximation_mae"]
    curves = big["curves"]
    assert set(curves) == {"2-FC seed 0", "3-FC seed 0"}
    for key, c in curves.items():
        assert c["step"] == sorted(c["step"]) and c["step"][-1] == big["steps"][key.split(" seed")[0]]
        assert len(c["val_mae"]) == len(c["step"]) and all(v > 0 for v in c["val_mae"])


def test_paper_table2(tmp_path):
    data = run_quick("paper_table2", tmp_path)["data"]
    lin = data["linear approximation"]
    # The correction network starts as the linear approximation and only corrects it.
    assert min(data["correction (ours, g: 2-FC 32)"]) < 1.5 * lin
    pieces = data["analysis"]["pieces"]
    assert sum(p["share"] for p in pieces) == pytest.approx(1.0)
    trend = data["section_5_3_trend"]
    assert list(trend) == ["lr 0.001, 40 steps", "lr 5e-05, 80 steps"]
    for t in trend.values():
        assert 1 <= len(t["top2"]) <= 2 and sum(p["share"] for p in t["top2"]) <= 1
        # Every budget is analysed on the same held-out samples, so the same baseline.
        assert t["linear_mae"] == data["analysis"]["linear_approximation_mae"]
    # The detailed table is the paper-budget model's (the last budget).
    assert trend["lr 5e-05, 80 steps"]["network_mae"] == data["analysis"]["network_mae"]
    assert all(p["max_deviation"] is None or p["max_deviation"] >= 0 for p in pieces)
    assert (tmp_path / "model_small" / "config.toml").exists()


def test_paper_table3(tmp_path):
    data = run_quick("paper_table3", tmp_path)["data"]
    for size in ("2x2", "3x3"):
        assert all(t > 0 for t in data[size]["exact"].values())
        for depth in ("2-FC", "3-FC"):
            t = data[size][depth]
            assert all(v > 0 for v in t.values())
            assert t["bs 1 (CPU)"] > t[f"bs {data['N']} (CPU)"]  # one-by-one is slower than batched


def test_deepmatrixinversion(tmp_path):
    data = run_quick("deepmatrixinversion", tmp_path)["data"]
    assert data["fresh"]["hybrid"]["pass_fraction"] == 1.0
    phase1 = data["phase1"]
    assert len(phase1) == 5 and data["chosen"] in phase1
    # The chosen variant is the one with the lowest validation MAE, trained longer (12x; quick 3x).
    assert phase1[data["chosen"]]["val_mae"] == min(v.get("val_mae", float("inf")) for v in phase1.values())
    assert data["config"]["steps"] == data["phase2_factor"] * phase1[data["chosen"]]["config"]["steps"]
    # Every variant of phase 1 sees the same number of training matrices.
    seen = {v["config"]["steps"] * v["config"]["batch_size"] * v["config"]["ensemble"] for v in phase1.values()}
    assert max(seen) - min(seen) <= 3 * 256
    if not SHARED.is_dir():
        assert "is absent" in (tmp_path / "results.md").read_text()
        return
    for name in ("data1", "data2", "data3"):
        for subset in ("all", "|det| > 0.1"):
            hyb = data[f"{name} {subset}"]["hybrid"]
            assert hyb["pass_fraction"] >= 0.99 and hyb["mae"] < 1e-6
            assert data[f"{name} {subset}"]["network"]["count"] == hyb["count"]
        assert "SINGULAR" in data[f"{name} singular"]["status"]


def test_blog_gradient(tmp_path):
    data = run_quick("blog_gradient", tmp_path)["data"]
    rnd, diag = data["random 4x4 (seed 314)"], data["diagonal diag(1,2,3,4)"]
    assert diag["final_loss"] < rnd["final_loss"] < rnd["loss_history_every_10"][0]
    assert len(data["svd"]["svd_gd"]) == 4 and data["svd"]["reconstruction_error"] < 0.5


def test_regression(tmp_path):
    data = run_quick("regression", tmp_path)["data"]
    assert data["ols"]["certified"] == pytest.approx(data["ols"]["numpy"], abs=1e-10)
    assert data["box_draper"]["block"] == pytest.approx(data["box_draper"]["numpy"], abs=1e-8)
    assert data["box_draper"]["status"] == {"OK": 1} and data["box_draper"]["residual"] < 30
