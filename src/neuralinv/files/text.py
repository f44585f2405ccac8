"""The text formats: ``.mx`` (DeepMatrixInversion's) and ``.csv`` (one matrix).

``.mx``: one comma-separated row per line, a line ``END`` after each matrix; blank lines are
ignored. ``.csv``: exactly one matrix, one comma-separated row per line (no ``END``). Values are
written with Python's shortest round-trip ``repr``, so reading back gives the exact float64
values written. Malformed input raises InputError naming the file and the line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, stripped text), decoding each line so a bad byte names its line."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                yield lineno, raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise InputError(f"{path}:{lineno}: not UTF-8 text (is this a binary file?)") from None


def _parse_row(path: Path, lineno: int, line: str) -> list[float]:
    cells = line.split(",")
    try:
        return [float(c) for c in cells]
    except ValueError:
        for j, c in enumerate(cells, 1):
            try:
                float(c)
            except ValueError:
                raise InputError(f"{path}:{lineno}: column {j}: {c.strip()!r} is not a number") from None
        raise  # unreachable: some cell failed above


def iter_mx(path: Path, chunk_size: int) -> Iterator[np.ndarray]:
    """The matrices of an ``.mx`` file as float64 ``(k, n, n)`` chunks."""
    n: int | None = None
    rows: list[list[float]] = []
    start = 0  # line of the current matrix's first row
    buf: list[list[list[float]]] = []
    lineno = 0
    for lineno, line in _lines(path):
        if not line:
            continue
        if line == "END":
            if not rows:
                raise InputError(f"{path}:{lineno}: END without a matrix before it")
            if len(rows) != len(rows[0]):
                raise InputError(
                    f"{path}:{lineno}: matrix starting at line {start} has {len(rows)} rows of "
                    f"{len(rows[0])} values; expected a square matrix"
                )
            n = len(rows)
            buf.append(rows)
            rows = []
            if len(buf) == chunk_size:
                yield np.array(buf, dtype=np.float64)
                buf = []
            continue
        row = _parse_row(path, lineno, line)
        if not rows:
            start = lineno
            if n is not None and len(row) != n:
                raise InputError(
                    f"{path}:{lineno}: matrix has {len(row)} columns but earlier matrices in "
                    f"this file are {n}x{n} (mixed sizes)"
                )
        elif len(row) != len(rows[0]):
            raise InputError(
                f"{path}:{lineno}: row has {len(row)} value{'' if len(row) == 1 else 's'} but the rows above it (from line "
                f"{start}) have {len(rows[0])} (ragged rows)"
            )
        rows.append(row)
        if len(rows) > len(row):
            raise InputError(
                f"{path}:{lineno}: matrix starting at line {start} has more rows than its "
                f"{len(row)} columns (missing END?)"
            )
    if rows:
        raise InputError(
            f"{path}:{lineno}: file ends inside the matrix starting at line {start} (missing final END)"
        )
    if n is None:
        raise InputError(f"{path}:{max(lineno, 1)}: empty file: no matrices")
    if buf:
        yield np.array(buf, dtype=np.float64)


def read_csv(path: Path) -> np.ndarray:
    """The one matrix of a ``.csv`` file, ``(n, n)`` float64."""
    rows: list[list[float]] = []
    start = lineno = 0
    for lineno, line in _lines(path):
        if not line:
            continue
        row = _parse_row(path, lineno, line)
        if not rows:
            start = lineno
        elif len(row) != len(rows[0]):
            raise InputError(
                f"{path}:{lineno}: row has {len(row)} value{'' if len(row) == 1 else 's'} but the rows above it (from line "
                f"{start}) have {len(rows[0])} (ragged rows)"
            )
        rows.append(row)
    if not rows:
        raise InputError(f"{path}:{max(lineno, 1)}: empty file: no matrix")
    if len(rows) != len(rows[0]):
        raise InputError(
            f"{path}:{lineno}: {len(rows)} rows of {len(rows[0])} values; a .csv holds one square matrix"
        )
    return np.array(rows, dtype=np.float64)


def format_rows(a: np.ndarray, *, end: bool) -> str:
    """A ``(k, n, n)`` chunk as text: rows of comma-separated shortest round-trip reprs of the
    float64 values, and (``end``, the ``.mx`` format) a line ``END`` after each matrix."""
    lines = []
    for m in a.astype(np.float64).tolist():
        lines.extend(",".join(map(repr, row)) for row in m)
        if end:
            lines.append("END")
    return "\n".join(lines) + "\n"
