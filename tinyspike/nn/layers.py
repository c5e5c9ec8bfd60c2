"""The layers: each a Module holding parameters and calling one functional op.

Time: multi-step tensors are time-first [T, B, C, H, W]. Layers without time dynamics (Conv2d,
BatchNorm2d/TDBatchNorm, pools, Linear, Dropout, Flatten) accept them and fold T into the batch
(a reshape view, never a copy), so their weights are shared over time. ``LIF`` is the one layer
with time dynamics: it needs the time axis first.
"""

from __future__ import annotations

import math
import numbers

from tinyspike import backend
from tinyspike import functional as F
from tinyspike.functional import surrogate as _surrogates
from tinyspike.nn import init
from tinyspike.nn.module import Module, Parameter


def _positive_int(cls: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{cls}: {name} must be a positive int, got {value!r}")
    return int(value)


def _pair(cls: str, name: str, value, minimum: int) -> tuple[int, int]:
    values = value if isinstance(value, (tuple, list)) else (value, value)
    if len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in values):
        raise TypeError(f"{cls}: {name} must be an int or a pair of ints, got {value!r}")
    if any(v < minimum for v in values):
        raise ValueError(f"{cls}: {name} must be >= {minimum}, got {value!r}")
    return int(values[0]), int(values[1])


class Identity(Module):
    """y = x (a placeholder where a block has no shortcut projection)."""

    def forward(self, x):
        return x


class Conv2d(Module):
    """2-D convolution, weight [out, in, kh, kw] shared over time; input [N, C, H, W] or [T, B, C, H, W].

    ``bias=False`` by default: every conv of the reference model is followed by batch norm, whose
    β makes a bias redundant (REFERENCE.md §3). Weights (and bias) are kaiming-uniform,
    U(±1/√fan_in), drawn from ``generator`` (None: the global one, an int: a seed).

    ``binary_input``: whether the input is spikes (0/1), which lets the conv keep it for
    backward as bool (1 byte instead of 4). "auto" (default) trusts the mark a ``LIF`` layer puts
    on its output (``tensor.is_binary``); True/False force it.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=False, generator=None,
                 binary_input="auto"):
        super().__init__()
        if binary_input not in ("auto", True, False):
            raise ValueError(f"Conv2d: binary_input must be 'auto', True or False, got {binary_input!r}")
        self.binary_input = binary_input
        self.in_channels = _positive_int("Conv2d", "in_channels", in_channels)
        self.out_channels = _positive_int("Conv2d", "out_channels", out_channels)
        self.kernel_size = _pair("Conv2d", "kernel_size", kernel_size, 1)
        self.stride = _pair("Conv2d", "stride", stride, 1)
        self.padding = _pair("Conv2d", "padding", padding, 0)
        rng = init.resolve_generator(generator)
        shape = (self.out_channels, self.in_channels) + self.kernel_size
        self.weight = Parameter(init.kaiming_uniform(shape, rng))
        if bias:
            self.bias = Parameter(init.uniform((self.out_channels,), 1.0 / math.sqrt(init.fan_in(shape)), rng))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        binary = getattr(x, "is_binary", False) if self.binary_input == "auto" else self.binary_input
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, binary_input=binary)

    def extra_repr(self):
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, bias={self.bias is not None}"
        )


class BatchNorm2d(Module):
    """Batch norm per channel of [N, C, H, W]; on [T, B, C, H, W] statistics run over (T, B, H, W).

    γ starts at ``gamma_init`` (1 here; ``TDBatchNorm`` uses α·V_th), β at 0. Running statistics
    (buffers ``running_mean``, ``running_var``) are updated in training mode, used in eval mode.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, gamma_init=1.0):
        super().__init__()
        self.num_features = _positive_int(type(self).__name__, "num_features", num_features)
        if not (isinstance(eps, numbers.Real) and eps > 0):
            raise ValueError(f"{type(self).__name__}: eps must be a positive number, got {eps!r}")
        if not (isinstance(momentum, numbers.Real) and 0 <= momentum <= 1):
            raise ValueError(f"{type(self).__name__}: momentum must be in [0, 1], got {momentum!r}")
        self.eps, self.momentum = float(eps), float(momentum)
        c = self.num_features
        if affine:
            self.weight = Parameter(init.constant((c,), gamma_init))
            self.bias = Parameter(init.constant((c,), 0.0))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.register_buffer("running_mean", init.constant((c,), 0.0))
        self.register_buffer("running_var", init.constant((c,), 1.0))

    def forward(self, x):
        ndim = x.ndim
        if ndim not in (4, 5):
            raise ValueError(f"{type(self).__name__}: input must be [N, C, H, W] or [T, B, C, H, W], got shape {tuple(x.shape)}")
        return F.batch_norm(
            x, self.weight, self.bias, self.running_mean, self.running_var, self.training, self.momentum, self.eps
        )

    def reset_gamma(self, value: float) -> None:
        """Set every γ to ``value`` (e.g. 0 for the zero-init of a residual branch's last BN)."""
        if self.weight is not None:
            self.weight.data[...] = value

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class TDBatchNorm(BatchNorm2d):
    """Threshold-dependent batch norm (tdBN, REFERENCE.md §2): statistics over (T, B, H, W)
    jointly (T folded into the batch), and the initial γ = α·V_th (0.5 with α = 1, V_th = 0.5)
    so that pre-activations start at the scale of the firing threshold.
    """

    def __init__(self, num_features, alpha=1.0, v_th=0.5, eps=1e-5, momentum=0.1, affine=True):
        for name, value in (("alpha", alpha), ("v_th", v_th)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"TDBatchNorm: {name} must be a number, got {value!r}")
        super().__init__(num_features, eps, momentum, affine, gamma_init=float(alpha) * float(v_th))
        self.alpha, self.v_th = float(alpha), float(v_th)

    def extra_repr(self):
        return super().extra_repr() + f", alpha={self.alpha}, v_th={self.v_th}"


