"""Evaluation of inverters: metrics, reports, figures and what a trained network learned."""

from .metrics import (
    Details,
    Metrics,
    compute,
    evaluate_method,
    learned_fractions,
    reference_inverse,
)

__all__ = ["Details", "Metrics", "compute", "evaluate_method", "learned_fractions", "reference_inverse"]
