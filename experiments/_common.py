"""Shared plumbing of the experiment scripts: arguments, threads, timing, result files.

Every script is ``python experiments/NAME.py [--quick] [--out DIR]``: ``--quick`` is the
seconds-long smoke version used by the tests, the default is the full run whose outputs are
in docs/results.md. Outputs: ``results.json`` (every number), ``results.md`` (the tables) and
PNG figures, written atomically into ``--out`` (default ``results/NAME``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import sys
import time
from pathlib import Path

import torch

from neuralinv.evaluation.report import markdown_table, write_json
from neuralinv.files import write_text

ROOT = Path(__file__).resolve().parents[1]
#: The DeepMatrixInversion validation files (outside the repository; may be absent).
SHARED_DATA = ROOT.parent / "shared" / "data" / "deepmatrixinversion"


def parse(name: str, doc: str, argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"experiments/{name}.py", description=doc)
    p.add_argument("--quick", action="store_true", help="seconds-long smoke run (used by the tests)")
    p.add_argument("--out", type=Path, default=ROOT / "results" / name, help="output directory")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the machine is shared)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def machine() -> dict:
    """Where and when a run happened, for results.md."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores_visible": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


class Run:
    """Collects sections (title, header, rows, notes) and writes results.json + results.md."""

    def __init__(self, name: str, title: str, args: argparse.Namespace):
        self.name, self.title, self.args = name, title, args
        self.start = time.perf_counter()
        self.sections: list[dict] = []
        self.data: dict = {}
        self.figures: list[str] = []

    def table(self, title: str, header: list[str], rows: list[list], notes: str = "") -> None:
        self.sections.append({"title": title, "header": header, "rows": rows, "notes": notes})

    def figure(self, path: Path) -> None:
        self.figures.append(Path(path).name)

    def finish(self) -> float:
        wall = time.perf_counter() - self.start
        info = machine() | {"wall_s": round(wall, 1), "quick": bool(self.args.quick)}
        write_json(self.args.out / "results.json", {"experiment": self.name, "run": info, "tables": self.sections, "data": self.data, "figures": self.figures})
        md = [f"## {self.title}\n", f"Run: {info['date_utc']}, {info['cpu']}, {info['torch_threads']} torch thread(s), "
              f"wall time {wall:.1f} s{' (quick mode)' if self.args.quick else ''}.\n"]
        for s in self.sections:
            md.append(f"### {s['title']}\n")
            md.append(markdown_table(s["header"], [[_cell(c) for c in r] for r in s["rows"]]))
            if s["notes"]:
                md.append(s["notes"] + "\n")
        for f in self.figures:
            md.append(f"![{Path(f).stem}]({f})\n")
        write_text(self.args.out / "results.md", "\n".join(md))
        return wall


def _cell(c) -> str:
    if isinstance(c, float):
        if c != c:
            return "n/a"
        return f"{c:.4g}"
    return str(c)


def fmt_pm(values: list[float]) -> str:
    """mean ± std over seeds, as the paper's tables."""
    t = torch.tensor(values, dtype=torch.float64)
    if t.numel() == 1:
        return f"{float(t[0]):.3e}"
    return f"{float(t.mean()):.3e} ± {float(t.std()):.1e}"
