"""The argument-checking vocabulary every public function and class of tinyspike uses.

One rule for the whole library: a bad argument raises a ``TypeError`` (wrong kind of value) or a
``ValueError`` (right kind, wrong value) whose message starts with *where* (the function or class),
names the *argument*, says what was expected and shows what came::

    SGD: lr must be a finite real number >= 0, got nan

What each check accepts, everywhere:

- numbers: Python ``int``/``float`` and NumPy scalars (``np.float32(0.9)`` is a fine momentum);
  never ``bool`` (``True`` is not 1 here), never strings (``"0.1"`` is not a number), never NaN,
  and never ±inf unless the check says ``finite=False``;
- flags: ``bool`` or ``np.bool_`` only (``"no"`` is not False);
- names: one of a listed set of strings;
- dtypes: float32 or float64 for anything that computes (float16 has no kernels).

Checks run at the public boundary (a Function's wrapper, a constructor, a loader), never inside a
kernel, so the hot paths pay nothing per element. This module sits just above ``backend`` so that
every layer, the engine included, can use it; the Tensor-aware checks live in
``tinyspike/tensor_checks.py`` on top of it.
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np  # scalar types and dtypes only: no array maths here

from tinyspike import backend  # which module an array belongs to (same_backend)

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def show(value, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def kind_of(value) -> str:
    """A value's type name, for messages ("str", "NoneType", "ndarray")."""
    return type(value).__name__


def is_bool(value) -> bool:
    return isinstance(value, (bool, np.bool_))


def is_integer(value) -> bool:
    """An int or NumPy integer, but not a bool."""
    return isinstance(value, (numbers.Integral, np.integer)) and not is_bool(value)


def is_real(value) -> bool:
    """A Python or NumPy real number, but not a bool (complex, str and None are not real)."""
    return isinstance(value, (numbers.Real, np.integer, np.floating)) and not is_bool(value)


def boolean(where: str, name: str, value) -> bool:
    """``value`` as a bool; only ``True``/``False`` (or NumPy's) are accepted."""
    if not is_bool(value):
        raise TypeError(f"{where}: {name} must be True or False, got {kind_of(value)} {show(value)}")
    return bool(value)


def _span(low, high, low_open, high_open) -> str:
    if low is not None and high is None:
        return f"{'>' if low_open else '>='} {low}"
    if high is not None and low is None:
        return f"{'<' if high_open else '<='} {high}"
    return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"


def _check_range(where, name, value, what, low, high, low_open, high_open):
    if (low is not None and (value <= low if low_open else value < low)) or (
        high is not None and (value >= high if high_open else value > high)
    ):
        raise ValueError(f"{where}: {name} must be {what} {_span(low, high, low_open, high_open)}, got {show(value)}")


def real(where: str, name: str, value, low=None, high=None, *, low_open=False, high_open=False,
         finite=True) -> float:
    """``value`` as a float, checked to be a real number (finite unless ``finite=False``) in range.

    NaN is always refused: it compares False with every bound and would pass any range check.
    """
    if not is_real(value):
        raise TypeError(f"{where}: {name} must be a real number, got {kind_of(value)} {show(value)}")
    what = "a finite real number" if finite else "a real number"
    try:
        number = float(value)
    except OverflowError:  # an int beyond float's range (10**400)
        raise ValueError(f"{where}: {name} must be {what}, got an int too large for a float ({int(value).bit_length()} bits)") from None
    if math.isnan(number) or (finite and math.isinf(number)):
        bounds = "" if low is None and high is None else " " + _span(low, high, low_open, high_open)
        raise ValueError(f"{where}: {name} must be {what}{bounds}, got {number}")
    _check_range(where, name, number, what, low, high, low_open, high_open)
    return number


def integer(where: str, name: str, value, low=None, high=None) -> int:
    """``value`` as an int, checked to be an integer (not a bool, not a float) in [low, high]."""
    if not is_integer(value):
        raise TypeError(f"{where}: {name} must be an int, got {kind_of(value)} {show(value)}")
    number = int(value)
    _check_range(where, name, number, "an int", low, high, False, False)
    return number


def optional_integer(where: str, name: str, value, low=None, high=None):
    """None, or an int in [low, high]."""
    return None if value is None else integer(where, name, value, low, high)


def choice(where: str, name: str, value, options):
    """``value`` if it is one of ``options`` (strings), else a ValueError listing them."""
    if not isinstance(value, str):
        raise TypeError(f"{where}: {name} must be one of {list(options)}, got {kind_of(value)} {show(value)}")
    if value not in options:
        raise ValueError(f"{where}: {name} must be one of {list(options)}, got {show(value)}")
    return value


