"""The default (no ``compile``) learned path of small ``correction`` models as a numba kernel.

:class:`NativeFused` is what ``Learned`` holds, one per input dtype, for a model that
:func:`neuralinv.kernels.learned_small.plan` takes (a Ball region, every member a
``correction`` network, n <= 4, a few hundred weights), with ``refine`` and ``check_region``:
on CPU batches of its dtype it runs ``_numba_learned.learned_lanes{n}``, the same arithmetic
and acceptance rule as the ``compile=True`` kernel (:class:`~.learned_small.FusedPath`), and
returns the same :class:`~.learned_small.FusedResult`; the rows it does not accept go to the
eager path exactly as the compiled kernel's do. Compiled by numba on first use (n = 3: about
8-10 s per dtype, which ``neuralinv warm`` pays at install), then loaded from numba's cache;
where numba or the kernel is unavailable, or ``NEURALINV_NATIVE=0``, it answers None and the
eager path runs (``failed`` says why).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import native
from .learned_small import FusedResult, Plan, Weights, plan

#: Matrices per block of the kernel (``_numba_learned.learned_lanes{n}``'s ``lanes``, at most its ``S``).
LANES = 256
#: The kernel's activation codes (``_numba_learned._activate``), by torch module name.
ACTIVATIONS = {"none": 0, "ReLU": 1, "SiLU": 2, "GELU": 3, "Tanh": 4}
#: Mirrors _numba_learned.TEAM_SLOTS (checked by tests/test_learned_native.py).
TEAM_SLOTS = 24
#: The most Newton-Schulz steps the kernels unroll, by dtype (``_numba_learned.MOST_STEPS``,
#: checked by tests/test_learned_native.py): a float32 network's guess needs a step more to
#: reach float64's rounding.
MOST_STEPS = {torch.float32: 3, torch.float64: 4}
#: Work (multiply-adds per matrix, roughly) per thread from which a batch is split over threads.
MIN_WORK_PER_THREAD = 1 << 17


class NativeFused:
    """The fused learned kernel of one model (its packed weights), for CPU batches in its dtype."""

    def __init__(self, p: Plan, weights: Weights):
        most = MOST_STEPS[p.dtype]
        if not 1 <= p.steps <= most:
            raise ValueError(f"the native {p.dtype} learned kernel takes 1 to {most} steps, got {p.steps}")
        self.plan = p
        self.failed: str | None = None
        self._fn: Any = None  # the compiled kernel, once loaded (_kernel)
        t = [w.detach().cpu() for w in weights.tensors]
        nn_, per = p.n * p.n, 4 + 2 * len(p.layers)
        npd = np.float32 if p.dtype == torch.float32 else np.float64
        self.region_c = t[0].numpy().astype(np.float64)
        members = [t[1 + m * per: 1 + (m + 1) * per] for m in range(p.members)]
        self.head = np.stack([np.stack([m[0].numpy().reshape(nn_), m[1].numpy().reshape(nn_)])
                              for m in members]).astype(npd)
        self.scales = np.array([[float(m[2]), float(m[3])] for m in members], dtype=npd)
        self.weights = np.concatenate([x.numpy().reshape(-1) for m in members for x in m[4:]]).astype(npd)
        self.shapes = np.array(p.layers, dtype=np.int64).reshape(-1, 2)
        self.act = ACTIVATIONS[p.activation]
        self.eps = float(np.finfo(npd).eps)
        self.work = sum(o * i for o, i in p.layers) * p.members + 6 * p.n**3 * (p.steps + 1)

    @classmethod
    def for_model(cls, model: Any, *, steps: int, tol: float, dtype: torch.dtype | None = None
                  ) -> NativeFused | None:
        """The native fused path of ``model`` for batches of ``dtype`` (default: the model's;
        its weights are converted), or None where the kernel cannot take it."""
        if not hasattr(model, "members") or not hasattr(model, "dtype"):
            return None
        dtype = model.dtype if dtype is None else dtype
        if model.dtype not in (torch.float32, torch.float64) or dtype not in (torch.float32, torch.float64):
            return None
        got = plan(model, model.region, dtype, steps=steps, tol=tol)
        return None if isinstance(got, str) else cls(*got)

    @classmethod
    def compile_for(cls, dtype: torch.dtype) -> tuple[Any, str]:
        """(the compiled kernel, "") for batches of ``dtype``, or (None, why not): the kernel of
        the shipped ``builtin:ball3-fast`` model in that dtype, whose argument types every model
        of ``plan`` shares (one compiled specialisation per dtype). For ``neuralinv warm``."""
        from ..learned.inverse import LearnedInverse
        model = LearnedInverse.load("builtin:ball3-fast")
        got = plan(model, model.region, dtype, steps=MOST_STEPS[dtype], tol=10.0)
        if isinstance(got, str):
            return None, got
        fused = cls(*got)
        fn = fused._kernel()
        return fn, fused.failed or ""

    def __call__(self, A: Tensor) -> FusedResult | None:
        """The kernel's answer for a (B, n, n) batch, or None where the eager path should answer."""
        p = self.plan
        if (self.failed is not None or A.dtype != p.dtype or A.device.type != "cpu"
                or native.disabled_by_env()):
            return None
        fn = self._kernel()
        if fn is None:
            return None
        An = A.detach().contiguous().numpy()
        B = An.shape[0]
        X = np.empty_like(An)
        accepted = np.empty(B, np.bool_)
        ratio, rcond = np.empty(B, An.dtype), np.empty(B, An.dtype)
        iters = np.empty(B, np.int32)
        args = (self.region_c, p.radius, self.head, self.scales, self.weights, self.shapes,
                self.act, p.steps, p.tol, self.eps, LANES)

        threads = min(torch.get_num_threads(), B * self.work // MIN_WORK_PER_THREAD)
        parallel = native.team_runtime()[0] if threads > 1 else None
        entry = None
        if parallel is not None:
            entry = native.team_entry("_numba_learned", f"team_learned{p.n}_{An.dtype.name}")
        if type(entry) is int:  # on torch's own OpenMP threads, as the exact kernels
            arrays = (An, X, accepted, ratio, rcond, iters, self.region_c, self.head,
                      self.scales, self.weights, self.shapes)
            block = np.zeros(TEAM_SLOTS, np.int64)  # see _numba_learned.TEAM_SLOTS
            block[:11] = [v.ctypes.data for v in arrays]
            block[11:20] = (B, p.n, p.members, self.weights.size, self.shapes.shape[0], self.act,
                            p.steps, LANES, native.team_chunk(B, threads, LANES, LANES))
            block.view(np.float64)[21:24] = (p.radius, p.tol, self.eps)
            parallel(entry, block.ctypes.data, threads, 0)  # ctypes releases the GIL
        else:

            def share(start: int, stop: int) -> None:
                fn(An, X, accepted, ratio, rcond, iters, start, stop, *args)

            native.split(share, B, self.work, MIN_WORK_PER_THREAD)
        out = (X, accepted, ratio, rcond, iters)
        return FusedResult(*(torch.from_numpy(v) for v in out))

    def _kernel(self) -> Any:
        """The compiled kernel (compiled or loaded from numba's cache on first use), or None."""
        fn = self._fn
        if fn is None and self.failed is None:
            try:
                with native.loading():
                    K = importlib.import_module(f"{__package__}._numba_learned")
                    A = np.zeros((0, self.plan.n, self.plan.n), self.head.dtype)
                    z = np.zeros(0, A.dtype)
                    kernel = getattr(K, f"learned_lanes{self.plan.n}")
                    kernel(A, A.copy(), np.zeros(0, np.bool_), z, z.copy(),
                                    np.zeros(0, np.int32), 0, 0, self.region_c, self.plan.radius,
                                    self.head, self.scales, self.weights, self.shapes, self.act,
                                    self.plan.steps, self.plan.tol, self.eps, LANES)
                fn = self._fn = kernel
            except Exception as exc:  # numba missing, a compile or cache error
                self.failed = f"native learned kernel unavailable: {type(exc).__name__}: {exc}"
        return fn
