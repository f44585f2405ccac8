"""What every method shares: the Method base class and the one place answers get certified.

A method is a small frozen dataclass. It implements ``_invert(A)`` on a validated, detached,
finite (B, n, n) float32/float64 batch and returns a :class:`Partial` (the inverse, any failure
codes it knows of, what produced each answer). ``Method.invert`` does everything else once for
all methods: validation, NaN/Inf screening, the certificate, the analytic gradient, shapes and
array types.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from .._autograd import attach_inverse_grad
from .._validate import square_batch
from ..certify import certificate, trusted
from ..solution import Solution, Status

#: Statuses for which no inverse exists or was computed: the returned inverse is NaN there.
NO_ANSWER = (Status.SINGULAR, Status.NONFINITE, Status.NOT_SPD)


@dataclass
class Partial:
    """A method's raw answer on a flat (B, n, n) batch, before certification.

    status holds the failures the method detected itself (SINGULAR, NOT_CONVERGED, ...), OK
    elsewhere; method is None when every answer came from the method itself, else a (B,) numpy
    array of names (fallbacks).
    """

    inverse: Tensor
    status: Tensor
    method: np.ndarray | None = None
    stats: dict = field(default_factory=dict)


def ok_status(B: int, device: torch.device) -> Tensor:
    return torch.zeros(B, dtype=torch.int8, device=device)


@dataclass(frozen=True)
class Method:
    """Base of all methods. Subclasses are frozen dataclasses whose fields are their options."""

    name: ClassVar[str] = "method"

    def invert(self, A: Any) -> Solution:
        """Invert a batch (..., n, n) and certify every answer."""
        batch = square_batch(A)
        start = time.perf_counter()
        Af = batch.flat
        B, n = Af.shape[0], batch.n
        # One flat check first: the per-matrix reduction over (n, n) is slow for tiny n and
        # only needed when something is not finite.
        all_finite = bool(torch.isfinite(Af).all()) if B and n else True
        if all_finite:
            finite = torch.ones(B, dtype=torch.bool, device=Af.device)
        else:
            finite = torch.isfinite(Af).all(dim=(-2, -1))
        if not all_finite:
            eye = torch.eye(n, dtype=Af.dtype, device=Af.device)
            Af = torch.where(finite[:, None, None], Af, eye)
        if B == 0 or n == 0:
            part = Partial(Af.clone(), ok_status(B, Af.device))
        else:
            with torch.no_grad():
                part = self._invert(Af)
        solve_time = time.perf_counter() - start
        sol = certify(batch, part, finite, self.name)
        sol.stats["solve_time_s"] = solve_time
        sol.stats["time_s"] = time.perf_counter() - start
        return sol

    def _invert(self, A: Tensor) -> Partial:
        raise NotImplementedError


def certify(batch, part: Partial, finite: Tensor, name: str) -> Solution:
    """Residual ratio and rcond for every answer, final status codes, gradient, output types."""
    A = batch.flat
    X = part.inverse
    status = torch.where(finite, part.status, int(Status.NONFINITE))
    no_answer = torch.zeros_like(finite)
    for code in NO_ANSWER:
        no_answer |= status == int(code)
    if bool(no_answer.any()):  # a full pass over X, so only when some answer is missing
        X = X.masked_fill(no_answer[:, None, None], float("nan"))
    with torch.no_grad():
        res, rc = certificate(A, X)
    good = trusted(res, rc, A.shape[-1], A.dtype)
    status = torch.where((status == int(Status.OK)) & ~good, int(Status.ILL_CONDITIONED), status)
    status = status.to(torch.int8)
    X = attach_inverse_grad(batch.tensor, X.reshape(batch.tensor.shape))
    if part.method is None:
        labels = np.full(batch.batch_shape, name, dtype=object)
    else:
        labels = np.asarray(part.method, dtype=object).reshape(batch.batch_shape)
    stats = dict(part.stats)
    stats.setdefault("method", name)
    return Solution(
        inverse=batch.to_output(X, matrices=True),
        status=batch.to_output(status, matrices=False),
        residual=batch.to_output(res, matrices=False),
        rcond=batch.to_output(rc, matrices=False),
        method=labels,
        stats=stats,
    )


def fill_from(A: Tensor, part: Partial, mask: Tensor, method: Method, own_name: str) -> Partial:
    """Replace the answers of ``part`` where ``mask`` holds by ``method``'s answers.

    Used for certified fallbacks: ``method`` runs only on the masked matrices, and the returned
    Partial records which answers came from it.
    """
    idx = mask.nonzero().squeeze(-1)
    if idx.numel() == 0:
        return part
    sub = method._invert(A[idx])
    inverse = part.inverse.clone()
    inverse[idx] = sub.inverse.to(inverse.dtype)
    status = part.status.clone()
    status[idx] = sub.status
    labels = (
        np.full(A.shape[0], own_name, dtype=object) if part.method is None else part.method.copy()
    )
    sub_labels = (
        np.full(idx.numel(), method.name, dtype=object) if sub.method is None else sub.method
    )
    labels[idx.cpu().numpy()] = sub_labels
    stats = dict(part.stats)
    stats["fallbacks"] = stats.get("fallbacks", 0) + int(idx.numel())
    return Partial(inverse, status, labels, stats)
