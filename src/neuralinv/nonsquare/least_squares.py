"""``lstsq``: argument handling (numpy's, torch's and scipy's keywords), the ridge or QR/SVD
routes, the certificate and the result."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import _validate as v
from .._peers import array_wrap
from .._validate import keywords_listed
from ..certify import PASS_RATIO, eps
from ..errors import InputError
from ..solution import Status
from .factor import QR_ROUTE, SVD_ROUTE, default_rtol, ridge_solve
from .result import LstsqResult, normal_residual
from .solve_autograd import LstsqFunction
from .transforms import is_wrapped

_LSTSQ_METHODS = ("auto", "qr", "svd")


def _broadcast_pair(A: Tensor, B: Tensor) -> tuple[Tensor, Tensor, tuple[int, ...]]:
    batch_a, batch_b = A.shape[:-2], B.shape[:-2]
    try:
        batch = torch.broadcast_shapes(batch_a, batch_b)
    except RuntimeError:
        raise InputError(
            f"batch dimensions of A {tuple(A.shape)} and B {tuple(B.shape)} do not broadcast"
        ) from None
    return A.expand(batch + A.shape[-2:]), B.expand(batch + B.shape[-2:]), tuple(batch)


#: torch.linalg.lstsq's and scipy.linalg.lstsq's driver names -> the route they stand for here.
DRIVERS = {"gels": "qr", "gelsy": "auto", "gelsd": "svd", "gelss": "svd"}


def _driver_method(driver: Any, lapack_driver: Any, method: str) -> str:
    """``method`` after torch's ``driver=`` / scipy's ``lapack_driver=`` (see :data:`DRIVERS`)."""
    if driver is not None and lapack_driver is not None:
        raise InputError("give driver (torch) or lapack_driver (scipy), not both")
    name, key = (driver, "driver") if driver is not None else (lapack_driver, "lapack_driver")
    if name is None:
        return method
    v.one_of(key, name, tuple(DRIVERS))
    mapped = DRIVERS[name]
    if method not in ("auto", mapped):
        raise InputError(f"{key}={name!r} means method={mapped!r}; it conflicts with method={method!r}")
    return mapped


def _rcond_value(rcond: Any, cond: Any) -> float | None:
    """numpy's/torch's ``rcond`` (scipy's ``cond``): None, a cutoff >= 0, or negative for
    machine precision (LAPACK's convention, numpy's ``rcond=-1``); the caller takes eps then."""
    if rcond is not None and cond is not None:
        raise InputError("give rcond (numpy, torch) or cond (scipy), not both")
    value = rcond if rcond is not None else cond
    if value is None:
        return None
    name = "rcond" if rcond is not None else "cond"
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise InputError(f"{name} must be a number, got {value!r}")
    try:
        f = float(value)
    except (TypeError, ValueError, RuntimeError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(f):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    return f


@keywords_listed
def lstsq(
    A: Any,
    B: Any,
    rcond: float | None = None,
    *,
    ridge: float = 0.0,
    method: str = "auto",
    driver: str | None = None,
    cond: float | None = None,
    lapack_driver: str | None = None,
    check_finite: bool = True,
    overwrite_a: bool = False,
    overwrite_b: bool = False,
) -> LstsqResult:
    """Solve ``min ||A X - B||_F^2 + ridge ||X||_F^2`` for each matrix of a batch, certified.

    A: (..., m, n); B: (..., m, k) with batch dimensions broadcasting against A's, a vector
    (..., m) when its shape is A's without the last dimension, or a 1-D (m,) vector shared by
    every matrix of the batch (numpy's and scipy's rule). Returns the minimum-norm solution,
    as an :class:`LstsqResult` that unpacks like torch's and numpy's
    ``(solution, residuals, rank, singular_values)``.

    ``rcond`` (third positional, as in numpy, torch and scipy; scipy's name ``cond`` too):
    solve by SVD, treating singular values ``<= rcond * sigma_1`` as zero; negative means
    machine precision (numpy's ``rcond=-1``). None: ``method="auto"`` uses QR and moves the
    elements whose R looks singular to the SVD route, whose cutoff is then numpy's default
    ``eps * max(m, n)``. ``method="qr"`` forces QR (inf/NaN on rank deficiency; the certificate
    then fails), ``method="svd"`` the SVD. ``driver`` (torch) / ``lapack_driver`` (scipy):
    "gels" -> qr, "gelsy" -> auto, "gelsd" and "gelss" -> svd (:data:`DRIVERS`).
    ``ridge > 0``: Tikhonov regularisation (route "ridge"; ridge is absolute, in the units of
    ``A^T A``; keyword only).

    Types: numpy arrays, lists and other array-likes for both A and B -> numpy out (ndarray
    subclasses of B, e.g. np.matrix, are kept for the solution and residuals, as numpy keeps
    them); a torch tensor for either -> tensors (on its device, with its autograd graph: mixing
    never drops a gradient; numpy would convert the tensor, torch refuses numpy). The solution's
    dtype is A's and B's promoted, as numpy promotes. A torch B of an integer or bool dtype is
    refused, as torch.linalg.lstsq refuses it (numpy and lists of integers compute in float64,
    as numpy does).
    ``check_finite``, ``overwrite_a``, ``overwrite_b`` (scipy) are accepted and change nothing:
    NaN/Inf elements always get NaN answers on their own (one pass over the data), and the
    inputs are never written.

    Batch elements with NaN/Inf in A or B get a NaN solution, rank -1, method "none" and status
    ``Status.NONFINITE``; the other elements are solved as usual (nothing is raised). Answers
    do not depend on the scale of A or B (each element is scaled by a power of two first).
    float32 solutions get one step of iterative refinement with a float64 residual.
    Differentiable (also twice, forward mode, torch.func.vmap/jacrev/jacfwd) with the
    fixed-rank derivative of the pseudo-inverse; under torch.func transforms ``method`` is None.
    """
    wrap = array_wrap(B)
    if isinstance(B, Tensor) and not (B.dtype.is_floating_point or B.dtype.is_complex):
        raise InputError(
            f"B is a torch tensor of dtype {B.dtype}; torch.linalg.lstsq refuses integer and bool "
            f"right-hand sides, and so does neuralinv (it would silently change the precision): "
            f"pass B.to(A.dtype)"
        )
    At, numpy_a, out_a = v.real_array(A, "A", min_ndim=2, shape_text="(..., m, n)", complex_ok=True)
    Bt, numpy_b, out_b = v.real_array(
        B, "B", min_ndim=1, shape_text="(..., m, k) or (..., m)", complex_ok=True
    )
    ridge = v.positive("ridge", ridge, allow_zero=True)
    v.one_of("method", method, _LSTSQ_METHODS)
    for name, value in (("check_finite", check_finite), ("overwrite_a", overwrite_a), ("overwrite_b", overwrite_b)):
        v.flag(name, value)
    method = _driver_method(driver, lapack_driver, method)
    rcond = _rcond_value(rcond, cond)
    if ridge > 0 and (rcond is not None or method != "auto"):
        raise InputError(
            "ridge > 0 regularises by itself; do not combine it with rcond or method "
            f"(got ridge={ridge}, rcond={rcond!r}, method={method!r})"
        )
    if rcond is not None and method == "qr":
        raise InputError("rcond is an SVD cutoff; it cannot be used with method='qr' (driver 'gels')")
    if At.device != Bt.device:
        raise InputError(f"A is on {At.device} but B is on {Bt.device}")
    m, n = At.shape[-2:]
    vector = Bt.ndim == 1 or (Bt.ndim == At.ndim - 1 and tuple(Bt.shape) == tuple(At.shape[:-1]))
    if vector:
        Bt = Bt.unsqueeze(-1)
    if Bt.ndim < 2 or Bt.shape[-2] != m:
        shapes = dict.fromkeys([f"(..., {m}, k)", str(tuple(At.shape[:-1])), f"({m},)"])
        raise InputError(
            f"B must have shape {', '.join(list(shapes)[:-1])} or {list(shapes)[-1]} to match A of "
            f"shape {tuple(At.shape)}, got shape {tuple(Bt.shape) if not vector else tuple(Bt.shape[:-1])}"
        )
    dtype = torch.promote_types(At.dtype, Bt.dtype)
    At, Bt, batch = _broadcast_pair(At.to(dtype), Bt.to(dtype))
    k = Bt.shape[-1]
    count = math.prod(batch)
    Af = At.reshape(count, m, n)
    Bf = Bt.reshape(count, m, k)

    if ridge > 0:
        if count == 0 or m == 0 or n == 0 or k == 0:
            Xf = Af.new_zeros(count, n, k) + 0 * Bf.sum() * Af.sum()
        else:
            Xf = ridge_solve(Af, Bf, ridge)
        rank = torch.full((count,), min(m, n), dtype=torch.int64, device=Af.device)
        if count and m and n and k:
            finite = torch.isfinite(Af).all(-1).all(-1) & torch.isfinite(Bf).all(-1).all(-1)
            rank = rank.masked_fill(~finite, -1)
        route = None
    else:
        forced = None
        if method == "svd" or rcond is not None:
            forced = torch.full((count,), SVD_ROUTE, dtype=torch.int8, device=Af.device)
        elif method == "qr":
            forced = torch.full((count,), QR_ROUTE, dtype=torch.int8, device=Af.device)
        if rcond is None:
            rtol = default_rtol(m, n, dtype)
        else:
            rtol = eps(dtype) if rcond < 0 else rcond
        Xf, rank, route = LstsqFunction.apply(Af, Bf, forced, rtol)
        if count == 0 or m == 0 or n == 0 or k == 0:
            # keep the graph (and the empty answer's zero gradient) connected to A and B
            Xf = Xf + 0 * Bf.sum() * Af.sum()

    res = normal_residual(Af, Bf, Xf, ridge)
    tol = PASS_RATIO * max(m, n, 1) * eps(dtype)
    nonfinite = rank == -1
    status = torch.where(
        nonfinite,
        int(Status.NONFINITE),
        torch.where(res <= tol, int(Status.OK), int(Status.ILL_CONDITIONED)),
    ).to(torch.int8)
    if is_wrapped(rank) or (route is not None and is_wrapped(route)):
        labels = None  # inside torch.func transforms per-element values cannot be read
        full_rank = m > n
    else:
        names = np.array(["qr", "svd"], dtype=object)
        labels = (
            np.full(count, "ridge", dtype=object)
            if route is None
            else names[route.cpu().numpy().astype(np.int64)]
        )
        labels[nonfinite.cpu().numpy()] = "none"
        labels = labels.reshape(batch)
        full_rank = m > n and bool((rank == n).all())
    out_dtype = out_a if out_a == out_b else torch.promote_types(out_a, out_b)
    if full_rank:  # numpy's and torch's residuals: squared column norms of A X - B
        R = Af @ Xf - Bf
        residuals = (R.abs() if R.is_complex() else R).square().sum(-2).reshape(batch + (k,))
        residuals = residuals.to(v.real_dtype(out_dtype))
    else:
        residuals = Xf.new_zeros((0,), dtype=v.real_dtype(out_dtype))
    X = Xf.reshape(batch + (n, k))
    if vector:
        X = X.squeeze(-1)
    X = X.to(out_dtype)
    res, rank, status = res.reshape(batch), rank.reshape(batch), status.reshape(batch)
    numpy_out = numpy_a and numpy_b  # numpy out only when neither is a tensor
    svd_of = (Af.detach(), batch, out_dtype, numpy_out)
    if numpy_out:
        return LstsqResult(
            wrap(X.detach().cpu().numpy()),
            res.cpu().numpy(),
            rank.cpu().numpy()[()],  # one system: a numpy integer scalar, as numpy.linalg.lstsq's
            labels,
            tol,
            status.cpu().numpy(),
            wrap(residuals.detach().cpu().numpy()),
            svd_of,
        )
    return LstsqResult(X, res, rank, labels, tol, status, residuals, svd_of)
