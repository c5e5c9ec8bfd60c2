"""Spiking ResNets: the block types of REFERENCE.md §4 and the networks of §5, by name.

    from tinyspike import models
    model = models.build("ms_resnet20", num_classes=10, time_steps=6, seed=0)
    logits = model(images)                  # images [B, 3, 32, 32] -> logits [B, 10]
    models.list_models()                    # names; <depth> = 6n + 2
"""

from tinyspike.models.blocks import (
    BLOCKS,
    BlockConfig,
    MSBlock,
    PlainPair,
    SRBBlock,
    SRCBlock,
    VanillaBlock,
    WOLIFBlock,
)
from tinyspike.models.registry import build, check_model_name, cifar_depth_to_blocks, list_models
from tinyspike.models.resnet import SpikingResNet, Stem

__all__ = [
    "build", "check_model_name", "list_models", "cifar_depth_to_blocks", "SpikingResNet", "Stem", "BlockConfig", "BLOCKS",
    "MSBlock", "SRBBlock", "SRCBlock", "VanillaBlock", "WOLIFBlock", "PlainPair",
]
