"""``auto``: the fastest method that is exact for the input, with a certified fallback."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..certify import certificate, trusted
from ..solution import Status
from .base import Method
from .cholesky import Cholesky
from .closed_form import ClosedForm
from .lu import LU
from .native import fast_invert as _native_invert
from .native import native_partial as _native_partial
from .partial import Partial, fill_from, labels

#: Eager closed forms beat certified LU from this many matrices, for n up to this size.
_EAGER_CLOSED_FORM_MIN_BATCH = 4096
_EAGER_CLOSED_FORM_MAX_N = 3


@dataclass(frozen=True)
class Auto(Method):
    """Picks a method by size and batch size (and ``spd=True``: Cholesky); answers whose
    certificate fails are recomputed by LU.

    spd: the caller promises symmetric positive definite input, so Cholesky is used. Matrices
         that break the promise are not wrong: Cholesky reports them and LU answers them.
    For n <= 32 (without spd) the native kernels of :mod:`.native` answer first: numba on
    CPU, one Triton kernel on a GPU; ``NEURALINV_NATIVE=0`` turns them off (docs/methods.md,
    "Native kernels"). Elsewhere:
    closed_form for n <= 3 from 4,096 matrices, LU otherwise (measured). That choice lives in
    :meth:`choose` alone, so size crossovers can be tuned in one place. The native kernels are
    real-only: complex batches take the torch path (spd=True: Hermitian positive definite).
    """

    spd: bool = False

    name = "auto"
    takes_complex = True

    def choose(self, n: int, batch: int) -> Method:
        """The primary method of the torch path for a (batch, n, n) input."""
        if self.spd:
            return Cholesky()
        # Crossovers measured on the 2-core CPU: docs/performance.md, "Crossovers and auto".
        if n <= _EAGER_CLOSED_FORM_MAX_N and batch >= _EAGER_CLOSED_FORM_MIN_BATCH:
            return ClosedForm()
        return LU()

    # --- native kernels (methods/native.py): the default path on CPU for n <= 32 ---------
    def _fast(self, batch):
        return None if self.spd or batch.flat.is_complex() else _native_invert(batch)

    def _invert(self, A: Tensor) -> Partial:
        why = "spd requested"
        if A.is_complex():
            why = "complex input (the native kernels are real-only)"
        elif not self.spd:
            part, why = _native_partial(A)
            if part is not None:
                return part
        part = self._invert_torch(A)
        part.stats.setdefault("native", False)
        part.stats.setdefault("native_reason", why)
        return part

    # --- end native ----------------------------------------------------------------------

    def _invert_torch(self, A: Tensor) -> Partial:
        method = self.choose(A.shape[-1], A.shape[0])
        part = method.kernel(A)
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
        return fill_from(A, part, failed, LU(), method.name, in_place=True)  # part is ours
