"""The files ``neuralinv bench`` writes: the JSON of every measurement and the plot."""

from __future__ import annotations

from .config import REFERENCES
from .runner import BenchResult


def plot(result: BenchResult, path, *, certified_only: bool = True) -> None:
    """Log-log matrices/s against n, one line per approach (references and certified methods;
    ``certified_only=False`` adds the uncertified kernels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..files import atomic_write

    fig, ax = plt.subplots(figsize=(7, 4.5))
    names = list(dict.fromkeys(r.approach for r in result.rows))
    for name in names:
        rows = [r for r in result.rows if r.approach == name]
        if certified_only and not (rows[0].certified or name in REFERENCES):
            continue
        style = "--" if name in REFERENCES else "-"
        ax.plot(
            [r.n for r in rows], [r.matrices_per_s for r in rows], style, marker="o", label=name
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("matrix size n")
    ax.set_ylabel("matrices per second")
    cfg = result.config
    ax.set_title(f"{cfg['dtype']} on {cfg['device']} ({result.machine['torch_threads']} threads)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=120)
    plt.close(fig)


def write_json(result: BenchResult, path) -> None:
    import json

    from ..files import atomic_write

    with atomic_write(path, "w") as fh:
        json.dump(result.to_json(), fh, indent=2)
