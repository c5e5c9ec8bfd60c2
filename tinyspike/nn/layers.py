"""The layers: each a Module holding parameters and calling one functional op.

Time: multi-step tensors are time-first [T, B, C, H, W]. Layers without time dynamics (Conv2d,
BatchNorm2d/TDBatchNorm, pools, Linear, Dropout, Flatten) accept them and fold T into the batch
(a reshape view, never a copy), so their weights are shared over time. ``LIF`` is the one layer
with time dynamics: it needs the time axis first.
"""

from __future__ import annotations

import math

from tinyspike import backend, checks
from tinyspike import functional as F
from tinyspike.autograd import is_grad_enabled
from tinyspike.functional import surrogate as _surrogates
from tinyspike.nn import init
from tinyspike.nn.module import Module, Parameter


def check_surrogate(where: str, surrogate):
    """A surrogate name (see ``functional.surrogate``) or a Surrogate object, checked now, not at forward."""
    try:
        return _surrogates.get(surrogate)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{where}: {err}") from None


def check_lif_options(where: str, v_th, decay, detach_reset, surrogate):
    """The LIF constants of REFERENCE.md §1, checked: V_th > 0 finite, τ in [0, 1], a flag, a surrogate.

    Returns ``(v_th, decay, detach_reset)`` as Python float, float, bool and the Surrogate object.
    Shared by ``LIF`` and the model builders, so that ``models.build(..., v_th=nan)`` fails at
    build time naming ``v_th``, not at the first forward.
    """
    return (
        checks.real(where, "v_th", v_th, low=0.0, low_open=True),
        checks.real(where, "decay", decay, 0.0, 1.0),
        checks.boolean(where, "detach_reset", detach_reset),
        check_surrogate(where, surrogate),
    )


class Identity(Module):
    """y = x (a placeholder where a block has no shortcut projection)."""

    def forward(self, x):
        return x


