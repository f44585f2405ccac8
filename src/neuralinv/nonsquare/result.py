"""What lstsq returns: :class:`LstsqResult` (unpacks like torch's and numpy's result), its
certificate (the relative normal-equation residual) and its lazily computed singular values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import _validate as v
from .scaling import exponent, eye_like, ldexp
from .transforms import is_wrapped


@dataclass(frozen=True)
class LstsqResult:
    """A least-squares solution with its certificate; unpacks like torch's and numpy's result.

    ``X, residuals, rank, singular_values = ni.lstsq(A, B)`` (and ``res[0]`` .. ``res[3]``,
    ``len(res) == 4``) give torch.linalg.lstsq's / numpy.linalg.lstsq's four values; the
    certificate fields below are attributes only.

    Three names, three meanings: ``residuals`` (numpy's and torch's squared residual norms),
    ``normal_residual`` (this certificate, passing at ``<= tol``), and ``Solution.residual``
    of ``ni.invert`` (LAPACK's dget03 ratio of an inverse, passing below 30). An LstsqResult has
    no ``residual`` (the certificate's former name); reading it raises an AttributeError that
    says so.

    solution: (..., n, k) (or (..., n) for a vector right-hand side), minimising
              ``||A X - B||_F^2 + ridge ||X||_F^2`` (minimum norm among minimisers).
    residuals: numpy's and torch's ``residuals``: the squared residual norms
              ``||A X - B||_2^2`` per column, (..., k) ((..., 1) for a vector B, as numpy), where
              they apply: m > n and every element of full rank n; else empty (shape (0,)), as
              numpy returns them. Under torch.func transforms (ranks cannot be read) they are
              computed whenever m > n.
    normal_residual: (...) the certificate: relative normal-equation residual
              ``||A^T (A X - B) + ridge X||_F / (||A||_F (||A||_F ||X||_F + ||B||_F))``.
              A backward-stable solver makes it a small multiple of eps whatever the
              conditioning; a truncated SVD leaves about ``sigma_discarded / sigma_1`` in it, so
              it fails when the discarded singular values were not negligible.
    rank:     (...) numerical rank used: ``min(m, n)`` on the qr and ridge routes (the ridge
              system always has full rank), the number of kept singular values on the svd route.
              -1 where the element's input had NaN/Inf entries (no answer).
    singular_values: (..., min(m, n)) singular values of A (numpy's ``s``), computed when first
              read (unpacking reads it); NaN for elements with NaN/Inf entries; empty under
              torch.func transforms. Not differentiable.
    method:   (...) numpy array of "qr", "svd" or "ridge": what produced each answer; "none"
              for non-finite inputs. None under torch.func transforms (vmap, jacrev, jacfwd),
              where per-element values cannot be read.
    tol:      the pass threshold for ``normal_residual``: ``30 * max(m, n) * eps`` (LAPACK's
              ratio 30).
    status:   (...) integer :class:`~neuralinv.Status` codes, as ``ni.invert`` reports them:
              ``OK`` where the certificate holds, ``NONFINITE`` where A or B has NaN/Inf entries
              (the solution is NaN there), ``ILL_CONDITIONED`` where a solution was computed but
              the certificate fails (not a least-squares solution to working precision).
    """

    solution: Any
    normal_residual: Any
    rank: Any
    method: np.ndarray | None
    tol: float
    status: Any
    residuals: Any = None
    _svd_of: Any = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> Any:
        """Per element: the normal equations hold to working precision (NaN fails)."""
        return self.normal_residual <= self.tol

    @property
    def all_ok(self) -> bool:
        r = self.normal_residual
        r = r.detach().cpu().numpy() if isinstance(r, Tensor) else np.asarray(r)
        return bool(np.all(r <= self.tol))

    @property
    def singular_values(self) -> Any:
        cached = self.__dict__.get("_singular_values")
        if cached is None:
            cached = _singular_values(*self._svd_of) if self._svd_of is not None else None
            object.__setattr__(self, "_singular_values", cached)
        return cached

    def __getattr__(self, name: str) -> Any:
        # only called for names that are not attributes; Python would suggest "residuals" for
        # the old name, which means something else
        if name == "residual":
            raise AttributeError(
                "LstsqResult has no 'residual': the certificate is 'normal_residual' (relative "
                "normal-equation residual, passes at <= tol); 'residuals' are numpy's and torch's "
                "squared residual norms; 'residual' is ni.invert's Solution.residual (dget03 ratio)"
            )
        raise AttributeError(f"'LstsqResult' object has no attribute {name!r}")

    def _values(self) -> tuple:
        return (self.solution, self.residuals, self.rank, self.singular_values)

    def __iter__(self):
        return iter(self._values())

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            i = int(index)
            if not -4 <= i < 4:
                raise IndexError(f"LstsqResult index {i} out of range (it has 4 values)")
            if i % 4 != 3:  # only the singular values cost work
                return (self.solution, self.residuals, self.rank)[i % 4]
        return self._values()[index]


def _singular_values(Af: Tensor, batch: tuple[int, ...], out_dtype: torch.dtype, numpy_out: bool) -> Any:
    """Singular values of a flat (count, m, n) batch, NaN for non-finite elements."""
    m, n = Af.shape[-2:]
    with torch.no_grad():
        if is_wrapped(Af):
            S = Af.new_zeros((0,))
        elif Af.numel() == 0:
            S = Af.new_zeros(batch + (min(m, n),))
        else:
            finite = torch.isfinite(Af).all(-1).all(-1)
            M = torch.where(finite[:, None, None], Af, eye_like(Af))
            # complex64 in complex128 (exact input; LAPACK's cgesdd is that accurate, torch's
            # complex64 svdvals was 2 ulps off on numpy's "csingle_nsq" case)
            S = torch.linalg.svdvals(M.to(torch.complex128) if M.dtype == torch.complex64 else M)
            S = S.masked_fill(~finite[:, None], float("nan")).reshape(batch + (min(m, n),))
        S = S.to(v.real_dtype(out_dtype))
    return S.cpu().numpy() if numpy_out else S


def normal_residual(A: Tensor, B: Tensor, X: Tensor, ridge: float) -> Tensor:
    """The certificate ratio, computed on A, B, X scaled by powers of two (it is invariant under
    A -> a A, B -> b B, X -> (b / a) X, ridge -> a^2 ridge), so it neither overflows nor
    underflows at any scale of the data."""
    with torch.no_grad():
        A, B, X = A.detach(), B.detach(), X.detach()
        fro = lambda M: torch.linalg.matrix_norm(M) if M.numel() else M.new_zeros(M.shape[:-2])  # noqa: E731
        if A.numel() and B.numel():
            ea, eb = exponent(A)[:, None, None], exponent(B)[:, None, None]
            A, B = ldexp(A, -ea), ldexp(B, -eb)
            num = A.mH @ (A @ ldexp(X, ea - eb) - B)
            if ridge:
                num = num + ldexp(ridge * X, -ea - eb)
            X = ldexp(X, ea - eb)
        else:
            num = A.mH @ (A @ X - B)
        nA = fro(A)
        den = nA * (nA * fro(X) + fro(B))
        n_num = fro(num)
        ratio = n_num / den
        # A = 0 (or B = 0 with X = 0): the zero solution is exact, the ratio 0/0 means 0.
        return torch.where(den == 0, torch.where(n_num == 0, 0.0, float("inf")), ratio)
