"""The seed residual ``||I - A X0||_1`` of learned models on held-out matrices of their regions
(issue 15.3), as a markdown table (docs/learned.md, "Seeds").

For each model: ``--batch`` fresh matrices of its region (default 100,000 for n <= 4, 20,000
above; generator seed ``--seed``, far from training's and validation's streams), the guesses
the certified method refines (:func:`neuralinv.evaluation.seeds.seed_residual`): the share
with ``||I - A X0||_1 <= 0.5``, quantiles, and the Newton-Schulz steps to the method's
tolerance in float32 and float64.

    python benchmarks/seed_residual.py [MODEL ...] [--batch N] [--seed S]
"""

from __future__ import annotations

import argparse
import time

import torch

import neuralinv as ni
from neuralinv.evaluation.seeds import seed_residual

SHIPPED = ("builtin:ball3", "builtin:ball3-fast", "builtin:ball16")


def row(name: str, batch: int | None, seed: int) -> str:
    model = ni.LearnedInverse.load(name)
    count = batch or (100_000 if model.n <= 4 else 20_000)
    A = model.region.sample(count, generator=torch.Generator().manual_seed(seed))
    res = seed_residual(model, A)

    def hist(s: dict) -> str:
        steps = ", ".join(f"{k}: {c}" for k, c in enumerate(s["histogram"]) if c)
        return steps + (f"; {s['not_converged']} not converged" if s["not_converged"] else "")

    m = model.config.model
    return (f"| `{name}` ({m.arch} depth {m.depth} width {m.width}, {len(model.members)} member(s)) "
            f"| {model.n} | {res.seeded:,} | {100 * res.share_good:.2f}% | {res.quantile_text()} "
            f"| {res.max:.2g} | {hist(res.steps['float32'])} | {hist(res.steps['float64'])} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", default=list(SHIPPED))
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--seed", type=int, default=15_003)
    args = p.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    print("| model | n | seeded | <= 0.5 | q50 / q90 / q99 / q99.9 | max | float32 steps (matrices) "
          "| float64 steps (matrices) |")
    print("|---|---:|---:|---:|---|---:|---|---|")
    for name in args.models:
        print(row(name, args.batch, args.seed), flush=True)
    print(f"\n({time.perf_counter() - start:.0f} s wall, seed {args.seed})")


if __name__ == "__main__":
    main()
