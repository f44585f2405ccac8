"""``auto``: the fastest method that is exact for the input, with a certified fallback."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..certify import certificate, trusted
from ..solution import Status
from .base import Method, Partial, fill_from, labels
from .cholesky import Cholesky
from .closed_form import MAX_N as CLOSED_FORM_MAX_N
from .closed_form import ClosedForm
from .lu import LU


@dataclass(frozen=True)
class Auto(Method):
    """Picks a method by size (and ``spd=True``: Cholesky); answers whose certificate fails
    are recomputed by LU.

    spd: the caller promises symmetric positive definite input, so Cholesky is used. Matrices
         that break the promise are not wrong: Cholesky reports them and LU answers them.
    compile: n <= 4 uses ``ClosedForm(compile=True)`` (seconds of compilation on first use,
         then 3-7x faster; see ClosedForm). No effect on other sizes.
    The choice lives in :meth:`choose` alone, so size crossovers can be tuned in one place.
    """

    spd: bool = False
    compile: bool = False

    name = "auto"

    def choose(self, n: int, batch: int, device: torch.device) -> Method:
        """The primary method for a (batch, n, n) input on ``device``."""
        if self.spd:
            return Cholesky()
        # Crossovers measured by benchmarks/scaling.py (docs/performance.md), CPU, float32:
        # for n <= 4 the closed forms win from about a thousand matrices up; below that every
        # certified call is dominated by a fixed ~0.3 ms and LU is ~0.08 ms faster, too small
        # to justify a batch rule here. For 5 <= n the only pure-torch kernel tried (batched
        # Gauss-Jordan) lost to LAPACK, so LU. GPU crossovers were not measured.
        if n <= CLOSED_FORM_MAX_N:
            return ClosedForm(compile=self.compile)
        return LU()

    def _invert(self, A: Tensor) -> Partial:
        method = self.choose(A.shape[-1], A.shape[0], A.device)
        part = method._invert(A)
        if part.method is None:
            part.method = labels(A.shape[0], method.name)
        part.stats.setdefault("primary", method.name)
        part.stats.setdefault("fallbacks", 0)
        if isinstance(method, LU):
            return part
        # closed_form loses accuracy on ill-conditioned input and cannot tell a rounded-off
        # zero determinant from a tiny one; cholesky refuses non-SPD input. LU answers (or
        # reports, e.g. as exactly SINGULAR) every matrix whose certificate would fail.
        # The certificate is computed once: Method.invert reuses it (fill_from recomputes the
        # rows LU replaces).
        if part.certificate is None:
            part.certificate = certificate(A, part.inverse)
        ratio, rc = part.certificate
        failed = (part.status != int(Status.OK)) | ~trusted(ratio, rc, A.shape[-1], A.dtype)
        return fill_from(A, part, failed, LU(), method.name)
