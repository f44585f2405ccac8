"""DeepMatrixInversion-style datasets: generate matrices with their (pseudo-)inverses, and
verify that a file of inverses really inverts a file of matrices.

Names follow DeepMatrixInversion: ``PREFIX_matrices_3x3.mx`` and ``PREFIX_matrices_inverted_3x3.mx``.

Deviations are reported in units of ``n * eps`` (like LAPACK's test ratios), so one tolerance
(30, LAPACK's pass threshold) fits every size, scale and condition number:

* invertible: ``max(||I - Y A||_1, ||I - A Y||_1) / (n ||A||_1 ||Y||_1 eps)`` (dget03, both sides);
* singular: the four Penrose conditions, each relative to the size its rounding error has:
  ``||A Y A - A|| / (||A||^2 ||Y||)``, ``||Y A Y - Y|| / (||Y||^2 ||A||)``,
  ``||A Y - (A Y)^T|| / (||A|| ||Y||)``, ``||Y A - (Y A)^T|| / (||Y|| ||A||)`` (1-norms),
  divided by ``n eps``; the deviation is the largest of the four.

``eps`` is that of float64 unless both files hold float32.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .._validate import as_tensor, int_at_least, one_of, positive
from ..certify import PASS_RATIO, eps, norm1, residual_ratio
from ..errors import InputError
from ..regions import Box
from .paths import DEFAULT_CHUNK, FORMATS
from .reading import open_matrices, paired_chunks
from .writing import matrix_pair_writer

KINDS = ("invertible", "singular")


def dataset_paths(prefix: str | Path, n: int, fmt: str = ".mx") -> tuple[Path, Path]:
    """``(PREFIX_matrices_NxN.EXT, PREFIX_matrices_inverted_NxN.EXT)``."""
    if fmt not in FORMATS or fmt == ".csv":
        raise InputError(f"dataset format must be one of .mx, .npy, .npz; got {fmt!r}")
    p = str(prefix)
    return Path(f"{p}_matrices_{n}x{n}{fmt}"), Path(f"{p}_matrices_inverted_{n}x{n}{fmt}")


@dataclass(frozen=True)
class Generated:
    matrices: Path
    inverses: Path
    count: int
    rejected: int  # invertible sets: sampled matrices whose float64 inverse did not certify
    worst_deviation: float


def singular_matrices(
    n: int,
    count: int,
    *,
    low: float,
    high: float,
    max_rank: int,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """``count`` exactly singular n x n float64 matrices with entries in ``[low, high)``.

    Each gets a rank r uniform in ``1..max_rank`` (0 when max_rank = 0: the zero matrix): r rows
    are drawn uniformly, the other n - r rows are exact copies of them, and the rows are then
    shuffled. Copies keep the matrix singular in floating point too (as DeepMatrixInversion's
    singular sets are: they repeat a row). Returns the matrices and their ranks.
    """
    box = Box(n, low, high)
    A = box.sample(count, generator=generator)
    if max_rank == 0:
        return torch.zeros_like(A), torch.zeros(count, dtype=torch.long)
    ranks = torch.randint(1, max_rank + 1, (count,), generator=generator)
    # Row i < rank is free; row i >= rank copies a random free row.
    src = (torch.rand(count, n, generator=generator, dtype=torch.float64) * ranks[:, None]).long()
    idx = torch.where(torch.arange(n)[None, :] < ranks[:, None], torch.arange(n)[None, :], src)
    A = torch.gather(A, 1, idx[:, :, None].expand(count, n, n))
    perm = torch.argsort(torch.rand(count, n, generator=generator), dim=1)
    A = torch.gather(A, 1, perm[:, :, None].expand(count, n, n))
    return A, ranks


def pinv_of_rank(A: Tensor, ranks: Tensor) -> Tensor:
    """Moore-Penrose pseudo-inverses in float64 using the known rank of each matrix (keeps the
    largest ``rank`` singular values; no threshold to guess)."""
    U, S, Vh = torch.linalg.svd(A.to(torch.float64))
    keep = torch.arange(S.shape[-1])[None, :] < ranks[:, None]
    Sinv = torch.where(keep, 1.0 / torch.where(keep, S, torch.ones_like(S)), torch.zeros_like(S))
    return (Vh.mT * Sinv[:, None, :]) @ U.mT


def deviation(A: Tensor, Y: Tensor, kind: str) -> Tensor:
    """Per-matrix deviation in units of ``n eps`` (see the module docstring); NaN/inf fail."""
    one_of("kind", kind, KINDS)
    if kind == "invertible":
        return torch.maximum(residual_ratio(A, Y), residual_ratio(Y, A))
    n = A.shape[-1]
    if n == 0:
        return A.new_zeros(A.shape[:-2])
    a, y = norm1(A), norm1(Y)
    AY, YA = A @ Y, Y @ A
    parts = (
        (AY @ A - A, a * a * y),
        (YA @ Y - Y, y * y * a),
        (AY - AY.mT, a * y),
        (YA - YA.mT, a * y),
    )
    unit = n * eps(A.dtype)
    out = torch.zeros_like(a)
    for err, scale in parts:
        num = norm1(err)
        ratio = torch.where(scale > 0, num / (scale * unit), torch.where(num > 0, math.inf, 0.0))
        out = torch.maximum(out, torch.where(torch.isnan(ratio), math.inf, ratio))
    return out


@dataclass(frozen=True)
class Verified:
    kind: str
    count: int
    tol: float
    bad: int  # matrices with deviation > tol (or not finite)
    first_bad: int | None
    first_bad_deviation: float | None
    worst: float  # largest deviation (inf if some is not finite)
    worst_index: int
    worst_abs: float  # largest |entry| of A Y - I (invertible) or A Y A - A (singular)


def verify_files(
    matrices: str | Path,
    inverses: str | Path,
    *,
    kind: str = "invertible",
    tol: float = PASS_RATIO,
    chunk_size: int = DEFAULT_CHUNK,
) -> Verified:
    """Check that each matrix of ``inverses`` is the inverse (or pseudo-inverse) of the matching
    matrix of ``matrices``, streaming both files."""
    one_of("kind", kind, KINDS)
    tol = positive("tol", tol)
    src_a, src_y = open_matrices(matrices), open_matrices(inverses)
    count = bad = worst_index = 0
    first_bad = first_dev = None
    worst = -1.0
    worst_abs = 0.0
    for a_np, y_np in paired_chunks(src_a, src_y, chunk_size):
        both32 = a_np.dtype == np.float32 and y_np.dtype == np.float32
        dtype = torch.float32 if both32 else torch.float64
        A = as_tensor(np.asarray(a_np))[0].to(dtype)
        Y = as_tensor(np.asarray(y_np))[0].to(dtype)
        dev = deviation(A, Y, kind)
        dev = torch.where(torch.isnan(dev), math.inf, dev)
        failing = ~(dev <= tol)
        if failing.any():
            if first_bad is None:
                i = int(torch.nonzero(failing)[0])
                first_bad, first_dev = count + i, float(dev[i])
            bad += int(failing.sum())
        if dev.numel():
            j = int(torch.argmax(dev))
            if float(dev[j]) > worst:
                worst, worst_index = float(dev[j]), count + j
            if kind == "invertible":
                E = A @ Y
                E.diagonal(dim1=-2, dim2=-1).sub_(1)
            else:
                E = A @ Y @ A - A
            worst_abs = max(worst_abs, float(E.abs().nan_to_num(nan=math.inf).amax()))
        count += A.shape[0]
    return Verified(kind, count, tol, bad, first_bad, first_dev, max(worst, 0.0), worst_index, worst_abs)


def generate(
    prefix: str | Path,
    n: int,
    count: int,
    *,
    low: float = -1.0,
    high: float = 1.0,
    min_abs_det: float | None = None,
    min_sigma: float | None = None,
    singular: bool = False,
    max_rank: int | None = None,
    seed: int = 0,
    fmt: str = ".mx",
    chunk_size: int = DEFAULT_CHUNK,
    on_progress: Callable[[int, int], None] | None = None,
) -> Generated:
    """Write ``count`` n x n matrices and their inverses (pseudo-inverses when ``singular``).

    Invertible sets sample ``Box(n, low, high, min_abs_det, min_sigma)`` and keep only the
    matrices whose float64 LU inverse certifies (dget03 ratio < 30), so every written inverse
    is right to working precision; ``Generated.rejected`` counts the others. Deterministic for a
    fixed seed and chunk_size. Both files are streamed in chunks and published together
    (:func:`neuralinv.files.together.commit_together`): killed at any moment, the directory holds the old
    pair or the new pair, never new inverses beside old matrices.
    """
    from .. import api

    n = int_at_least("SIZE", n, 1)
    count = int_at_least("COUNT", count, 1)
    chunk_size = int_at_least("chunk_size", chunk_size, 1)
    if singular:
        if min_abs_det is not None or min_sigma is not None:
            raise InputError("--min-abs-det/--min-sigma make no sense with --singular")
        max_rank = n - 1 if max_rank is None else max_rank
        if isinstance(max_rank, bool) or not isinstance(max_rank, int) or not 0 <= max_rank <= n - 1:
            raise InputError(f"--max-rank must be an integer in [0, {n - 1}] for {n}x{n} matrices, got {max_rank!r}")
        Box(n, low, high)  # validates low/high before any file is opened
    else:
        if max_rank is not None:
            raise InputError("--max-rank only applies with --singular")
        box = Box(n, low, high, min_abs_det=min_abs_det, min_sigma=min_sigma)
    path_a, path_y = dataset_paths(prefix, n, fmt)
    g = torch.Generator().manual_seed(int(seed))
    done = rejected = 0
    worst = 0.0
    with matrix_pair_writer(path_a, path_y) as (wa, wy):
        while done < count:
            k = min(chunk_size, count - done)
            if singular:
                A, ranks = singular_matrices(n, k, low=low, high=high, max_rank=max_rank, generator=g)
                Y = pinv_of_rank(A, ranks)
            else:
                A = box.sample(k, generator=g)
                sol = api.invert(A, method="lu")
                ok = sol.status == 0
                rejected += int((~ok).sum())
                if not ok.any():
                    raise InputError(
                        f"none of {k} sampled {n}x{n} matrices had a certified float64 inverse; "
                        "the region is too close to singular (use --min-abs-det)"
                    )
                A, Y = A[ok], sol.inverse[ok]
            if A.shape[0]:
                worst = max(worst, float(deviation(A, Y, "singular" if singular else "invertible").max()))
            wa.write(A.numpy())
            wy.write(Y.numpy())
            done += A.shape[0]
            if on_progress is not None:
                on_progress(done, count)
    return Generated(path_a, path_y, count, rejected, worst)
