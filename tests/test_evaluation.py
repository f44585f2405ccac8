"""Evaluation metrics, reports, figures and the `neuralinv evaluate` / `invert --plot` commands."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import helpers
import neuralinv as ni
from neuralinv.errors import InputError
from neuralinv.evaluation import plots
from neuralinv.evaluation.metrics import compute, evaluate_method
from neuralinv.evaluation.report import metrics_markdown, rows, write_report

PNG = b"\x89PNG\r\n\x1a\n"


def well_conditioned(count=200, n=4, seed=0):
    """3 I + U, U uniform in [0, 1)."""
    return helpers.well_conditioned(count, n, seed=seed, shift=3, uniform=True)


run_cli = helpers.neuralinv


def test_lu_on_well_conditioned_input_has_known_metrics():
    A = well_conditioned()
    m, d, sol = evaluate_method("lu", A, name="wc")
    assert m.count == m.compared == 200 and m.no_reference == 0
    assert m.mae < 1e-14 and m.mse < 1e-28 and m.relative_error < 1e-14
    assert m.r2 == pytest.approx(1.0, abs=1e-12)
    assert m.pass_fraction == 1.0
    assert m.identity_residual < 1e-14
    assert m.contracted is None and m.fell_back is None  # not a learned method
    assert m.extra["answered_by"] == {"lu": 200}
    assert d.sigma_min.shape == (200,) and np.all(d.sigma_min > 1)


def test_known_perturbation_gives_exact_errors():
    A = well_conditioned(50, 3, seed=1)
    X = torch.linalg.inv(A) + 0.1
    m, d = compute(A, X)
    assert m.mae == pytest.approx(0.1, rel=1e-12)
    assert m.mse == pytest.approx(0.01, rel=1e-12)
    ref = torch.linalg.inv(A).numpy().ravel()
    r2 = 1 - np.sum(0.01 * np.ones_like(ref)) / np.sum((ref - ref.mean()) ** 2)
    assert m.r2 == pytest.approx(r2, rel=1e-12)
    assert m.pass_fraction == 0.0  # 0.1 off is far from an inverse
    res = np.linalg.norm(A.numpy() @ X.numpy() - np.eye(3), axis=(1, 2))
    assert m.identity_residual == pytest.approx(np.median(res), rel=1e-12)


def test_targets_and_missing_references():
    A = well_conditioned(10, 2, seed=2)
    T = torch.linalg.inv(A).clone()
    T[3] = float("nan")  # a target without a value is left out of the error metrics
    m, _ = compute(A, torch.linalg.inv(A), T)
    assert (m.compared, m.no_reference) == (9, 1)
    S = torch.tensor([[[1.0, 2.0], [2.0, 4.0]]], dtype=torch.float64)  # singular: no reference
    m, _ = compute(S, torch.zeros_like(S))
    assert m.compared == 0 and np.isnan(m.mae) and m.pass_fraction == 0.0
    # An answer with NaN entries (lu on a singular matrix) is counted, not allowed to poison the means.
    both = torch.cat([A[:4], S])
    m, _, _ = evaluate_method("lu", both, torch.cat([torch.linalg.inv(A[:4]), S]))
    assert (m.compared, m.no_answer, m.no_reference) == (4, 1, 0) and m.mae < 1e-14
    with pytest.raises(InputError, match="targets must have the shape"):
        compute(A, A, T[:5])
    with pytest.raises(InputError, match="same shape"):
        compute(A, A[:3])


def test_float32_answers_are_certified_in_float32():
    A = well_conditioned(20, 3, seed=3)
    m, _ = compute(A.float(), torch.linalg.inv(A).float())
    assert m.pass_fraction == 1.0 and m.mae < 1e-6


def test_learned_fractions_from_a_trained_model(tiny_model):
    # 300 matrices in the model's region and 30 far outside it (the fallback answers those).
    A = torch.cat([tiny_model.region.sample(300, generator=helpers.gen(5)),
                   5 * helpers.randn(30, 3, 3, seed=6)])
    m, _, sol = evaluate_method(tiny_model, A)
    assert m.pass_fraction == 1.0
    assert 0.0 <= m.refined <= m.contracted <= 1.0
    # The fractions (from the method's counters) agree with who answered each matrix (the
    # per-matrix labels the fallback writes); the network answered most, the fallback some.
    by_network = np.asarray(sol.method).astype(str) == "learned"
    assert m.refined == pytest.approx(by_network.mean()) and m.refined >= 300 / 330
    assert m.fell_back == pytest.approx((~by_network).mean()) and m.fell_back > 0


def test_report_files_are_written_and_json_is_strict(tmp_path):
    A = well_conditioned(5, 2)
    m1, _, _ = evaluate_method("lu", A, name="a")
    S = torch.tensor([[[1.0, 2.0], [2.0, 4.0]]], dtype=torch.float64)
    m2, _, _ = evaluate_method("lu", S, name="singular")
    j, md = write_report(tmp_path, [m1, m2], title="t", context={"k": "v"})
    data = json.loads(j.read_text())  # NaN must have become null: strict JSON parses
    assert data["results"][1]["mae"] is None and data["results"][0]["pass_fraction"] == 1.0
    header, body = rows([m1, m2])
    assert "contracted" not in header  # empty columns are dropped
    assert "| a | lu | 5 |" in metrics_markdown([m1, m2]) and "n/a" in md.read_text()
    assert not list(tmp_path.glob(".*.tmp"))


def test_figures_are_pngs(tmp_path, tiny_model_dir):
    A = well_conditioned(100, 3)
    X = torch.linalg.inv(A) + 0.01 * torch.randn(100, 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    paths = [
        plots.predicted_vs_true(X.numpy(), torch.linalg.inv(A).numpy(), tmp_path / "pvt.png"),
        plots.error_vs_sigma(ni.sigma_min(A).numpy(), (X - torch.linalg.inv(A)).abs().mean((1, 2)).numpy(), tmp_path / "evs.png"),
        plots.residual_heatmaps(A.numpy(), X.numpy(), tmp_path / "heat.png", count=3),
        plots.training_curves(tiny_model_dir, tmp_path / "train.png"),
        plots.loss_curves({"a": [1, 0.1, 0.01], "b": [1, 0.5, 0.0]}, tmp_path / "loss.png"),
    ]
    for p in paths:
        assert p.read_bytes()[:8] == PNG
    with pytest.raises(InputError, match="metrics.json"):
        plots.training_curves(tmp_path, tmp_path / "x.png")


def test_cli_evaluate_method_lu(tmp_path):
    A = well_conditioned(64, 3).numpy()
    np.save(tmp_path / "wc.npy", A)
    np.save(tmp_path / "wc_inv.npy", np.linalg.inv(A))
    r = run_cli("evaluate", "--method", "lu", "--data", tmp_path / "wc.npy", "--targets", tmp_path / "wc_inv.npy", "--out", tmp_path / "ev")
    assert r.returncode == 0, r.stderr
    assert "neuralinv evaluate" in r.stdout and "1.0000" in r.stdout
    data = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    (res,) = data["results"]
    assert res["name"] == "wc" and res["method"] == "lu" and res["count"] == 64
    assert res["mae"] < 1e-14 and res["pass_fraction"] == 1.0
    figs = sorted(p.name for p in (tmp_path / "ev" / "figures").glob("*.png"))
    assert figs == ["error_vs_sigma_min.png", "pred_vs_true_wc_lu.png", "residual_wc_lu.png"]
    assert (tmp_path / "ev" / "report.md").read_text().count("![") == 3


def test_cli_evaluate_model_rows_and_errors(tmp_path, tiny_model_dir):
    model = ni.LearnedInverse.load(tiny_model_dir)
    A = model.region.sample(100, generator=torch.Generator().manual_seed(9)).numpy()
    np.save(tmp_path / "ball.npy", A)
    r = run_cli("evaluate", "--model", tiny_model_dir, "--data", tmp_path / "ball.npy", "--out", tmp_path / "ev", "--no-figures")
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "ev" / "metrics.json").read_text())["results"]
    assert [x["method"] for x in res] == ["network", "learned"]
    assert res[1]["pass_fraction"] == 1.0 and res[1]["fell_back"] is not None
    assert res[0]["mae"] > res[1]["mae"]  # the raw guess is worse than the certified answer
    bad = run_cli("evaluate", "--method", "lu", "--model", tiny_model_dir, "--data", tmp_path / "ball.npy", "--out", tmp_path / "e2")
    assert bad.returncode == 2 and "exactly one of --method or --model" in bad.stderr
    bad = run_cli("evaluate", "--method", "lu", "--data", tmp_path / "ball.npy", "--targets", tmp_path / "ball.npy",
                  "--targets", tmp_path / "ball.npy", "--out", tmp_path / "e3")
    assert bad.returncode == 2 and "one per data file" in bad.stderr
    bad = run_cli("evaluate", "--method", "nope", "--data", tmp_path / "ball.npy", "--out", tmp_path / "e4")
    assert bad.returncode == 2 and "unknown method 'nope'" in bad.stderr


def test_cli_invert_plot(tmp_path):
    A = well_conditioned(30, 3).numpy()
    np.save(tmp_path / "a.npy", A)
    r = run_cli("invert", tmp_path / "a.npy", "-o", tmp_path / "x.npy", "--method", "lu", "--plot", tmp_path / "cert.png")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "cert.png").read_bytes()[:8] == PNG
    assert "cert.png" in r.stdout


SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "deepmatrixinversion"


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data/deepmatrixinversion")
def test_evaluate_on_deepmatrixinversion_singular_file(tmp_path):
    from neuralinv.evaluation.runner import evaluate_files

    res = evaluate_files([SHARED / "data1_sing_matrix_3x3.mx"], tmp_path, method="lu", figures=False)
    (m,) = res.metrics
    assert m.count == 10_000 and m.name == "data1_sing_matrix_3x3"
    # Rank-deficient matrices rounded to 4 decimals: most have no usable inverse.
    assert m.no_reference > 5_000 and m.pass_fraction < 0.5


def test_cli_metrics_table_transposes_when_too_wide_and_keeps_every_number_whole():
    from rich.console import Console

    from neuralinv.cli.render import metrics_table

    m, _, _ = evaluate_method("lu", well_conditioned(), name="wc")
    header, body = rows([m])
    for width, transposed in ((300, False), (70, True)):
        console = Console(width=width, record=True)
        console.print(metrics_table([m], width=width))
        text = console.export_text()
        assert ("metric" in text) == transposed
        assert "…" not in text
        assert all(str(cell) in text for cell in body[0][2:])
