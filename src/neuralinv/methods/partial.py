"""A method's raw answer before certification (:class:`Partial`), and how answers of one method
replace another's (:func:`fill_from`, the certified fallbacks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from ..certify import certificate
from ..solution import Status, labels

if TYPE_CHECKING:
    from .base import Method

#: Statuses for which no inverse exists or was computed: the returned inverse is NaN there.
NO_ANSWER = (Status.SINGULAR, Status.NONFINITE, Status.NOT_SPD)

__all__ = ["NO_ANSWER", "Partial", "fill_from", "labels", "no_answer", "ok_status"]


@dataclass
class Partial:
    """A method's raw answer on a flat (B, n, n) batch, before certification.

    status holds the failures the method detected itself (SINGULAR, NOT_CONVERGED, ...), OK
    elsewhere; method is None when every answer came from the method itself, else a (B,) numpy
    array of names (fallbacks). certificate, when a method already computed it, is
    ``certify.certificate(A, inverse)``, i.e. (residual ratio, rcond) of exactly these answers:
    ``Method.invert`` then reuses it instead of certifying a second time. Whoever changes
    ``inverse`` afterwards must update or drop it (``fill_from`` does).
    """

    inverse: Tensor
    status: Tensor
    method: np.ndarray | None = None
    stats: dict = field(default_factory=dict)
    certificate: tuple[Tensor, Tensor] | None = None


def ok_status(B: int, device: torch.device) -> Tensor:
    return torch.zeros(B, dtype=torch.int8, device=device)


def no_answer(status: Tensor) -> Tensor:
    no_answer = torch.zeros(status.shape, dtype=torch.bool, device=status.device)
    for code in NO_ANSWER:
        no_answer |= status == int(code)
    return no_answer



def fill_from(
    A: Tensor, part: Partial, mask: Tensor, method: Method, own_name: str, *, in_place: bool = False
) -> Partial:
    """Replace the answers of ``part`` where ``mask`` holds by ``method``'s answers.

    Used for certified fallbacks: ``method`` runs only on the masked matrices, and the returned
    Partial records which answers came from it. ``part`` is left as it was unless ``in_place``,
    which writes into its tensors (for a caller that owns them: no copy of the whole batch).
    """
    idx = mask.nonzero().squeeze(-1)
    if idx.numel() == 0:
        return part
    sub = method.kernel(A[idx])
    inverse = part.inverse if in_place else part.inverse.clone()
    inverse[idx] = sub.inverse.to(inverse.dtype)
    status = part.status if in_place else part.status.clone()
    status[idx] = sub.status
    if part.method is None:
        names = labels(A.shape[0], own_name)
    else:
        names = part.method if in_place else part.method.copy()
    names[idx.cpu().numpy()] = method.name if sub.method is None else sub.method
    stats = dict(part.stats)
    stats["fallbacks"] = stats.get("fallbacks", 0) + int(idx.numel())
    cert = None
    if part.certificate is not None:
        # Only the replaced rows need a new certificate.
        same = sub.certificate is not None and sub.inverse.dtype == inverse.dtype
        with torch.no_grad():
            sub_cert = sub.certificate if same else certificate(A[idx], inverse[idx])
        cert = part.certificate if in_place else tuple(c.clone() for c in part.certificate)
        for c, s in zip(cert, sub_cert):
            c[idx] = s.to(c.dtype)
    return Partial(inverse, status, names, stats, cert)
