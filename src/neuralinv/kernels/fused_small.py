"""Compatibility: :func:`residual_norms` moved to :mod:`neuralinv.kernels.compiled`.

The fused closed form that lived here (``ClosedForm(compile=True)``) was removed: the native
kernels are faster (docs/performance.md, attempt 62). ``kernels/learned_small.py`` still imports
``residual_norms`` from here; delete this module once that import names ``.compiled``.
"""

from .compiled import residual_norms

__all__ = ["residual_norms"]
