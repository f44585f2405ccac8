"""Every input check, in one place, run before any work starts."""

from __future__ import annotations

import functools
import inspect
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .errors import InputError

_LOW_PRECISION = (torch.float16, torch.bfloat16)

#: The real dtype of a complex one (complex64 -> float32): norms, certificates and singular
#: values of complex matrices are real, as torch.linalg.norm and svdvals return them.
REAL_OF = {torch.complex32: torch.float16, torch.complex64: torch.float32, torch.complex128: torch.float64}


def real_dtype(dtype: torch.dtype) -> torch.dtype:
    """``dtype`` itself for a real dtype; float32 / float64 for complex64 / complex128."""
    return REAL_OF.get(dtype, dtype)

#: Largest stopping or symmetry ratio (in units of n*eps) a tolerance option may take: 1/eps of
#: float32 (2**23). A float32 answer whose dget03 ratio is that large has no correct digit, and a
#: symmetry test that loose calls every float32 matrix symmetric.
MAX_RATIO = 2.0**23

#: Seeds are integers in [0, MAX_SEED]. torch's generators take up to 2**64 - 1; the bound leaves
#: room for the per-size offsets some callers add (``seed + 1000 * n``).
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class Batch:
    """A validated batch of square matrices, ready for the numerics.

    tensor:  the input as a torch tensor in the compute dtype (float32, float64, complex64 or
             complex128), autograd intact.
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


def as_tensor(A: Any, name: str = "A", *, complex_ok: bool = False) -> tuple[Tensor, bool]:
    """Accept a torch tensor, numpy array or nested sequence; say which it was.

    complex_ok: numpy arrays and lists of complex numbers are accepted (complex64 stays
    complex64, Python complex numbers become complex128); refused otherwise. A torch tensor's
    dtype is left to :func:`compute_dtype`."""
    if isinstance(A, Tensor):
        _check_tensor(A, name)
        return A, False
    if isinstance(A, np.ma.MaskedArray):
        raise InputError(
            f"{name} is a numpy masked array; its masked entries would be inverted as they are: "
            f"pass {name}.filled(value) or {name}.data"
        )
    if isinstance(A, np.ndarray):
        kinds = "biufc" if complex_ok else "biuf"
        if A.dtype == object or A.dtype.kind not in kinds:
            what = "real numbers or complex ones" if complex_ok else "real numbers"
            raise InputError(f"{name} must hold {what}, got a numpy array of dtype {A.dtype}")
        if A.dtype.kind == "c" and A.dtype.itemsize > 16:
            raise InputError(
                f"{name} has dtype {A.dtype} (extended precision), which torch cannot hold; "
                f"neuralinv computes in complex64/complex128: pass {name}.astype(numpy.complex128)"
            )
        if A.dtype.kind == "f" and A.dtype.itemsize > 8:
            raise InputError(
                f"{name} has dtype {A.dtype} (extended precision), which torch cannot hold; "
                f"neuralinv computes in float32/float64: pass {name}.astype(numpy.float64)"
            )
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
        except TypeError as exc:
            # complex entries (numpy: "float() argument must be ... not 'complex'")
            arr = _complex_list(A) if complex_ok else None
            if arr is None:
                raise InputError(f"{name} is not a rectangular array of numbers: {exc}") from None
        except (ValueError, OverflowError) as exc:
            raise InputError(f"{name} is not a rectangular array of numbers: {exc}") from None
        return torch.from_numpy(arr), True
    if hasattr(A, "__array__") or hasattr(A, "__array_interface__"):
        # other array-likes (pandas, xarray, array-API objects): numpy's np.asarray rule
        try:
            arr = np.asarray(A)
        except (ValueError, TypeError) as exc:
            raise InputError(f"{name} could not be converted to an array: {exc}") from None
        if isinstance(arr, np.ndarray):
            return as_tensor(arr, name, complex_ok=complex_ok)
    raise InputError(
        f"{name} must be a torch.Tensor, a numpy.ndarray or an array-like (nested lists, an object "
        f"with __array__), got {type(A).__name__}"
    )


def _complex_list(A: Any) -> np.ndarray | None:
    """A nested sequence with complex entries as complex128, or None if it is not one."""
    try:
        arr = np.asarray(A, dtype=np.complex128)
    except (ValueError, TypeError, OverflowError):
        return None
    return arr


def _check_tensor(A: Tensor, name: str) -> None:
    """Refuse tensors without ordinary dense storage: there is nothing to invert in a meta
    tensor, and sparse, quantized and nested tensors would fail deep inside torch."""
    if A.is_nested:
        raise InputError(f"{name} is a nested tensor; pass a dense (..., n, n) tensor")
    if A.layout != torch.strided:
        raise InputError(
            f"{name} is a sparse tensor (layout {A.layout}); neuralinv inverts dense matrices: "
            f"pass {name}.to_dense()"
        )
    if A.is_quantized:
        raise InputError(f"{name} is a quantized tensor ({A.dtype}); pass {name}.dequantize()")
    if A.is_meta:
        raise InputError(
            f"{name} is a meta tensor (shape {tuple(A.shape)}, no data); pass a tensor with values"
        )


def compute_dtype(dtype: torch.dtype, name: str = "A", *, complex_ok: bool = False) -> torch.dtype:
    """float32/float64 as is; half precisions compute in float32; integers and bool in float64;
    with ``complex_ok`` complex64/complex128 as is and complex32 in complex64 (refused without)."""
    if dtype in (torch.float32, torch.float64):
        return dtype
    if dtype in _LOW_PRECISION:
        return torch.float32
    if dtype.is_complex:
        if not complex_ok:
            raise InputError(f"{name} is complex ({dtype}); this function takes real input only")
        return torch.complex64 if dtype == torch.complex32 else dtype
    if dtype == torch.bool or not dtype.is_floating_point:
        return torch.float64
    raise InputError(f"{name} has unsupported dtype {dtype}")


def square_batch(A: Any, name: str = "A") -> Batch:
    """Validate a batch of square matrices of shape (..., n, n)."""
    plain = _plain_batch(A)
    if plain is not None:
        return plain
    t, numpy_in = as_tensor(A, name, complex_ok=True)
    if t.ndim < 2:
        raise InputError(
            f"{name} must have shape (..., n, n) with at least 2 dimensions, got shape {tuple(t.shape)}"
        )
    if t.shape[-1] != t.shape[-2]:
        raise InputError(
            f"{name} must be square in its last two dimensions, got shape {tuple(t.shape)}"
        )
    work = compute_dtype(t.dtype, name, complex_ok=True)
    out_dtype = t.dtype if t.dtype.is_floating_point or t.dtype.is_complex else torch.float64
    tensor = t.to(work)
    n = t.shape[-1]
    batch_shape = tuple(t.shape[:-2])
    flat = tensor.detach().reshape(math.prod(batch_shape), n, n)
    return Batch(tensor, flat, batch_shape, n, out_dtype, numpy_in)


def _plain_batch(A: Any) -> Batch | None:
    """``square_batch(A)`` for the common case that needs no conversion (a dense CPU
    float32/float64 tensor without autograd, shape (..., n, n)), built without the general
    checks (a few microseconds of a single 3x3 call); None for anything else."""
    if type(A) is not Tensor or A.dtype not in _PLAIN or A.requires_grad or A.ndim < 2:
        return None
    if A.layout != torch.strided or A.is_nested:
        return None
    shape = A.shape
    n = shape[-1]
    if shape[-2] != n or A.device.type != "cpu":
        return None
    batch_shape = tuple(shape[:-2])
    B = 1
    for d in batch_shape:
        B *= d
    return Batch(A, A.reshape(B, n, n), batch_shape, n, A.dtype, False)


_PLAIN = (torch.float32, torch.float64)


def positive(
    name: str, value: float, *, allow_zero: bool = False, at_most: float | None = None, why: str = ""
) -> float:
    """A finite number > 0 (or >= 0), and <= ``at_most`` when given (``why`` says why)."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise InputError(f"{name} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError, RuntimeError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InputError(f"{name} must be a finite number {bound}, got {value!r}")
    if at_most is not None and v > at_most:
        low = "[0" if allow_zero else "(0"
        raise InputError(f"{name} must be in {low}, {at_most:g}]{why}, got {value!r}")
    return v


