"""Certified learned inference against torch.linalg.inv on in-region inputs (issue 7, part 3).

For each model (default: ``builtin:ball16``, ``builtin:ball3-fast`` and ``builtin:ball3``), on ``--batch`` matrices
sampled from its region in float32: torch.linalg.inv, certified ``lu``, certified ``learned``
(``ni.invert(A, method=model)``) and the learned path's pieces over the same chunks the method
uses (region test, ``model.predict``, Newton-Schulz with its certificate). All approaches run
back to back in rotating order for ``--repeats`` rounds after one warm-up; times are medians and
``x torch.inv`` is the median of per-round ratios (as ``neuralinv bench`` does); the
``compile=True`` variant is compiled in its warm-up call, which is not timed. Also checks
that the certificate the learned method reports is bit for bit ``certify.certificate`` of its
answers.

    python benchmarks/learned_n16.py [--model DIR|builtin:NAME ...] [--batch N] [--threads T]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

import neuralinv as ni
from neuralinv.certify import certificate
from neuralinv.methods import learned
from neuralinv.methods.newton_schulz import guess_contracts, refine_certified


def pieces(model, A: torch.Tensor) -> dict:
    """The learned path's parts, chunk by chunk as ``Learned._invert`` runs them."""
    n = A.shape[-1]
    step = max(1, learned.CHUNK_ELEMENTS // (n * n))
    chunks = [A[lo:lo + step] for lo in range(0, A.shape[0], step)]
    guesses = [model.predict(a) for a in chunks]
    out = torch.empty_like(A)

    def region():
        work: dict = {}
        for a in chunks:
            model.region.scaled_into(a, work=work)

    def predict():
        for a in chunks:
            model.predict(a)

    def refine():
        work: dict = {}
        for lo, a, x in zip(range(0, A.shape[0], step), chunks, guesses):
            refine_certified(a, x, tol=10.0, max_iter=30, screen=guess_contracts,
                             out=out[lo:lo + step], work=work)

    return {"piece: region test": region, "piece: predict": predict,
            "piece: refine+certificate": refine}


def measure(model_name: str, batch: int, repeats: int) -> list[dict]:
    model = ni.LearnedInverse.load(model_name)
    A = model.region.sample(batch, generator=torch.Generator().manual_seed(7), dtype=torch.float32)
    method = learned.Learned(model=model)
    compiled = learned.Learned(model=model, compile=True)
    fns = {
        "torch.linalg.inv": lambda: torch.linalg.inv(A),
        "lu (certified)": lambda: ni.invert(A, method="lu"),
        "learned (certified)": lambda: ni.invert(A, method=method),
        "learned compile=True (certified)": lambda: ni.invert(A, method=compiled),
        **pieces(model, A),
    }
    setup = {}
    for k, fn in fns.items():  # warm-up, not timed; the compiled guess compiles here
        t = time.perf_counter()
        fn()
        setup[k] = time.perf_counter() - t
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeats):
        for k in names[r % len(names):] + names[:r % len(names)]:
            t = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t)
    sol = ni.invert(A, method=method)
    ratio, rc = certificate(A, sol.inverse)
    exact = bool(torch.equal(ratio, sol.residual) and torch.equal(rc, sol.rcond))
    rows = []
    for k, ts in times.items():
        rows.append({
            "model": model_name, "n": model.n, "approach": k, "seconds": statistics.median(ts),
            "x_torch_inv": statistics.median(i / t for i, t in zip(times["torch.linalg.inv"], ts)),
        })
    rows.append({"model": model_name, "n": model.n, "approach": "learned outcome",
                 "counts": sol.counts(), "methods": sol.method_counts(),
                 "max_iterations": sol.stats["max_iterations"],
                 "worst_ratio": float(sol.residual.max()), "certificate_bitwise": exact,
                 "compile_s": setup["learned compile=True (certified)"]})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", nargs="+", default=["builtin:ball16", "builtin:ball3-fast", "builtin:ball3"])
    p.add_argument("--batch", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"batch {args.batch}, float32, {args.threads} threads, median of {args.repeats}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, load average {os.getloadavg()[0]:.2f}")
    print("\n| model | n | approach | seconds | x torch.linalg.inv |\n|---|---|---|---|---|")
    outcomes = []
    for name in args.model:
        for r in measure(name, args.batch, args.repeats):
            if "seconds" in r:
                print(f"| {r['model']} | {r['n']} | {r['approach']} | {r['seconds']:.4f} | "
                      f"{r['x_torch_inv']:.2f} |")
            else:
                outcomes.append(r)
    for r in outcomes:
        print(f"\n{r['model']}: statuses {r['counts']}, answered by {r['methods']}, "
              f"Newton-Schulz steps <= {r['max_iterations']}, worst ratio {r['worst_ratio']:.3f}, "
              f"reported certificate == certify.certificate bit for bit: {r['certificate_bitwise']}; "
              f"first compile=True call (compilation) {r['compile_s']:.1f} s, not timed")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
