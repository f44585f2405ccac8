"""``learned``: a trained network's first guess, refined by Newton-Schulz, with an exact fallback.

A network can only approximate the inverse on the region it was trained on (the paper's
Theorems 3.7-3.9), and even there its guess is far from machine precision. So the guess is
used as the *seed* of Newton-Schulz, which converges quadratically from any seed X0 with
``rho(I - A X0) < 1``; every answer then carries the same LAPACK certificate as an exact method.
Where that cannot work the exact fallback answers instead, and the labels say so:

* inputs outside the model's region (after trying to scale them into it,
  :meth:`neuralinv.regions.Region.scaled_into`): fallback, status ``OUT_OF_REGION`` (``inv``
  warns :class:`~neuralinv.OutOfRegionWarning`); a singular input keeps the fallback's
  ``SINGULAR``;
* in-region inputs whose guess does not contract, or whose refinement does not reach ``tol``:
  fallback, with the fallback's own status.

The model (:class:`neuralinv.learned.LearnedInverse`), its region, the compiled kernels
(:mod:`neuralinv.kernels.learned_small`), Newton-Schulz and its contraction screen
(:mod:`.newton_schulz`) and the per-matrix record (:mod:`.learned_rows`) live elsewhere; this
module is the method only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._validate import int_at_least, positive
from ..certify import PASS_RATIO, SMALL_N, certificate, trusted
from ..errors import InputError
from ..kernels.learned_small import CompiledLearned
from ..kernels.native_learned import MOST_STEPS, NativeFused
from ..learned.inverse import LearnedInverse, low_precision_dtype
from ..solution import Solution, Status
from .base import Method
from .learned_rows import Guessed, NetworkRows
from .newton_schulz import guess_contracts, refine_certified
from .partial import Partial, fill_from, labels, ok_status

#: Matrices per chunk of the network path: about 2^20 numbers (4 MB in float32), so a chunk's
#: guess, residuals and iterates stay in cache and their memory is reused (docs/performance.md,
#: attempts 26, 27 and 34).
CHUNK_ELEMENTS = 1 << 19


@dataclass(frozen=True)
class Learned(Method):
    """Certified learned inversion.

    model:        a trained :class:`~neuralinv.LearnedInverse` (or its directory, or
                  ``"builtin:ball3"``): anything with ``predict(A)``, ``region`` and ``n``.
    refine:       run Newton-Schulz from the network's guess until the LAPACK ratio < ``tol``.
                  ``False`` returns the raw ensemble-mean guess (with its certificate, which it
                  will usually fail: ILL_CONDITIONED) -- for studying the network itself.
    tol:          Newton-Schulz stops a matrix once its dget03 ratio is below ``tol`` (< 30, so
                  the final certificate has a margin).
    max_iter:     Newton-Schulz step limit; a guess that contracts reaches ``tol`` in a handful
                  of steps, so a matrix still short of it after ``max_iter`` goes to the fallback.
    fallback:     method (name or Method) answering inputs the network cannot: out of region,
                  non-contracting guess, refinement not converged.
    check_region: send inputs outside ``model.region`` to the fallback. ``False`` gives every
                  input to the network (then only the contraction test protects the answer).
    scale:        try to bring an out-of-region input into the region by a positive scalar
                  ``s`` (``(s A)^-1 = A^-1 / s``, so ``A^-1 = s * net(s A)``), as
                  DeepMatrixInversion scales its inputs into the training range. Used only where
                  ``s A`` lies in the region; inputs already inside are left alone.
    compile:      opt-in ``torch.compile`` paths (seconds of compilation per process): one
                  fused kernel for n <= 4 ``correction`` models with ``refine`` and
                  ``check_region``, else compiled member networks for the guess
                  (:class:`~neuralinv.kernels.learned_small.CompiledLearned`). Answers may differ
                  from the eager ones in the last bits, statuses follow the same rules; what the
                  kernels cannot take runs eagerly, ``stats["compile_error"]`` says why.
    guess_dtype:  ``"bfloat16"`` or ``"float16"``: the networks' learned part guesses in that
                  precision and Newton-Schulz refines in the input's, so answers and
                  certificates are as without it; faster for wide networks on CPUs with
                  AVX-512 BF16 / AMX (docs/performance.md, attempt 63). Not with ``compile``.
    """

    model: Any = None
    refine: bool = True
    tol: float = 10.0
    max_iter: int = 30
    fallback: Any = "lu"
    check_region: bool = True
    scale: bool = True
    compile: bool = False
    guess_dtype: Any = None

    name = "learned"

    def __post_init__(self) -> None:
        super().__post_init__()  # the bool options
        model = self.model
        if model is None:
            raise InputError(
                "method 'learned' needs model=<LearnedInverse, model directory or 'builtin:NAME'>"
            )
        if isinstance(model, (str, os.PathLike)):
            model = LearnedInverse.load(model)
            object.__setattr__(self, "model", model)
        missing = [a for a in ("predict", "region", "n") if not hasattr(model, a)]
        if missing:
            raise InputError(
                f"model must be a LearnedInverse (predict, region, n); "
                f"{type(model).__name__} lacks {', '.join(missing)}"
            )
        positive("tol", self.tol)
        if not self.tol <= PASS_RATIO:
            raise InputError(
                f"tol must be <= {PASS_RATIO:g} (the certificate's pass ratio), got {self.tol!r}"
            )
        int_at_least("max_iter", self.max_iter, 1)
        low = low_precision_dtype(self.guess_dtype)
        if low is not None and self.compile:
            raise InputError("guess_dtype runs the eager guess; it does not combine with compile=True")
        object.__setattr__(self, "guess_dtype", low)
        from .registry import resolve

        fallback = resolve(self.fallback)
        if isinstance(fallback, Learned):
            raise InputError("fallback must be an exact method such as 'lu', not a learned one")
        object.__setattr__(self, "fallback", fallback)
        compiled = None
        if self.compile:
            compiled = CompiledLearned(model, refine=self.refine, check_region=self.check_region,
                                       max_iter=self.max_iter, tol=self.tol)
        object.__setattr__(self, "_compiled", compiled)
        # The default path of small correction models: the fused kernel's arithmetic as a numba
        # kernel (kernels/native_learned.py), no compilation beyond numba's cached one.
        # One per input dtype: a float32 model's weights also serve float64 input (the kernel
        # runs the network in the input's precision; the eager path would run it in the
        # model's, so the guesses differ in their last bits, the certificates judge both alike).
        natives = {}
        if not self.compile and self.refine and self.check_region and low is None:
            for dt in (torch.float32, torch.float64):
                natives[dt] = NativeFused.for_model(model, dtype=dt, steps=min(self.max_iter, MOST_STEPS[dt]),
                                                    tol=self.tol)
        object.__setattr__(self, "_natives", {k: v for k, v in natives.items() if v is not None})

    @property
    def n(self) -> int:
        return int(self.model.n)

    def supports(self, n: int, dtype: torch.dtype, device: torch.device | str = "cpu") -> bool:
        """The model's size, real float dtypes, and the model's device (where it says one)."""
        where = getattr(self.model, "device", None)
        same_device = where is None or torch.device(device).type == torch.device(where).type
        return n == self.n and dtype in (torch.float32, torch.float64) and same_device

    def invert(self, A: Any) -> Solution:
        # The network has a fixed input size: refuse others before any conversion or work.
        shape = getattr(A, "shape", None)
        if shape is not None and len(shape) >= 2 and shape[-1] == shape[-2] and shape[-1] != self.n:
            raise InputError(
                f"this learned model inverts {self.n}x{self.n} matrices, got shape {tuple(shape)}; "
                f"use method='block' with this model as base for larger matrices"
            )
        return super().invert(A)

    def _invert(self, A: Tensor) -> Partial:
        if A.shape[-1] != self.n:  # reached without invert (a block's leaves)
            k = A.shape[-1]
            raise InputError(f"this learned model inverts {self.n}x{self.n} matrices, got {k}x{k}")
        B, n, dev = A.shape[0], A.shape[-1], A.device
        compiled, native = self._compiled, self._natives.get(A.dtype)
        if compiled is not None:
            fused = compiled.run_fused(A)
        else:
            fused = native(A) if native is not None else None
        rows = self._rows(A, compiled_guess=True) if fused is None else self._complete(A, fused)
        # X, the statuses and the certificate are ours: the fallback writes into them.
        part = Partial(rows.X, ok_status(B, dev), None, {}, rows.cert)
        part = fill_from(A, part, ~rows.use, self.fallback, self.name, in_place=True)
        status = part.status
        out = (~rows.inside).nonzero().squeeze(-1)
        if out.numel():
            # OUT_OF_REGION means "answered by the fallback, and that answer is certified"; a
            # fallback answer that fails keeps the fallback's own status (SINGULAR, or OK that
            # the certificate turns into ILL_CONDITIONED), so inv() raises or warns the right way.
            cert = rows.cert
            ratio, rc = (cert[0][out], cert[1][out]) if cert is not None else certificate(A[out], rows.X[out])
            mark = (status[out] == int(Status.OK)) & trusted(ratio, rc, n, A.dtype)
            status[out[mark]] = int(Status.OUT_OF_REGION)
        in_region, network = int(rows.inside.sum()), int(rows.use.sum())
        stats = {
            "in_region": in_region,
            "scaled": int((rows.inside & (rows.s != 1)).sum()) if in_region else 0,
            "out_of_region": B - in_region,
            "contracted": int(rows.contracted.sum()),
            "refined": network if self.refine else 0,
            "network": network,
            "fallbacks": B - network,
            "iterations": rows.iters,
            "max_iterations": int(rows.iters.max()) if B else 0,
            "compiled": compiled is not None and (fused is not None or compiled.guess_compiled),
            "native": compiled is None and fused is not None,
            "fused": int(fused.accepted.sum()) if fused is not None else 0,
        }
        if compiled is not None and compiled.failed:
            stats["compile_error"] = compiled.failed
        if native is not None and native.failed:
            stats["native_error"] = native.failed
        names = labels(B, self.name) if part.method is None else part.method
        return Partial(rows.X, status, names, stats, part.certificate)

    def _rows(self, A: Tensor, *, compiled_guess: bool) -> NetworkRows:
        """Region test, guess and refinement of every matrix, chunk by chunk (the eager path)."""
        B, n = A.shape[0], A.shape[-1]
        # Refinement computes each answer's certificate on the way (n > SMALL_N: exactly as
        # certify.certificate does; a strided A would round its products differently, so then
        # Method.invert certifies as usual); fallback rows get theirs in _invert.
        rows = NetworkRows.empty(A, certified=self.refine and n > SMALL_N and A.is_contiguous())
        step = max(1, CHUNK_ELEMENTS // max(1, n * n))
        work: dict = {}  # the chunks' temporaries, reused from chunk to chunk
        for lo in range(0, B, step):
            sl = slice(lo, min(B, lo + step))
            if self.check_region:
                rows.inside[sl], rows.s[sl] = self.model.region.scaled_into(
                    A[sl], scale=self.scale, work=work
                )
            every = bool(rows.inside[sl].all())
            idx = sl if every else rows.inside[sl].nonzero().squeeze(-1) + lo
            if not every and idx.numel() == 0:
                continue
            out = rows.X[sl] if every else None  # refinement writes there directly
            g = self._network(A[idx], rows.s[idx], out=out, work=work, compiled_guess=compiled_guess)
            rows.put(idx, g, copy_X=g.X is not out)
        return rows

    def _complete(self, A: Tensor, fused: Any) -> NetworkRows:
        """The fused kernel's rows (``compile=True``), the rows it did not accept completed by the
        eager path."""
        rows = NetworkRows.from_fused(fused)
        rest = (~fused.accepted).nonzero().squeeze(-1)
        if rest.numel():
            sub = self._rows(A[rest], compiled_guess=False)
            rows.put(rest, sub)
            # n <= 4 here, so _rows leaves certificates to the caller: the network's rows get
            # theirs now, fallback rows theirs from fill_from.
            mine = rest[sub.use]
            if mine.numel():
                rows.cert[0][mine], rows.cert[1][mine] = certificate(A[mine], rows.X[mine])
        return rows

    def _network(self, A: Tensor, s: Tensor, *, out: Tensor | None, work: dict,
                 compiled_guess: bool) -> Guessed:
        """Guess and refine in-region matrices ``A`` (each multiplied by ``s`` for the network)."""
        X0 = self._guess(A, s, compiled_guess)
        if not self.refine:
            return Guessed(X0, torch.ones(A.shape[0], dtype=torch.bool, device=A.device),
                           guess_contracts(A, X0), None, None)
        r = refine_certified(A, X0, tol=self.tol, max_iter=self.max_iter, screen=guess_contracts,
                             out=out, work=work)
        return Guessed(r.X, r.converged, r.contracted, r.iterations, r.certificate)

    def seed(self, A: Tensor) -> tuple[Tensor, Tensor]:
        """The first guesses this method refines: ``(rows, X0)``, the indices of the matrices of
        the (B, n, n) float tensor ``A`` that go to the network (in the region, or scaled into
        it, as :meth:`invert` routes them) and the network's guesses for them in A's dtype, the
        seeds Newton-Schulz starts from. For measuring seeds (``neuralinv evaluate``'s seed
        residual); :meth:`invert` computes the same guesses chunk by chunk."""
        if A.ndim != 3 or tuple(A.shape[-2:]) != (self.n, self.n) or A.dtype not in (torch.float32, torch.float64):
            raise InputError(f"seed needs a (B, {self.n}, {self.n}) float32 or float64 tensor, "
                             f"got {tuple(A.shape)} {A.dtype}")
        if self.check_region:
            inside, s = self.model.region.scaled_into(A, scale=self.scale)
        else:
            inside = torch.ones(A.shape[0], dtype=torch.bool, device=A.device)
            s = torch.ones(A.shape[0], dtype=A.dtype, device=A.device)
        rows = inside.nonzero().squeeze(-1)
        return rows, self._guess(A[rows], s[rows], True)

    def _guess(self, A: Tensor, s: Tensor, compiled_guess: bool) -> Tensor:
        """The network's guess for ``A`` (each matrix multiplied by ``s`` for the network), in
        A's dtype: ``s * net(s A)``."""
        if bool((s != 1).any()):
            s = s[:, None, None]
            return self._predict(A * s, compiled_guess).to(A.dtype) * s
        return self._predict(A, compiled_guess).to(A.dtype)

    def _predict(self, A: Tensor, compiled_guess: bool = True) -> Tensor:
        if self._compiled is not None and compiled_guess:
            X = self._compiled.predict(A)
            if X is not None:
                return X
        if self.guess_dtype is not None:
            return self.model.predict(A, guess_dtype=self.guess_dtype)
        return self.model.predict(A)
