"""Singular value decomposition by gradient descent (the blog's method in ../shared/seeds).

Parameters U (m, k), s (k) and V (n, k), k = min(m, n), with ``A ~ U diag(s^2) V^T``: squaring
keeps the singular values non-negative without a constraint. The loss is the reconstruction
mean squared error plus penalties that pull U and V towards orthonormal columns; every exact SVD
makes it zero, so the penalty weight changes the path, not the answer.

This is a teaching method and a testbed for optimizers, not a replacement for
torch.linalg.svd: it needs thousands of steps for what LAPACK does in one call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import _validate as v

OPTIMIZERS = ("adam", "sgd", "rmsprop", "lbfgs")


@dataclass(frozen=True)
class SVDGDResult:
    """``A ~ U diag(S) V^T`` for each matrix of the batch.

    U: (..., m, k), S: (..., k) descending, V: (..., n, k), in A's floating dtype; each column
    pair's sign is fixed so the largest-magnitude entry of the U column is positive (as
    sklearn's svd_flip does), making results comparable with torch.linalg.svd.
    loss_history: (steps,) float64, the batch-mean loss before each step.
    reconstruction_error: (...) ``||U diag(S) V^T - A||_F / ||A||_F``.
    orthogonality_error: (...) ``max(||U^T U - I||_F, ||V^T V - I||_F)``.

    Every field is a tensor (on A's device), or a numpy array when A was a numpy array.
    """

    U: Tensor | np.ndarray
    S: Tensor | np.ndarray
    V: Tensor | np.ndarray
    loss_history: Tensor | np.ndarray
    reconstruction_error: Tensor | np.ndarray
    orthogonality_error: Tensor | np.ndarray


def _make_optimizer(name: str, params: list[Tensor], lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    return torch.optim.LBFGS(
        params, lr=lr, max_iter=1, history_size=20, line_search_fn="strong_wolfe"
    )


def _losses(A: Tensor, U: Tensor, s: Tensor, V: Tensor, weight: float) -> Tensor:
    """Per-matrix loss (B,): reconstruction MSE + weight * (U and V orthogonality MSE)."""
    k = s.shape[-1]
    eye = torch.eye(k, dtype=A.dtype, device=A.device)
    recon = (U * s.square().unsqueeze(-2)) @ V.mT
    mse = (recon - A).square().mean(dim=(-2, -1))
    ortho_u = (U.mT @ U - eye).square().mean(dim=(-2, -1))
    ortho_v = (V.mT @ V - eye).square().mean(dim=(-2, -1))
    return mse + weight * (ortho_u + ortho_v)


_FIRST_MOMENTS = ("exp_avg", "momentum_buffer", "grad_avg")


def _sign_step(A: Tensor, U: Tensor, s: Tensor, V: Tensor, opt: torch.optim.Optimizer) -> None:
    """Flip v_j wherever that lowers the reconstruction loss.

    S = s^2 cannot change sign, and when V is square its columns cannot change sign
    continuously either (O(n) has two components). A component whose best coefficient is
    negative therefore shrinks to s = 0, a stationary point where U's and V's columns get no
    more gradient: plain descent stops there with one singular value missing. Flipping v_j
    changes the loss by ``4 S_j c_j`` with ``c_j = u_j^T (A - sum_{i != j} S_i u_i v_i^T) v_j``,
    so flipping where c_j < 0 never increases it; the penalties are unchanged by a sign.
    """
    with torch.no_grad():
        S = s.square()
        gu, gv = U.mT @ U, V.mT @ V
        others = ((gu * S.unsqueeze(-2)) * gv).sum(-1) - S * gu.diagonal(
            dim1=-2, dim2=-1
        ) * gv.diagonal(dim1=-2, dim2=-1)
        c = (U.mT @ A @ V).diagonal(dim1=-2, dim2=-1) - others
        flip = c < 0
        if not bool(flip.any()):
            return
        sign = torch.where(flip, -1.0, 1.0).to(V.dtype).unsqueeze(-2)
        V.mul_(sign)
        state = opt.state.get(V, {})
        if isinstance(opt, torch.optim.LBFGS):
            # its curvature pairs describe the unflipped problem
            opt.state.clear()
            return
        for key in _FIRST_MOMENTS:
            if key in state:
                state[key].mul_(sign)


def svd_gd(
    A: Any,
    optimizer: str = "adam",
    steps: int = 1500,
    lr: float = 0.1,
    *,
    ortho_weight: float = 1.0,
    final_lr_fraction: float = 1e-3,
    seed: int = 0,
    sign_step: bool = True,
) -> SVDGDResult:
    """SVD of each matrix of a batch (..., m, n) by minimising the loss with a torch optimizer.

    A is scaled to unit RMS entries first (and the singular values scaled back), so ``lr`` does
    not depend on A's magnitude. The learning rate decays on a cosine from ``lr`` to
    ``lr * final_lr_fraction``: the constant-lr iterate of Adam hovers at a distance ~ lr from
    the minimum, the decay lets it settle. The loss is summed over the batch, so each matrix
    sees the gradient it would see alone. ``optimizer`` is one of "adam", "sgd" (momentum 0.9),
    "rmsprop", "lbfgs" (one iteration with a strong-Wolfe line search per step).
    ``sign_step=False`` gives the blog's plain descent, which can stall with a singular value
    stuck at 0 (see :func:`_sign_step`). Numpy in, numpy out: for a numpy ``A`` every field of
    the result is a numpy array.
    """
    At, numpy_in, out_dtype = v.real_array(A, "A", min_ndim=2, shape_text="(..., m, n)")
    v.one_of("optimizer", optimizer, OPTIMIZERS)
    steps = v.int_at_least("steps", steps, 1)
    lr = v.positive("lr", lr)
    ortho_weight = v.positive("ortho_weight", ortho_weight)
    final = v.positive("final_lr_fraction", final_lr_fraction)
    seed = v.random_seed("seed", seed)
    if not bool(torch.isfinite(At).all()):
        bad = (~torch.isfinite(At)).flatten(-2).any(-1).nonzero().tolist()
        raise v.InputError(f"A has NaN or Inf entries at batch indices {bad[:20]}")

    m, n = At.shape[-2:]
    k = min(m, n)
    batch = tuple(At.shape[:-2])
    count = math.prod(batch)
    Af = At.detach().reshape(count, m, n)
    dtype = Af.dtype
    scale = Af.square().mean(dim=(-2, -1)).sqrt() if m * n else Af.new_ones(count)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    As = Af / scale[:, None, None]

    gen = torch.Generator(device="cpu").manual_seed(seed)
    # Random orthonormal starts (QR of Gaussians): the penalty starts at 0, descent starts on
    # the reconstruction; s = 1 puts every singular value at the RMS scale.
    U0 = torch.linalg.qr(torch.randn(count, m, k, generator=gen, dtype=torch.float64))[0]
    V0 = torch.linalg.qr(torch.randn(count, n, k, generator=gen, dtype=torch.float64))[0]
    U = U0.to(dtype=dtype, device=Af.device).contiguous().requires_grad_()
    V = V0.to(dtype=dtype, device=Af.device).contiguous().requires_grad_()
    s = torch.ones(count, k, dtype=dtype, device=Af.device).requires_grad_()
    params = [U, s, V]
    opt = _make_optimizer(optimizer, params, lr)
    history = torch.empty(steps, dtype=torch.float64)

    def closure() -> Tensor:
        opt.zero_grad()
        loss = _losses(As, U, s, V, ortho_weight).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        for step in range(steps):
            # cosine decay from lr to lr * final
            frac = 0.5 * (1 + math.cos(math.pi * step / max(steps - 1, 1)))
            for group in opt.param_groups:
                group["lr"] = lr * (final + (1 - final) * frac)
            loss = opt.step(closure)
            history[step] = float(loss.detach()) / max(count, 1)
            if sign_step:
                _sign_step(As, U, s, V, opt)

    with torch.no_grad():
        U, s, V = U.detach(), s.detach(), V.detach()
        S = s.square() * scale[:, None]
        order = torch.argsort(S, dim=-1, descending=True)
        S = torch.gather(S, -1, order)
        U = torch.gather(U, -1, order.unsqueeze(-2).expand_as(U))
        V = torch.gather(V, -1, order.unsqueeze(-2).expand_as(V))
        # sign: the largest-|.| entry of each U column positive, V flipped with it
        pick = U.abs().argmax(dim=-2, keepdim=True)
        sign = torch.sign(torch.gather(U, -2, pick))
        sign = torch.where(sign == 0, torch.ones_like(sign), sign)
        U, V = U * sign, V * sign
        recon = (U * S.unsqueeze(-2)) @ V.mT
        normA = torch.linalg.matrix_norm(Af) if m * n else Af.new_zeros(count)
        rec_err = torch.linalg.matrix_norm(recon - Af) / torch.where(normA > 0, normA, 1.0)
        eye = torch.eye(k, dtype=dtype, device=Af.device)
        orth = torch.maximum(
            torch.linalg.matrix_norm(U.mT @ U - eye), torch.linalg.matrix_norm(V.mT @ V - eye)
        )

    def out(x: Tensor, tail: tuple[int, ...] | None = None) -> Tensor | np.ndarray:
        x = x if tail is None else x.reshape(batch + tail)
        return x.cpu().numpy() if numpy_in else x

    return SVDGDResult(
        U=out(U.to(out_dtype), (m, k)),
        S=out(S.to(out_dtype), (k,)),
        V=out(V.to(out_dtype), (n, k)),
        loss_history=out(history),
        reconstruction_error=out(rec_err, ()),
        orthogonality_error=out(orth, ()),
    )
