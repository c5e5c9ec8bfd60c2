"""Watching a model through forward hooks: the firing rate of every spiking layer.

This lives in ``nn`` (not ``analysis``) because training reports firing rates every epoch, and
``train`` may only import the layers below it.

The firing rate of a layer is the fraction of its neurons that spike, averaged over time steps
and samples (REFERENCE §8):

    r = #spikes / (#neurons · T)

which is simply the mean of the layer's 0/1 output ``[T, B, C, H, W]``. A ``FiringRateMonitor``
hooks every LIF layer of a model, adds up spikes and neuron-steps over as many forward calls as
you like, and reports the rate of each layer and of the whole network (all spikes over all
neuron-steps, so a big layer weighs more than a small one, as in the paper's averages)::

    with FiringRateMonitor(model) as monitor:
        for x, y in loader:
            model(x)
    monitor.rates()       # {"stages.0.0.lif1": 0.21, ...}
    monitor.mean_rate()   # 0.19

Counting costs one reduction over each layer's output per forward call; the sums stay on the
device until ``rates()`` is asked for, so the GPU is not synchronised every step.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from tinyspike import backend
from tinyspike.autograd import Tensor
from tinyspike.nn.layers import LIF


def array_of(value):
    """The backend array of a Tensor (or the array itself; ``ndarray.data`` is a memoryview)."""
    return value.data if isinstance(value, Tensor) else value


class HookedObserver:
    """Holds the hook handles it registered; ``remove()`` (or leaving a ``with`` block) unhooks all.

    Subclasses append each ``module.register_forward_hook(...)`` handle to ``self._handles``.
    """

    def __init__(self):
        self._handles = []

    def remove(self) -> None:
        """Unregister every hook, leaving the model as it was."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


def is_spiking_layer(module) -> bool:
    """True for LIF layers (the modules whose output is spikes)."""
    return isinstance(module, LIF)


def spiking_layers(model) -> list[tuple[str, object]]:
    """``(name, module)`` of every LIF layer of ``model``, in registration order."""
    return [(name or type(m).__name__, m) for name, m in model.named_modules() if is_spiking_layer(m)]


class FiringRateMonitor(HookedObserver):
    """Count the spikes of every LIF layer of ``model`` over the forward calls it sees.

    Args:
        model: a ``tinyspike.nn.Module``.
        layers: optional list of layer names to watch (default: every LIF layer).

    The hooks stay registered until ``remove()`` (or the end of a ``with`` block). ``enabled``
    can be set to False to skip counting for a while without removing the hooks.
    """

    def __init__(self, model, layers=None):
        found = spiking_layers(model)
        if layers is not None:
            wanted = list(layers)
            names = {n for n, _ in found}
            unknown = [n for n in wanted if n not in names]
            if unknown:
                raise ValueError(f"layers: no LIF layer named {unknown}; the model has {sorted(names)}")
            found = [(n, m) for n, m in found if n in wanted]
        self.names = [n for n, _ in found]
        self.enabled = True
        super().__init__()
        self._spikes: dict = {}
        self._counts: dict = {}
        self.reset()
        for name, module in found:
            self._handles.append(module.register_forward_hook(self._make_hook(name)))

    def _make_hook(self, name):
        def hook(module, inputs, output):
            if not self.enabled:
                return None
            data = array_of(output)
            # float64 sum on the device: exact for spike counts up to 2**53
            self._spikes[name] = self._spikes[name] + data.sum(dtype=np.float64)
            self._counts[name] += int(data.size)
            return None

        return hook

    def reset(self) -> None:
        """Forget everything counted so far (e.g. at the start of an epoch)."""
        self._spikes = {n: 0.0 for n in self.names}
        self._counts = {n: 0 for n in self.names}

    def spike_counts(self) -> "OrderedDict[str, tuple[float, int]]":
        """``{layer: (spikes, neuron-steps)}`` counted since the last reset."""
        return OrderedDict(
            (n, (float(backend.to_numpy(self._spikes[n])), self._counts[n])) for n in self.names
        )

    def rates(self) -> "OrderedDict[str, float]":
        """Firing rate of each watched layer (NaN for a layer that has not run yet)."""
        out = OrderedDict()
        for name, (spikes, count) in self.spike_counts().items():
            out[name] = spikes / count if count else float("nan")
        return out

    def mean_rate(self) -> float:
        """All spikes over all neuron-steps of the watched layers (NaN before any forward)."""
        counts = self.spike_counts().values()
        spikes = sum(s for s, _ in counts)
        total = sum(c for _, c in counts)
        return spikes / total if total else float("nan")
