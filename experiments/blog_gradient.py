"""The blog's experiments ("matrix inverse with pytorch optimizer", and its SVD sequel).

1. Inverse by gradient descent of a random 4x4 matrix (uniform [0, 1), torch.manual_seed(314)
   as in the blog) and of diag(1, 2, 3, 4): ``method="gradient"`` minimising ||X A - I||^2 with
   SGD + momentum 0.9 from a random start (the blog's choices), both loss curves on one log
   plot. Each runs up to 10,000 iterations (the blog's count) and stops early once its LAPACK
   ratio is below 1e-6 (the diagonal matrix gets there: its inverse is exactly representable).
2. SVD of a 5x4 matrix by gradient descent (``neuralinv.svd_gd``, Adam) against torch.linalg.svd.
Computed in float64 (the blog used float32) so the curves show convergence, not rounding.
"""

from __future__ import annotations

import torch
from _common import Run, parse

import neuralinv as ni
from neuralinv.evaluation import plots


def main(argv=None) -> None:
    args = parse("blog_gradient", __doc__, argv)
    run = Run("blog_gradient", "The blog: inverse and SVD by gradient descent", args)
    torch.manual_seed(314)
    M1 = torch.rand(4, 4).double()
    M2 = torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64))
    steps = 300 if args.quick else 10_000
    curves, rows, data = {}, [], {}
    for name, M in (("random 4x4 (seed 314)", M1), ("diagonal diag(1,2,3,4)", M2)):
        # tol far below the certificate's 30: the curves show the whole descent to rounding level.
        sol = ni.invert(M, method="gradient", optimizer="sgd", lr=0.5, steps=steps, init="random", seed=314, tol=1e-6,
                        restart=None)  # the blog's single problem, no re-preconditioning
        hist = sol.stats["loss_history"]
        curves[name] = hist
        first_small = next((i for i, v in enumerate(hist) if v < 1e-20), None)
        E = M @ sol.inverse - torch.eye(4, dtype=torch.float64)
        cond = float(torch.linalg.cond(M))
        rows.append([name, f"{cond:.3g}", len(hist) - 1, f"{hist[0]:.3g}", f"{hist[-1]:.3g}",
                     "-" if first_small is None else first_small, f"{float(E.abs().max()):.3g}",
                     f"{float(sol.residual):.3g}", ni.Status(int(sol.status)).name])
        data[name] = {"cond2": cond, "loss_history_every_10": hist[::10], "final_loss": hist[-1],
                      "max_abs_AX_minus_I": float(E.abs().max()), "residual_ratio": float(sol.residual)}
    run.figure(plots.loss_curves(curves, args.out / "blog_gradient_losses.png",
                                 title="How fast does gradient descent converge? (SGD, momentum 0.9)",
                                 xlabel="iteration", ylabel=r"$\|X A - I\|_F^2$ (A scaled to unit norm bound)"))
    run.table("Inverse by gradient descent (SGD, lr 0.5, momentum 0.9, random start)",
              ["matrix", "cond_2", "steps", "initial loss", "final loss", "first step with loss < 1e-20",
               "max abs(A X − I)", "LAPACK ratio", "certificate"], rows,
              notes="The loss is the per-matrix ||X A - I||_F^2 of the scaled problem (A divided by sqrt(||A||_1 ||A||_inf)).")

    g = torch.Generator().manual_seed(5)
    A = torch.rand(5, 4, generator=g, dtype=torch.float64)
    res = ni.svd_gd(A, "adam", steps=300 if args.quick else 3000, lr=0.02)
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)
    # Same sign convention as svd_gd (largest-magnitude entry of each U column positive).
    sign = torch.sign(U.gather(0, U.abs().argmax(0, keepdim=True)))
    U, V = U * sign, Vh.mT * sign
    svd_rows = [[f"sigma_{i + 1}", f"{float(S[i]):.10f}", f"{float(res.S[i]):.10f}", f"{abs(float(S[i] - res.S[i])):.2e}"] for i in range(4)]
    run.table("SVD of a 5x4 matrix: gradient descent (Adam) vs torch.linalg.svd",
              ["singular value", "torch.linalg.svd", "svd_gd", "abs difference"], svd_rows,
              notes=(f"max abs(U_gd − U) {float((res.U - U).abs().max()):.2e}, max abs(V_gd − V) {float((res.V - V).abs().max()):.2e}, "
                     f"relative reconstruction error {float(res.reconstruction_error):.2e}, orthogonality error "
                     f"{float(res.orthogonality_error):.2e}, {res.loss_history.numel()} Adam steps."))
    run.figure(plots.loss_curves({"svd_gd (Adam)": res.loss_history.tolist()}, args.out / "blog_svd_loss.png",
                                 title="SVD of a 5x4 matrix by gradient descent", xlabel="step", ylabel="loss"))
    data["svd"] = {"torch": S.tolist(), "svd_gd": res.S.tolist(), "U_maxdiff": float((res.U - U).abs().max()),
                   "reconstruction_error": float(res.reconstruction_error)}
    run.data = data
    wall = run.finish()
    print(f"blog_gradient: wrote {args.out} in {wall:.1f} s")


if __name__ == "__main__":
    main()
