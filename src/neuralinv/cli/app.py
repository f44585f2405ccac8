"""The typer app of ``neuralinv``, its consoles, and the helpers every command uses."""

from __future__ import annotations

from contextlib import contextmanager

import typer
from rich.console import Console

app = typer.Typer(
    help="Certified batched matrix inversion: exact, iterative, gradient-descent and learned.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

#: The registered methods, and those with a ``compile`` option, for help texts. Written out
#: rather than read from ``neuralinv.methods``: importing the methods imports torch (about a
#: second), which the command line's start and ``neuralinv invert`` of a file the native
#: kernels answer do not need. tests/test_torch_free.py checks both against the registry.
METHOD_NAMES = "auto, block, cholesky, closed_form, gradient, learned, lu, newton_schulz"
COMPILE_METHODS = "learned"


def fail(message: str, code: int = 2) -> None:
    """One-line error on stderr and a non-zero exit."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def say(line: str) -> None:
    """One plain line on stdout (no markup highlighting, never wrapped)."""
    console.print(line, highlight=False, soft_wrap=True)


def check_memory(what: str, arrays: str, copies: int, count: int, n: int, itemsize: int,
                 device: str = "cpu") -> None:
    """Refuse (InputError) a run whose arrays cannot be allocated, before anything is written.

    The rule: ``copies`` arrays of ``count`` n x n matrices of ``itemsize`` bytes each are held
    at once (a lower bound on what the run allocates); more bytes than the machine has available
    (MemAvailable, capped by a cgroup limit; on CUDA the device's free memory) are refused.
    """
    from .._validate import fits_in_memory

    available = None
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            available = torch.cuda.mem_get_info(torch.device(device))[0]
    needed = copies * count * n * n * itemsize
    fits_in_memory(f"{what} ({copies} arrays: {arrays}, of {count:,} {n}x{n} matrices)", needed, available)


@contextmanager
def progress_callback(description: str):
    """A rich progress bar on stderr (only when it is a terminal), as an ``on_progress(done,
    total)`` callback for library functions that never print."""
    if not err_console.is_terminal:
        yield None
        return
    from rich.progress import Progress

    with Progress(console=err_console, transient=True) as bar:
        task = bar.add_task(description, total=None)

        def on_progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield on_progress


def wide_console(width: int) -> Console:
    """The console for a wide table: stdout itself on a terminal; piped output (a log, a
    README) gets room for the whole table instead of 80 columns."""
    return console if console.is_terminal else Console(width=max(console.width, width))
