"""A low-precision network guess refined in the input's precision (issue 15.3).

For each model (default: ``builtin:ball3`` and ``builtin:ball3-fast`` at 100,000 matrices,
``builtin:ball16`` at 20,000), on matrices sampled from its region: torch.linalg.inv, certified
``learned`` with the network in the model's precision (``Learned()``) and with its learned part
in bfloat16 / float16 (``Learned(guess_dtype=...)``), back to back in rotating order for
``--repeats`` rounds after one warm-up; times are medians, ``x torch.inv`` the median of
per-round ratios. Also compares what the variants answer: statuses, who answered (labels),
Newton-Schulz steps, the worst certificate ratio, and the seed residual ``||I - A X0||_1``.

    python benchmarks/learned_guess_dtype.py [--dtype float32|float64] [--threads T] [--repeats R]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

import neuralinv as ni
from neuralinv.evaluation.seeds import seed_residual
from neuralinv.methods.learned import Learned

DEFAULT = (("builtin:ball3", 100_000), ("builtin:ball3-fast", 100_000), ("builtin:ball16", 20_000))


def cpu_flags() -> str:
    try:
        flags = open("/proc/cpuinfo").read().split("flags")[1].split("\n")[0].split()
    except (OSError, IndexError):
        return "?"
    return " ".join(f for f in flags if "bf16" in f or "amx" in f or f == "avx512_fp16") or "none"


def measure(name: str, batch: int, dtype: torch.dtype, repeats: int, guess_dtypes: list[str]) -> None:
    model = ni.LearnedInverse.load(name)
    A = model.region.sample(batch, generator=torch.Generator().manual_seed(20_015), dtype=dtype)
    variants = {"model precision": Learned(model=model)}
    variants.update({f"guess {g}": Learned(model=model, guess_dtype=g) for g in guess_dtypes})
    runs = {"torch.linalg.inv": lambda: torch.linalg.inv(A)}
    runs.update({k: (lambda m=m: ni.invert(A, method=m)) for k, m in variants.items()})
    sols = {k: f() for k, f in runs.items()}  # warm-up, and the answers compared below
    times: dict[str, list[float]] = {k: [] for k in runs}
    keys = list(runs)
    for r in range(repeats):
        for k in keys[r % len(keys):] + keys[: r % len(keys)]:
            t = time.perf_counter()
            runs[k]()
            times[k].append(time.perf_counter() - t)
    base = times["torch.linalg.inv"]
    ref = sols["model precision"]
    print(f"\n{name}: {batch} x {model.n}x{model.n} {str(dtype)[6:]} from its region")
    print(f"  {'approach':<22} {'median s':>9} {'x torch.inv':>11}  statuses / labels / steps vs model precision"
          "   worst ratio   seed ||I-AX0||_1 q50 / q99.9 / max")
    for k in keys:
        med = statistics.median(times[k])
        ratio = statistics.median(b / t for b, t in zip(base, times[k]))
        line = f"  {k:<22} {med:9.4f} {ratio:11.2f}"
        if k != "torch.linalg.inv":
            s = sols[k]
            same = (s.status.tolist() == ref.status.tolist(), list(s.method) == list(ref.method),
                    s.stats["iterations"].tolist() == ref.stats["iterations"].tolist())
            hist = torch.bincount(s.stats["iterations"].to(torch.int64)).tolist()
            seed = seed_residual(variants[k], A, dtypes=(dtype,))
            line += (f"  {'same' if same[0] else 'DIFFER'} / {'same' if same[1] else 'DIFFER'} / "
                     f"{'same' if same[2] else 'differ'} {dict((i, c) for i, c in enumerate(hist) if c)}"
                     f"   {float(s.residual.max()):.3g}   {seed.quantiles['50%']:.2g} / "
                     f"{seed.quantiles['99.9%']:.2g} / {seed.max:.2g}")
        print(line, flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--guess", nargs="+", default=["bfloat16", "float16"])
    p.add_argument("--model", nargs="+", help="NAME:BATCH pairs (default: the shipped ball models)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    models = DEFAULT if not args.model else [(m.rsplit(":", 1)[0], int(m.rsplit(":", 1)[1])) for m in args.model]
    print(f"{platform.platform()}, {os.cpu_count()} CPUs ({cpu_flags()}), torch {torch.__version__}, "
          f"{args.threads} thread(s), {args.repeats} rounds; load average {os.getloadavg()[0]:.1f}")
    start = time.perf_counter()
    for name, batch in models:
        measure(name, batch, getattr(torch, args.dtype), args.repeats, args.guess)
    print(f"\n{time.perf_counter() - start:.0f} s wall in total")


if __name__ == "__main__":
    main()
