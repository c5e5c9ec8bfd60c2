"""Layers and the Module system: ``Module``, ``Parameter``, the layers, containers, checkpoints.

    from tinyspike import nn
    block = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.TDBatchNorm(16), nn.LIF())
    y = block(x)                      # x: [T, B, 16, H, W]; conv and BN fold T into the batch
    nn.save_checkpoint("run.npz", block, epoch=3)
"""

from tinyspike.nn.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from tinyspike.nn.containers import ModuleList, Sequential
from tinyspike.nn.fused import conv_bn
from tinyspike.nn.layers import (
    LIF,
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    GlobalAvgPool2d,
    Identity,
    Linear,
    MaxPool2d,
    TDBatchNorm,
    set_monitoring,
)
from tinyspike.nn.module import Module, Parameter, RemovableHandle, StateDictKeyError
from tinyspike.nn.monitor import FiringRateMonitor
from tinyspike.nn._ops import broadcast_time

__all__ = [
    "Module", "Parameter", "RemovableHandle", "StateDictKeyError",
    "Conv2d", "BatchNorm2d", "TDBatchNorm", "LIF", "Linear", "AvgPool2d", "MaxPool2d",
    "GlobalAvgPool2d", "Dropout", "Flatten", "Identity", "Sequential", "ModuleList",
    "set_monitoring", "broadcast_time", "conv_bn", "FiringRateMonitor", "save_checkpoint", "load_checkpoint", "read_checkpoint",
]
