"""Tensor and array checks shared by the functional ops, on top of ``tinyspike.checks``.

``tinyspike.checks`` holds the scalar vocabulary (``real``, ``integer``, ``boolean``, ``choice``,
``int_pair``, ``float_dtype``...); this module adds what needs to know about Tensors and backends:
is an argument a Tensor or array, of which dimensions and dtype, on the same backend and with
the same dtype as another, is a random generator one of the arrays' backend.

Each check raises a ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, wrong
value) whose message names the function, the argument, what was expected and what came, so a
user never meets a bare broadcasting error (or a Numba ``NotImplementedError: float16``) from
deep inside a kernel. They look at shapes and dtypes only, never at the data.
"""

from __future__ import annotations

import numpy as np

from tinyspike import backend, checks
from tinyspike.autograd import Tensor, same_backend, same_dtype  # noqa: F401 - the engine's, shared by every op


def array_of(value):
    """The backend array inside a Tensor, or the value itself."""
    return value.data if isinstance(value, Tensor) else value


def is_array_like(value) -> bool:
    """A Tensor, a NumPy array or a CuPy array (not a list, not a NumPy scalar)."""
    return isinstance(value, Tensor) or backend.is_array(value)


def tensor_arg(fn: str, name: str, value, ndims=None, floating=True):
    """Check that ``value`` is a Tensor or array (of one of ``ndims`` dims); return its array.

    ``floating=True`` (every op that computes): the dtype must be float32 or float64, the two the
    kernels are written for (``checks.float_dtype``: float16 and integers are refused here, by name).
    """
    if not is_array_like(value):
        raise TypeError(f"{fn}: {name} must be a Tensor or array, got {checks.kind_of(value)} {checks.show(value)}")
    data = array_of(value)
    if floating:
        checks.float_dtype(fn, name, data.dtype)
    if ndims is not None and data.ndim not in ndims:
        expected = " or ".join(f"{n}-D" for n in ndims)
        raise ValueError(f"{fn}: {name} must be {expected}, got shape {tuple(data.shape)}")
    return data


def parameter(fn: str, name: str, value, data, ndim: int, shape=None, shape_note: str = ""):
    """A weight or bias of ``fn``: a float Tensor/array with ``ndim`` dims, x's dtype and backend.

    ``shape``, if given, is the exact shape wanted (``shape_note`` says why, in the message).
    Returns its array. (conv2d, linear and batch_norm check their parameters with it.)
    """
    param = tensor_arg(fn, name, value, ndims=(ndim,))
    if shape is not None and tuple(param.shape) != tuple(shape):
        raise ValueError(f"{fn}: {name} must have shape {tuple(shape)}{shape_note}, got {tuple(param.shape)}")
    same_dtype(fn, name, param, "x", data)
    same_backend(fn, name, param, "x", data)
    return param


def weight_and_bias(fn: str, weight, bias, data, ndim: int):
    """The weight (``ndim`` dims, output features first) and optional bias ([out]) of conv2d and linear."""
    w = parameter(fn, "weight", weight, data, ndim)
    b = None if bias is None else parameter(fn, "bias", bias, data, 1, (w.shape[0],))
    return w, b


def generator_for(fn: str, name: str, value, data):
    """``value`` if it is the random ``Generator`` type of ``data``'s backend (NumPy's or CuPy's).

    On NumPy this is ``checks.numpy_generator`` (a legacy ``RandomState`` is refused with a hint);
    on CuPy a ``cupy.random.Generator`` (from ``backend.new_generator()``) is what draws CuPy arrays.
    """
    module = backend.array_module_of(data)
    if module is np:
        return checks.numpy_generator(fn, name, value)
    if not isinstance(value, module.random.Generator):
        raise TypeError(
            f"{fn}: {name} must be a {module.__name__}.random.Generator (backend.new_generator()) for "
            f"{module.__name__} arrays, got {checks.kind_of(value)}"
        )
    return value


REDUCTIONS = ("mean", "sum", "none")


def reduction_arg(fn: str, value) -> str:
    """A loss's ``reduction``: one of ``REDUCTIONS``."""
    return checks.choice(fn, "reduction", value, REDUCTIONS)