def int_pair(where: str, name: str, value, low=None) -> tuple[int, int]:
    """An int or a pair of ints (each >= ``low``), as a tuple ``(h, w)``."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(values) != 2 or not all(is_integer(v) for v in values):
        raise TypeError(f"{where}: {name} must be an int or a pair of ints, got {show(value)}")
    for v in values:
        _check_range(where, name, int(v), "an int", low, None, False, False)
    return int(values[0]), int(values[1])


def _sequence(where: str, name: str, value, length, items: str) -> None:
    """``value`` must be a tuple or list (of ``length`` items if given); ``items`` names what it holds."""
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{where}: {name} must be a tuple or list of {items}, got {kind_of(value)} {show(value)}")
    if length is not None and len(value) != length:
        raise ValueError(f"{where}: {name} must have {length} items, got {len(value)}: {show(value)}")


def reals(where: str, name: str, value, length=None, **bounds) -> tuple[float, ...]:
    """A tuple or list of real numbers (of ``length`` items if given), each checked by ``real``."""
    _sequence(where, name, value, length, "numbers")
    return tuple(real(where, f"{name}[{i}]", v, **bounds) for i, v in enumerate(value))


def integers(where: str, name: str, value, length=None, low=None, high=None) -> tuple[int, ...]:
    """A tuple or list of ints (of ``length`` items if given), each checked by ``integer``."""
    _sequence(where, name, value, length, "ints")
    return tuple(integer(where, f"{name}[{i}]", v, low, high) for i, v in enumerate(value))


def boolean_or(where: str, name: str, value, options):
    """A bool (returned as ``bool``) or one of the strings ``options`` (e.g. ``"auto"``).

    The flag test comes first, so ``1`` is refused rather than taken for ``True``.
    """
    if is_bool(value):
        return bool(value)
    if isinstance(value, str) and value in options:
        return value
    expected = ", ".join(repr(o) for o in options)
    error = ValueError if isinstance(value, str) else TypeError
    raise error(f"{where}: {name} must be True, False or {expected}, got {kind_of(value)} {show(value)}")


def float_dtype(where: str, name: str, dtype) -> np.dtype:
    """A computing dtype: float32 or float64 (float16 and integers have no kernels)."""
    try:
        if dtype is None:  # np.dtype(None) is float64: a missing dtype must not pass as one
            raise TypeError
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{where}: {name} must be float32 or float64, got {show(dtype)}") from None
    if resolved not in FLOAT_DTYPES:
        raise TypeError(f"{where}: {name} must be float32 or float64, got {resolved}")
    return resolved


def numpy_generator(where: str, name: str, value) -> np.random.Generator:
    """A ``numpy.random.Generator`` (from ``np.random.default_rng``); legacy RandomState is refused."""
    if not isinstance(value, np.random.Generator):
        hint = " (use np.random.default_rng(seed) instead of RandomState)" if isinstance(
            value, np.random.RandomState) else ""
        raise TypeError(f"{where}: {name} must be a numpy.random.Generator{hint}, got {kind_of(value)}")
    return value


def path(where: str, name: str, value) -> str:
    """A ``str`` or ``os.PathLike`` naming a file, as a ``str``: ``os.fspath(None)`` would say
    "expected str, bytes or os.PathLike object", naming neither the function nor the argument."""
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value).strip():
        raise TypeError(f"{where}: {name} must be a path (a non-empty str or os.PathLike), got "
                        f"{kind_of(value)} {show(value)}")
    return os.fspath(value)


# ---- arrays that meet in one op ----------------------------------------------------------------
# The dtype kinds a Tensor may hold: floats, signed and unsigned integers, bools. Not objects,
# strings, bytes, complex numbers or dates: no op here computes with those.
TENSOR_KINDS = "fiub"


def check_tensor_dtype(where: str, name: str, dtype) -> None:
    """TypeError unless ``dtype`` is one a Tensor may hold (float, int, uint or bool)."""
    if dtype.kind not in TENSOR_KINDS:
        raise TypeError(f"{where}: {name} must hold real numbers or bools, got dtype {dtype}")


# Two arrays that meet in one op must agree on dtype and backend: tinyspike never promotes a dtype
# or moves an array behind your back. The engine (ops, backward's seed) and every functional op use
# these two, so each mismatch reads the same everywhere.


def same_dtype(where: str, name: str, data, reference_name: str, reference) -> None:
    """TypeError unless array ``data`` has the dtype of array ``reference``."""
    if data.dtype != reference.dtype:
        raise TypeError(
            f"{where}: {name} has dtype {data.dtype} but {reference_name} has {reference.dtype}; "
            "convert one explicitly with .astype(...)"
        )


def same_backend(where: str, name: str, data, reference_name: str, reference) -> None:
    """TypeError unless array ``data`` lives on the backend (NumPy or CuPy) of array ``reference``."""
    module, reference_module = backend.array_module_of(data), backend.array_module_of(reference)
    if module is not reference_module:
        raise TypeError(
            f"{where}: {name} is a {module.__name__} array but {reference_name} is a "
            f"{reference_module.__name__} array; move both to one backend"
        )
