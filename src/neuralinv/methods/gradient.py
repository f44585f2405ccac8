"""Inversion by gradient descent with a torch.optim optimizer (the blog's method).

A teaching and reference method: it shows that an inverse is the minimiser of ``||X A - I||^2``
and how optimizers behave on that quadratic. Its cost grows with ``cond(A)^2`` (plain descent)
or ``cond(A)`` (momentum), so use ``lu`` or ``newton_schulz`` for real work.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .._validate import int_at_least, one_of, positive, random_seed, ratio_tolerance
from ..certify import PASS_RATIO, max_exponent, norm1, pow2_scale, residual_ratio
from ..errors import InputError
from ..solution import Status
from .base import Method
from .partial import Partial


def optimizers() -> dict[str, type[torch.optim.Optimizer]]:
    """Every optimizer class in ``torch.optim``, by lower-case name ("adam", "sgd", "lbfgs", ...)."""
    return {
        name.lower(): cls
        for name, cls in vars(torch.optim).items()
        if inspect.isclass(cls)
        and issubclass(cls, torch.optim.Optimizer)
        and cls is not torch.optim.Optimizer
    }


def resolve_optimizer(optimizer: Any) -> type[torch.optim.Optimizer]:
    """An optimizer class from a name (case-insensitive) or the class itself."""
    if inspect.isclass(optimizer) and issubclass(optimizer, torch.optim.Optimizer):
        return optimizer
    known = optimizers()
    if isinstance(optimizer, str) and optimizer.lower() in known:
        return known[optimizer.lower()]
    raise InputError(
        f"unknown optimizer {optimizer!r}; give a torch.optim.Optimizer subclass or one of: "
        f"{', '.join(sorted(known))}"
    )


def norm_bound(A: Tensor) -> Tensor:
    """``sqrt(||A||_1 ||A||_inf) >= ||A||_2`` per matrix (1 for a zero matrix), at any scale.

    Where the product of the norms leaves the normal range (float32 entries beyond about
    2^±63) it is formed from ``2^-e A`` (e from A's largest entry) and multiplied back by 2^e.
    """
    n1 = norm1(A)
    p = n1 * norm1(A.mT)
    s = p.sqrt()
    tiny, huge = torch.finfo(A.dtype).tiny, torch.finfo(A.dtype).max
    extreme = ((p < tiny) & (n1 > 0)) | (p > huge)
    if bool(extreme.any()):
        e = max_exponent(A)
        S = pow2_scale(A, -e)
        alt = pow2_scale((norm1(S) * norm1(S.mT)).sqrt()[..., None, None], e)[..., 0, 0]
        s = torch.where(extreme, alt, s)
    return torch.where(s > 0, s, torch.ones_like(s))


_HALF = math.sqrt(0.5)


@dataclass(frozen=True)
class Gradient(Method):
    """Minimise ``||X A - I||_F^2`` over X with a torch.optim optimizer.

    optimizer: a torch.optim optimizer name ("sgd", "adam", "lbfgs", ...) or class.
    lr:        its (initial) learning rate (> 0); None: 0.9 for SGD and L-BFGS (the blog's
               setting), 0.1 for every other optimizer (Adam, AdamW, RMSprop, ...: their steps
               are normalised, so lr is a distance per step, and 0.9 overshoots on the scaled
               problem).
    options:   further keyword arguments of the optimizer. Defaults: SGD gets momentum 0.9;
               L-BFGS gets a strong Wolfe line search and tolerance_grad = tolerance_change =
               1e-300 (its own defaults, 1e-7 and 1e-9, stop it long before the certificate
               can hold: the certificate decides when to stop); AdamW gets weight_decay 0
               (weight decay moves the minimiser away from the inverse, so the certificate
               could never hold).
    schedule:  "plateau": halve the learning rate whenever the mean loss has not fallen by
               0.1% below its best for ``patience`` steps (torch's ReduceLROnPlateau rule, with
               factor 0.5 and a relative threshold). A fixed rate stalls the adaptive optimizers
               at a noise floor set by the rate (Adam at lr 0.1: a dget03 ratio of about 1e12 on
               a 4x4 of condition 10 after 2,000 steps); halving it on each plateau lets them
               descend to rounding level (L-BFGS stalls at a loss floor too). "none": the fixed
               rate (the blog's). "auto" (default): "none" for SGD, whose loss is not monotone
               under momentum, so the plateau rule halves a rate that converges (a 2x2 of
               condition 5 went from OK in 562 steps to NOT_CONVERGED after 2,000 with it),
               "plateau" for every other optimizer.
    patience:  steps without improvement before the rate is halved.
    restart:   "auto" (default): 50 for the losses "left" and "right", None for "both" (the
               change of variables below conditions one side only: the other side's residual
               ``A Z P`` is as badly conditioned as before). An int: re-precondition every
               ``restart`` steps, or sooner once the largest residual
               ``||I - X A||_1`` of the batch has fallen 10x since the last restart: the current
               answer P becomes a change of variables ``X = P + ((rho/t) Z P + rho W)/sqrt 2`` (rho: each
               matrix's residual ``||I - P A||_1``, t: the norm bound of ``P A``), and a fresh
               optimizer minimises the same loss, divided by rho^2, over Z and W from zero (W
               reaches directions that P nearly annihilates). The new problem's matrix ``P A``
               is close to I, so its condition is far below A's, and the division keeps its
               gradients of order 1 (Adam's ``eps`` would otherwise turn its steps into tiny SGD steps once
               the residual is small). Plain descent on ``||X A - I||^2`` needs about
               ``cond(A)^2`` steps (``cond(A)`` with momentum): 2,000 steps did not reach the
               certificate at condition 30-100 for any first-order optimizer; with restarts
               every 50 steps, adam, adamw, rmsprop, sgd and lbfgs reached it on every one of 144
               matrices (n = 4, 5, 6, 8; condition 10, 30, 100; float32 and float64) within 510 steps
               (docs/methods.md). None: one problem, the blog's method.
    steps:     at most this many optimizer steps.
    loss:      "left" ``||X A - I||^2``, "right" ``||A X - I||^2`` or "both" (their mean).
    init:      "transpose" (the scaled transpose ``A^T / (||A||_1 ||A||_inf)``, the Newton-Schulz
               seed), "zeros", or "random" (uniform [0, 1) as in the blog, from ``seed``).
    tol:       stop once every matrix's dget03 ratio ``||I - X A||_1 / (n ||A||_1 ||X||_1 eps)``
               is below tol (checked every step). Matrices whose ratio still fails the
               certificate (>= 30) after the last step are NOT_CONVERGED.

    Each matrix is first divided by ``s = sqrt(||A||_1 ||A||_inf) >= ||A||_2`` (formed without
    overflow, :func:`norm_bound`) so that the loss's curvature is at most 2 whatever the scale of A, and one learning rate suits every
    input (the loss value itself is unchanged: ``(X s)(A / s) = X A``). The batch is one
    optimisation problem whose loss is the sum of the per-matrix losses, so every matrix takes
    the same number of steps. ``stats["loss_history"]`` holds the mean per-matrix loss before
    each step and after the last.
    """

    optimizer: Any = "sgd"
    lr: float | None = None
    options: Mapping[str, Any] | None = None
    steps: int = 2000
    loss: str = "left"
    init: str = "transpose"
    seed: int = 0
    tol: float = 10.0
    schedule: str = "auto"
    patience: int = 10
    restart: int | str | None = "auto"
    _kwargs: dict = field(init=False, repr=False, compare=False, hash=False)

    name = "gradient"

    def __post_init__(self):
        cls = resolve_optimizer(self.optimizer)
        if self.lr is not None:
            positive("lr", self.lr)
        one_of("schedule", self.schedule, ("auto", "plateau", "none"))
        int_at_least("patience", self.patience, 1)
        if self.restart is not None and self.restart != "auto":
            if isinstance(self.restart, bool) or not isinstance(self.restart, int) or self.restart < 1:
                raise InputError(f"restart must be 'auto', None or an integer >= 1, got {self.restart!r}")
            if self.loss == "both":
                raise InputError(
                    "restart needs loss='left' or 'right' (the change of variables X = P + rho Z P "
                    "conditions one side only); use restart=None or 'auto' with loss='both'"
                )
        int_at_least("steps", self.steps, 1)
        one_of("loss", self.loss, ("left", "right", "both"))
        one_of("init", self.init, ("transpose", "zeros", "random"))
        random_seed("seed", self.seed)
        ratio_tolerance("tol", self.tol)
        if self.options is not None and not isinstance(self.options, Mapping):
            raise InputError(f"options must be a dict of optimizer arguments, got {self.options!r}")
        kwargs = dict(self._defaults(cls))
        kwargs.update(self.options or {})
        try:  # unknown or invalid optimizer arguments surface now, not mid-inversion
            cls([torch.zeros(1, requires_grad=True)], lr=self.rate, **kwargs)
        except (TypeError, ValueError) as exc:
            raise InputError(f"bad options for optimizer {cls.__name__}: {exc}") from None
        object.__setattr__(self, "_kwargs", kwargs)

    @property
    def rate(self) -> float:
        """The initial learning rate: ``lr``, or the optimizer's default here (see ``lr``)."""
        if self.lr is not None:
            return float(self.lr)
        cls = resolve_optimizer(self.optimizer)
        return 0.9 if cls in (torch.optim.SGD, torch.optim.LBFGS) else 0.1

    @property
    def plateau(self) -> bool:
        """Whether the rate is halved on plateaus: ``schedule="plateau"``, or ``"auto"`` with any
        optimizer but SGD."""
        if self.schedule == "auto":
            return resolve_optimizer(self.optimizer) is not torch.optim.SGD
        return self.schedule == "plateau"

    @property
    def restart_every(self) -> int | None:
        """Steps between restarts: ``restart``, with "auto" resolved (see ``restart``)."""
        if self.restart == "auto":
            return None if self.loss == "both" else 50
        return self.restart

    @staticmethod
    def _defaults(cls: type) -> dict[str, Any]:
        if cls is torch.optim.SGD:
            return {"momentum": 0.9}
        if cls is torch.optim.LBFGS:
            return {"line_search_fn": "strong_wolfe", "tolerance_grad": 1e-300, "tolerance_change": 1e-300}
        if cls is torch.optim.AdamW:
            return {"weight_decay": 0.0}
        return {}

    def initial(self, A: Tensor) -> Tensor:
        """The starting point for the scaled problem (each A divided by its norm bound)."""
        if self.init == "transpose":
            scale = norm1(A) * norm1(A.mT)
            return A.mT / torch.where(scale > 0, scale, torch.ones_like(scale))[:, None, None]
        if self.init == "zeros":
            return torch.zeros_like(A)
        g = torch.Generator(device=A.device).manual_seed(self.seed)
        return torch.rand(A.shape, generator=g, dtype=A.dtype, device=A.device)

    def objective(self, X: Tensor, A: Tensor, eye: Tensor, side: Tensor | None = None) -> Tensor:
        """The per-matrix losses (B,). ``side``: the product the residual test measures
        (``A @ X`` for the right loss, else ``X @ A``) when the caller has it already."""
        if self.loss == "right":
            return ((A @ X if side is None else side) - eye).square().sum(dim=(-2, -1))
        left = (X @ A if side is None else side) - eye
        if self.loss == "left":
            return left.square().sum(dim=(-2, -1))
        return 0.5 * (left.square() + (A @ X - eye).square()).sum(dim=(-2, -1))

    def _invert(self, A: Tensor) -> Partial:
        n = A.shape[-1]
        s = norm_bound(A)
        As = A / s[:, None, None]
        eye = torch.eye(n, dtype=A.dtype, device=A.device)
        cls = resolve_optimizer(self.optimizer)
        # The unknowns are Z and W; the answer X = P + ((rho / t) Z P + rho W) / sqrt(2), per
        # matrix, with rho the residual of P and t = norm_bound(P A): divided by rho^2, the loss
        # is ||(Z (P A / t) + W A) / sqrt(2) - E||^2 with ||E||_1 = 1 and curvature <= 2, as for
        # the first problem (curvature 4 made SGD's momentum diverge on an SPD 3x3). Z is the preconditioned
        # part; W reaches the directions that P nearly annihilates, which Z P cannot (adam lost a
        # direction that way and stalled at loss 1 for 1,900 steps). Before the first restart
        # P = 0 and rho = t = 1, with Z standing for X itself (the blog's problem).
        P: Tensor | None = None
        rho = step = torch.ones_like(s)
        Z = self.initial(As).contiguous().requires_grad_(True)
        W = torch.zeros_like(A).requires_grad_(True)

        def answer() -> Tensor:
            if P is None:
                return Z
            side = Z @ P if self.loss != "right" else P @ Z
            # each term halved in curvature (1/sqrt 2): the pair's curvature stays <= 2
            return P + (step[:, None, None] * side + rho[:, None, None] * W) * _HALF

        def restart() -> torch.optim.Optimizer:
            return cls([Z] if P is None else [Z, W], lr=self.rate, **self._kwargs)

        def closure() -> Tensor:
            opt.zero_grad()
            loss = (self.objective(answer(), As, eye) / rho.square()).sum()
            loss.backward()
            return loss

        opt = restart()
        history: list[float] = []
        steps = stage_start = restarts = halvings = 0
        best, since = math.inf, 0
        plateau, every = self.plateau, self.restart_every
        with torch.enable_grad():
            for steps in range(self.steps + 1):  # noqa: B007 (steps is reported)
                with torch.no_grad():
                    X = answer()
                    side = As @ X if self.loss == "right" else X @ As  # one product for both uses
                    history.append(float(self.objective(X, As, eye, side).mean()))
                    ratio = residual_ratio(A, X / s[:, None, None])
                # A non-finite loss means the step size made the descent diverge: stop there.
                diverged = not math.isfinite(history[-1])
                if bool((ratio < self.tol).all()) or steps == self.steps or diverged:
                    break
                if every is not None:
                    with torch.no_grad():
                        res = norm1(eye - side)  # of the side the loss measures: rho scales that side
                    if steps == stage_start:
                        start_res = float(res.max())
                    elif float(res.max()) < 0.1 * start_res or steps - stage_start >= every:
                        with torch.no_grad():
                            P, rho = X.clone(), res.clamp_min(torch.finfo(A.dtype).tiny)
                            step = rho / norm_bound(As @ P if self.loss == "right" else P @ As)
                        Z = torch.zeros_like(A).requires_grad_(True)
                        W = torch.zeros_like(A).requires_grad_(True)
                        opt, best, since = restart(), math.inf, 0
                        stage_start, start_res, restarts = steps, float(rho.max()), restarts + 1
                if plateau:
                    # relative progress, so the stage's division by rho^2 does not matter
                    loss = history[-1]
                    if loss < best * (1 - 1e-3):
                        best, since = loss, 0
                    else:
                        since += 1
                        if since >= self.patience:
                            for group in opt.param_groups:
                                group["lr"] *= 0.5
                            best, since, halvings = loss, 0, halvings + 1
                opt.step(closure)
        X = X.detach() / s[:, None, None]
        ok = residual_ratio(A, X) < PASS_RATIO
        status = torch.where(ok, int(Status.OK), int(Status.NOT_CONVERGED)).to(torch.int8)
        return Partial(X, status, stats={"loss_history": history, "iterations": steps, "lr_halvings": halvings,
                                        "restarts": restarts})
