"""``neuralinv demo``, ``bench`` and ``warm``: every method on built-in matrices, the benchmark,
and compiling the native kernels ahead of first use."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import InputError
from .app import (
    COMPILE_METHODS,
    METHOD_NAMES,
    app,
    check_memory,
    console,
    err_console,
    fail,
    wide_console,
)


@app.command()
def demo(
    sizes: str = typer.Option("4,16", "--sizes", help="Matrix sizes, comma-separated: one table each"),
    count: int = typer.Option(32, "--count", help="Matrices of each kind (random, SPD, ...)"),
    seed: int = typer.Option(0, "--seed", help="Seed of the built-in collection"),
    learned_steps: int = typer.Option(
        12_000, "--learned-steps", help="Train a small model on the default ball this many steps "
        "and invert a held-out batch with it (0: skip)"
    ),
) -> None:
    """Every method on a built-in collection (random, SPD, ill-conditioned, singular): speed,
    worst residual and statuses, as tables; then a small learned model, trained on the default
    ball, inverting a held-out batch: how many answers came from the network, how many fell back."""
    from ..demo import DemoConfig, run_demo
    from .render import demo_table

    try:
        size_list = tuple(int(v) for v in sizes.split(","))
    except ValueError:
        fail(f"--sizes must be comma-separated integers, got {sizes!r}")
    if any(v < 1 for v in size_list) or count < 1:
        fail(f"--sizes and --count must be >= 1, got --sizes {sizes} --count {count}")
    if learned_steps < 0:
        fail(f"--learned-steps must be >= 0, got {learned_steps}")
    from .._validate import random_seed

    try:
        random_seed("--seed", seed)
        for n in size_list:
            check_memory(
                f"demo --sizes {n} --count {count}",
                "float64 random, SPD, ill-conditioned and singular matrices, inverses", 5, count, n, 8,
            )
    except InputError as exc:
        fail(str(exc))
    config = DemoConfig(sizes=size_list, count=count, seed=seed, learned_steps=learned_steps)
    with err_console.status("running the demo", spinner="dots"):
        sections = run_demo(config)
    out = wide_console(120)
    for section in sections:
        table, notes = demo_table(section)
        out.print(table)
        for note in notes:
            out.print(f"  {note}", highlight=False, soft_wrap=True)
        out.print()


@app.command()
def bench(
    sizes: str = typer.Option("2,3,4,8,16,32,64,128", "--sizes", help="Comma-separated matrix sizes n"),
    batch: int = typer.Option(100_000, "--batch", help="Matrices per size (capped by --max-elements)"),
    dtype: str = typer.Option("float32", "--dtype", help="float32 or float64"),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, ..."),
    methods: str = typer.Option(
        "auto,closed_form,lu", "--methods",
        help=f"Comma-separated registered methods ({METHOD_NAMES}; learned needs --model); "
        f"NAME:compile benches compile=True ({COMPILE_METHODS})",
    ),
    repeats: int = typer.Option(5, "--repeats", help="Timed rounds per size (median reported)"),
    max_elements: int = typer.Option(
        1 << 26, "--max-elements", help="Cap on batch * n * n per size (memory bound)"
    ),
    alone: bool = typer.Option(True, "--alone/--no-alone", help="Also time each kernel without its certificate"),
    threads: int | None = typer.Option(None, "--threads", help="torch.set_num_threads for the run"),
    json_path: Path | None = typer.Option(None, "--json", help="Write every measurement here (JSON)"),
    plot_path: Path | None = typer.Option(None, "--plot", help="Write a log-log matrices/s vs n plot (PNG)"),
    model: str | None = typer.Option(
        None, "--model", help="Also bench the certified learned method of this model (DIR or builtin:NAME) on its region (--methods learned:compile for its compiled path)"
    ),
) -> None:
    """Throughput (matrices/s), worst LAPACK ratio and peak memory of every method next to
    torch.linalg.inv and numpy.linalg.inv: same inputs, same process, warm-up excluded."""
    import torch

    from ..bench import (
        DTYPES,
        SKIPPED_EVERYWHERE,
        BenchConfig,
        parse_names,
        parse_sizes,
        plot,
        run,
        write_json,
    )
    from .render import bench_table

    try:
        config = BenchConfig(
            sizes=parse_sizes(sizes), batch=batch, dtype=dtype, device=device,
            methods=parse_names(methods), repeats=repeats, max_elements=max_elements, alone=alone,
            model=model,
        )
        for n in config.sizes:  # the batch bench.run uses for size n: capped by max_elements
            check_memory(
                f"bench --sizes {n}", f"{dtype} matrices, inverses, certificate residuals", 3,
                max(1, min(config.batch, config.max_elements // (n * n))), n,
                DTYPES[config.dtype].itemsize, config.device,
            )
        if threads is not None:
            if threads < 1:
                raise InputError(f"--threads must be an integer >= 1, got {threads}")
            torch.set_num_threads(threads)
        result = run(config, progress=lambda msg: err_console.print(msg, highlight=False))
        wide_console(110).print(bench_table(result))
        for note in result.notes:
            if note.startswith(SKIPPED_EVERYWHERE):
                err_console.print(f"note: {note}", highlight=False, soft_wrap=True)
        if json_path is not None:
            write_json(result, json_path)
            console.print(f"wrote {json_path}", highlight=False)
        if plot_path is not None:
            plot(result, plot_path)
            console.print(f"wrote {plot_path}", highlight=False)
    except (InputError, OSError) as exc:
        fail(str(exc))


@app.command()
def warm(
    dtype: str = typer.Option("float32,float64", "--dtype", help="Comma-separated: float32, float64"),
) -> None:
    """Compile every native CPU kernel now (or load it from numba's cache).

    The first `ni.inv` of a later process then loads them in a fraction of a second instead of
    compiling for seconds per dtype; `make install` runs this. Kernels that cannot be built are
    listed with the reason; the torch path answers for them."""
    import os
    import time

    from ..kernels.warm import DTYPES, warm_at_once
    from .render import warm_table

    names = tuple(d.strip() for d in dtype.split(",") if d.strip())
    bad = [d for d in names if d not in DTYPES]
    if bad or not names:
        fail(f"--dtype must be comma-separated among {', '.join(DTYPES)}, got {dtype!r}")
    start = time.perf_counter()
    with err_console.status("compiling or loading the native kernels", spinner="dots"):
        rows = warm_at_once(names, processes=min(2, os.cpu_count() or 1))
    wide_console(120).print(warm_table(rows, time.perf_counter() - start))
