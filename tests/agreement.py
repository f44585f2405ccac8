"""How two code paths that compute the same thing in a different order may disagree.

Two paths (a compiled kernel and the eager ops, a chunked and a whole batch, ...) round
differently, in the last bits, and by how much depends on the CPU, the BLAS and the compiler.
Newton-Schulz stops a matrix at the first step whose certificate ratio is below ``tol``; where
that ratio is within rounding of ``tol`` one path stops and the other takes one step more. So
iteration counts are compared with :func:`assert_counts_agree`: equal, or one apart where the
ratio at the earlier count is near ``tol`` (within a factor :data:`BAND`; the two paths'
ratios agree to about 1, as the tests of the reported certificates check).

Statuses are compared with :func:`assert_statuses_agree`: equal, except where the certificate
of one side is at one of :func:`neuralinv.certify.trusted`'s thresholds (the dget03 ratio near
PASS_RATIO = 30, rcond near eps, ``ratio n eps`` near rcond; or a stopping ratio near tol),
within the same factor BAND, and except SINGULAR against ILL_CONDITIONED for a matrix that is
singular to working precision (an exactly zero determinant or pivot in one rounding, a tiny
nonzero one in the other: neither side certifies an answer).
"""

from __future__ import annotations

import torch
from torch import Tensor

from neuralinv.certify import PASS_RATIO, certificate, eps
from neuralinv.solution import Status

#: A count may differ by one only where the ratio at the earlier count is in [tol/BAND, tol*BAND].
BAND = 2.0


def newton_schulz(A: Tensor, X: Tensor, steps: int) -> Tensor:
    """``steps`` plain Newton-Schulz steps ``X <- X + (I - X A) X`` (no stopping rule)."""
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    for _ in range(steps):
        X = X + (eye - X @ A) @ X
    return X


def assert_counts_agree(A: Tensor, X0: Tensor, got: Tensor, want: Tensor, tol: float) -> int:
    """Iteration counts ``got`` and ``want`` of two paths refining seeds ``X0`` of ``A`` agree:
    equal, or one apart where the certificate ratio after the smaller count is within a factor
    BAND of ``tol`` (so the stopping decision was within rounding of the threshold). Returns
    how many differ (0 on most machines)."""
    got, want = got.to(torch.int64).cpu(), want.to(torch.int64).cpu()
    assert got.shape == want.shape
    gap = (got - want).abs()
    assert int(gap.max()) <= 1 if gap.numel() else True, "iteration counts differ by more than one step"
    differ = gap.nonzero().squeeze(-1)
    for i in differ.tolist():
        k = int(min(got[i], want[i]))
        X = newton_schulz(A[i : i + 1], X0[i : i + 1], k)
        ratio = float(certificate(A[i : i + 1], X)[0])
        assert tol / BAND <= ratio <= tol * BAND, (
            f"row {i}: counts {int(got[i])} and {int(want[i])}, but the ratio after {k} steps is "
            f"{ratio:g}, not within rounding of tol={tol:g}"
        )
    return int(differ.numel())


def assert_accepted_agree(
    A: Tensor, X0: Tensor, a: tuple[Tensor, Tensor], b: tuple[Tensor, Tensor], steps: int, tol: float
) -> int:
    """Two paths that accept a matrix when it stops within ``steps`` steps, ``a`` and ``b`` as
    ``(accepted, iterations)``: where one accepts and the other does not, the accepting one
    stopped at exactly ``steps`` with the ratio there within rounding of tol (the other would
    take step steps + 1); where both accept, :func:`assert_counts_agree`. Returns how many
    rows differ in either way."""
    (acc_a, it_a), (acc_b, it_b) = a, b
    acc_a, acc_b = acc_a.cpu(), acc_b.cpu()
    one = (acc_a != acc_b).nonzero().squeeze(-1)
    if one.numel():
        it = torch.where(acc_a, it_a.cpu(), it_b.cpu())[one]
        assert bool((it == steps).all()), "accepted by one path only, before the last step"
        assert_counts_agree(A[one], X0[one], it, it + 1, tol)
    both = acc_a & acc_b
    return int(one.numel()) + assert_counts_agree(
        A[both], X0[both], it_a.cpu()[both], it_b.cpu()[both], tol
    )


def near(x: Tensor, threshold: float, factor: float = BAND) -> Tensor:
    """Where ``x`` is within a factor ``factor`` of ``threshold`` (False for NaN)."""
    x = x.double()
    return (x >= threshold / factor) & (x <= threshold * factor)


