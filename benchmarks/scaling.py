"""Scaling figures: time per call against batch size (1 .. 10^6) and against n (2 .. 512).

Every point is a ``neuralinv.bench.run`` measurement (same inputs for every approach, warm-up
excluded, median of repeats, ratios within a round). Writes scaling.json plus two log-log
figures, batch.png and size.png, to --out; the crossovers they show are the ones
``methods.auto.Auto.choose`` uses.

    python benchmarks/scaling.py --out results/scaling [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from neuralinv.bench import BenchConfig, machine_info, run  # noqa: E402

METHODS = ("auto", "closed_form", "lu")


def batch_sweep(n: int, batches: list[int], repeats: int, dtype: str, notes: list[str]) -> list[dict]:
    rows = []
    for b in batches:
        # Small batches are cheap and noisy: more repeats there.
        reps = max(repeats, min(51, 2_000_000 // max(1, b * n * n)))
        cfg = BenchConfig(sizes=(n,), batch=b, methods=METHODS, repeats=reps, alone=True,
                          dtype=dtype, max_elements=1 << 28)  # fmt: skip
        res = run(cfg)
        notes += [note for note in res.notes if "failed" in note]
        rows += [dict(vars(r), sweep="batch") for r in res.rows]
    return rows


def size_sweep(
    sizes: list[int], batch: int, max_elements: int, repeats: int, dtype: str, notes: list[str]
) -> list[dict]:
    cfg = BenchConfig(sizes=tuple(sizes), batch=batch, methods=METHODS, repeats=repeats,
                      alone=True, dtype=dtype, max_elements=max_elements)  # fmt: skip
    res = run(cfg)
    notes += [note for note in res.notes if "failed" in note]  # approaches left out
    return [dict(vars(r), sweep="size") for r in res.rows]


def figure(rows: list[dict], x: str, title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in dict.fromkeys(r["approach"] for r in rows):
        pts = sorted((r[x], r["median_s"] / (r["batch"] if x == "n" else 1)) for r in rows if r["approach"] == name)
        style = "--" if "." in name else (":" if name.endswith(":alone") else "-")
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", ms=3, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch size" if x == "batch" else "matrix size n")
    ax.set_ylabel("seconds per call" if x == "batch" else "seconds per matrix")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="fewer points (for a smoke run)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    batches = [1, 10, 100, 1000, 10_000] if args.quick else [1, 10, 100, 1000, 10_000, 100_000, 1_000_000]
    sizes = [2, 4, 8, 32] if args.quick else [2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256, 512]
    rows: list[dict] = []
    notes: list[str] = []
    for n in (3, 16):
        rows += batch_sweep(n, batches if n == 3 else batches[:-1], args.repeats, args.dtype, notes)
    rows += size_sweep(sizes, 10_000, 1 << 22, args.repeats, args.dtype, notes)
    info = machine_info("cpu")
    with open(args.out / "scaling.json", "w") as f:
        json.dump({"machine": info, "rows": rows, "notes": notes}, f, indent=1)
    for note in notes:
        print(note)
    for n in (3, 16):
        sel = [r for r in rows if r["sweep"] == "batch" and r["n"] == n]
        figure(sel, "batch", f"{n}x{n} {args.dtype}, {args.threads} threads: time per call vs batch",
               args.out / f"batch_n{n}.png")  # fmt: skip
    sel = [r for r in rows if r["sweep"] == "size"]
    figure(sel, "n", f"{args.dtype}, batch min(10^4, 2^22/n^2), {args.threads} threads: time per matrix vs n",
           args.out / "size.png")  # fmt: skip
    # The crossover table: which certified approach is fastest at each point.
    for sweep, key in (("batch", "batch"), ("size", "n")):
        print(f"fastest certified method by {key}:")
        groups = {}
        for r in rows:
            if r["sweep"] == sweep and r["certified"]:
                groups.setdefault((r["n"], r["batch"]), []).append(r)
        for (n, b), rs in sorted(groups.items()):
            best = min(rs, key=lambda r: r["median_s"])
            ref = [r["median_s"] for r in rows if r["sweep"] == sweep and r["n"] == n
                   and r["batch"] == b and r["approach"] == "torch.linalg.inv"]  # fmt: skip
            ref_text = f"{ref[0]:.3g}s" if ref else "failed (see the notes in scaling.json)"
            print(f"  n={n:4d} batch={b:8d}: {best['approach']:12s} {best['median_s']:.3g}s "
                  f"(torch.linalg.inv {ref_text})")  # fmt: skip


if __name__ == "__main__":
    main()
