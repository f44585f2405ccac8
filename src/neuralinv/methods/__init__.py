"""The registry of inversion methods, and how a method argument becomes a Method object.

``METHODS`` is the one list of methods: the CLI's help, the bench, ``resolve`` and the generic
tests (tests/test_methods.py, tests/test_autograd.py) all derive theirs from it, and ask
``Method.supports`` which sizes each takes. Adding a method is one module here and one entry
in the tuple below (docs/architecture.md).
"""

from __future__ import annotations

from .auto import Auto
from .base import Method
from .block import Block
from .cholesky import Cholesky
from .closed_form import ClosedForm
from .gradient import Gradient
from .learned import Learned
from .lu import LU
from .newton_schulz import NewtonSchulz
from .partial import Partial
from .registry import ENTRY_KEYWORDS, METHODS, resolve, with_option

# The registry: one entry per method (docs/architecture.md, "Adding a method").
METHODS.update(
    {cls.name: cls for cls in (Auto, LU, Cholesky, ClosedForm, NewtonSchulz, Gradient, Learned, Block)}
)

__all__ = ["ENTRY_KEYWORDS", "METHODS", "Method", "Partial", "resolve", "with_option"] + [
    c.__name__ for c in METHODS.values()
]