def ratio_tolerance(name: str, value: float, *, allow_zero: bool = False) -> float:
    """A tolerance in units of n*eps: in (0, MAX_RATIO] (or [0, MAX_RATIO])."""
    return positive(
        name, value, allow_zero=allow_zero, at_most=MAX_RATIO,
        why=" (units of n*eps; 2**23 = 1/eps of float32: a float32 answer that far off has no "
        "correct digit)",
    )


def int_at_least(name: str, value: int, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def flag(name: str, value: bool) -> bool:
    """True or False (numpy bools too); anything else, e.g. the string "no", is refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def random_seed(name: str, value: int) -> int:
    """A random seed: an integer in [0, MAX_SEED]."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= MAX_SEED:
        raise InputError(f"{name} must be an integer in [0, 2**63 - 1], got {value!r}")
    return int(value)


def check_flags(obj: Any) -> None:
    """Every dataclass field of ``obj`` annotated ``bool`` holds True or False."""
    from dataclasses import fields

    for f in fields(obj):
        if f.type in ("bool", bool):
            flag(f.name, getattr(obj, f.name))


def available_memory() -> int | None:
    """Bytes this process can allocate now without swapping: /proc/meminfo's MemAvailable,
    capped by a cgroup v2 memory limit; the physical memory where /proc is missing; None if
    neither can be read."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    try:
        with open("/sys/fs/cgroup/memory.max") as fh:
            limit = fh.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current") as fh:
                used = int(fh.read().strip())
            avail = min(avail, max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return avail


def _gib(b: float) -> str:
    return f"{b / 2**30:.3g} GiB"


def fits_in_memory(what: str, needed: int, available: int | None = None) -> None:
    """Refuse (InputError) work that needs more bytes than :func:`available_memory` reports.

    The rule is deliberately simple: ``needed`` (the caller's lower bound on the arrays it
    allocates at once) > available bytes is refused before anything is allocated or written.
    """
    if available is None:
        available = available_memory()
    if available is not None and needed > available:
        raise InputError(
            f"{what} needs at least {_gib(needed)} ({needed:,} bytes) of memory, but this machine "
            f"has {_gib(available)} ({available:,} bytes) available"
        )


def one_of(name: str, value: str, choices: tuple[str, ...] | list[str]) -> str:
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def real_array(
    A: Any, name: str, *, min_ndim: int, shape_text: str, complex_ok: bool = False
) -> tuple[Tensor, bool, torch.dtype]:
    """Validate an array of any shape with at least ``min_ndim`` dimensions (rectangular batches,
    feature rows). Returns (tensor in the compute dtype with autograd intact, whether it came in
    as numpy, the output dtype). ``shape_text`` (e.g. "(..., m, n)") is quoted in the error.
    ``complex_ok``: complex arrays are accepted too (:func:`compute_dtype`)."""
    t, numpy_in = as_tensor(A, name, complex_ok=complex_ok)
    if t.ndim < min_ndim:
        raise InputError(
            f"{name} must have shape {shape_text} with at least {min_ndim} dimension"
            f"{'s' if min_ndim != 1 else ''}, got shape {tuple(t.shape)}"
        )
    work = compute_dtype(t.dtype, name, complex_ok=complex_ok)
    out_dtype = t.dtype if t.dtype.is_floating_point or t.dtype.is_complex else torch.float64
    return t.to(work), numpy_in, out_dtype


def keywords_listed(fn: Callable) -> Callable:
    """``fn`` with an unknown keyword argument refused by an InputError that lists its keywords
    (as ``ni.inv``'s does), instead of Python's TypeError that lists none."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names = [p.name for p in inspect.signature(fn).parameters.values() if p.kind in kinds]
    known = frozenset(names)

    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if not known.issuperset(kwargs):
            unknown = sorted(set(kwargs) - known)
            raise InputError(
                f"{fn.__name__}() got unknown keyword{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(map(repr, unknown))}; its keywords: {', '.join(names)}"
            )
        return fn(*args, **kwargs)

    return checked
