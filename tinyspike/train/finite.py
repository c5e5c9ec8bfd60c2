"""Finding NaN and infinity in a model's state and in data batches, cheaply.

Why the loss alone is not enough: a LIF neuron compares its membrane potential with the threshold,
and ``NaN >= V_th`` is False, so a NaN weight or a NaN input pixel becomes "no spike". Downstream
everything stays finite (a silent network gives finite logits and a finite loss of about
log(K)), so a run with NaN weights would train on at chance accuracy and exit as if all were well.
The trainer therefore checks the model's parameters and buffers (the BN running statistics) after
every optimizer step, and each input batch before the forward pass.

The cost is one reduction per array: the sum of an array is finite exactly when every element is
finite (NaN and ±inf propagate through a sum; inf - inf is NaN), except when a sum of finite
values overflows, which a second, elementwise look rules out before anything is reported. The
sums of all arrays are stacked so the host waits for the device once per check, not once per array.
"""

from __future__ import annotations

import numpy as np  # errstate only: the arrays may be CuPy's

from tinyspike import backend
from tinyspike.autograd import Tensor


class NonFiniteError(RuntimeError):
    """A NaN or infinity in the loss, a parameter, a running statistic or a data batch.

    Training stops; the last good checkpoint (``last.npz`` of the last finished epoch) is kept.
    """


def _is_float(array) -> bool:
    return getattr(array, "dtype", None) is not None and array.dtype.kind in "fc"


def first_non_finite(named_arrays) -> str | None:
    """The name of the first array in ``named_arrays`` (``(name, array)`` pairs) that holds a NaN
    or an infinity, or None when all are finite. Integer and bool arrays cannot hold either and
    are skipped."""
    named = [(name, array) for name, array in named_arrays if _is_float(array) and array.size]
    if not named:
        return None
    xp = backend.array_module_of(named[0][1])
    with np.errstate(over="ignore", invalid="ignore"):  # NaN and overflow are what we look for
        sums = xp.stack([array.sum() for _, array in named])
    finite = backend.to_numpy(xp.isfinite(sums))  # the one host-device synchronisation
    if bool(finite.all()):
        return None
    for (name, array), ok in zip(named, finite):
        # a non-finite sum of finite values is an overflow, not a NaN/inf in the array
        if not ok and not bool(xp.isfinite(array).all()):
            return name
    return None


def model_arrays(model):
    """``(name, array)`` for every parameter and buffer of ``model`` (running statistics included)."""
    for name, param in model.named_parameters():
        yield name, param.data
    for name, buffer in model.named_buffers():
        yield name, buffer


def first_non_finite_in_model(model) -> str | None:
    """The dotted name of the first parameter or buffer of ``model`` holding NaN/inf, or None."""
    return first_non_finite(model_arrays(model))


def batch_is_finite(x) -> bool:
    """True when the input batch ``x`` (an array, or a Tensor's data) holds no NaN/inf."""
    x = x.data if isinstance(x, Tensor) else x
    if not _is_float(x) or not x.size:
        return True
    xp = backend.array_module_of(x)
    return bool(xp.isfinite(x.sum()).item()) or bool(xp.isfinite(x).all().item())  # explicit syncs
