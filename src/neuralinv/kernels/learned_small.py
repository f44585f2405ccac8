"""Certified learned inversion of n <= 4 matrices in one compiled loop (``Learned(compile=True)``).

For a model whose members are all ``correction`` networks (the linear approximation
``C - C D C`` around a Ball's center plus a small MLP ``g``), this writes the whole learned
path of one matrix entry by entry over (B,) vectors (as the retired inductor closed-form
kernel did for the closed form): the region test, every member's guess and their mean, up to ``steps``
Newton-Schulz steps with the stopping rule of
:func:`neuralinv.methods.newton_schulz.refine_certified`, and the certificate of the iterate
where each matrix stops. Compiled by inductor it is one loop that reads each matrix once and
writes its answer and certificate once; run eagerly (the CPU twin of a GPU build) it gives the
same answers, thousands of small passes slower. :class:`FusedPath` is what
``Learned(compile=True)`` holds for such a model; :class:`CompiledGuess` (every member network
through ``torch.compile``) serves the other models.

A matrix is *accepted* only where the eager path would have answered it the same way from the
network: inside the ball (decided in float64 exactly as ``Ball.contains`` decides), first residual
``||I - X0 A||_1 < 1`` (contracting), and ratio ``< tol`` reached within ``steps`` steps before
any stall or divergence. Everything else -- rows outside the ball (scaling, fallback), guesses
that do not contract, slow or failing refinement -- is left to the eager path, which decides
exactly as before. Accepted answers differ from the eager ones only by the summation order of the guess
and of the products (last bits); their statuses follow from the same certificate rules.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ..certify import _ratio
from .compiled import (
    _OPTIONS,
    _WARMUP_BATCH,
    CompiledKernel,
    compile_kernel,
    describe,
    residual_norms,
)

#: Inductor options for this kernel: its default caps a fused loop at 64 operations, which
#: splits the 3-step 3x3 kernel into three loops passing temporaries through memory; the
#: raised cap keeps it one loop (measurements: docs/performance.md, attempt 38).
OPTIONS = {"max_fusion_size": 4096}

#: Largest number of g weights (all members together) the kernel unrolls: every weight is
#: one multiply-add per matrix and a few lines of generated code, so a wide ensemble (such as
#: ``builtin:ball3``'s 3 x 6,633) would compile for minutes and run slower than its matmuls.
MAX_UNROLLED_WEIGHTS = 1024

_ACTIVATIONS: dict[type[nn.Module], Callable[[Tensor], Tensor]] = {
    nn.ReLU: torch.relu,
    nn.SiLU: torch.nn.functional.silu,
    nn.GELU: torch.nn.functional.gelu,
    nn.Tanh: torch.tanh,
}


@dataclass(frozen=True)
class Plan:
    """What the kernel unrolls for one model: sizes, activation, stopping rule, region bound.

    layers: (out, in) of g's linear layers (the same for every member).
    radius: the ball's radius (its center is the first tensor argument, in float64).
    dtype:  the batches it runs on (the model's dtype; its weights are in it).
    """

    n: int
    members: int
    layers: tuple[tuple[int, int], ...]
    activation: str
    steps: int
    tol: float
    radius: float
    dtype: torch.dtype


@dataclass(frozen=True)
class Weights:
    """The kernel's tensor arguments (region center, then each member's buffers and g's layers),
    compared and hashed by a digest of their values, so equal models share one compiled kernel."""

    digest: str
    tensors: tuple[Tensor, ...] = field(compare=False, repr=False)


def plan(model: Any, region: Any, dtype: torch.dtype, *, steps: int, tol: float) -> tuple[Plan, Weights] | str:
    """The kernel's plan and its tensor arguments for ``model``, or why it cannot be fused."""
    from ..learned.models.correction import Correction
    from ..regions import Ball

    if not isinstance(region, Ball):
        return "the model's region is not a Ball"
    members = getattr(model, "members", None)
    if not members or not all(isinstance(m, Correction) for m in members):
        return "fused only for models whose members are all 'correction' networks"
    n = int(model.n)
    if n > 4:
        return f"fused only for n <= 4, this model is {n}x{n}"
    shapes, acts = [], set()
    for m in members:
        mods = list(m.g.net)
        linears = [x for x in mods if isinstance(x, nn.Linear)]
        acts |= {type(x) for x in mods if not isinstance(x, nn.Linear)}
        shapes.append(tuple((lin.out_features, lin.in_features) for lin in linears))
    if len(set(shapes)) != 1 or len(acts) > 1 or not acts <= set(_ACTIVATIONS):
        return "members differ in shape or use an activation the kernel does not unroll"
    weights = sum(o * i for o, i in shapes[0]) * len(members)
    if weights > MAX_UNROLLED_WEIGHTS:
        return f"g has {weights} weights in all, more than the kernel unrolls ({MAX_UNROLLED_WEIGHTS})"
    activation = acts.pop().__name__ if acts else "none"
    args: list[Tensor] = [region.center.to(torch.float64).flatten()]
    for m in members:
        args += [m.center.to(dtype).flatten(), m.center_inverse.to(dtype).flatten(),
                 m.in_scale.to(dtype), m.out_scale.to(dtype)]
        for lin in (x for x in m.g.net if isinstance(x, nn.Linear)):
            args += [lin.weight.detach().to(dtype), lin.bias.detach().to(dtype)]
    p = Plan(n, len(members), shapes[0], activation, steps, float(tol), float(region.radius),
             dtype)
    tensors = tuple(a.contiguous() for a in args)
    h = hashlib.sha256()
    for t in tensors:
        h.update(f"{t.dtype}{t.device}{tuple(t.shape)}".encode())
        h.update(t.detach().cpu().numpy().tobytes())
    return p, Weights(h.hexdigest(), tensors)


@functools.cache
def compiled(p: Plan, weights: Weights) -> CompiledKernel:
    """The kernel for ``p`` compiled once per process and per model (the same weights share it:
    a method rebuilt from the same model for every call does not compile again)."""
    n = p.n
    center = weights.tensors[0].reshape(n, n).to(p.dtype)
    example = center.repeat(_WARMUP_BATCH, 1, 1)
    return compile_kernel(
        make_kernel(p), example, *weights.tensors,
        name=f"learned_small_n{n}_{weights.digest[:16]}", options=OPTIONS,
    )


def make_kernel(p: Plan) -> Callable[..., tuple[Tensor, ...]]:
    """``kernel(A, *args) -> (X, accepted, ratio, rcond, iterations)`` for a contiguous
    (B, n, n) batch; ``args`` from :func:`plan`. Rows not accepted hold meaningless values."""
    act = _ACTIVATIONS[getattr(nn, p.activation)] if p.activation != "none" else None
    n, nn_ = p.n, p.n * p.n

    def learned_small(A: Tensor, *args: Tensor) -> tuple[Tensor, ...]:
        B = A.shape[0]
        e = torch.finfo(A.dtype).eps
        a = [A[:, i, j] for i in range(n) for j in range(n)]
        region_c, rest = args[0], args[1:]
        dist = None
        for k in range(nn_):  # Ball.contains: float64 differences, their largest, <= radius
            dk = (a[k].to(torch.float64) - region_c[k]).abs()
            dist = dk if dist is None else torch.maximum(dist, dk)
        inside = dist <= p.radius
        total = None
        per = 4 + 2 * len(p.layers)
        for m in range(p.members):
            cen, cinv, s_in, s_out = rest[m * per: m * per + 4]
            lin = rest[m * per + 4: (m + 1) * per]
            d = [a[k] - cen[k] for k in range(nn_)]
            # Correction.linear: C - (C D) C, in that order.
            cd = [sum_of([cinv[i * n + k] * d[k * n + j] for k in range(n)])
                  for i in range(n) for j in range(n)]
            x = [cinv[i * n + j] - sum_of([cd[i * n + k] * cinv[k * n + j] for k in range(n)])
                 for i in range(n) for j in range(n)]
            h = [v / s_in for v in d]
            for li, (out, inp) in enumerate(p.layers):
                W, b = lin[2 * li], lin[2 * li + 1]
                h = [b[o] + sum_of([W[o, i] * h[i] for i in range(inp)]) for o in range(out)]
                if act is not None and li < len(p.layers) - 1:
                    h = [act(v) for v in h]
            x = [xk + s_out * hk for xk, hk in zip(x, h)]
            total = x if total is None else [t + xk for t, xk in zip(total, x)]
        x = total if p.members == 1 else [t / p.members for t in total]
        # Newton-Schulz with refine_certified's rule: stop at the first step whose ratio is below
        # tol; a stall (step >= 2, residual not shrinking, below 1) or a divergence stops first.
        # A stopped matrix keeps its iterate (so its last residual and ratio are those of the
        # answer): no history of iterates, which inductor would have to keep in buffers.
        accepted = torch.zeros(B, dtype=torch.bool, device=A.device)
        stopped = accepted
        iters = torch.zeros(B, dtype=torch.int32, device=A.device)
        prev = contracted = ratio = rc = None
        for step in range(p.steps + 1):
            E, num, norm_a, norm_x = residual_norms(x, a, n)
            ratio = _ratio(num, n * norm_a * norm_x * e)
            rc = 1.0 / (norm_a * norm_x)
            if step == 0:
                contracted = num < 1
            other = ~torch.isfinite(num) | (num > 1e6)
            if step >= 2:
                other = other | ((num >= prev) & (num < 1))
            accepted = accepted | ((ratio < p.tol) & ~stopped)
            stopped = stopped | accepted | other
            if step < p.steps:
                # X + E X where still running
                x = [torch.where(stopped, x[i * n + j],
                                 x[i * n + j] + sum_of([E[i * n + k] * x[k * n + j] for k in range(n)]))
                     for i in range(n) for j in range(n)]
                iters = torch.where(stopped, iters, iters + 1)
            prev = num
        accepted = accepted & inside & contracted
        X = torch.stack(x, dim=-1).reshape(B, n, n)
        return X, accepted, ratio, rc, iters

    return learned_small


def sum_of(terms: list[Tensor]) -> Tensor:
    """Left-to-right sum (a fixed order, so compiled and eager round alike)."""
    s = terms[0]
    for t in terms[1:]:
        s = s + t
    return s


class FusedResult(NamedTuple):
    """The fused kernel's answer for a batch: rows not ``accepted`` hold meaningless values."""

    X: Tensor
    accepted: Tensor
    ratio: Tensor
    rcond: Tensor
    iterations: Tensor


class FusedPath:
    """The whole learned path of a small ``correction`` model as one compiled kernel, for
    batches in the model's dtype and on its device; compiled on first use (once per process
    and model). The first failure is kept in ``failed`` and the eager path answers from then on."""

    def __init__(self, plan: Plan, weights: Weights):
        self.plan, self.weights = plan, weights
        self.failed: str | None = None

    @classmethod
    def for_model(cls, model: Any, *, steps: int, tol: float) -> FusedPath | None:
        """The fused path of ``model``, or None where the kernel cannot take it (see :func:`plan`)."""
        if not hasattr(model, "members") or not hasattr(model, "dtype"):
            return None
        got = plan(model, model.region, model.dtype, steps=steps, tol=tol)
        return None if isinstance(got, str) else cls(*got)

    def __call__(self, A: Tensor) -> FusedResult | None:
        """The kernel's answer, or None where the eager path should answer instead."""
        device = self.weights.tensors[0].device
        if self.failed is not None or A.dtype != self.plan.dtype or A.device != device:
            return None
        out, reason = compiled(self.plan, self.weights)(A)
        if out is None:
            self.failed = reason
            return None
        return FusedResult(*out)


class CompiledGuess:
    """``model.predict`` with each member network compiled (``Learned(compile=True)`` for models
    the fused kernel cannot take).

    Same arithmetic as ``LearnedInverse.predict`` (members in the model's dtype, their mean),
    each member run through ``torch.compile`` with the options of :mod:`.compiled`. The first
    failure is kept in ``failed`` and the eager ``predict`` answers from then on.
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


#: Newton-Schulz steps inside the fused kernel: the fewest for which it settles nearly every
#: matrix of the 3x3 default ball, so the eager path rarely runs (docs/performance.md, attempt 38).
FUSED_STEPS = 3


class CompiledLearned:
    """What ``Learned(compile=True)`` holds for its model: the fused kernel where the model
    and the options allow it (``refine`` and ``check_region``, see :func:`plan`), and the
    compiled member networks for the guesses of everything else."""

    def __init__(self, model: Any, *, refine: bool, check_region: bool, max_iter: int, tol: float):
        self.guess = CompiledGuess(model) if hasattr(model, "members") else None
        self.fused = None
        if refine and check_region:
            self.fused = FusedPath.for_model(model, steps=min(max_iter, FUSED_STEPS), tol=tol)

    def run_fused(self, A: Tensor) -> FusedResult | None:
        return self.fused(A) if self.fused is not None else None

    def predict(self, A: Tensor) -> Tensor | None:
        """The compiled guess, or None where the eager ``predict`` should answer."""
        return self.guess(A) if self.guess is not None else None

    @property
    def guess_compiled(self) -> bool:
        return self.guess is not None and self.guess.failed is None

    @property
    def failed(self) -> str | None:
        """Why a compiled part fell back to the eager path (the first failure), or None."""
        for part in (self.fused, self.guess):
            if part is not None and part.failed:
                return part.failed
        return None
