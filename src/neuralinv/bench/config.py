"""What ``neuralinv bench`` measures: :class:`BenchConfig`, the method specs it names
(``NAME`` or ``NAME:compile``) and the matrices it inverts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .._validate import int_at_least, one_of, random_seed
from ..errors import InputError

REFERENCES = ("torch.linalg.inv", "numpy.linalg.inv")
DEFAULT_SIZES = (2, 3, 4, 8, 16, 32, 64, 128)
DEFAULT_METHODS = ("auto", "closed_form", "lu")
#: The note that names the requested methods that ran at no size at all.
SKIPPED_EVERYWHERE = "requested but benchmarked at no size: "
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class BenchConfig:
    """What to benchmark.

    batch:        matrices per size, capped so that one batch holds at most ``max_elements``
                  numbers (n = 128 at batch 100,000 would be 6.6 GB per copy); the table
                  reports the batch actually used.
    methods:      registered method names, each built with its defaults (a method that needs
                  arguments is passed built, ``run(extra=...)``); a method is left out of the
                  sizes it does not take (``Method.supports``: closed_form for n > 4).
    alone:        also time each method's kernel without the certificate.
    repeats:      timed rounds per size (after one warm-up round); the median is reported.
    model:        a trained model (directory or ``builtin:NAME``): adds the certified
                  ``learned`` method, and at the model's size every approach gets matrices
                  sampled from the model's region (in-region input) instead. With a model,
                  ``methods`` may name ``learned`` and ``learned:compile`` to choose which.
    """

    sizes: tuple[int, ...] = DEFAULT_SIZES
    batch: int = 100_000
    dtype: str = "float32"
    device: str = "cpu"
    methods: tuple[str, ...] = DEFAULT_METHODS
    alone: bool = True
    references: tuple[str, ...] = REFERENCES
    repeats: int = 5
    max_elements: int = 1 << 26
    seed: int = 0
    model: str | None = None

    def __post_init__(self):
        if not self.sizes:
            raise InputError("sizes must name at least one matrix size")
        for n in self.sizes:
            int_at_least("size", n, 1)
        int_at_least("batch", self.batch, 1)
        int_at_least("repeats", self.repeats, 1)
        int_at_least("max_elements", self.max_elements, 1)
        random_seed("seed", self.seed)
        one_of("dtype", self.dtype, tuple(DTYPES))
        for spec in self.methods:
            if not (_learned(spec) and self.model is not None):
                build(spec)
        for ref in self.references:
            one_of("reference", ref, REFERENCES)
        try:
            dev = torch.device(self.device)
        except RuntimeError as exc:
            raise InputError(f"device {self.device!r} is not a torch device: {exc}") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise InputError(f"device {self.device!r} requested but CUDA is not available")


def method_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"auto"`` -> ("auto", {}); ``"learned:compile"`` -> ("learned", {"compile": True})."""
    from ..methods import METHODS, with_option

    name, _, suffix = spec.partition(":")
    if name not in METHODS:
        raise InputError(
            f"unknown method {name!r} in methods; valid: {', '.join(sorted(METHODS))} "
            "(optionally NAME:compile)"
        )
    if not suffix:
        return name, {}
    if suffix != "compile":
        raise InputError(f"methods: {spec!r}: the only suffix is ':compile' (e.g. learned:compile)")
    if name not in with_option("compile"):
        raise InputError(f"methods: {spec!r}: method {name!r} has no compile option")
    return name, {"compile": True}


def _learned(spec: str) -> bool:
    return method_spec(spec)[0] == "learned"


def build(spec: str):
    """The method a spec names, built with its defaults (and ``compile=True`` for
    ``NAME:compile``), or an InputError saying why it cannot be built from a name alone."""
    from ..methods import resolve

    name, options = method_spec(spec)
    try:
        return resolve(name, **options)
    except InputError as exc:
        raise InputError(
            f"method {name!r} needs a model or other arguments, so it cannot be benchmarked by "
            f"name alone ({exc}); give learned a model (--model), or pass the method as an "
            "object to neuralinv.bench.run(extra=...)"
        ) from None


def well_conditioned(batch: int, n: int, *, dtype: torch.dtype, device: str, seed: int):
    """``2.5 I + G / sqrt(n)``, G standard normal: singular values mostly within 0.5 .. 4.5
    (the spectrum of G / sqrt(n) fills the unit disc), so cond_2 is typically below 10."""
    g = torch.Generator().manual_seed(seed + 1000 * n)
    A = torch.randn(batch, n, n, generator=g, dtype=torch.float64) / math.sqrt(n)
    A.diagonal(dim1=-2, dim2=-1).add_(2.5)
    return A.to(dtype=dtype, device=device)


def parse_sizes(text: str) -> tuple[int, ...]:
    """``"2,3,4"`` -> (2, 3, 4), with an InputError naming the bad item."""
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            out.append(int(item))
        except ValueError:
            raise InputError(f"--sizes: {item!r} is not an integer (expected e.g. 2,3,4)") from None
    if not out:
        raise InputError("--sizes must list at least one size, e.g. 2,3,4")
    return tuple(out)


def parse_names(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())
