"""Every input check, in one place, run before any work starts."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .errors import InputError

_LOW_PRECISION = (torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class Batch:
    """A validated batch of square matrices, ready for the numerics.

    tensor:  the input as a torch tensor in the compute dtype (float32 or float64), autograd intact.
    flat:    ``tensor`` reshaped to (B, n, n) and detached: what methods work on.
    """

    tensor: Tensor
    flat: Tensor
    batch_shape: tuple[int, ...]
    n: int
    out_dtype: torch.dtype
    numpy_in: bool

    def to_output(self, x: Tensor, *, matrices: bool) -> Any:
        """Reshape a (B, ...) result back to the batch shape, in the caller's array type."""
        shape = self.batch_shape + ((self.n, self.n) if matrices else ())
        x = x.reshape(shape)
        if matrices:
            x = x.to(self.out_dtype)
        if self.numpy_in:
            return x.detach().cpu().numpy()
        return x


def as_tensor(A: Any, name: str = "A") -> tuple[Tensor, bool]:
    """Accept a torch tensor, numpy array or nested sequence; say which it was."""
    if isinstance(A, Tensor):
        return A, False
    if isinstance(A, np.ndarray):
        if A.dtype == object or A.dtype.kind not in "biuf":
            raise InputError(f"{name} must hold real numbers, got a numpy array of dtype {A.dtype}")
        # torch cannot wrap foreign byte order or negative strides: those (only) get copied.
        if not A.dtype.isnative:
            A = A.astype(A.dtype.newbyteorder("="))
        if any(s < 0 for s in A.strides):
            A = A.copy()
        # Read-only arrays (np.load(mmap_mode="r")) are wrapped without a copy: nothing here
        # ever writes to the input, so torch's warning about non-writable arrays is moot.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.from_numpy(A), True
    if isinstance(A, (list, tuple)):
        try:
            arr = np.asarray(A, dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise InputError(f"{name} is not a rectangular array of numbers: {exc}") from None
        return torch.from_numpy(arr), True
    raise InputError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(A).__name__}")


def compute_dtype(dtype: torch.dtype, name: str = "A") -> torch.dtype:
    """float32/float64 as is; half precisions compute in float32; integers and bool in float64."""
    if dtype in (torch.float32, torch.float64):
        return dtype
    if dtype in _LOW_PRECISION:
        return torch.float32
    if dtype.is_complex:
        raise InputError(f"{name} is complex ({dtype}); neuralinv inverts real matrices only")
    if dtype == torch.bool or not dtype.is_floating_point:
        return torch.float64
    raise InputError(f"{name} has unsupported dtype {dtype}")


def square_batch(A: Any, name: str = "A") -> Batch:
    """Validate a batch of square matrices of shape (..., n, n)."""
    t, numpy_in = as_tensor(A, name)
    if t.ndim < 2:
        raise InputError(
            f"{name} must have shape (..., n, n) with at least 2 dimensions, got shape {tuple(t.shape)}"
        )
    if t.shape[-1] != t.shape[-2]:
        raise InputError(
            f"{name} must be square in its last two dimensions, got shape {tuple(t.shape)}"
        )
    work = compute_dtype(t.dtype, name)
    out_dtype = t.dtype if t.dtype.is_floating_point else torch.float64
    tensor = t.to(work)
    n = t.shape[-1]
    batch_shape = tuple(t.shape[:-2])
    flat = tensor.detach().reshape(math.prod(batch_shape), n, n)
    return Batch(tensor, flat, batch_shape, n, out_dtype, numpy_in)


def positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """A finite number > 0 (or >= 0)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InputError(f"{name} must be a finite number {bound}, got {value!r}")
    return v


def int_at_least(name: str, value: int, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def one_of(name: str, value: str, choices: tuple[str, ...] | list[str]) -> str:
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def real_array(
    A: Any, name: str, *, min_ndim: int, shape_text: str
) -> tuple[Tensor, bool, torch.dtype]:
    """Validate an array of any shape with at least ``min_ndim`` dimensions (rectangular batches,
    feature rows). Returns (tensor in the compute dtype with autograd intact, whether it came in
    as numpy, the output dtype). ``shape_text`` (e.g. "(..., m, n)") is quoted in the error."""
    t, numpy_in = as_tensor(A, name)
    if t.ndim < min_ndim:
        raise InputError(
            f"{name} must have shape {shape_text} with at least {min_ndim} dimension"
            f"{'s' if min_ndim != 1 else ''}, got shape {tuple(t.shape)}"
        )
    work = compute_dtype(t.dtype, name)
    out_dtype = t.dtype if t.dtype.is_floating_point else torch.float64
    return t.to(work), numpy_in, out_dtype
