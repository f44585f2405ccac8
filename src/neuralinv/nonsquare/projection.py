"""The network layer: ``project`` (orthogonal projection of feature rows onto the span of their
basis rows, or its complement) and :class:`OrthogonalProjection`, the same as an nn.Module."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .. import _validate as v
from .._validate import keywords_listed
from ..errors import InputError
from .factor import SVD_ROUTE, default_rtol
from .project_autograd import ProjectionFunction
from .project_values import project_ridge


@keywords_listed
def project(
    F: Any,
    basis: Any,
    complement: bool = False,
    ridge: float = 0.0,
    rtol: float | None = None,
) -> Any:
    """Orthogonal projection of each feature row onto the span of its basis rows.

    F: (..., d) feature rows. basis: (..., r, d), r rows spanning the subspace; its batch
    dimensions broadcast against F's, so a (r, d) basis (e.g. a model parameter) is shared and a
    (batch, r, d) basis is per sample. ``complement=True`` projects onto the orthogonal complement
    instead (``F - projection``).

    Each sample is projected on its own, from a thin QR of its basis (elements whose basis looks
    rank-deficient, or all when ``rtol`` is given, use a truncated SVD with cutoff
    ``rtol * sigma_1`` and a bounded analytic gradient). The projection does not depend on the
    scale of the basis (each basis is scaled by a power of two first; rtol is relative).
    ``ridge > 0`` uses the regularised solve ``W^T (W W^T + ridge I)^-1 W f`` instead (then the
    result is only nearly idempotent). The ridge is absolute, in the units of the Gram matrix
    ``W W^T`` of the basis as given, so that route does depend on the basis scale on purpose:
    ``project(F, c W, ridge=c**2 * lam) == project(F, W, ridge=lam)``. It is computed from a QR
    of ``[W^T; sqrt(ridge) I]``, without forming the Gram matrix, so it does not overflow.

    A sample whose feature row or basis has NaN/Inf entries gets a NaN row (complement too);
    the other samples are projected as usual. Differentiable twice, in forward mode and under
    torch.func.vmap/jacrev/jacfwd.

    Types, as :func:`~neuralinv.lstsq`: numpy arrays and array-likes for both F and basis ->
    numpy out; a torch tensor for either -> a tensor (on its device, with its autograd graph, so
    a learnable basis gets its gradient even for numpy features). The result's dtype is F's and
    basis's promoted (numpy's rule: a real F on a complex basis gives a complex projection).

    Nothing is formed across the batch, and the per-row products avoid BLAS, so a sample's
    result is bit-for-bit the same alone or in any batch. (A layer *before* this one that mixes
    samples, e.g. BatchNorm in training mode, breaks that; a basis built from the batch would
    too.)
    """
    Ft, numpy_f, out_f = v.real_array(F, "F", min_ndim=1, shape_text="(..., d)", complex_ok=True)
    Wt, numpy_w, out_w = v.real_array(basis, "basis", min_ndim=2, shape_text="(..., r, d)", complex_ok=True)
    ridge = v.positive("ridge", ridge, allow_zero=True)
    if rtol is not None:
        v.positive("rtol", rtol, allow_zero=True)
        if ridge > 0:
            raise InputError("give either ridge or rtol, not both")
    if Ft.shape[-1] != Wt.shape[-1]:
        raise InputError(
            f"F's feature dimension {Ft.shape[-1]} (shape {tuple(Ft.shape)}) differs from basis's "
            f"{Wt.shape[-1]} (shape {tuple(Wt.shape)}); basis rows must have length d"
        )
    if Ft.device != Wt.device:
        raise InputError(f"F is on {Ft.device} but basis is on {Wt.device}")
    try:
        batch = tuple(torch.broadcast_shapes(Ft.shape[:-1], Wt.shape[:-2]))
    except RuntimeError:
        raise InputError(
            f"batch dimensions of F {tuple(Ft.shape)} and basis {tuple(Wt.shape)} do not broadcast"
        ) from None
    dtype = torch.promote_types(Ft.dtype, Wt.dtype)
    Ft, Wt = Ft.to(dtype), Wt.to(dtype)
    r, d = Wt.shape[-2:]
    count = math.prod(batch)
    Fb = Ft.expand(batch + (d,))
    if count == 0 or d == 0 or r == 0:
        proj = Fb * 0 + 0 * Wt.sum()
        # an empty basis spans {0}; NaN stays NaN (F - 0 is F for the complement)
        proj = torch.where(torch.isfinite(Fb).all(-1, keepdim=True), proj, float("nan"))
    else:
        fb = Fb.reshape(count, d)
        # one factorisation for a shared basis, one per sample otherwise
        W = Wt.unsqueeze(0) if Wt.ndim == 2 else Wt.expand(batch + (r, d)).reshape(count, r, d)
        if ridge > 0:
            proj = project_ridge(W, fb, ridge)
        else:
            tol = default_rtol(r, d, dtype) if rtol is None else rtol
            route = None
            if rtol is not None:  # an explicit cutoff means: always the SVD route
                route = torch.full((W.shape[0],), SVD_ROUTE, dtype=torch.int8, device=W.device)
            proj = ProjectionFunction.apply(W, fb, route, tol)[0]
        proj = proj.reshape(batch + (d,))
    out = Fb - proj if complement else proj
    out = out.to(torch.promote_types(out_f, out_w))
    # numpy out only when neither is a tensor (a tensor basis keeps its gradient)
    return out.detach().cpu().numpy() if numpy_f and numpy_w else out


class OrthogonalProjection(nn.Module):
    """:func:`project` as a layer.

    ``OrthogonalProjection(complement=True)(F, basis)`` projects each row of F onto the
    orthogonal complement of its own basis rows (per sample, e.g. another branch's features).
    ``OrthogonalProjection(dim=d, rank=r)`` owns a learnable (r, d) basis, shared by all samples.
    Batch-size agnostic either way; has no batch statistics.
    """

    def __init__(
        self,
        dim: int | None = None,
        rank: int | None = None,
        *,
        complement: bool = False,
        ridge: float = 0.0,
        rtol: float | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.complement = bool(complement)
        self.ridge = v.positive("ridge", ridge, allow_zero=True)
        self.rtol = rtol
        if (dim is None) != (rank is None):
            raise InputError(
                f"give both dim and rank for a learnable basis, or neither (got dim={dim!r}, rank={rank!r})"
            )
        if dim is not None:
            d = v.int_at_least("dim", dim, 1)
            k = v.int_at_least("rank", rank, 1)
            init = torch.randn(k, d, generator=generator) / math.sqrt(d)
            self.basis = nn.Parameter(init)
        else:
            self.register_parameter("basis", None)

    def forward(self, F: Tensor, basis: Tensor | None = None) -> Tensor:
        W = basis if basis is not None else self.basis
        if W is None:
            raise InputError(
                "OrthogonalProjection has no basis of its own: call it as layer(F, basis)"
            )
        return project(F, W, complement=self.complement, ridge=self.ridge, rtol=self.rtol)

    def extra_repr(self) -> str:
        own = "" if self.basis is None else f"basis={tuple(self.basis.shape)}, "
        return f"{own}complement={self.complement}, ridge={self.ridge}"
