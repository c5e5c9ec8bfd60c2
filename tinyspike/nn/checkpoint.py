"""Checkpoints as ``.npz`` files: plain arrays only, never pickles.

Layout of the file (one array per key):

- ``model/<dotted name>``: the model's ``state_dict()`` (parameters and running statistics);
- ``<key>``: an extra array or number passed as ``save_checkpoint(..., epoch=3)``;
- ``<key>/<name>``: the entries of an extra *flat dict*, such as ``Optimizer.state_dict()``
  (``optimizer=opt.state_dict()``) or a scheduler's.

The file is written atomically (``tinyspike.atomic``: a temporary file in the same folder, flushed
to disk, then renamed over ``path``); a crash mid-write leaves the previous checkpoint intact. Loading uses ``allow_pickle=False``, so a checkpoint cannot run code.
"""

from __future__ import annotations

import numbers
import zipfile

import numpy as np

from tinyspike import atomic, backend, checks
from tinyspike.nn.module import Module

MODEL_PREFIX = "model/"


def _as_storable(key: str, value) -> np.ndarray:
    """A NumPy array for ``value`` (an array, Tensor, number, bool or str), refusing objects."""
    if value is None:
        raise TypeError(f"save_checkpoint: {key!r} is None; an .npz file cannot store None")
    if isinstance(value, (str, numbers.Number, np.generic)):
        return np.asarray(value)
    array = backend.to_numpy(value)
    if not isinstance(array, np.ndarray) or array.dtype == object:
        raise TypeError(f"save_checkpoint: {key!r} must be an array, number or str, got {type(value).__name__}")
    return array


def flatten_extras(extras: dict) -> dict:
    """Turn ``{key: value or flat dict}`` into ``{"key" or "key/name": array}``."""
    flat = {}
    for key, value in extras.items():
        if key == "model" or "/" in key:
            raise ValueError(f"save_checkpoint: extra key {key!r} is reserved or contains '/'")
        if isinstance(value, dict):
            for name, item in value.items():
                flat[f"{key}/{name}"] = _as_storable(f"{key}/{name}", item)
        else:
            flat[key] = _as_storable(key, value)
    return flat


def save_checkpoint(path, model: Module, **extras) -> None:
    """Write ``model``'s state and ``extras`` to ``path`` (.npz, atomically; see the module docstring)."""
    if not isinstance(model, Module):
        raise TypeError(f"save_checkpoint: model must be a Module, got {type(model).__name__}")
    path = checks.path("save_checkpoint", "path", path)
    arrays = {MODEL_PREFIX + k: v for k, v in model.to_numpy_state().items()}
    arrays.update(flatten_extras(extras))
    # a file object: numpy writes exactly there, adding no ".npz" suffix to the temporary name
    atomic.replace_atomically(path, lambda handle: np.savez(handle, **arrays))


def _from_array(array: np.ndarray):
    """0-d arrays come back as Python numbers/strings (what was saved as one); others as arrays."""
    return array.item() if array.ndim == 0 else array


def read_checkpoint(path) -> dict:
    """Read a checkpoint without a model: ``{"model": {name: array}, key: value, key: {name: value}}``."""
    path = checks.path("read_checkpoint", "path", path)
    try:
        with np.load(path, allow_pickle=False) as data:
            raw = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise ValueError(f"checkpoint {path!r} is not a readable .npz file ({type(err).__name__}: {err})") from None
    result = {"model": {}}
    for key, array in raw.items():
        if key.startswith(MODEL_PREFIX):
            result["model"][key[len(MODEL_PREFIX) :]] = array
        elif "/" in key:
            group, name = key.split("/", 1)
            result.setdefault(group, {})[name] = _from_array(array)
        else:
            result[key] = _from_array(array)
    return result


def load_checkpoint(path, model: Module | None = None, strict: bool = True) -> dict:
    """Read ``path``; load its model state into ``model`` (when given); return everything read.

    With ``strict``, a missing or unexpected parameter name raises a KeyError naming it; a shape
    mismatch always raises a ValueError naming it (see ``Module.load_state_dict``).
    """
    checkpoint = read_checkpoint(path)
    if model is not None:
        if not isinstance(model, Module):
            raise TypeError(f"load_checkpoint: model must be a Module or None, got {type(model).__name__}")
        model.load_state_dict(checkpoint["model"], strict=strict)
    return checkpoint