def at_boundary(ratio: Tensor, rc: Tensor, n: int, dtype: torch.dtype, *, factor: float = BAND,
                tol: float | None = None) -> Tensor:
    """Where a certificate ``(ratio, rcond)`` is within a factor of a threshold of
    :func:`neuralinv.certify.trusted` (ratio vs PASS_RATIO, rcond vs eps, ``ratio n eps`` vs
    rcond), or, given ``tol``, a Newton-Schulz stopping ratio within a factor of tol: there two
    paths that round differently may decide differently."""
    e = eps(dtype)
    ratio, rc = ratio.double(), rc.double()
    m = near(ratio, PASS_RATIO, factor) | near(rc, e, factor) | near(ratio * (n * e) / rc, 1.0, factor)
    if tol is not None:
        m |= near(ratio, tol, factor)
    return m


_UNCERTIFIED = {int(Status.OK), int(Status.ILL_CONDITIONED), int(Status.NOT_CONVERGED)}


def assert_statuses_agree(a, b, n: int, dtype: torch.dtype, *, at_most: int, factor: float = BAND,
                          tol: float | None = None) -> int:
    """Statuses of two paths' Solutions ``a`` and ``b`` (tensors: status, residual, rcond) on
    the same n x n input of ``dtype`` agree, up to rounding:

    * OK / ILL_CONDITIONED / NOT_CONVERGED may differ only where either side's certificate is
      within ``factor`` of a threshold (:func:`at_boundary`; ``tol`` for the stopping ratio
      of iterative paths), and there may be at most ``at_most`` such rows;
    * SINGULAR against ILL_CONDITIONED only where the ILL_CONDITIONED side's rcond is below
      ``factor * eps`` (singular to working precision; nothing certified either way);
    * every other status (NONFINITE, OUT_OF_REGION, NOT_SPD, OK against SINGULAR) exactly.

    Returns how many rows differ (0 on most machines)."""
    sa, sb = a.status.reshape(-1).cpu().to(torch.int64), b.status.reshape(-1).cpu().to(torch.int64)
    assert sa.shape == sb.shape
    ra, rb = a.residual.reshape(-1).cpu(), b.residual.reshape(-1).cpu()
    ca, cb = a.rcond.reshape(-1).cpu(), b.rcond.reshape(-1).cpu()
    edge = at_boundary(ra, ca, n, dtype, factor=factor, tol=tol)
    edge |= at_boundary(rb, cb, n, dtype, factor=factor, tol=tol)
    differ = (sa != sb).nonzero().squeeze(-1).tolist()
    S, ILL = int(Status.SINGULAR), int(Status.ILL_CONDITIONED)
    boundary = 0
    for i in differ:
        pair = {int(sa[i]), int(sb[i])}
        if pair <= _UNCERTIFIED:
            assert bool(edge[i]), (
                f"row {i}: statuses {int(sa[i])} and {int(sb[i])}, but neither certificate is near "
                f"a threshold (ratio {float(ra[i]):g} / {float(rb[i]):g}, rcond {float(ca[i]):g} / "
                f"{float(cb[i]):g})")
            boundary += 1
        elif pair == {S, ILL}:
            rc = ca[i] if int(sa[i]) == ILL else cb[i]
            assert float(rc) < factor * eps(dtype), (
                f"row {i}: SINGULAR in one path, ILL_CONDITIONED with rcond {float(rc):g} in the other")
        else:
            raise AssertionError(f"row {i}: statuses {int(sa[i])} and {int(sb[i])} differ")
    assert boundary <= at_most, f"{boundary} rows at a threshold decided differently (> {at_most})"
    return len(differ)


def norm1(M: Tensor) -> Tensor:
    """Batched matrix 1-norm (largest column sum)."""
    return M.abs().sum(-2).amax(-1)


def seeds(model, A: Tensor) -> Tensor:
    """The learned path's Newton-Schulz seeds: the guess at ``s A``, scaled back (s = 1 for
    matrices already in the model's region)."""
    _, s = model.region.scaled_into(A)
    s = s[:, None, None]
    return model.predict(A * s).to(A.dtype) * s


def error_bound(A: Tensor, X: Tensor, ratio: Tensor) -> Tensor:
    """Per matrix, a bound on ``||X - A^-1||_1`` from X's certificate ratio:
    ``||X - A^-1||_1 <= ||I - X A||_1 ||A^-1||_1`` with ``||I - X A||_1`` read back from the
    ratio (``ratio * n * eps * ||A||_1 ||X||_1``; ratio + n for the rounding of the residual the
    ratio was computed from), in float64. Two paths' answers are then within the sum of their
    bounds, whatever order each rounded in."""
    n, e = A.shape[-1], torch.finfo(A.dtype).eps
    A64, X64 = A.double(), X.double()
    residual = (ratio.double() + n) * n * e * norm1(A64) * norm1(X64)
    return residual * norm1(torch.linalg.inv(A64))