class Conv2d(Module):
    """2-D convolution, weight [out, in, kh, kw] shared over time; input [N, C, H, W] or [T, B, C, H, W].

    ``bias=False`` by default: every conv of the reference model is followed by batch norm, whose
    β makes a bias redundant (REFERENCE.md §3). Weights (and bias) are kaiming-uniform,
    U(±1/√fan_in), drawn from ``generator`` (None: the global one, an int: a seed).

    ``spike_input``: the layer's input is spikes (0/1), declared by whoever builds it (the blocks
    of ``models.blocks`` know which of their convs a LIF feeds, REFERENCE.md §4). Then, while a
    weight gradient is recorded, the conv saves its input for backward as bool (1 byte instead of
    4) and checks that it is indeed 0/1 (a ValueError otherwise, see ``functional.conv2d``).

    Example::

        >>> import numpy as np
        >>> from tinyspike import Tensor, nn
        >>> conv = nn.Conv2d(3, 8, 3, padding=1, generator=0)
        >>> conv.weight.shape
        (8, 3, 3, 3)
        >>> conv(Tensor(np.zeros((6, 2, 3, 32, 32), np.float32))).shape  # [T, B, C, H, W]: T folds into B
        (6, 2, 8, 32, 32)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=False, generator=None,
                 spike_input=False):
        super().__init__()
        self.spike_input = checks.boolean("Conv2d", "spike_input", spike_input)
        self.in_channels = checks.integer("Conv2d", "in_channels", in_channels, low=1)
        self.out_channels = checks.integer("Conv2d", "out_channels", out_channels, low=1)
        self.kernel_size = checks.int_pair("Conv2d", "kernel_size", kernel_size, low=1)
        self.stride = checks.int_pair("Conv2d", "stride", stride, low=1)
        self.padding = checks.int_pair("Conv2d", "padding", padding, low=0)
        bias = checks.boolean("Conv2d", "bias", bias)
        rng = init.resolve_generator(generator, "Conv2d", "generator")
        shape = (self.out_channels, self.in_channels) + self.kernel_size
        self.weight = Parameter(init.kaiming_uniform(shape, rng))
        if bias:
            self.bias = Parameter(init.uniform((self.out_channels,), 1.0 / math.sqrt(init.fan_in(shape)), rng))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        # The bool copy is only for dW. Without a weight gradient (evaluation, no_grad) spikes need
        # no copy and no check: that would be a pass over x and, on CuPy, a device-host
        # synchronisation per layer for an unchanged result.
        save_as_bool = self.spike_input and is_grad_enabled() and self.weight.requires_grad
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, spike_input=save_as_bool)

    def extra_repr(self):
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, bias={self.bias is not None}"
            + (", spike_input=True" if self.spike_input else "")
        )


class BatchNorm2d(Module):
    """Batch norm per channel of [N, C, H, W]; on [T, B, C, H, W] statistics run over (T, B, H, W).

    γ starts at ``gamma_init`` (1 here; ``TDBatchNorm`` uses α·V_th), β at 0. Running statistics
    (buffers ``running_mean``, ``running_var``) are updated in training mode, used in eval mode.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, gamma_init=1.0):
        super().__init__()
        where = type(self).__name__
        self.num_features = checks.integer(where, "num_features", num_features, low=1)
        self.eps = checks.real(where, "eps", eps, low=0.0, low_open=True)
        self.momentum = checks.real(where, "momentum", momentum, 0.0, 1.0)
        gamma_init = checks.real(where, "gamma_init", gamma_init)
        c = self.num_features
        if checks.boolean(where, "affine", affine):
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
        value = checks.real(f"{type(self).__name__}.reset_gamma", "value", value)
        if self.weight is not None:
            self.weight.data[...] = value

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class TDBatchNorm(BatchNorm2d):
    """Threshold-dependent batch norm (tdBN, REFERENCE.md §2): statistics over (T, B, H, W)
    jointly (T folded into the batch), and the initial γ = α·V_th (0.5 with α = 1, V_th = 0.5)
    so that pre-activations start at the scale of the firing threshold.

    Example::

        >>> import numpy as np
        >>> from tinyspike import Tensor, nn
        >>> bn = nn.TDBatchNorm(4)
        >>> bn.weight.numpy()  # γ = α·V_th
        array([0.5, 0.5, 0.5, 0.5], dtype=float32)
        >>> x = np.random.default_rng(0).normal(1.0, 3.0, (6, 2, 4, 5, 5)).astype(np.float32)
        >>> y = bn(Tensor(x)).numpy()  # training mode: this batch's statistics over (T, B, H, W)
        >>> bool(np.allclose(y.mean(axis=(0, 1, 3, 4)), 0.0, atol=1e-5)), bool(np.allclose(y.std(axis=(0, 1, 3, 4)), 0.5, atol=1e-3))
        (True, True)
    """

    def __init__(self, num_features, alpha=1.0, v_th=0.5, eps=1e-5, momentum=0.1, affine=True):
        alpha = checks.real("TDBatchNorm", "alpha", alpha, low=0.0, low_open=True)
        v_th = checks.real("TDBatchNorm", "v_th", v_th, low=0.0, low_open=True)
        super().__init__(num_features, eps, momentum, affine, gamma_init=alpha * v_th)
        self.alpha, self.v_th = alpha, v_th

    def extra_repr(self):
        return super().extra_repr() + f", alpha={self.alpha}, v_th={self.v_th}"


