"""Argument checks shared by the functional ops (norm, pool, linear, activation, dropout, loss).

Each check raises a ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, wrong
value) whose message names the function, the argument, what was expected and what came, so a
user never meets a bare broadcasting error from deep inside a kernel.
"""

from __future__ import annotations

import numbers

import numpy as np  # only for its scalar types; no array maths here

from tinyspike import backend
from tinyspike.autograd import Tensor


def array_of(value):
    """The backend array inside a Tensor, or the value itself."""
    return value.data if isinstance(value, Tensor) else value


def is_array_like(value) -> bool:
    data = array_of(value)
    return hasattr(data, "shape") and hasattr(data, "dtype") and hasattr(data, "ndim")


def tensor_arg(fn: str, name: str, value, ndims=None, floating=True):
    """Check that ``value`` is a Tensor or array (of one of ``ndims`` dims, floating); return its array."""
    if not is_array_like(value):
        raise TypeError(f"{fn}: {name} must be a Tensor or array, got {type(value).__name__}")
    data = array_of(value)
    if floating and data.dtype.kind != "f":
        raise TypeError(f"{fn}: {name} must have a floating dtype, got {data.dtype}")
    if ndims is not None and data.ndim not in ndims:
        expected = " or ".join(f"{n}-D" for n in ndims)
        raise ValueError(f"{fn}: {name} must be {expected}, got shape {tuple(data.shape)}")
    return data


def same_dtype(fn: str, name: str, data, reference_name: str, reference) -> None:
    if data.dtype != reference.dtype:
        raise TypeError(
            f"{fn}: {name} has dtype {data.dtype} but {reference_name} has {reference.dtype}; "
            "convert one explicitly with .astype(...)"
        )


def same_backend(fn: str, name: str, data, reference_name: str, reference) -> None:
    if backend.array_module_of(data) is not backend.array_module_of(reference):
        raise TypeError(
            f"{fn}: {name} is a {backend.array_module_of(data).__name__} array but {reference_name} is a "
            f"{backend.array_module_of(reference).__name__} array; move both to one backend"
        )


def boolean(fn: str, name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{fn}: {name} must be a bool, got {type(value).__name__}")
    return bool(value)


def real(fn: str, name: str, value, low=None, high=None, low_open=False, high_open=False) -> float:
    """A real number in [low, high] (ends open when asked), returned as float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{fn}: {name} must be a real number, got {type(value).__name__}")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high or value != value:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        span = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ValueError(f"{fn}: {name} must be in {span}, got {value}")
    return value


def pair(fn: str, name: str, value, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each ≥ ``minimum``, as a tuple (h, w)."""
    values = value if isinstance(value, (tuple, list)) else (value, value)
    if len(values) != 2 or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values
    ):
        raise TypeError(f"{fn}: {name} must be an int or a pair of ints, got {value!r}")
    if any(v < minimum for v in values):
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value!r}")
    return int(values[0]), int(values[1])


def reduction_arg(fn: str, value) -> str:
    if value not in ("mean", "sum", "none"):
        raise ValueError(f"{fn}: reduction must be 'mean', 'sum' or 'none', got {value!r}")
    return value
