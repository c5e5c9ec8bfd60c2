"""Element-wise and normalising activations: ReLU, softmax, log-softmax.

None of them is in a spiking model of the zoo (the spiking non-linearity, LIF, is in
``functional.lif``: it has a time loop and a surrogate; the classifier's softmax is fused into
``functional.loss.cross_entropy``), so they live here, outside the readable core.
"""

from __future__ import annotations

from tinyspike import backend, checks, tensor_checks
from tinyspike.autograd import Function


class ReLUFunction(Function):
    """y = max(x, 0).  Backward: dL/dx = g · 1[x > 0] (at x = 0 we take 0, as PyTorch).

    Saves the mask 1[x > 0] as bool: one byte per element instead of x's four or eight.
    """

    @staticmethod
    def forward(ctx, x):
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(x > 0)
        return backend.array_module_of(x).maximum(x, x.dtype.type(0))

    @staticmethod
    def backward(ctx, grad_y):
        (mask,) = ctx.saved_tensors
        return grad_y * mask


class SoftmaxFunction(Function):
    """y_k = e^{x_k − m} / Σ_j e^{x_j − m} along ``axis``, m = max_j x_j (subtracting m changes
    nothing mathematically and keeps e^{·} ≤ 1, so it never overflows).

    Backward: ∂y_k/∂x_j = y_k(δ_kj − y_j), hence dL/dx_j = Σ_k g_k y_k (δ_kj − y_j)
    = y_j (g_j − Σ_k g_k y_k). Saves y.
    """

    @staticmethod
    def forward(ctx, x, axis):
        xp = backend.array_module_of(x)
        e = xp.exp(x - x.max(axis=axis, keepdims=True))
        y = e / e.sum(axis=axis, keepdims=True)
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, grad_y):
        (y,) = ctx.saved_tensors
        return y * (grad_y - (grad_y * y).sum(axis=ctx.axis, keepdims=True)), None


class LogSoftmaxFunction(Function):
    """y_k = x_k − m − log Σ_j e^{x_j − m} along ``axis`` (m = max, for stability).

    Backward: ∂y_k/∂x_j = δ_kj − softmax_j, hence dL/dx_j = g_j − softmax_j · Σ_k g_k,
    with softmax = e^y. Saves y.
    """

    @staticmethod
    def forward(ctx, x, axis):
        xp = backend.array_module_of(x)
        shifted = x - x.max(axis=axis, keepdims=True)
        y = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, grad_y):
        (y,) = ctx.saved_tensors
        xp = backend.array_module_of(y)
        return grad_y - xp.exp(y) * grad_y.sum(axis=ctx.axis, keepdims=True), None


def _axis(fn, data, axis):
    axis = checks.integer(fn, "axis", axis)
    if not -data.ndim <= axis < data.ndim or data.ndim == 0:
        raise ValueError(f"{fn}: axis {axis} is out of range for x with {data.ndim} dimensions")
    if data.shape[axis] == 0:
        raise ValueError(f"{fn}: axis {axis} of x (shape {tuple(data.shape)}) is empty: no distribution to normalise")
    return axis % data.ndim


def relu(x):
    """max(x, 0), element-wise."""
    tensor_checks.tensor_arg("relu", "x", x)
    return ReLUFunction.apply(x)


def softmax(x, axis=-1):
    """Softmax along ``axis`` (numerically stable)."""
    data = tensor_checks.tensor_arg("softmax", "x", x)
    return SoftmaxFunction.apply(x, _axis("softmax", data, axis))


def log_softmax(x, axis=-1):
    """log(softmax(x)) along ``axis``, computed without forming softmax (stable for large |x|)."""
    data = tensor_checks.tensor_arg("log_softmax", "x", x)
    return LogSoftmaxFunction.apply(x, _axis("log_softmax", data, axis))
