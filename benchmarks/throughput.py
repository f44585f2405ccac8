"""The throughput table of docs/performance.md: every method next to torch.linalg.inv and
numpy.linalg.inv at batch 100,000 (capped by memory for large n), as markdown + JSON + plot.

    python benchmarks/throughput.py --out results/throughput [--threads 2] [--batch 100000]
        [--sizes 2,3,4,8,16,32,64,128] [--methods auto,closed_form,lu] [--dtype float32]
    python benchmarks/throughput.py --from results/throughput/bench.json   # re-render only

Same measurement as ``neuralinv bench`` (neuralinv.bench.run); this script only adds the
markdown rendering used in the docs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from neuralinv.bench import BenchConfig, parse_names, parse_sizes, plot, run, write_json


def markdown(data: dict) -> str:
    m, c = data["machine"], data["config"]
    lines = [
        f"{c['dtype']} on {c['device']}, torch {m['torch']}, {m['torch_threads']} threads, "
        f"{m['cpu_count']} CPUs ({m['processor']}); median of {c['repeats']} rounds after a warm-up; "
        "`x torch.inv` = median of per-round time ratios.",
        "",
        "| n | batch | approach | matrices/s | x torch.linalg.inv | worst LAPACK ratio | pass | peak MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in data["rows"]:
        peak = "n/a" if r["peak_bytes"] is None else f"{r['peak_bytes'] / 2**20:.1f}"
        sp = "" if r["speedup_vs_torch"] is None else f"{r['speedup_vs_torch']:.2f}"
        lines.append(
            f"| {r['n']} | {r['batch']} | {r['approach']} | {r['matrices_per_s']:.3g} | {sp} | "
            f"{r['worst_ratio']:.3g} | {r['passing']:.4f} | {peak} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path)
    p.add_argument("--from", dest="from_json", type=Path, help="render an existing bench JSON")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=100_000)
    p.add_argument("--sizes", default="2,3,4,8,16,32,64,128")
    p.add_argument("--methods", default="auto,closed_form,lu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    if args.from_json:
        print(markdown(json.loads(args.from_json.read_text())))
        return
    if args.out is None:
        p.error("--out is required unless --from is given")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = BenchConfig(sizes=parse_sizes(args.sizes), batch=args.batch, dtype=args.dtype,
                      methods=parse_names(args.methods), repeats=args.repeats)  # fmt: skip
    result = run(cfg, progress=print)
    write_json(result, args.out / "bench.json")
    plot(result, args.out / "bench.png")
    md = markdown(result.to_json())
    (args.out / "bench.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
