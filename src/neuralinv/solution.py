"""The result of every inversion: the answer with its certificate."""

from __future__ import annotations

import enum
import math
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class Status(enum.IntEnum):
    """Per-matrix result codes. Only ``OK`` means the certificate holds."""

    OK = 0
    SINGULAR = 1  # exactly singular: no inverse exists (inverse is NaN)
    ILL_CONDITIONED = 2  # computed, but rcond < eps, the residual ratio failed or ||I - XA||_1 >= 1
    NOT_CONVERGED = 3  # iterative method hit max_iter before the residual ratio met tol
    OUT_OF_REGION = 4  # learned method: input outside the trained region, answered by fallback
    NONFINITE = 5  # NaN or Inf in the input (inverse is NaN)
    NOT_SPD = 6  # cholesky: input is not symmetric positive definite (inverse is NaN)


@dataclass(frozen=True)
class Solution:
    """An inverse with its certificate.

    Arrays follow the input: numpy in, numpy out; a torch tensor in, tensors on its device out.

    inverse:  (..., n, n) in the input's floating dtype.
    status:   (...) integer :class:`Status` codes.
    residual: (...) LAPACK's dget03 ratio ``||I - X A||_1 / (n ||A||_1 ||X||_1 eps)``; < 30 passes.
    rcond:    (...) reciprocal 1-norm condition number ``1 / (||A||_1 ||X||_1)``.
    method:   (...) numpy array of names: what actually produced each answer (read-only
              from the native kernels when they answered all: one name broadcast).
    stats:    iterations, fallbacks, timings and method-specific records.
    """

    inverse: Any
    status: Any
    residual: Any
    rcond: Any
    method: np.ndarray
    stats: dict = field(default_factory=dict)

    @classmethod
    def native(cls, inverse: Any, status: Any, residual: Any, rcond: Any, label: str,
               shape: tuple[int, ...]) -> Solution:
        """``auto``'s Solution when a native kernel certified every answer of a batch of
        ``shape``: one label for all, the stats auto records, and marked all-OK (``ni.inv`` and
        :meth:`counts` then skip a scan of the statuses)."""
        sol = cls(inverse, status, residual, rcond, same_labels(shape, label),
                  {"primary": label, "fallbacks": 0, "native": True, "method": "auto"})
        object.__setattr__(sol, "_all_ok", True)
        return sol

    @property
    def ok(self) -> Any:
        """Boolean mask of matrices whose certificate holds."""
        return self.status == int(Status.OK)

    @property
    def all_ok(self) -> bool:
        return bool(np.all(_np(self.status) == int(Status.OK)))

    def indices(self, status: Status) -> list[tuple[int, ...]]:
        """Batch indices (tuples) of the matrices with this status."""
        return [tuple(int(v) for v in i) for i in np.argwhere(_np(self.status) == int(status))]

    def counts(self) -> dict[str, int]:
        """How many matrices got each status, by name (zero counts omitted)."""
        status = _np(self.status).ravel()
        if status.size and getattr(self, "_all_ok", False):  # the native path found all OK
            return {Status.OK.name: status.size}
        # Status codes are small non-negative integers: a bincount, not a sort.
        counts = np.bincount(status.astype(np.intp), minlength=1) if status.size else []
        return {Status(v).name: int(c) for v, c in enumerate(counts) if c}

    def method_counts(self) -> dict[str, int]:
        """How many answers each method produced, by name (sorted by name)."""
        names = self.method
        if names.size and not any(names.strides):  # one name broadcast (the native path)
            return {str(names.flat[0]): names.size}
        return dict(sorted(Counter(str(v) for v in names.ravel().tolist()).items()))

    @property
    def worst_residual(self) -> float:
        """Largest finite residual ratio (NaN if there is none)."""
        r = _np(self.residual).astype(np.float64)
        r = r[np.isfinite(r)]
        return float(r.max()) if r.size else float("nan")


def _np(x: Any) -> np.ndarray:
    # A tensor exists only once torch is imported; this module does not import it (the
    # command line's torch-free streaming path builds numpy Solutions).
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def labels(shape: int | tuple[int, ...], name: str) -> np.ndarray:
    """An object array of method names, all ``name`` (``Solution.method``).

    Filled by assignment: ``np.full(shape, name, dtype=object)`` took 9 ms for 100,000 labels,
    more than the whole compiled 3x3 inversion (docs/performance.md).
    """
    out = np.empty(shape, dtype=object)
    out[...] = name
    return out


def same_labels(shape: tuple[int, ...], name: str) -> np.ndarray:
    """``labels(shape, name)``, read-only, for Solutions that are final: from 1,024 labels a
    broadcast view of one name, no per-matrix work (filling 100,000 labels took 0.18 ms, a
    seventh of the native 3x3 path's whole call); below, filled (np.broadcast_to's 2.3 us
    would be a tenth of a single matrix's call)."""
    if math.prod(shape) >= 1024:
        return np.broadcast_to(np.array(name, dtype=object), shape)
    out = labels(shape, name)
    out.flags.writeable = False
    return out
