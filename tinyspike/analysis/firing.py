"""Firing rates of a trained model over a set of inputs.

The counting itself is ``tinyspike.nn.monitor.FiringRateMonitor`` (in ``nn`` because training
reports firing rates every epoch, and ``train`` may only import the layers below it); it is
re-exported here, where the analyses look for it. ``firing_rates`` runs a model over batches and
returns the rate of each LIF layer and of the whole network (REFERENCE §8).
"""

from __future__ import annotations

from collections import OrderedDict

from tinyspike.autograd import no_grad
from tinyspike.nn.monitor import FiringRateMonitor, is_spiking_layer, spiking_layers

__all__ = ["FiringRateMonitor", "firing_rates", "is_spiking_layer", "spiking_layers"]


def firing_rates(model, batches, time_steps=None) -> tuple["OrderedDict[str, float]", float]:
    """Run ``model`` (in evaluation mode, no gradients) on ``batches`` of inputs and return
    ``(per-layer rates, mean rate)``. ``batches`` yields inputs or ``(x, y)`` pairs."""
    was_training = model.training
    model.eval()
    try:
        with FiringRateMonitor(model) as monitor, no_grad():
            for batch in batches:
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                model(x, time_steps=time_steps) if time_steps is not None else model(x)
        return monitor.rates(), monitor.mean_rate()
    finally:
        model.train(was_training)
