"""The peers' keywords and types (torch.linalg, numpy.linalg, scipy.linalg): what the entry
functions do with ``out=``, ``assume_a=``/``lower=``, ndarray subclasses. docs/methods.md has
the table ("Coming from torch.linalg, numpy.linalg or scipy.linalg")."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._validate import flag
from .errors import InputError

#: scipy.linalg.inv's ``assume_a`` values -> what is inverted. Structured values read only part
#: of A, as scipy does: "pos", "sym", "her" one triangle (``lower``), "diagonal" the diagonal,
#: "upper/lower triangular" that triangle.
ASSUME_A = (
    "gen", "general", "sym", "symmetric", "her", "hermitian", "pos", "positive definite",
    "diagonal", "upper triangular", "lower triangular",
)


def array_wrap(x: Any):
    """numpy's rule for results: an ndarray subclass (np.matrix, ...) in -> that subclass out
    (numpy.linalg calls the input's ``__array_wrap__``); anything else unchanged."""
    if isinstance(x, np.ndarray) and type(x) is not np.ndarray:
        return lambda r: x.__array_wrap__(r) if isinstance(r, np.ndarray) else r
    return lambda r: r


def structured(A: Any, method: Any, options: dict, assume_a: Any, lower: Any) -> tuple[Any, Any]:
    """scipy's ``assume_a`` / ``lower``: the matrix actually inverted, and the method.

    "gen"/"general"/None: A and ``method`` as given. "sym"/"her": A rebuilt symmetric from one
    triangle (upper unless ``lower``), inverted by ``method``. "pos": the same, by ``cholesky``
    (NOT_SPD / NotPositiveDefiniteError where it is not positive definite, as scipy raises).
    "diagonal": the diagonal only. "upper triangular"/"lower triangular": that triangle only.
    Complex A: "sym" mirrors the triangle as it is (complex symmetric, ``A = A^T``, as scipy's
    ``sytrf``), "her" and "pos" conjugated (Hermitian, ``A = A^H``) with the imaginary part of
    the diagonal ignored (as LAPACK's ``hetrf``/``potrf`` ignore it).
    The certificate is that of the matrix inverted."""
    lower = flag("lower", lower)
    if assume_a is None or assume_a in ("gen", "general"):
        return A, method
    if not isinstance(assume_a, str) or assume_a not in ASSUME_A:
        raise InputError(f"assume_a must be None or one of {', '.join(map(repr, ASSUME_A))}; got {assume_a!r}")
    if assume_a in ("pos", "positive definite"):
        if method != "auto" or options:
            raise InputError(
                f"assume_a={assume_a!r} inverts by cholesky; do not give a method or options with it "
                f"(got method={method!r}, options {sorted(options)})"
            )
        method = "cholesky"
    t = A if isinstance(A, Tensor) else np.asarray(A)
    if t.ndim < 2 or t.shape[-1] != t.shape[-2]:
        return A, method  # the method's own validation names the shape
    lib = torch if isinstance(t, Tensor) else np
    if assume_a == "diagonal":
        eye = lib.eye(t.shape[-1], dtype=t.dtype, **({"device": t.device} if lib is torch else {}))
        return t * eye, method
    if assume_a == "upper triangular":
        return lib.triu(t), method
    if assume_a == "lower triangular":
        return lib.tril(t), method
    # sym, her, pos: one triangle, mirrored (conjugated for her/pos)
    T = lib.tril(t) if lower else lib.triu(t)
    off = lib.tril(t, -1) if lower else lib.triu(t, 1)
    hermitian = assume_a not in ("sym", "symmetric") and bool(lib.iscomplexobj(t) if lib is np else t.is_complex())
    out = T + _swap(off, hermitian)
    if hermitian:
        out = out - 1j * _imag_diagonal(t)
    return out, method


def _imag_diagonal(t: Any) -> Any:
    """A matrix holding the imaginary parts of t's diagonal, zero elsewhere."""
    if isinstance(t, Tensor):
        return torch.diag_embed(t.diagonal(dim1=-2, dim2=-1).imag)
    n = t.shape[-1]
    fix = np.zeros(t.shape, dtype=t.real.dtype)
    fix[..., np.arange(n), np.arange(n)] = np.diagonal(t, axis1=-2, axis2=-1).imag
    return fix


def _swap(x: Any, conjugate: bool = False) -> Any:
    if isinstance(x, Tensor):
        return x.mH if conjugate else x.mT
    x = np.swapaxes(x, -1, -2)
    return x.conj() if conjugate else x


def write_out(result: Any, out: Any, name: str = "out") -> Any:
    """torch's ``out=``: copy ``result`` into ``out`` (a tensor of the result's dtype and device,
    or an ndarray for numpy results) and return ``out``. An empty ``out`` is resized (torch
    does that silently); any other shape is refused (torch would resize it with a warning)."""
    if out is None:
        return result
    if isinstance(result, Tensor):
        if not isinstance(out, Tensor):
            raise InputError(f"{name} must be a torch.Tensor for a tensor result, got {type(out).__name__}")
        if out.dtype != result.dtype or out.device != result.device:
            raise InputError(
                f"{name} has dtype {out.dtype} on {out.device}; the result is {result.dtype} on "
                f"{result.device} (torch requires the same)"
            )
        if result.requires_grad or out.requires_grad:
            raise InputError(f"{name}= does not support automatic differentiation (as in torch)")
        if out.shape != result.shape:
            if out.numel() != 0:
                raise InputError(f"{name} has shape {tuple(out.shape)}; the result has {tuple(result.shape)}")
            out.resize_(result.shape)
        with torch.no_grad():
            out.copy_(result)
        return out
    if not isinstance(out, np.ndarray):
        raise InputError(f"{name} must be a numpy array for a numpy result, got {type(out).__name__}")
    if out.dtype != result.dtype or out.shape != result.shape:
        raise InputError(
            f"{name} has dtype {out.dtype} and shape {out.shape}; the result has {result.dtype} and {result.shape}"
        )
    out[...] = result
    return out
