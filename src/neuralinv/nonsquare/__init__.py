"""Non-square and rank-deficient inputs: least squares, pseudo-inverse, orthogonal projection.

Three routes, chosen per batch element:

* ``qr``: Householder QR of A (or of A^H for wide A). Backward stable.
* ``svd``: truncated SVD with the cutoff ``max(atol, rtol * sigma_1)``.
* ``ridge``: Tikhonov, solved as the QR of the stacked ``[A; sqrt(ridge) I]``, whose smallest
  singular value is at least ``sqrt(ridge)``: finite gradients for any A, no cutoff needed.

``auto`` uses QR and sends the elements whose R looks numerically singular (smallest
``|r_ii|`` below ``sqrt(eps)`` of the largest) to the SVD route. Unpivoted QR only *screens*
for rank deficiency (exact rank deficiency always shows up as a tiny ``r_ii``, but a moderate
``r_ii`` does not prove good conditioning); the certificate, not the screen, says whether an
answer is a least-squares solution.

Every batch element is scaled by a power of two before it is factorised (exact), so answers do
not depend on the scale of the data, and elements with NaN/Inf entries get NaN answers without
disturbing the others (torch.linalg raises a LinAlgError for the whole batch).

Derivatives (qr and svd routes): the analytic fixed-rank formula of Golub & Pereyra (the one
torch.linalg.pinv uses), NOT autograd through the factorisations: the SVD's backward has
``1 / (sigma_i^2 - sigma_j^2)`` terms that are infinite for repeated singular values (every
rank-deficient matrix has repeated zeros), although the pseudo-inverse itself is smooth there.
The formula only involves the (truncated) pinv, bounded by ``1 / cutoff``, so gradients stay
finite. It is written as autograd.Functions whose backward and jvp are differentiable torch ops
and calls of the same Functions, with vmap rules, so second derivatives, forward mode and
torch.func (vmap, jacrev, jacfwd, hessian) work. The ridge routes are plain torch ops.

Complex input (complex64/complex128) goes the same routes with conjugate transposes (``A^H``
wherever the real formulas have ``A^T``); residuals, singular values, ranks and certificates
are real, as torch and numpy return them. Gradients follow torch's convention for complex
inputs (the conjugate Wirtinger derivative, as torch.linalg.pinv/lstsq).

Modules (imports go one way, down this list; docs/architecture.md):

* the network layer: ``projection`` (project, OrthogonalProjection) -> ``project_autograd``
  (its Function) -> ``project_values`` (its forward values);
* the solvers: ``least_squares`` (lstsq), ``pseudo_inverse`` (pinv), ``result`` (LstsqResult
  and its certificate) -> ``solve_autograd`` (their Functions) -> ``solve_values`` (their
  forward values);
* shared by both: ``factor`` (QR, truncated SVD, ridge QR, rank screen, refinement),
  ``scaling`` (powers of two, non-finite stand-ins), ``transforms`` (torch.func plumbing).
"""

from .least_squares import DRIVERS, lstsq
from .projection import OrthogonalProjection, project
from .pseudo_inverse import pinv
from .result import LstsqResult

__all__ = ["DRIVERS", "LstsqResult", "OrthogonalProjection", "lstsq", "pinv", "project"]
