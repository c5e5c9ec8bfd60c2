"""tinyspike: deep residual spiking neural networks, from scratch, to be read and checked."""

from tinyspike.backend import use, to_numpy, seed

__version__ = "0.1.0"