class LIF(Module):
    """Leaky integrate-and-fire neurons over time (REFERENCE.md §1); input [T, ...], time first.

    Returns spikes (0/1) in the input's dtype (real numbers in (0, 1) for the "smooth" test
    surrogate, whose forward is a sigmoid). A ``Conv2d`` it feeds is built with
    ``spike_input=True`` to save them as bool. State starts at u = 0 on every call.

    Monitoring (off by default, so the hot path stays a single kernel call): when ``monitor`` is
    True, each forward stores ``spike_count`` (float), ``num_neurons`` (neurons per sample, the
    product of the axes after [T, B]), ``time_steps``, ``batch_size`` and ``firing_rate`` =
    spikes / (neurons · T · B), as Python numbers. Use ``tinyspike.nn.set_monitoring(model, True)``.
    The cost is one extra read of the spikes (about 4.5 ms for the largest MS-ResNet-20 layer at
    B = 64, T = 6; some 2 % of a training step with every LIF monitored).

    Example (a constant input 0.375 with τ = 0.5: u = 0.375, then 0.5625 > V_th fires and resets)::

        >>> import numpy as np
        >>> from tinyspike import Tensor, nn
        >>> lif = nn.LIF(v_th=0.5, decay=0.5)
        >>> lif(Tensor(np.full((6, 1), 0.375, np.float32))).numpy().ravel()
        array([0., 1., 0., 1., 0., 1.], dtype=float32)
    """

    def __init__(self, v_th=0.5, decay=0.25, detach_reset=True, surrogate="rectangular", monitor=False):
        super().__init__()
        self.v_th, self.decay, self.detach_reset, _ = check_lif_options("LIF", v_th, decay, detach_reset, surrogate)
        self.surrogate = surrogate  # as given (a name or an object): F.lif takes either
        self.monitor = checks.boolean("LIF", "monitor", monitor)
        self.firing_rate = self.spike_count = None
        self.num_neurons = self.time_steps = self.batch_size = None

    def forward(self, x):
        if x.ndim < 2:
            raise ValueError(f"LIF: input must be [T, ...] with time first, got shape {tuple(x.shape)}")
        spikes = F.lif(x, self.v_th, self.decay, self.detach_reset, self.surrogate)
        if self.monitor:
            self._record(spikes)
        return spikes

    def _record(self, spikes) -> None:
        shape = spikes.shape
        self.spike_count = float(spikes.data.sum(dtype=backend.xp().float64).item())  # explicit sync
        self.time_steps, self.batch_size = int(shape[0]), int(shape[1]) if len(shape) > 2 else 1
        self.num_neurons = int(math.prod(shape[2:])) if len(shape) > 2 else int(math.prod(shape[1:]))
        self.firing_rate = self.spike_count / max(1, spikes.size)

    def extra_repr(self):
        return f"v_th={self.v_th}, decay={self.decay}, detach_reset={self.detach_reset}, surrogate={self.surrogate!r}"


def set_monitoring(model: Module, on: bool = True) -> None:
    """Turn firing-rate recording on or off in every LIF layer of ``model``."""
    if not isinstance(model, Module):
        raise TypeError(f"set_monitoring: model must be a Module, got {checks.kind_of(model)}")
    on = checks.boolean("set_monitoring", "on", on)
    for module in model.modules():
        if isinstance(module, LIF):
            module.monitor = on


class Linear(Module):
    """y = x·Wᵀ + b, weight [out_features, in_features]; any leading axes (e.g. [T, B, F]).

    Weight and bias kaiming-uniform, U(±1/√in_features), as PyTorch's default.
    """

    def __init__(self, in_features, out_features, bias=True, generator=None):
        super().__init__()
        self.in_features = checks.integer("Linear", "in_features", in_features, low=1)
        self.out_features = checks.integer("Linear", "out_features", out_features, low=1)
        bias = checks.boolean("Linear", "bias", bias)
        rng = init.resolve_generator(generator, "Linear", "generator")
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
        where = type(self).__name__
        self.kernel_size = checks.int_pair(where, "kernel_size", kernel_size, low=1)
        self.stride = self.kernel_size if stride is None else checks.int_pair(where, "stride", stride, low=1)
        self.padding = checks.int_pair(where, "padding", padding, low=0)
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{where}: padding must be at most half of kernel_size {self.kernel_size}, "
                             f"got {checks.show(padding)}")

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
        self.p = checks.real("Dropout", "p", p, 0.0, 1.0, high_open=True)
        self.generator = None if generator is None else init.resolve_generator(generator, "Dropout", "generator")

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
        self.start_dim = checks.optional_integer("Flatten", "start_dim", start_dim)

    def forward(self, x):
        start = (2 if x.ndim == 5 else 1) if self.start_dim is None else self.start_dim
        if not -x.ndim <= start < x.ndim:
            raise ValueError(f"Flatten: start_dim {start} is out of range for input of shape {tuple(x.shape)}")
        start %= x.ndim
        return x.reshape(tuple(x.shape[:start]) + (-1,))

    def extra_repr(self):
        return f"start_dim={self.start_dim}"

