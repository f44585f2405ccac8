"""``learned``: a trained network's first guess, refined by Newton-Schulz, with an exact fallback.

A network can only approximate the inverse on the region it was trained on (the paper's
Theorems 3.7-3.9), and even there its guess is far from machine precision. So the guess is
used as the *seed* of Newton-Schulz, which converges quadratically from any seed X0 with
``rho(I - A X0) < 1``; every answer then carries the same LAPACK certificate as an exact method.
Where that cannot work the exact fallback answers instead, and the labels say so:

* inputs outside the model's region (after trying to scale them into it): fallback, status
  ``OUT_OF_REGION`` (``inv`` warns :class:`~neuralinv.OutOfRegionWarning`); a singular input
  keeps the fallback's ``SINGULAR``;
* in-region inputs whose guess does not contract, or whose refinement does not reach ``tol``:
  fallback, with the fallback's own status.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from .._validate import int_at_least, positive
from ..certify import (
    PASS_RATIO,
    SMALL_N,
    certificate,
    contracts,
    identity_residual,
    norm1,
    trusted,
)
from ..errors import InputError
from ..kernels import learned_small
from ..kernels.compiled import _OPTIONS, describe
from ..regions import Ball
from ..solution import Solution, Status
from .base import Method, Partial, fill_from, labels, ok_status
from .newton_schulz import refine_certified

#: Matrices per chunk of the network path: about 2^20 numbers (4 MB in float32), so a chunk's
#: guess, residuals and iterates stay in cache and their memory is reused, instead of every
#: temporary of a large batch being freshly page-faulted (a 100,000 x 16 x 16 bmm took 54 ms
#: into a new tensor and 11 ms into a reused one: docs/performance.md, attempt 26).
CHUNK_ELEMENTS = 1 << 19

#: Newton-Schulz steps inside the fused kernel (``compile=True``, n <= 4 ``correction``
#: models). On the 3x3 default ball a width-8 g leaves 98.7% of matrices done after 2 steps
#: and the rest after 3; with 2 steps in the kernel (1.7 ms per 100,000) the eager path for
#: that 1.3% cost more than a third step for all (2.7 ms; docs/performance.md, attempt 38).
FUSED_STEPS = 3


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
    compile:      opt-in compiled paths (``torch.compile``, inductor), because the first call in
                  a process compiles for seconds to half a minute. For a model of ``correction``
                  members with a small g on an n <= 4 ball (``builtin:ball3-fast``), with
                  ``refine`` and ``check_region``, the whole path -- region test, guess,
                  Newton-Schulz (up to 3 steps), certificate -- is one fused kernel
                  (:mod:`neuralinv.kernels.learned_small`; 1.1-1.7x torch.linalg.inv on
                  100,000 3x3 matrices here, docs/performance.md, attempt 38); matrices it cannot
                  settle (outside the ball, a guess that does not contract, more steps needed)
                  take the eager path.
                  Other models get their member networks compiled for the guess (attempt 37).
                  Answers may differ from the eager ones in the last bits; statuses follow the
                  same rules. Batches in another dtype or on another device than the model's, a
                  batch of one (guess only) or a failed compilation use the eager code, and
                  ``stats["compile_error"]`` says why.
    """

    model: Any = None
    refine: bool = True
    tol: float = 10.0
    max_iter: int = 30
    fallback: Any = "lu"
    check_region: bool = True
    scale: bool = True
    compile: bool = False

    name = "learned"

    def __post_init__(self) -> None:
        super().__post_init__()  # the bool options
        model = self.model
        if model is None:
            raise InputError(
                "method 'learned' needs model=<LearnedInverse, model directory or 'builtin:NAME'>"
            )
        if isinstance(model, (str, os.PathLike)):
            from ..learned_inverse import LearnedInverse

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
        from . import resolve  # the registry imports this module

        fallback = resolve(self.fallback)
        if isinstance(fallback, Learned):
            raise InputError("fallback must be an exact method such as 'lu', not a learned one")
        object.__setattr__(self, "fallback", fallback)
        guess = _CompiledGuess(model) if self.compile and hasattr(model, "members") else None
        object.__setattr__(self, "_compiled", guess)
        fused = None
        if self.compile and self.refine and self.check_region:
            fused = _FusedPath.for_model(model, steps=min(self.max_iter, FUSED_STEPS), tol=self.tol)
        object.__setattr__(self, "_fused", fused)

    @property
    def n(self) -> int:
        return int(self.model.n)

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
        if A.shape[-1] != self.n:
            k = A.shape[-1]
            raise InputError(f"this learned model inverts {self.n}x{self.n} matrices, got {k}x{k}")
        B, n, dev = A.shape[0], A.shape[-1], A.device
        got = self._fused_rows(A) if self._fused is not None else None
        rows, fused = got if got is not None else (self._rows(A, compiled_guess=True), None)
        X, inside, s, use, contracted, iters, cert = rows
        # X, the statuses and the certificate are ours: the fallback writes into them.
        part = Partial(X, ok_status(B, dev), None, {}, cert)
        part = fill_from(A, part, ~use, self.fallback, self.name, in_place=True)
        status = part.status
        out = ~inside
        if bool(out.any()):
            # OUT_OF_REGION means "answered by the fallback, and that answer is certified"; a
            # fallback answer that fails keeps the fallback's own status (SINGULAR, or OK that
            # the certificate turns into ILL_CONDITIONED), so inv() raises or warns the right way.
            o = out.nonzero().squeeze(-1)
            ro, rco = (cert[0][o], cert[1][o]) if cert is not None else certificate(A[o], X[o])
            passes = trusted(ro, rco, n, A.dtype)
            mark = (status[o] == int(Status.OK)) & passes
            status[o[mark]] = int(Status.OUT_OF_REGION)
        in_region, network = int(inside.sum()), int(use.sum())
        stats = {
            "in_region": in_region,
            "scaled": int((inside & (s != 1)).sum()) if in_region else 0,
            "out_of_region": B - in_region,
            "contracted": int(contracted.sum()),
            "refined": network if self.refine else 0,
            "network": network,
            "fallbacks": B - network,
            "iterations": iters,
            "max_iterations": int(iters.max()) if B else 0,
            "compiled": fused is not None
            or (self._compiled is not None and self._compiled.failed is None),
            "fused": fused or 0,
        }
        failed = [f.failed for f in (self._fused, self._compiled) if f is not None and f.failed]
        if failed:
            stats["compile_error"] = failed[0]
        names = labels(B, self.name) if part.method is None else part.method
        return Partial(X, status, names, stats, part.certificate)

    def _rows(self, A: Tensor, *, compiled_guess: bool) -> _Rows:
        """Region test, guess and refinement of every matrix, chunk by chunk (the eager path)."""
        B, n, dev = A.shape[0], A.shape[-1], A.device
        inside = torch.ones(B, dtype=torch.bool, device=dev)
        s = torch.ones(B, dtype=A.dtype, device=dev)
        # Every row of X is written: by the network path below or by the fallback.
        X = torch.empty_like(A)
        iters = torch.zeros(B, dtype=torch.int32, device=dev)
        use = torch.zeros(B, dtype=torch.bool, device=dev)  # answered by the network
        contracted = torch.zeros(B, dtype=torch.bool, device=dev)
        # Refinement computes each answer's certificate on the way (n > SMALL_N: exactly as
        # certify.certificate does; a strided A would round its products differently, so
        # then Method.invert certifies as usual); fallback rows get theirs in _invert.
        reuse = self.refine and n > SMALL_N and A.is_contiguous()
        ratio = torch.empty(B, dtype=A.dtype, device=dev) if reuse else None
        rc = torch.empty(B, dtype=A.dtype, device=dev) if reuse else None
        step = max(1, CHUNK_ELEMENTS // max(1, n * n))
        work: dict = {}  # the chunks' temporaries, reused from chunk to chunk
        for lo in range(0, B, step):
            sl = slice(lo, min(B, lo + step))
            if self.check_region:
                inside[sl], s[sl] = into_region(
                    self.model.region, A[sl], scale=self.scale, work=work
                )
            self._network(A[sl], inside[sl], s[sl], X[sl], use[sl], contracted[sl], iters[sl],
                          (ratio[sl], rc[sl]) if reuse else None, work, compiled_guess)
        return _Rows(X, inside, s, use, contracted, iters, (ratio, rc) if reuse else None)

    def _fused_rows(self, A: Tensor) -> tuple[_Rows, int] | None:
        """The fused kernel's rows (``compile=True``, see kernels.learned_small), the rows it did
        not accept completed by the eager path, and how many it accepted; None where the kernel
        cannot run on A."""
        out = self._fused(A)
        if out is None:
            return None
        X, accepted, ratio, rc, iters = out
        inside, use, contracted = accepted.clone(), accepted.clone(), accepted.clone()
        s = torch.ones(A.shape[0], dtype=A.dtype, device=A.device)
        rest = (~accepted).nonzero().squeeze(-1)
        if rest.numel():
            sub = self._rows(A[rest], compiled_guess=False)
            for full, part in zip((X, inside, s, use, contracted, iters), sub[:6]):
                full[rest] = part
            # n <= 4 here, so _rows leaves certificates to the caller: the network's rows get
            # theirs now, fallback rows theirs from fill_from.
            if bool(sub.use.any()):
                mine = rest[sub.use]
                ratio[mine], rc[mine] = certificate(A[mine], X[mine])
        return _Rows(X, inside, s, use, contracted, iters, (ratio, rc)), int(accepted.sum())

    def _predict(self, A: Tensor, compiled_guess: bool = True) -> Tensor:
        if self._compiled is not None and compiled_guess:
            X = self._compiled(A)
            if X is not None:
                return X
        return self.model.predict(A)

    def _network(
        self,
        A: Tensor,
        inside: Tensor,
        s: Tensor,
        X: Tensor,
        use: Tensor,
        contracted: Tensor,
        iters: Tensor,
        cert: tuple[Tensor, Tensor] | None,
        work: dict,
        compiled_guess: bool,
    ) -> None:
        """Guess and refine one chunk's in-region matrices, writing into the chunk's views."""
        every = bool(inside.all())
        idx = None if every else inside.nonzero().squeeze(-1)
        if idx is not None and idx.numel() == 0:
            return
        Ai = A if every else A[idx]
        si = s if every else s[idx]
        if bool((si != 1).any()):
            si = si[:, None, None]
            X0 = self._predict(Ai * si, compiled_guess).to(A.dtype) * si
        else:
            X0 = self._predict(Ai, compiled_guess).to(A.dtype)
        if self.refine:
            r = refine_certified(
                Ai, X0, tol=self.tol, max_iter=self.max_iter, screen=guess_contracts,
                out=X if every else None, work=work,
            )
            Xi, good, con, it = r.X, r.converged, r.contracted, r.iterations
        else:
            Xi, con, it = X0, guess_contracts(Ai, X0), None
            good = torch.ones_like(con)
        if every:
            if Xi is not X:
                X.copy_(Xi)
            use.copy_(good)
            contracted.copy_(con)
            if it is not None:
                iters.copy_(it)
            if cert is not None:
                cert[0].copy_(r.certificate[0])
                cert[1].copy_(r.certificate[1])
            return
        X[idx] = Xi
        use[idx] = good
        contracted[idx] = con
        if it is not None:
            iters[idx] = it
        if cert is not None:
            cert[0][idx] = r.certificate[0]
            cert[1][idx] = r.certificate[1]


class _Rows(NamedTuple):
    """Per-matrix outcome of the network path: answers and what decided them."""

    X: Tensor
    inside: Tensor
    s: Tensor
    use: Tensor
    contracted: Tensor
    iters: Tensor
    cert: tuple[Tensor, Tensor] | None


class _FusedPath:
    """The whole learned path of a small ``correction`` model as one compiled kernel
    (:mod:`neuralinv.kernels.learned_small`), for batches in the model's dtype and on its
    device; compiled on first use (once per process and model). The first failure is kept in
    ``failed`` and the eager path answers from then on."""

    def __init__(self, plan: Any, weights: Any):
        self.plan, self.weights = plan, weights
        self.failed: str | None = None

    @classmethod
    def for_model(cls, model: Any, *, steps: int, tol: float) -> _FusedPath | None:
        if not hasattr(model, "members") or not hasattr(model, "dtype"):
            return None
        got = learned_small.plan(model, model.region, model.dtype, steps=steps, tol=tol)
        return None if isinstance(got, str) else cls(*got)

    def __call__(self, A: Tensor) -> tuple[Tensor, ...] | None:
        device = self.weights.tensors[0].device
        if self.failed is not None or A.dtype != self.plan.dtype or A.device != device:
            return None
        out, reason = learned_small.compiled(self.plan, self.weights)(A)
        if out is None:
            self.failed = reason
        return out


class _CompiledGuess:
    """``model.predict`` with each member network compiled (see ``Learned.compile``).

    Same arithmetic as ``LearnedInverse.predict`` (members in the model's dtype, their mean),
    each member run through ``torch.compile`` with the options of ``kernels.compiled``. The
    first failure is kept in ``failed`` and the eager ``predict`` answers from then on.
    """

    def __init__(self, model: Any):
        self.model = model
        self.fns = [torch.compile(m, dynamic=True, options=_OPTIONS) for m in model.members]
        self.failed: str | None = None

    def __call__(self, A: Tensor) -> Tensor | None:
        """The guess, or None where the eager ``predict`` should answer instead."""
        members = self.model.members
        device = next(members[0].parameters()).device
        # Dynamo specialises batch sizes 0 and 1: a batch of one would recompile.
        if self.failed is not None or A.shape[0] < 2 or A.device != device:
            return None
        try:
            flat = A.detach().contiguous().to(self.model.dtype)
            total = None
            for fn in self.fns:
                y = fn(flat)
                total = y if total is None else total + y
            return (total / len(self.fns)).to(A.dtype)
        except Exception as exc:  # no compiler, unsupported op, ...: the eager guess answers
            self.failed = describe(exc)
            return None


def guess_contracts(A: Tensor, X: Tensor) -> Tensor:
    """Whether Newton-Schulz from X converges, decided cheaply where possible.

    Newton-Schulz converges iff the spectral radius of ``E = I - A X`` is below 1, and any
    induced norm bounds it. ``||E||_2 <= min(||E||_F, sqrt(||E||_1 ||E||_inf))`` costs a few
    passes over E; only where that bound is >= 1 is the exact 2-norm (an SVD per matrix,
    :func:`neuralinv.certify.contracts`) computed, so a good model pays no SVD at all and the
    decision still agrees with the documented test ``||I - A X||_2 < 1``.
    """
    E = identity_residual(X, A)  # I - A X
    fro = torch.linalg.matrix_norm(E, ord="fro")
    bound = torch.minimum(fro, torch.sqrt(norm1(E) * norm1(E.mT)))
    ok = bound < 1
    unsure = (~ok & torch.isfinite(bound)).nonzero().squeeze(-1)
    if unsure.numel():
        ok[unsure] = contracts(A[unsure], X[unsure])
    return ok


def into_region(
    region: Any, A: Tensor, *, scale: bool = True, work: dict | None = None
) -> tuple[Tensor, Tensor]:
    """``(inside, s)``: which matrices the network may answer, and the positive scalar each is
    multiplied by first (1 for matrices already in the region).

    ``s A`` is checked with ``region.contains`` on exactly the tensor the network will see, so
    a scaled input is used only where it really lies in the region.
    """
    B = A.shape[0]
    inside = region_contains(region, A, work=work)
    s = torch.ones(B, dtype=A.dtype, device=A.device)
    if not scale:
        return inside, s
    out = (~inside).nonzero().squeeze(-1)
    if out.numel() == 0:
        return inside, s
    cand = candidate_scale(region, A[out].to(torch.float64)).to(A.dtype)
    usable = torch.isfinite(cand) & (cand > 0)
    cand = torch.where(usable, cand, torch.ones_like(cand))
    fits = usable & region.contains(A[out] * cand[:, None, None]).to(A.device)
    s[out[fits]] = cand[fits]
    inside[out[fits]] = True
    return inside, s


def region_contains(region: Any, A: Tensor, *, work: dict | None = None) -> Tensor:
    """``region.contains(A)`` on A's device, for a float32 batch in a Ball decided mostly in float32.

    ``Ball.contains`` compares ``|A_ij - center_ij|`` with the radius in float64, which costs a
    float64 copy of the batch (at 100,000 16x16 matrices about 5x the float32 test). In float32,
    ``d = |fl(A - fl(center))|`` is within ``u d + delta`` of the exact distance (u: a few units
    of float32 rounding, delta: the largest rounding of the center to float32), so a row whose
    largest d is below the radius by more than that margin is inside, one above it by more is
    outside, exactly as ``contains`` decides; only rows in that thin band (none, typically) are
    passed to ``contains`` itself. Other regions and dtypes: ``contains``. ``work``: a dict
    whose buffer for ``A - center`` is reused across calls (chunks of one batch).
    """
    if not isinstance(region, Ball) or A.dtype != torch.float32 or A.shape[0] == 0:
        return region.contains(A).to(A.device)
    c64 = region.center.to(A.device)
    c = c64.to(A.dtype)
    delta = float((c.to(torch.float64) - c64).abs().max())
    u = 8 * torch.finfo(A.dtype).eps  # generous: subtraction, comparison and threshold roundings
    r = float(region.radius)
    if work is None:
        diff = A - c
    else:
        buf = work.get("region")
        if buf is None or buf.numel() < A.numel() or buf.dtype != A.dtype or buf.device != A.device:
            buf = work["region"] = torch.empty(A.numel(), dtype=A.dtype, device=A.device)
        diff = torch.sub(A, c, out=buf[: A.numel()].view(A.shape))
    d = diff.abs_().flatten(-2).amax(-1)
    inside = d < (r * (1 - u) - delta) / (1 + u)
    unsure = (~inside & (d <= (r * (1 + u) + delta) / (1 - u))).nonzero().squeeze(-1)
    if unsure.numel():
        inside[unsure] = region.contains(A[unsure]).to(A.device)
    return inside


def candidate_scale(region: Any, A: Tensor) -> Tensor:
    """The scalar that best brings each matrix into the region (float64; NaN where none can).

    Box [low, high]: the largest s keeping every entry in range. The Box filters
    (``|det| > min_abs_det``, ``sigma_min > min_sigma``) grow with s (as s^n and s), so if any
    admissible s passes them this one does; a hair below the bound so rounding stays inside.
    Ball {A0 + D : |D_ij| <= r}: the s closest to the center along the ray, in Frobenius norm
    (``<A, A0> / <A, A>``), clamped into the interval of s with every ``|s a_ij - c_ij| <= r``
    (the intersection of one interval per entry; empty means no scaling reaches the ball).
    Balls (a union): first ``sqrt(n) / ||A||_F``, the normalisation ``Balls.fit`` fits with;
    where that misses every ball, each ball's candidate, keeping the one deepest inside its ball.
    Other regions are not scaled.
    """
    kind = type(region).__name__
    nan = torch.full(A.shape[:1], float("nan"), dtype=torch.float64, device=A.device)
    if kind == "Box":
        a = A.flatten(1)
        inf = torch.full_like(a, float("inf"))
        # Upper limits on s from each entry; a zero entry imposes none.
        up = torch.where(a > 0, region.high / a, torch.where(a < 0, region.low / a, inf))
        lo = torch.where(a > 0, region.low / a, torch.where(a < 0, region.high / a, -inf))
        s_hi, s_lo = up.amin(1), lo.amax(1)
        s = s_hi * (1 - 1e-6)
        return torch.where((s_hi > 0) & torch.isfinite(s_hi) & (s >= s_lo), s, nan)
    if kind == "Ball":
        return _ball_scale(region.center, float(region.radius), A)
    if kind == "Balls":
        # First the scale the fit normalised by (``||s A||_F = sqrt(n)``, Balls.fit): one
        # scalar per matrix, and where it lands inside some ball (typically all of a fitted
        # workload) the per-ball intervals are not needed.
        n = A.shape[-1]
        norm = torch.linalg.matrix_norm(A, ord="fro")
        s0 = torch.where(norm > 0, n**0.5 / norm, nan)
        shrink = 1 - 1e-6  # the ball test is <= r: leave room for the rounding of s A
        rel0 = region.distances(A * s0.nan_to_num(0.0)[:, None, None]).amin(-1)
        best = torch.where(torch.isfinite(s0) & (rel0 <= shrink), s0, nan)
        rest = (~torch.isfinite(best)).nonzero().squeeze(-1)
        if rest.numel() == 0:
            return best
        best[rest] = _union_scale(region, A[rest])
        return best
    return nan


def _union_scale(region: Any, A: Tensor) -> Tensor:
    """Each ball's own candidate; keep, per matrix, the one that lands deepest inside its ball
    (relative distance ``max|s a - c| / r`` smallest), NaN where none lands inside."""
    best = torch.full(A.shape[:1], float("nan"), dtype=torch.float64, device=A.device)
    depth = torch.full_like(best, float("inf"))
    for ball in region.balls:
        sb = _ball_scale(ball.center, float(ball.radius), A)
        c = ball.center.to(device=A.device, dtype=torch.float64)
        rel = (A * sb.nan_to_num(0.0)[:, None, None] - c).abs().flatten(1).amax(1) / ball.radius
        better = torch.isfinite(sb) & (rel <= 1) & (rel < depth)
        best = torch.where(better, sb, best)
        depth = torch.where(better, rel, depth)
    return best


def _ball_scale(center: Tensor, r: float, A: Tensor) -> Tensor:
    """:func:`candidate_scale` for one ball ``{center + D : |D_ij| <= r}`` (float64; NaN: none)."""
    nan = torch.full(A.shape[:1], float("nan"), dtype=torch.float64, device=A.device)
    c = center.to(device=A.device, dtype=torch.float64).flatten()
    a = A.flatten(1)
    inf = torch.full_like(a, float("inf"))
    # |s a - c| <= r  <=>  (c - r) <= s a <= (c + r): one interval of s per entry.
    lo = torch.where(a > 0, (c - r) / a, torch.where(a < 0, (c + r) / a, -inf))
    up = torch.where(a > 0, (c + r) / a, torch.where(a < 0, (c - r) / a, inf))
    # A zero entry is admissible for every s iff |c| <= r; otherwise for none.
    zero_bad = ((a == 0) & (c.abs() > r)).any(1)
    s_lo, s_hi = lo.amax(1).clamp_min(0), up.amin(1)
    # Stay inside against rounding: s * A is formed in the input's dtype (float32 rounds
    # by ~6e-8 relative), so the margin is relative to s as well as to the interval.
    shrink = torch.minimum((s_hi - s_lo) / 4, 1e-6 * (s_hi - s_lo) + 1e-6 * s_hi.abs())
    aa = (a * a).sum(1)
    proj = torch.where(aa > 0, (a * c).sum(1) / aa, nan)
    s = torch.minimum(torch.maximum(proj, s_lo + shrink), s_hi - shrink)
    ok = (s_hi > s_lo) & (s > 0) & ~zero_bad & torch.isfinite(s)
    return torch.where(ok, s, nan)


def network_counts(sol: Solution) -> dict[str, int]:
    """How many answers came from the network after refinement, and how many fell back.

    Counts the ``learned`` labels of a Solution from this method. (For ``block`` over a learned
    base, the label ``block`` means every leaf came from the network, ``block+lu`` that some
    did not; per-leaf counts are in ``stats['leaves']``.)
    """
    labels = np.asarray(sol.method).astype(str).ravel()
    network = int((labels == Learned.name).sum())
    return {"network": network, "fallback": int(labels.size - network)}
