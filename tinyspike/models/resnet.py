"""Spiking residual networks (REFERENCE.md §5): a stem, stages of blocks, and a spiking head.

    stem      Conv (3×3; ImageNet 7×7/2; ResNet-104 three 3×3 with bias) → tdBN  [→ LIF for spike streams]
    stages    widths (16, 32, 64) on CIFAR, (64, 128, 256, 512) on ImageNet; the first block of
              a stage carries the stage's stride
    head      [LIF for real streams] → global average pool over H, W → mean over T → Dropout → FC

Input (``model(x, time_steps=None)``):

- a static image batch [B, C, H, W] uses *direct encoding*: the same image at every step. The
  stem's conv and BN then see T identical copies, so they run once on [B, ...] and the result is
  broadcast over T (REFERENCE.md §3): same output, 1/T of the stem's work. T is ``time_steps``,
  or the model's ``time_steps`` attribute (set at build, default 6).
- an event-frame sequence [T, B, C, H, W] runs the stem on every step (T from the input).

Output: logits [B, num_classes].

The head's LIF: in MS, SR-B, SR-C and W/O-LIF networks the stream between blocks is real-valued,
so a final LIF turns it into spikes before pooling (the reference's last ``mem_update``). In
vanilla and PlainNet networks the stream is already spikes, and a second LIF on spikes would
only block the gradient (a spike gives u = 1 exactly, where the surrogate 1[0 < u < 1] is 0),
so their head pools the last block's spikes directly; their stem ends with a LIF instead.
"""

from __future__ import annotations

from tinyspike import checks, nn
from tinyspike.autograd import Tensor
from tinyspike import functional as F
from tinyspike.models.blocks import BLOCKS, SPIKES, BlockConfig, ResidualBlock
from tinyspike.nn import init
from tinyspike.nn.layers import check_lif_options

STEMS = ("cifar", "imagenet", "imagenet_deep")


