"""neuralinv: certified batched matrix inversion by exact, iterative, gradient and learned methods."""

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
from .svd_gd import SVDGDResult, svd_gd

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
