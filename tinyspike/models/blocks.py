"""The residual blocks of REFERENCE.md §4: MS (= SR-A), SR-B, SR-C, vanilla spiking, W/O LIF, and
the PlainNet layer pair. Every block maps [T, B, C_in, H, W] to [T, B, C_out, H/s, W/s].

| block        | computes                                             | stream between blocks |
|--------------|------------------------------------------------------|-----------------------|
| MSBlock      | x + BN₂(Conv₂(LIF(BN₁(Conv₁(LIF x)))))               | real                  |
| SRBBlock     | x + Conv₂(LIF(BN₂(Conv₁(LIF(BN₁ x)))))               | real                  |
| SRCBlock     | x + LIF(BN₂(Conv₂(LIF(BN₁(Conv₁ x)))))               | real                  |
| VanillaBlock | LIF(BN₂(Conv₂(LIF(BN₁(Conv₁ x)))) + shortcut(x))     | spikes                |
| WOLIFBlock   | BN₂(Conv₂(LIF(BN₁(Conv₁ x)))) + shortcut(x)          | real                  |
| PlainPair    | LIF(BN₂(Conv₂(LIF(BN₁(Conv₁ x)))))  (no shortcut)    | spikes                |

("x +" stands for the shortcut: x itself, or its projection when the shape changes.) Each
BN(Conv(·)) is written ``nn.conv_bn(conv, bn, ·)``: exactly ``bn(conv(·))``, computed in one pass
of the conv kernel at evaluation time under ``no_grad`` (``tinyspike/nn/fused.py``).

Shortcut projection, when the stride is not 1 or the width changes (it acts on the stream as it
is: real values for MS, spikes for vanilla): ``"conv"`` = Conv1×1(stride) → BN, or ``"avgpool"``
(MS-ResNet-104) = AvgPool(stride) → Conv1×1 → BN. Its BN starts at γ₀ = α·V_th like the others.

Zero-init (paper §V-B): the branch's second BN starts at γ = 0 so that the block starts as its
shortcut. It is safe only where that BN feeds the addition linearly and no LIF follows the sum:
then the sum's gradient reaches γ₂ directly, γ₂ moves off 0 at the first step, and the branch
trains from the second. Where a LIF sees BN₂'s output (SR-B, SR-C) or the sum with an identity
shortcut (vanilla), γ₂ = β₂ = 0 makes that LIF's input exactly 0 or exactly a spike (0 or 1): with
the default LIF and surrogate, on the edge of the rectangular window |u − V_th| < a/2 (0 < u < 1),
so its gradient is exactly 0, and neither γ₂ nor anything before it ever trains (REFERENCE.md §2).
``zero_init="auto"`` (the default) therefore does, per block type:

| block        | where bn2 goes                 | "auto"                          |
|--------------|--------------------------------|---------------------------------|
| MSBlock      | straight into the add          | γ₂ = 0 (the paper's trick)      |
| WOLIFBlock   | straight into the add          | γ₂ = 0                          |
| VanillaBlock | into the add, then a LIF       | γ₂ = α·V_th (tdBN init)         |
| SRBBlock     | into a LIF                     | γ₂ = α·V_th                     |
| SRCBlock     | into a LIF                     | γ₂ = α·V_th                     |
| PlainPair    | into a LIF (no shortcut)       | γ₂ = α·V_th                     |

Which convs receive spikes (REFERENCE.md §4), declared when the block is built
(``Conv2d(spike_input=True)``: they save their input for backward as bool, 1 byte instead of 4):
conv2 always (lif1 feeds it); conv1 in MS and SR-B (lif1 comes first); in vanilla and plain
blocks conv1 and the shortcut's conv receive the stream x, spikes in their networks (the stem ends
with a LIF): ``spike_input=True`` says so. With the non-binary "smooth" test surrogate none do.

``zero_init=True`` forces γ₂ = 0 in every block with a shortcut (for the experiment: it kills the
gradient of vanilla, SR-B and SR-C networks); ``False`` keeps the tdBN init everywhere.
"""

from __future__ import annotations

from tinyspike import checks, nn
from tinyspike.nn import init
from tinyspike.nn.layers import check_lif_options

REAL, SPIKES = "real", "spikes"


def conv3x3(in_channels, out_channels, stride, rng, spike_input=False):
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False, generator=rng,
                     spike_input=spike_input)


