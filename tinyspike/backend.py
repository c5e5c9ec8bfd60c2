"""Which array library tinyspike computes with: NumPy on the CPU, CuPy on an NVIDIA GPU.

The choice is global (it is the only global mutable state in tinyspike): every Tensor created
after ``tinyspike.use("cupy")`` lives on the GPU. Library code never does ``import numpy as np``
on a path that must also run on CuPy; it asks this module for the array module::

    xp = backend.xp()
    out = xp.zeros(shape, dtype=backend.default_dtype())

The environment variable ``TINYSPIKE_BACKEND`` (``numpy`` or ``cupy``) sets the starting choice.
"""

from __future__ import annotations

import os
import types
from contextlib import contextmanager

import numpy as np

_NAMES = ("numpy", "cupy")
_state = {"name": None, "xp": None, "dtype": np.dtype(np.float32), "rng": None}


class BackendUnavailableError(RuntimeError):
    """Raised when the requested array library cannot be used on this machine."""


def _load_cupy() -> types.ModuleType:
    try:
        import cupy
    except ImportError as err:
        raise BackendUnavailableError(
            "backend 'cupy' requested but CuPy is not installed "
            f"({err}). Install the GPU extra: pip install 'tinyspike[gpu]' "
            "(or the cupy-cudaXXx wheel matching your CUDA version)."
        ) from None
    try:
        n_gpus = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDA driver missing or broken: CuPy raises its own error types
        raise BackendUnavailableError(
            f"backend 'cupy' requested but CuPy sees no usable GPU ({type(err).__name__}: {err}). "
            "Check the NVIDIA driver (nvidia-smi) or use the 'numpy' backend."
        ) from None
    if n_gpus == 0:
        raise BackendUnavailableError(
            "backend 'cupy' requested but CuPy sees no GPU. Use the 'numpy' backend."
        )
    return cupy


def use(name: str) -> None:
    """Select the array backend: ``"numpy"`` (CPU) or ``"cupy"`` (GPU).

    Tensors created before the switch keep their arrays; mixing them with new ones raises.
    """
    if not isinstance(name, str) or name.lower() not in _NAMES:
        raise ValueError(f"backend name must be one of {_NAMES}, got {name!r}")
    name = name.lower()
    module = np if name == "numpy" else _load_cupy()
    _state["name"], _state["xp"] = name, module
    _state["rng"] = None


def name() -> str:
    """The active backend's name, ``"numpy"`` or ``"cupy"``."""
    if _state["name"] is None:
        use(os.environ.get("TINYSPIKE_BACKEND", "numpy"))
    return _state["name"]


def xp() -> types.ModuleType:
    """The active array module (``numpy`` or ``cupy``)."""
    if _state["xp"] is None:
        name()
    return _state["xp"]


def array_module_of(array) -> types.ModuleType:
    """The module an array belongs to (``cupy`` for a CuPy array, else ``numpy``)."""
    if is_gpu_array(array):
        import cupy

        return cupy
    return np


def is_gpu_array(array) -> bool:
    """True for a CuPy array (checked by type, so CuPy is never imported to answer)."""
    return type(array).__module__.startswith("cupy")


def is_array(value) -> bool:
    """True for a NumPy or CuPy array (not a NumPy scalar, not a list, not a Tensor)."""
    return isinstance(value, np.ndarray) or is_gpu_array(value)


def to_numpy(array) -> np.ndarray:
    """A NumPy copy (or view, on the CPU) of any backend's array; Tensors are unwrapped."""
    # unwrap Tensors only: a CuPy array's .data is a MemoryPointer, a NumPy array's a memoryview
    if not isinstance(array, np.ndarray) and not is_gpu_array(array):
        array = getattr(array, "data", array)
    if is_gpu_array(array):
        return array.get()
    return np.asarray(array)


def to_device(array):
    """Move an array (NumPy or CuPy) onto the active backend, without changing its dtype."""
    return to_numpy(array) if xp() is np else xp().asarray(array)


def default_dtype() -> np.dtype:
    """The floating dtype new parameters and data are made with (float32 unless changed)."""
    return _state["dtype"]


def set_default_dtype(dtype) -> None:
    """Set the default floating dtype: float32 for training, float64 for gradient checks."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"default dtype must be float32 or float64, got {dtype}")
    _state["dtype"] = dtype


@contextmanager
def default_dtype_as(dtype):
    """``with default_dtype_as(np.float64): ...`` sets the default dtype inside the block only."""
    previous = default_dtype()
    set_default_dtype(dtype)
    try:
        yield
    finally:
        set_default_dtype(previous)


def seed(value: int) -> None:
    """Reset the backend's global generator, used when no explicit generator is given."""
    if not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"seed must be a non-negative int, got {value!r}")
    _state["rng"] = new_generator(int(value))


def new_generator(seed_value: int | None = None):
    """A fresh random Generator on the active backend (NumPy's or CuPy's)."""
    return xp().random.default_rng(seed_value)


def rng():
    """The backend's global generator (seeded with 0 until ``seed`` is called)."""
    if _state["rng"] is None:
        _state["rng"] = new_generator(0)
    return _state["rng"]
