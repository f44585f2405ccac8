"""``METHODS`` and ``resolve``: how a method argument becomes a Method object.

A module of its own, importing no method, so that a method whose options name other methods
(``block``'s base and fallback, ``learned``'s fallback) can resolve them without importing the
package that imports it. ``neuralinv.methods`` fills ``METHODS`` (its one registry line per
method) and re-exports everything here.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from ..errors import InputError
from .base import Method

#: name -> Method class, filled by ``neuralinv.methods`` (in its import, before any use).
METHODS: dict[str, type[Method]] = {}


#: The keywords ni.invert / ni.inv take besides a method's options (ni.inv also takes out).
ENTRY_KEYWORDS = ("assume_a", "check_finite", "lower", "out (ni.inv)", "overwrite_a")


def with_option(option: str) -> list[str]:
    """The registered method names whose dataclass has the field ``option`` (e.g. "spd")."""
    return sorted(name for name, cls in METHODS.items() if option in {f.name for f in fields(cls)})


def resolve(method: Any = "auto", **options: Any) -> Method:
    """A Method from a registered name (built with ``options``), a Method instance, or a trained
    :class:`~neuralinv.LearnedInverse` (the ``learned`` method with ``options``)."""
    if isinstance(method, Method):
        if options:
            raise InputError(
                f"options {sorted(options)} given with an already-built method {method!r}; "
                "set them on the method instead"
            )
        return method
    if isinstance(method, str):
        if method not in METHODS:
            raise InputError(
                f"unknown method {method!r}; valid methods: {', '.join(sorted(METHODS))}"
            )
        cls = METHODS[method]
        valid = sorted(f.name for f in fields(cls) if f.init and not f.name.startswith("_"))
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise InputError(
                f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for "
                f"method {method!r}; its options: {', '.join(valid) or '(none)'}; the keywords of "
                f"ni.invert/ni.inv: {', '.join(ENTRY_KEYWORDS)}"
            )
        try:
            return cls(**options)
        except TypeError as exc:
            raise InputError(f"bad options for method {method!r}: {exc}") from None
    from ..learned.inverse import LearnedInverse  # lazily: the learned stack imports methods

    if isinstance(method, LearnedInverse):
        return METHODS["learned"](model=method, **options)
    raise InputError(
        f"method must be a name ({', '.join(sorted(METHODS))}), a Method or a LearnedInverse; "
        f"got {type(method).__name__}"
    )
