"""examples/orthogonal_projection.py --quick: a real (tiny) training run of all three approaches."""

import json
import math

from helpers import ROOT, python


def test_quick_run_writes_sane_outputs(tmp_path):
    proc = python(ROOT / "examples" / "orthogonal_projection.py", "--quick", "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    png = tmp_path / "orthogonal_projection.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    data = json.loads((tmp_path / "orthogonal_projection.json").read_text())
    results = data["results"]
    steps = data["config"]["steps"]
    combos = {(r["method"], r["batch_size"]) for r in results}
    assert combos == {
        (m, b) for m in ("square_inverse", "pinv", "project", "none") for b in (32, 128, 512)
    }
    for r in results:
        assert len(r["losses"]) == steps
        assert 0 <= r["nonfinite_steps"] <= steps
        assert 0.0 <= r["test_accuracy"] <= 1.0
        assert all(math.isfinite(x) for x in r["losses"]) or r["nonfinite_steps"] > 0
        if r["method"] in ("project", "none"):
            # per-sample models: a sample's logits do not depend on the rest of its batch
            assert r["batch_dependence"] == 0.0
            assert r["nonfinite_steps"] == 0
        if r["method"] in ("square_inverse", "pinv"):
            # the batch-level constructions mix samples
            assert r["batch_dependence"] > 1e-6
    table = (tmp_path / "orthogonal_projection.md").read_text()
    assert table.count("\n") == 2 + len(results)
    assert "| project | 512 |" in table