class LIF(Module):
    """Leaky integrate-and-fire neurons over time (REFERENCE.md §1); input [T, ...], time first.

    Returns spikes (0/1) in the input's dtype, marked ``spikes.is_binary = True`` so that a
    following ``Conv2d`` saves them as bool (not for the "smooth" test surrogate, whose forward
    is a sigmoid). State starts at u = 0 on every call.

    Monitoring (off by default, so the hot path stays a single kernel call): when ``monitor`` is
    True, each forward stores ``spike_count`` (float), ``num_neurons`` (neurons per sample, the
    product of the axes after [T, B]), ``time_steps``, ``batch_size`` and ``firing_rate`` =
    spikes / (neurons · T · B), as Python numbers. Use ``tinyspike.nn.set_monitoring(model, True)``.
    The cost is one extra read of the spikes (about 4.5 ms for the largest MS-ResNet-20 layer at
    B = 64, T = 6; some 2 % of a training step with every LIF monitored).
    """

    def __init__(self, v_th=0.5, decay=0.25, detach_reset=True, surrogate="rectangular", monitor=False):
        super().__init__()
        self.v_th, self.decay = v_th, decay
        self.detach_reset, self.surrogate = detach_reset, surrogate
        self._binary = _surrogates.get(surrogate).binary  # also rejects an unknown surrogate now
        self.monitor = bool(monitor)
        self.firing_rate = self.spike_count = None
        self.num_neurons = self.time_steps = self.batch_size = None

    def forward(self, x):
        if x.ndim < 2:
            raise ValueError(f"LIF: input must be [T, ...] with time first, got shape {tuple(x.shape)}")
        spikes = F.lif(x, self.v_th, self.decay, self.detach_reset, self.surrogate)
        spikes.is_binary = self._binary
        if self.monitor:
            self._record(spikes)
        return spikes

    def _record(self, spikes) -> None:
        shape = spikes.shape
        self.spike_count = float(spikes.data.sum(dtype=backend.xp().float64))
        self.time_steps, self.batch_size = int(shape[0]), int(shape[1]) if len(shape) > 2 else 1
        self.num_neurons = int(math.prod(shape[2:])) if len(shape) > 2 else int(math.prod(shape[1:]))
        self.firing_rate = self.spike_count / max(1, spikes.size)

    def extra_repr(self):
        return f"v_th={self.v_th}, decay={self.decay}, detach_reset={self.detach_reset}, surrogate={self.surrogate!r}"


def set_monitoring(model: Module, on: bool = True) -> None:
    """Turn firing-rate recording on or off in every LIF layer of ``model``."""
    for module in model.modules():
        if isinstance(module, LIF):
            module.monitor = bool(on)


class Linear(Module):
    """y = x·Wᵀ + b, weight [out_features, in_features]; any leading axes (e.g. [T, B, F]).

    Weight and bias kaiming-uniform, U(±1/√in_features), as PyTorch's default.
    """

    def __init__(self, in_features, out_features, bias=True, generator=None):
        super().__init__()
        self.in_features = _positive_int("Linear", "in_features", in_features)
        self.out_features = _positive_int("Linear", "out_features", out_features)
        rng = init.resolve_generator(generator)
        shape = (self.out_features, self.in_features)
        self.weight = Parameter(init.kaiming_uniform(shape, rng))
        if bias:
            self.bias = Parameter(init.uniform((self.out_features,), 1.0 / math.sqrt(self.in_features), rng))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class AvgPool2d(Module):
    """Average pooling over H, W of [N, C, H, W] or [T, B, C, H, W]; stride defaults to kernel_size."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(AvgPool2d):
    """Max pooling over H, W of [N, C, H, W] or [T, B, C, H, W]; stride defaults to kernel_size."""

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)


class GlobalAvgPool2d(Module):
    """Mean over H, W: [N, C, H, W] → [N, C]; [T, B, C, H, W] → [T, B, C]."""

    def forward(self, x):
        return F.global_avg_pool2d(x)


class Dropout(Module):
    """Zero each element with probability p in training (scaling the rest by 1/(1-p)); identity in eval.

    The mask is drawn from ``generator`` (None: the backend's global generator; an int: a seed).
    """

    def __init__(self, p=0.5, generator=None):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p!r}")
        self.p = float(p)
        self.generator = None if generator is None else init.resolve_generator(generator)

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        return F.dropout(x, self.p, self.training, self.generator)

    def extra_repr(self):
        return f"p={self.p}"


class Flatten(Module):
    """Flatten the feature axes into one: [B, C, H, W] → [B, C·H·W], [T, B, C, H, W] → [T, B, C·H·W].

    ``start_dim=None`` (default) keeps the batch axis, and the time axis too for 5-D input;
    an int flattens from that axis to the end, as ``torch.flatten(x, start_dim)``.
    """

    def __init__(self, start_dim=None):
        super().__init__()
        if start_dim is not None and (isinstance(start_dim, bool) or not isinstance(start_dim, numbers.Integral)):
            raise TypeError(f"Flatten: start_dim must be an int or None, got {start_dim!r}")
        self.start_dim = start_dim

    def forward(self, x):
        start = (2 if x.ndim == 5 else 1) if self.start_dim is None else self.start_dim
        if not -x.ndim <= start < x.ndim:
            raise ValueError(f"Flatten: start_dim {start} is out of range for input of shape {tuple(x.shape)}")
        start %= x.ndim
        return x.reshape(tuple(x.shape[:start]) + (-1,))

    def extra_repr(self):
        return f"start_dim={self.start_dim}"