class BlockConfig:
    """What every block of a network shares: LIF constants, tdBN α, shortcut kind, init switches."""

    def __init__(self, v_th=0.5, decay=0.25, detach_reset=True, surrogate="rectangular", bn_alpha=1.0,
                 shortcut="conv", zero_init="auto", generator=None):
        where = "BlockConfig"
        self.v_th, self.decay, self.detach_reset, checked = check_lif_options(where, v_th, decay, detach_reset, surrogate)
        self.surrogate = surrogate
        self.binary_spikes = checked.binary  # False for "smooth": its LIFs' outputs are not 0/1
        self.bn_alpha = checks.real(where, "bn_alpha", bn_alpha, low=0.0, low_open=True)
        self.shortcut = checks.choice(where, "shortcut", shortcut, ("conv", "avgpool"))
        self.zero_init = checks.boolean_or(where, "zero_init", zero_init, ("auto",))
        self.generator = init.resolve_generator(generator, where, "generator")

    def lif(self):
        return nn.LIF(self.v_th, self.decay, self.detach_reset, self.surrogate)

    def bn(self, channels):
        return nn.TDBatchNorm(channels, alpha=self.bn_alpha, v_th=self.v_th)


def projection(in_channels, out_channels, stride, config: BlockConfig, spike_input=False):
    """The shortcut: identity when the shape is kept, else Conv1×1(stride)→BN or AvgPool→Conv1×1→BN.

    ``spike_input``: x is spikes (then the strided 1×1 conv receives them; after an average pool
    it does not).
    """
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if config.shortcut == "avgpool" and stride > 1:
        return nn.Sequential(
            nn.AvgPool2d(stride, stride),
            nn.Conv2d(in_channels, out_channels, 1, bias=False, generator=config.generator),
            config.bn(out_channels),
        )
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False, generator=config.generator,
                  spike_input=spike_input),
        config.bn(out_channels),
    )


class ResidualBlock(nn.Module):
    """Shared construction: conv1 (3×3, stride), conv2 (3×3), bn1, bn2, lif1, lif2, shortcut.

    Subclasses set ``stream`` (what flows between blocks), ``zero_init_auto`` (whether "auto"
    zeroes bn2's γ: only where bn2 feeds the addition and no LIF follows it), ``bn1_on_input``
    (SR-B normalises the input, so bn1 has C_in channels), ``lif_before_conv1`` (conv1 receives
    lif1's spikes: MS, SR-B) and ``has_shortcut``, and write ``forward``.

    ``spike_input``: the block's input x is spikes, as in vanilla and plain networks (their stem
    ends with a LIF); only for blocks whose stream is spikes. conv1 (and the shortcut's conv) then
    save x as bool.
    """

    stream = REAL
    zero_init_auto = True
    bn1_on_input = False
    lif_before_conv1 = False
    has_shortcut = True

    def __init__(self, in_channels, out_channels, stride=1, config: BlockConfig | None = None, spike_input=False):
        super().__init__()
        config = BlockConfig() if config is None else config
        if not isinstance(config, BlockConfig):
            raise TypeError(f"{type(self).__name__}: config must be a BlockConfig or None, got {checks.kind_of(config)}")
        rng = config.generator
        where = type(self).__name__
        self.in_channels = checks.integer(where, "in_channels", in_channels, low=1)
        self.out_channels = checks.integer(where, "out_channels", out_channels, low=1)
        self.stride = checks.integer(where, "stride", stride, low=1)
        in_channels, out_channels, stride = self.in_channels, self.out_channels, self.stride
        self.spike_input = checks.boolean(where, "spike_input", spike_input)
        if self.spike_input and self.stream != SPIKES:
            raise ValueError(f"{where}: spike_input=True is for blocks whose stream is spikes (vanilla, plain); "
                             f"the stream of {where} is real-valued")
        x_is_spikes = self.spike_input and config.binary_spikes
        lif_spikes = config.binary_spikes  # what lif1 and lif2 emit
        self.conv1 = conv3x3(in_channels, out_channels, stride, rng,
                             spike_input=lif_spikes if self.lif_before_conv1 else x_is_spikes)
        self.bn1 = config.bn(in_channels if self.bn1_on_input else out_channels)
        self.lif1 = config.lif()
        self.conv2 = conv3x3(out_channels, out_channels, 1, rng, spike_input=lif_spikes)
        self.bn2 = config.bn(out_channels)
        self.lif2 = config.lif()
        if self.has_shortcut:
            self.shortcut = projection(in_channels, out_channels, stride, config, spike_input=x_is_spikes)
        zero = self.zero_init_auto if config.zero_init == "auto" else config.zero_init
        if zero and self.has_shortcut:  # without a shortcut a zero γ would silence the network
            self.bn2.reset_gamma(0.0)

    def extra_repr(self):
        return f"{self.in_channels} -> {self.out_channels}, stride={self.stride}"


