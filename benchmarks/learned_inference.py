"""Speed and outcome of certified learned inversion (issue 4, items 4-5), next to exact methods.

For a trained model (default: the shipped ``builtin:ball3``; else ``--model DIR``; or
``--train-steps N`` to train the demo's 2-FC network first) on its region, times
``ni.invert`` with ``lu``, ``closed_form``, the certified ``learned`` method, its raw guess
(``refine=False``) and ``newton_schulz`` from the scaled transpose, in float64 and float32,
best of ``--repeat`` runs, each as a ratio to ``torch.linalg.inv`` timed in the same run
(which computes no certificate). Also ``block`` over the model and over ``lu`` on near
block-diagonal 9x9 matrices whose diagonal blocks lie in the region.

    python benchmarks/learned_inference.py [--model DIR|builtin:NAME] [--count N] [--out DIR]

Prints a markdown table; with ``--out`` also writes results.json and results.md there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

import neuralinv as ni
from neuralinv.learned.demo import demo_config
from neuralinv.methods.learned import Learned


def best_time(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def load_model(args) -> tuple[ni.LearnedInverse, str]:
    if args.train_steps:
        return ni.train(demo_config(steps=args.train_steps)), f"demo config, {args.train_steps} steps"
    return ni.LearnedInverse.load(args.model), args.model


def near_block_diagonal(region, count: int, k: int, g) -> torch.Tensor:
    c = region.center
    A = 0.01 * torch.randn(count, 3 * k, 3 * k, generator=g, dtype=torch.float64)
    for i in range(k):
        A[:, 3 * i:3 * i + 3, 3 * i:3 * i + 3] = c + 0.5 * (region.sample(count, generator=g) - c)
    return A


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="builtin:ball3")
    p.add_argument("--train-steps", type=int, default=0)
    p.add_argument("--count", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    model, source = load_model(args)
    rows = []
    for dtype in (torch.float64, torch.float32):
        A = model.region.sample(args.count, generator=torch.Generator().manual_seed(7), dtype=dtype)
        base, _ = best_time(lambda A=A: torch.linalg.inv(A), args.repeat)
        methods = {
            "lu": "lu",
            "closed_form": "closed_form",
            "learned": Learned(model=model),
            "learned refine=False": Learned(model=model, refine=False),
            "newton_schulz (transpose seed)": "newton_schulz",
        }
        for name, method in methods.items():
            t, sol = best_time(lambda A=A, m=method: ni.invert(A, method=m), args.repeat)
            it = sol.stats.get("iterations")
            rows.append({
                "dtype": str(dtype).replace("torch.", ""), "method": name, "n": model.n,
                "seconds": t, "vs_torch_linalg_inv": t / base,
                "max_iterations": int(it.max()) if isinstance(it, torch.Tensor) else None,
                "status": sol.counts(), "method_counts": sol.method_counts(),
            })
    g = torch.Generator().manual_seed(8)
    A9 = near_block_diagonal(model.region, max(args.count // 10, 1), 3, g)
    base, _ = best_time(lambda: torch.linalg.inv(A9), args.repeat)
    for name, kwargs in {"block over learned": {"base": model}, "block over lu": {"base": "lu"},
                         "lu": {}}.items():
        method = "block" if kwargs else "lu"
        t, sol = best_time(lambda m=method, kw=kwargs: ni.invert(A9, method=m, **kw), args.repeat)
        rows.append({
            "dtype": "float64", "method": name, "n": 9, "seconds": t, "vs_torch_linalg_inv": t / base,
            "max_iterations": None, "status": sol.counts(), "method_counts": sol.method_counts(),
            "leaves": sol.stats.get("leaves"),
        })
    header = (f"model {source} ({model.config.model.arch}, region {model.region.describe()['kind']}); "
              f"{args.count} matrices (9x9: {max(args.count // 10, 1)}); best of {args.repeat}; "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    lines = [header, "", "| n | dtype | method | seconds | x torch.linalg.inv | NS steps | status | answered by |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        by = ", ".join(f"{k} {v}" for k, v in r["method_counts"].items())
        if r.get("leaves"):
            by += " (leaves: " + ", ".join(f"{k} {v}" for k, v in r["leaves"].items()) + ")"
        st = ", ".join(f"{k} {v}" for k, v in r["status"].items())
        lines.append(f"| {r['n']} | {r['dtype']} | {r['method']} | {r['seconds']:.4f} | "
                     f"{r['vs_torch_linalg_inv']:.1f} | {r['max_iterations'] or '-'} | {st} | {by} |")
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps({"header": header, "rows": rows}, indent=1))
        (args.out / "results.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
