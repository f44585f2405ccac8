"""Certified eager ``closed_form`` against certified ``lu`` over batch sizes, for n = 2, 3, 4:
the crossovers ``Auto.choose`` uses (docs/performance.md, "Crossovers and auto").

    python benchmarks/crossover.py [--threads 1] [--dtype float32] [--repeats 7]

Prints, per (n, batch), the median time of each and their ratio (closed_form / lu; below 1 the
closed form is faster).
"""

from __future__ import annotations

import argparse

import torch
from batch_sweep import median_ms  # the sibling script's timer (benchmarks/ is on sys.path)

from neuralinv.bench import DTYPES, well_conditioned
from neuralinv.methods import LU, ClosedForm

BATCHES = (16, 128, 1024, 4096, 16_384, 100_000)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for n in (2, 3, 4):
        for batch in BATCHES:
            A = well_conditioned(batch, n, dtype=DTYPES[args.dtype], device="cpu", seed=0)
            lu = median_ms(LU().invert, A, args.repeats)
            cf = median_ms(ClosedForm().invert, A, args.repeats)
            print(f"n={n} batch={batch:>7}  lu {lu:8.3f} ms  closed_form {cf:8.3f} ms"
                  f"  closed_form/lu {cf / lu:5.2f}")


if __name__ == "__main__":
    main()