class MSBlock(ResidualBlock):
    """Membrane-shortcut block (SR-A), the paper's choice: y = x + BN₂(Conv₂(LIF(BN₁(Conv₁(LIF x))))).

    Example (γ₂ starts at 0, so a fresh block passes its input, the membrane, through unchanged)::

        >>> import numpy as np
        >>> from tinyspike import Tensor
        >>> from tinyspike.models.blocks import MSBlock
        >>> x = Tensor(np.random.default_rng(0).standard_normal((2, 1, 8, 6, 6)).astype(np.float32))
        >>> bool((MSBlock(8, 8)(x).numpy() == x.numpy()).all())
        True
        >>> MSBlock(8, 16, stride=2)(x).shape  # a downsampling block: conv shortcut, half the size
        (2, 1, 16, 3, 3)
    """

    def forward(self, x):
        out = nn.conv_bn(self.conv1, self.bn1, self.lif1(x))
        out = nn.conv_bn(self.conv2, self.bn2, self.lif2(out))
        return out + self.shortcut(x)


class SRBBlock(ResidualBlock):
    """Full pre-activation: y = x + Conv₂(LIF(BN₂(Conv₁(LIF(BN₁ x)))))."""

    zero_init_auto = False
    bn1_on_input = True
    lif_before_conv1 = True

    def forward(self, x):
        out = self.conv1(self.lif1(self.bn1(x)))
        out = self.conv2(self.lif2(self.bn2(out)))
        return out + self.shortcut(x)


class SRCBlock(ResidualBlock):
    """Activation before the add: y = x + LIF(BN₂(Conv₂(LIF(BN₁(Conv₁ x)))))."""

    zero_init_auto = False

    def forward(self, x):
        out = self.lif1(nn.conv_bn(self.conv1, self.bn1, x))
        out = self.lif2(nn.conv_bn(self.conv2, self.bn2, out))
        return out + self.shortcut(x)


class VanillaBlock(ResidualBlock):
    """Spiking ResNet: y = LIF(BN₂(Conv₂(LIF(BN₁(Conv₁ x)))) + shortcut(x)); x and y are spikes.

    "auto" keeps γ₂ = α·V_th: with γ₂ = 0 the last LIF would see the shortcut's spikes exactly,
    where the surrogate is 0, and no gradient would pass the block (see the module docstring).
    """

    stream = SPIKES
    zero_init_auto = False

    def forward(self, x):
        out = self.lif1(nn.conv_bn(self.conv1, self.bn1, x))
        out = nn.conv_bn(self.conv2, self.bn2, out)
        return self.lif2(out + self.shortcut(x))


class WOLIFBlock(ResidualBlock):
    """Vanilla without the LIF after the add: y = BN₂(Conv₂(LIF(BN₁(Conv₁ x)))) + shortcut(x)."""

    def forward(self, x):
        out = self.lif1(nn.conv_bn(self.conv1, self.bn1, x))
        return nn.conv_bn(self.conv2, self.bn2, out) + self.shortcut(x)


class PlainPair(ResidualBlock):
    """Two PlainNet layers, LIF(BN(Conv(·))) twice, no shortcut (counts as one "block" in depth 6n+2)."""

    stream = SPIKES
    zero_init_auto = False
    has_shortcut = False

    def forward(self, x):
        out = self.lif1(nn.conv_bn(self.conv1, self.bn1, x))
        return self.lif2(nn.conv_bn(self.conv2, self.bn2, out))


BLOCKS = {
    "ms": MSBlock,
    "srb": SRBBlock,
    "src": SRCBlock,
    "vanilla": VanillaBlock,
    "wolif": WOLIFBlock,
    "plain": PlainPair,
}
