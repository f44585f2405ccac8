"""neuralinv: certified batched matrix inversion by exact, iterative, gradient and learned methods.

The names below are imported on first use (PEP 562): ``import neuralinv`` itself imports
neither torch nor the methods, so that the command line starts, and ``neuralinv invert`` of a
file the native kernels answer runs, without torch's second of import (docs/performance.md,
attempt 77). ``neuralinv.inv``, ``from neuralinv import invert`` and the rest work as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Where each public name lives (module relative to this package).
_EXPORTS = {
    **dict.fromkeys(
        ("inv", "invert", "raise_for_status", "rcond", "residual_ratio", "sigma_min"), ".api"
    ),
    **dict.fromkeys(
        ("IllConditionedWarning", "InputError", "InversionError", "NotConvergedError",
         "NotPositiveDefiniteError", "OutOfRegionWarning", "PartialModelWarning",
         "SingularMatrixError"),
        ".errors",
    ),
    **dict.fromkeys(("LearnedInverse", "TrainConfig", "train"), ".learned"),
    **dict.fromkeys(
        ("LU", "METHODS", "Auto", "Block", "Cholesky", "ClosedForm", "Gradient", "Learned",
         "Method", "NewtonSchulz"),
        ".methods",
    ),
    **dict.fromkeys(("LstsqResult", "OrthogonalProjection", "lstsq", "pinv", "project"), ".nonsquare"),
    **dict.fromkeys(("Ball", "Balls", "Box"), ".regions"),
    **dict.fromkeys(("Solution", "Status"), ".solution"),
    **dict.fromkeys(("SVDGDResult", "svd_gd"), ".gradient_svd"),
}

if TYPE_CHECKING:
    from .api import inv, invert, raise_for_status, rcond, residual_ratio, sigma_min
    from .errors import (
        IllConditionedWarning,
        InputError,
        InversionError,
        NotConvergedError,
        NotPositiveDefiniteError,
        OutOfRegionWarning,
        PartialModelWarning,
        SingularMatrixError,
    )
    from .gradient_svd import SVDGDResult, svd_gd
    from .learned import LearnedInverse, TrainConfig, train
    from .methods import (
        LU,
        METHODS,
        Auto,
        Block,
        Cholesky,
        ClosedForm,
        Gradient,
        Learned,
        Method,
        NewtonSchulz,
    )
    from .nonsquare import LstsqResult, OrthogonalProjection, lstsq, pinv, project
    from .regions import Ball, Balls, Box
    from .solution import Solution, Status


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:  # a submodule (neuralinv.methods, ...), imported on first use too
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__version__ = "0.1.0"

__all__ = [
    "LU",
    "METHODS",
    "Auto",
    "Ball",
    "Balls",
    "Block",
    "Box",
    "Cholesky",
    "ClosedForm",
    "Gradient",
    "IllConditionedWarning",
    "InputError",
    "InversionError",
    "Learned",
    "LstsqResult",
    "LearnedInverse",
    "Method",
    "NewtonSchulz",
    "NotConvergedError",
    "NotPositiveDefiniteError",
    "OrthogonalProjection",
    "OutOfRegionWarning",
    "PartialModelWarning",
    "SVDGDResult",
    "SingularMatrixError",
    "Solution",
    "Status",
    "TrainConfig",
    "inv",
    "invert",
    "lstsq",
    "pinv",
    "project",
    "raise_for_status",
    "rcond",
    "residual_ratio",
    "sigma_min",
    "svd_gd",
    "train",
]