class Stem(nn.Module):
    """Convs → tdBN (→ LIF); runs once and broadcasts over T for static [B, C, H, W] input."""

    def __init__(self, convs: nn.Sequential, bn: nn.BatchNorm2d, lif: nn.LIF | None):
        super().__init__()
        self.convs, self.bn = convs, bn
        self.lif = lif  # None for real-valued streams

    def forward(self, x, time_steps: int):
        if x.ndim == 5:  # event frames: a different input at every step; conv and tdBN fold T
            out = self.bn(self.convs(x))
        else:
            out = nn.broadcast_time(self._static_bn(self.convs(x), time_steps), time_steps)
        return self.lif(out) if self.lif is not None else out

    def _static_bn(self, y, time_steps: int):
        """BN of [B, ...] standing for T identical copies.

        Mean and biased variance over T copies equal those over one, so output and gradients
        match exactly. Only the running variance's unbiased correction differs: it uses
        n/(n−1) with n = B·H·W where T copies have N = T·n. Rescale that update's increment by
        (N/(N−1)) / (n/(n−1)) so the running statistics match too.
        """
        bn = self.bn
        if not (bn.training and time_steps > 1 and bn.running_var is not None):
            return bn(y)
        previous = bn.running_var.copy()
        out = bn(y)
        # values per channel in the statistics: a synchronized BN (distributed.sync_bn) pools the ranks' shards
        n = (y.size // y.shape[1]) * getattr(bn, "ranks_in_statistics", 1)
        factor = (time_steps * (n - 1)) / (time_steps * n - 1)
        kept = (1 - bn.momentum) * previous
        bn.running_var[...] = kept + (bn.running_var - kept) * factor
        return out


class SpikingResNet(nn.Module):
    """A stem, stages of one block type, and the spiking head (module docstring).

    Args:
        block: a key of ``tinyspike.models.blocks.BLOCKS`` ("ms", "srb", "src", "vanilla",
            "wolif", "plain") or a block class.
        stage_blocks: blocks per stage, e.g. (3, 3, 3) for CIFAR ResNet-20.
        widths: channels per stage.
        stage_strides: stride of each stage's first block.
        stem: "cifar" (Conv3×3), "imagenet" (Conv7×7/2) or "imagenet_deep" (three 3×3 convs with
            bias, the first of stride 2: MS-ResNet-104).
        stem_stride: stride of the "cifar" stem conv (2 for 128×128 DVS frames).
        in_channels: 3 for images, 2 for DVS ON/OFF frames.
        num_classes, dropout (before the FC), time_steps (T for static input).
        zero_init_residual: "auto" (γ₂ = 0 in MS and W/O-LIF blocks, whose bn2 is added linearly;
            the tdBN init α·V_th in vanilla, SR-B, SR-C and plain blocks, where a LIF follows and
            a zero γ₂ would block every gradient: see ``blocks``), True (γ₂ = 0 in every block
            with a shortcut) or False (never). shortcut: "conv" or "avgpool".
        bn_alpha: tdBN α (γ₀ = α·V_th); v_th, decay, detach_reset, surrogate: LIF options.
        seed: an int, a Generator, or None (the global generator, see ``tinyspike.seed``).

    Every argument is checked before any layer is made (TypeError/ValueError naming it).
    """

    def __init__(self, block, stage_blocks, widths, stage_strides=None, stem="cifar", stem_stride=1,
                 in_channels=3, num_classes=10, dropout=0.0, time_steps=6, zero_init_residual="auto",
                 shortcut="conv", bn_alpha=1.0, v_th=0.5, decay=0.25, detach_reset=True,
                 surrogate="rectangular", seed=None):
        super().__init__()
        # Every option is checked here, before any layer is made, so that a bad one fails at once
        # naming the option as the caller spelled it (not the Conv2d or LIF it would reach).
        where = "SpikingResNet"
        block_class = _block_class(where, block)
        stage_blocks = checks.integers(where, "stage_blocks", stage_blocks, low=1)
        if not stage_blocks:
            raise ValueError(f"{where}: stage_blocks must have at least one stage, got {stage_blocks}")
        stages = len(stage_blocks)
        widths = checks.integers(where, "widths", widths, length=stages, low=1)
        stage_strides = ((1,) + (2,) * (stages - 1) if stage_strides is None
                         else checks.integers(where, "stage_strides", stage_strides, length=stages, low=1))
        stem = checks.choice(where, "stem", stem, STEMS)
        stem_stride = checks.integer(where, "stem_stride", stem_stride, low=1)
        self.in_channels = checks.integer(where, "in_channels", in_channels, low=1)
        self.num_classes = checks.integer(where, "num_classes", num_classes, low=1)
        dropout = checks.real(where, "dropout", dropout, 0.0, 1.0, high_open=True)
        self.time_steps = _check_time_steps(time_steps)
        zero_init_residual = checks.boolean_or(where, "zero_init_residual", zero_init_residual, ("auto",))
        shortcut = checks.choice(where, "shortcut", shortcut, ("conv", "avgpool"))
        bn_alpha = checks.real(where, "bn_alpha", bn_alpha, low=0.0, low_open=True)
        v_th, decay, detach_reset, _ = check_lif_options(where, v_th, decay, detach_reset, surrogate)
        rng = init.resolve_generator(seed, where, "seed")
        config = BlockConfig(v_th, decay, detach_reset, surrogate, bn_alpha, shortcut, zero_init_residual, rng)
        in_channels, num_classes = self.in_channels, self.num_classes

        spiking_stream = block_class.stream == SPIKES
        self.stem = Stem(
            _stem_convs(stem, in_channels, widths[0], stem_stride, rng),
            config.bn(widths[0]),
            config.lif() if spiking_stream else None,
        )
        stages, channels = [], widths[0]
        # A spiking stream (vanilla, plain) is spikes from the stem's LIF on: the blocks are told so,
        # for their convs. Real-valued streams pass nothing, so a user's block subclass with the
        # plain (in, out, stride, config) signature keeps working.
        stream_kind = {"spike_input": True} if spiking_stream else {}
        for n_blocks, width, stride in zip(stage_blocks, widths, stage_strides):
            blocks = [block_class(channels, width, stride, config, **stream_kind)]
            blocks += [block_class(width, width, 1, config, **stream_kind) for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
            channels = width
        self.stages = nn.ModuleList(stages)
        self.head_lif = None if spiking_stream else config.lif()
        self.dropout = nn.Identity() if dropout == 0 else nn.Dropout(dropout, generator=rng)
        self.fc = nn.Linear(channels, num_classes, generator=rng)

    def forward(self, x, time_steps=None):
        if not isinstance(x, Tensor):
            x = Tensor(x)
        if x.ndim == 4:
            steps = self.time_steps if time_steps is None else _check_time_steps(time_steps)
        elif x.ndim == 5:
            steps = x.shape[0]
            if time_steps is not None and _check_time_steps(time_steps) != steps:
                raise ValueError(f"time_steps={time_steps} but the input has {steps} steps (shape {tuple(x.shape)})")
        else:
            raise ValueError(f"input must be [B, C, H, W] (static) or [T, B, C, H, W] (frames), got shape {tuple(x.shape)}")
        channel_axis = x.ndim - 3
        if x.shape[channel_axis] != self.in_channels:
            raise ValueError(f"input has {x.shape[channel_axis]} channels (shape {tuple(x.shape)}), the model expects {self.in_channels}")
        out = self.stem(x, steps)
        for stage in self.stages:
            out = stage(out)
        return self.head(out)

    def head(self, out):
        """[T, B, C, H, W] stream → logits [B, classes]: (LIF) → pool H, W → mean over T → dropout → FC."""
        if self.head_lif is not None:
            out = self.head_lif(out)
        features = F.global_avg_pool2d(out).mean(axis=0)
        return self.fc(self.dropout(features))


def _check_time_steps(value) -> int:
    return checks.integer("SpikingResNet", "time_steps", value, low=1)


def _block_class(where, block):
    """A key of ``BLOCKS`` or a ``ResidualBlock`` subclass."""
    if isinstance(block, str):
        return BLOCKS[checks.choice(where, "block", block, tuple(BLOCKS))]
    if isinstance(block, type) and issubclass(block, ResidualBlock):
        return block
    raise TypeError(f"{where}: block must be one of {sorted(BLOCKS)} or a ResidualBlock subclass, got {checks.show(block)}")


def _stem_convs(kind, in_channels, width, stride, rng) -> nn.Sequential:
    if kind == "cifar":
        return nn.Sequential(nn.Conv2d(in_channels, width, 3, stride=stride, padding=1, generator=rng))
    if kind == "imagenet":
        return nn.Sequential(nn.Conv2d(in_channels, width, 7, stride=2, padding=3, generator=rng))
    if kind == "imagenet_deep":  # MS-ResNet-104: three 3×3 convs with bias, no nonlinearity between
        return nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=2, padding=1, bias=True, generator=rng),
            nn.Conv2d(width, width, 3, padding=1, bias=True, generator=rng),
            nn.Conv2d(width, width, 3, padding=1, bias=True, generator=rng),
        )
    raise ValueError(f"stem must be 'cifar', 'imagenet' or 'imagenet_deep', got {kind!r}")
