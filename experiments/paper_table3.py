"""Paper Table 3 (appendix D): inference time of 2-FC / 3-FC MLPs against exact inversion.

Time to push N = 10,000 matrices through each network at batch sizes 1, 100 and 10,000
(float32, CPU, torch.inference_mode), with the paper's widths (8 n^2: 32, 72, 2048), next to
exact inversion of the same 10,000 matrices: torch.linalg.inv on the whole batch (float32 and
float64), one matrix at a time, numpy.linalg.inv, and neuralinv's certified ``lu`` (inverse +
LAPACK residual certificate). Timing does not depend on the weights, so untrained networks are
used. Each number is the best of 3 repetitions. A GPU column is added when CUDA is available.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from _common import Run, parse

import neuralinv as ni
from neuralinv.learned.models import MLP


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def infer_time(net, A: torch.Tensor, batch: int, repeats: int, sync=lambda: None) -> float:
    def go():
        with torch.inference_mode():
            for i in range(0, A.shape[0], batch):
                net(A[i : i + batch])
        sync()

    return best_of(go, repeats)


def exact_times(A64: torch.Tensor, repeats: int) -> dict[str, float]:
    A32 = A64.float()
    return {
        "torch.linalg.inv f64 (batch)": best_of(lambda: torch.linalg.inv(A64), repeats),
        "torch.linalg.inv f32 (batch)": best_of(lambda: torch.linalg.inv(A32), repeats),
        "torch.linalg.inv f64 (one by one)": best_of(lambda: [torch.linalg.inv(a) for a in A64], 1),
        "numpy.linalg.inv f64 (batch)": best_of(lambda: np.linalg.inv(A64.numpy()), repeats),
        "neuralinv lu, certified (batch)": best_of(lambda: ni.invert(A64, method="lu"), repeats),
    }


def main(argv=None) -> None:
    args = parse("paper_table3", __doc__, argv)
    run = Run("paper_table3", "Paper Table 3: inference time against exact inversion", args)
    N = 300 if args.quick else 10_000
    repeats = 1 if args.quick else 3
    sizes = [2, 3] if args.quick else [2, 3, 16]
    gpu = torch.cuda.is_available()
    rows, data = [], {}
    for n in sizes:
        g = torch.Generator().manual_seed(n)
        A64 = torch.eye(n, dtype=torch.float64) * 2 + torch.rand(N, n, n, generator=g, dtype=torch.float64)
        A32 = A64.float()
        width = 8 * n * n
        exact = exact_times(A64, repeats)
        data[f"{n}x{n}"] = {"exact": exact}
        for depth in (2, 3):
            net = MLP(n, depth, width).eval()
            infer_time(net, A32[:200], 100, 1)  # warm-up: first calls pay one-off allocation costs
            t = {f"bs {b} (CPU)": infer_time(net, A32, b, 1 if b == 1 else repeats) for b in (1, 100, N)}
            if gpu:
                dev = torch.device("cuda")
                net_g, A_g = MLP(n, depth, width).to(dev).eval(), A32.to(dev)
                infer_time(net_g, A_g, N, 1, torch.cuda.synchronize)  # warm-up
                for b in (1, 100, N):
                    t[f"bs {b} (GPU)"] = infer_time(net_g, A_g, b, 1 if b == 1 else repeats, torch.cuda.synchronize)
            data[f"{n}x{n}"][f"{depth}-FC"] = t
            rows.append([f"{depth}-FC MLP on {n}x{n} (width {width})"] + [f"{v:.4f}" for v in t.values()]
                        + [f"{exact['torch.linalg.inv f64 (batch)']:.4f}", f"{exact['neuralinv lu, certified (batch)']:.4f}"])
        run.table(
            f"Exact inversion of {N} {n}x{n} matrices (seconds)",
            list(exact), [[f"{v:.4f}" for v in exact.values()]],
        )
    header = ["model"] + [f"bs {b} (CPU)" for b in (1, 100, N)]
    if gpu:
        header += [f"bs {b} (GPU)" for b in (1, 100, N)]
    header += ["exact: torch.linalg.inv (CPU)", "exact: neuralinv lu certified (CPU)"]
    run.sections.insert(0, {
        "title": f"Seconds to invert {N} matrices (network forward passes vs exact)",
        "header": header, "rows": rows,
        "notes": ("Batch size 1 means N separate forward passes. The networks give raw guesses (no "
                  "certificate); the exact columns give inverses to working precision."),
    })
    run.data = {"N": N, **data}
    wall = run.finish()
    print(f"paper_table3: wrote {args.out} in {wall:.1f} s")


if __name__ == "__main__":
    main()
