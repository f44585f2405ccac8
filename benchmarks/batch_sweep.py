"""``auto`` (the certified default) against torch.linalg.inv over batch sizes 1 .. 10^6, for
one small n: the fixed cost per call and where throughput takes over (docs/performance.md).

    python benchmarks/batch_sweep.py [--n 3] [--threads 2] [--dtype float32]

The native kernels are loaded once, before any timing; times are medians of repeated calls on
the same inputs in one process.
"""

from __future__ import annotations

import argparse
import time

import torch

from neuralinv.bench import DTYPES, well_conditioned
from neuralinv.methods import Auto

BATCHES = (1, 10, 100, 1000, 10_000, 100_000, 1_000_000)


def median_ms(fn, A, reps: int) -> float:
    fn(A)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(A)
        times.append(time.perf_counter() - t0)
    return sorted(times)[reps // 2] * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    full = well_conditioned(BATCHES[-1], args.n, dtype=DTYPES[args.dtype], device="cpu", seed=0)
    approaches = {
        "torch.linalg.inv": torch.linalg.inv,
        "auto": Auto().invert,
    }
    t0 = time.perf_counter()
    sol = approaches["auto"](full[:2])
    print(f"kernels loaded in {time.perf_counter() - t0:.1f} s (native={sol.stats.get('native')})")
    print("| batch | " + " | ".join(f"{name} (ms)" for name in approaches) + " |")
    print("|---" * (len(approaches) + 1) + "|")
    for B in BATCHES:
        A = full[:B].clone()
        reps = 31 if B <= 10_000 else 9
        row = [median_ms(fn, A, reps) for fn in approaches.values()]
        print(f"| {B:,} | " + " | ".join(f"{t:.3f}" for t in row) + " |", flush=True)


if __name__ == "__main__":
    main()
