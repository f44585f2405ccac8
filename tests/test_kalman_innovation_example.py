"""examples/kalman_innovation.py --quick: fit, train and invert a tracker's fresh matrices."""

import json

from helpers import ROOT, python


def test_quick_run_answers_fresh_matrices_by_the_network(tmp_path):
    proc = python(ROOT / "examples" / "kalman_innovation.py", "--quick", "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "network answered" in proc.stdout
    result = json.loads((tmp_path / "kalman_innovation.json").read_text())
    fresh = result["fresh"]
    assert fresh["network_share"] >= 0.9  # the target, met even by the quick run
    assert fresh["certified_share"] == 1.0 and fresh["worst_ratio"] < 30
    assert result["fit"]["covered"] >= 0.99
    png = tmp_path / "kalman_innovation.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert not (tmp_path / "kalman_innovation_data.npy").exists()  # the temporary data file is gone
