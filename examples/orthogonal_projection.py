"""The forum's orthogonal-projection layer, three ways (../shared/seeds/forum-nonsquare-inverse.txt).

A model has two branches: X = fx(a) from the signal input a and Y = fy(b) from a side input b
that observes a large per-sample nuisance which also corrupts a. The class is only readable from
X once the part explained by Y is projected out. We train the same model with

  square_inverse  the forum's workaround: reduce X and Y to bs/2 columns with a Linear layer so
                  F_G = [X', Y'] is a (bs, bs) square matrix, invert it, and keep the part of
                  X not explained by Y':  X - Y' [F_G^-1 X]_(Y' rows).  Layer sizes depend on
                  the batch size; samples are mixed through the (bs, bs) inverse.
  pinv            the same formula with torch.linalg.pinv and a fixed reduction to h/2 columns,
                  so F_G is (bs, h): any batch size, still mixing samples.
  project         neuralinv.project: each sample's x_i projected onto the orthogonal complement
                  of its own y_i (per sample, nothing formed across the batch).
  none            reference: no projection, the head sees X.

at batch sizes 32, 128 and 512, and report loss curves, non-finite steps, test accuracy and how
much a test sample's output changes when it is evaluated in a different batch.

    python examples/orthogonal_projection.py            # full run, writes docs/figures/
    python examples/orthogonal_projection.py --quick --out /tmp/op   # seconds, for the tests
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

import neuralinv as ni

METHODS = ("square_inverse", "pinv", "project", "none")
BATCH_SIZES = (32, 128, 512)
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Config:
    steps: int = 400
    dim: int = 64  # input dimension D
    hidden: int = 64  # branch width h
    classes: int = 4
    nuisance: float = 10.0  # std of the nuisance amplitude (times sqrt(dim))
    noise: float = 0.3
    lr: float = 2e-3
    test_size: int = 2048
    seed: int = 0
    eval_every: int = 20


# ------------------------------------------------------------------------------------- data


class Task:
    """a = mu_c + noise + t u, b = t u + small noise, u a random unit direction per sample."""

    def __init__(self, cfg: Config):
        g = torch.Generator().manual_seed(cfg.seed)
        self.cfg = cfg
        self.means = torch.randn(cfg.classes, cfg.dim, generator=g)

    def sample(self, n: int, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        c = self.cfg
        label = torch.randint(0, c.classes, (n,), generator=g)
        u = torch.randn(n, c.dim, generator=g)
        u = u / u.norm(dim=1, keepdim=True)
        z = u * (c.nuisance * torch.randn(n, 1, generator=g)) * math.sqrt(c.dim)
        a = self.means[label] + c.noise * torch.randn(n, c.dim, generator=g) + z
        b = z + 0.05 * torch.randn(n, c.dim, generator=g)
        return a, b, label


# ------------------------------------------------------------------------------------ model


class Net(nn.Module):
    def __init__(self, method: str, batch_size: int, cfg: Config):
        super().__init__()
        h = cfg.hidden
        self.method = method
        self.fx = nn.Linear(cfg.dim, h)
        self.fy = nn.Linear(cfg.dim, h)
        self.singular = 0  # forward passes where LAPACK found F_G exactly singular (info > 0)
        if method in ("square_inverse", "pinv"):
            width = batch_size // 2 if method == "square_inverse" else h // 2
            self.rx = nn.Linear(h, width, bias=False)
            self.ry = nn.Linear(h, width, bias=False)
        self.project = ni.OrthogonalProjection(complement=True)
        self.head = nn.Sequential(nn.Linear(h, h), nn.ReLU(), nn.Linear(h, cfg.classes))

    def features(self, a: Tensor, b: Tensor) -> Tensor:
        X, Y = self.fx(a), self.fy(b)
        if self.method == "none":
            return X
        if self.method == "project":
            return self.project(X, Y.unsqueeze(-2))  # per sample: basis = its own y_i
        Xr, Yr = self.rx(X), self.ry(Y)
        FG = torch.cat([Xr, Yr], dim=1)
        if self.method == "square_inverse":
            inverse, info = torch.linalg.inv_ex(FG)
            self.singular += int(info)
            coef = inverse @ X  # (bs, h): X = X' alpha + Y' beta
        else:
            coef = torch.linalg.pinv(FG) @ X
        return X - Yr @ coef[Xr.shape[1] :]

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return self.head(self.features(a, b))


# --------------------------------------------------------------------------------- training


def evaluate(model: Net, task_data, batch_size: int) -> tuple[float, float]:
    """Accuracy over the test set in batches of the training size (the square-inverse model
    only accepts that size), and the mean loss."""
    a, b, y = task_data
    correct, loss, seen = 0, 0.0, 0
    with torch.no_grad():
        for i in range(0, a.shape[0] - batch_size + 1, batch_size):
            out = model(a[i : i + batch_size], b[i : i + batch_size])
            loss += float(nn.functional.cross_entropy(out, y[i : i + batch_size], reduction="sum"))
            correct += int((out.argmax(1) == y[i : i + batch_size]).sum())
            seen += batch_size
    return correct / seen, loss / seen


def batch_dependence(model: Net, task_data, batch_size: int) -> float:
    """Largest change of a test sample's logits when the other samples of its batch change."""
    a, b, _ = task_data
    n = batch_size
    with torch.no_grad():
        first = model(a[:n], b[:n])
        # same first half, different second half
        idx = torch.cat([torch.arange(n // 2), torch.arange(n, n + n - n // 2)])
        second = model(a[idx], b[idx])
    return float((first[: n // 2] - second[: n // 2]).abs().max())


def fg_condition(model: Net, task_data, batch_size: int) -> float | None:
    """2-norm condition number of F_G on the first test batch of the trained model (float64)."""
    if model.method not in ("square_inverse", "pinv"):
        return None
    a, b, _ = task_data
    with torch.no_grad():
        X, Y = model.fx(a[:batch_size]), model.fy(b[:batch_size])
        FG = torch.cat([model.rx(X), model.ry(Y)], dim=1).double()
        return float(torch.linalg.cond(FG))


def train_one(method: str, batch_size: int, cfg: Config, task: Task, test) -> dict:
    torch.manual_seed(cfg.seed)
    model = Net(method, batch_size, cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(cfg.seed + 1)
    losses, nonfinite, evals, singular_steps = [], 0, [], 0
    t0 = time.perf_counter()
    for step in range(cfg.steps):
        a, b, y = task.sample(batch_size, g)
        before = model.singular
        loss = nn.functional.cross_entropy(model(a, b), y)
        singular_steps += model.singular > before
        opt.zero_grad()
        loss.backward()
        grads_ok = all(
            p.grad is None or bool(torch.isfinite(p.grad).all()) for p in model.parameters()
        )
        losses.append(float(loss.detach()))
        if not (math.isfinite(losses[-1]) and grads_ok):
            nonfinite += 1  # skip the update, as a gradient scaler would
            continue
        opt.step()
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            evals.append((step + 1, evaluate(model, test, batch_size)[0]))
    acc, test_loss = evaluate(model, test, batch_size)
    return {
        "method": method,
        "batch_size": batch_size,
        "losses": losses,
        "nonfinite_steps": nonfinite,
        "singular_steps": singular_steps if method == "square_inverse" else None,
        "fg_condition": fg_condition(model, test, batch_size),
        "test_accuracy": acc,
        "test_loss": test_loss,
        "accuracy_curve": evals,
        "batch_dependence": batch_dependence(model, test, batch_size),
        "seconds": time.perf_counter() - t0,
    }


# ---------------------------------------------------------------------------------- outputs


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; these are documentation files
    os.replace(tmp, path)


def table(results: list[dict]) -> str:
    def fmt(x: float) -> str:
        return "nan" if not math.isfinite(x) else f"{x:.3f}"

    lines = [
        "| method | batch size | non-finite steps | exactly singular F_G (steps) | cond(F_G) after training | final train loss (mean of last 20) | test accuracy | test loss | max abs change of a sample's logits when its batch changes | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        tail = r["losses"][-20:]
        tail_mean = sum(tail) / len(tail)
        cond = "-" if r["fg_condition"] is None else f"{r['fg_condition']:.1e}"
        lines.append(
            f"| {r['method']} | {r['batch_size']} | {r['nonfinite_steps']} / {len(r['losses'])} | "
            f"{'-' if r['singular_steps'] is None else r['singular_steps']} | "
            f"{cond} | "
            f"{fmt(tail_mean)} | {r['test_accuracy']:.3f} | {fmt(r['test_loss'])} | "
            f"{r['batch_dependence']:.2e} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def figure(results: list[dict], path: Path, classes: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {
        "square_inverse": "tab:red",
        "pinv": "tab:orange",
        "project": "tab:blue",
        "none": "tab:gray",
    }
    fig, axes = plt.subplots(
        2, len(BATCH_SIZES), figsize=(4.2 * len(BATCH_SIZES), 6.5), squeeze=False
    )
    for col, bs in enumerate(BATCH_SIZES):
        ax, ax2 = axes[0, col], axes[1, col]
        for r in (r for r in results if r["batch_size"] == bs):
            y = torch.tensor(r["losses"], dtype=torch.float64)
            finite = torch.isfinite(y)
            x = torch.arange(1, len(y) + 1)
            label = f"{r['method']} (non-finite {r['nonfinite_steps']})"
            ax.plot(x[finite], y[finite], color=colors[r["method"]], lw=0.8, label=label)
            bad = x[~finite]
            if bad.numel():
                ax.plot(bad, [ax.get_ylim()[1]] * len(bad), "x", color=colors[r["method"]], ms=3)
            steps = [s for s, _ in r["accuracy_curve"]]
            accs = [a for _, a in r["accuracy_curve"]]
            ax2.plot(steps, accs, color=colors[r["method"]], marker=".", label=r["method"])
        ax.set_yscale("log")
        ax.set_title(f"batch size {bs}: training loss")
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
        ax2.set_title(f"batch size {bs}: test accuracy")
        ax2.set_xlabel("step")
        ax2.set_ylim(0, 1)
        ax2.axhline(1 / classes, color="k", lw=0.5, ls=":")  # chance
    fig.tight_layout()
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        tmp_png = Path(tmp) / path.name
        fig.savefig(tmp_png, dpi=110)
        os.chmod(tmp_png, 0o644)
        os.replace(tmp_png, path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few steps per run (for tests)")
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default docs/figures)"
    )
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    cfg = Config(steps=25, test_size=1024, eval_every=5) if args.quick else Config()
    if args.steps is not None:
        cfg = Config(**{**asdict(cfg), "steps": args.steps})
    out = args.out or (ROOT / "docs" / "figures")
    out.mkdir(parents=True, exist_ok=True)
    task = Task(cfg)
    test = task.sample(cfg.test_size, torch.Generator().manual_seed(cfg.seed + 99))
    results = []
    for bs in BATCH_SIZES:
        for method in METHODS:
            r = train_one(method, bs, cfg, task, test)
            results.append(r)
            print(
                f"{method:>15} bs={bs:<4} non-finite {r['nonfinite_steps']:>4}/{cfg.steps} "
                f"test acc {r['test_accuracy']:.3f}  batch dependence {r['batch_dependence']:.1e}"
                f"  ({r['seconds']:.1f}s)",
                flush=True,
            )
    md = table(results)
    payload = {"config": asdict(cfg), "results": results}
    _atomic_write(out / "orthogonal_projection.json", json.dumps(payload, indent=1).encode())
    _atomic_write(out / "orthogonal_projection.md", md.encode())
    figure(results, out / "orthogonal_projection.png", cfg.classes)
    print(md)
    print(f"wrote {out / 'orthogonal_projection.png'}, .json, .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
