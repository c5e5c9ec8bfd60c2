"""Batch normalisation, and threshold-dependent batch norm (tdBN) for time-first tensors.

Which axis is the channel, and what is averaged (REFERENCE.md §2):

    [N, C], [N, C, L], [N, C, H, W]    channel axis 1, statistics over every other axis
    [T, B, C, H, W] (time-first)       channel axis 2, statistics over (T, B, H, W) jointly

The 5-D case is tdBN: one set of statistics per channel over all time steps, exactly ordinary BN
on the time-folded tensor [T·B, C, H, W] (not one BN per time step). The tdBN factor α·V_th lives
in the initial γ (set by the layer, not here).

Notation: for one channel, x₁…x_n are the n values reduced over (n = T·B·H·W for 5-D),

    μ = (1/n) Σ xᵢ        σ² = (1/n) Σ (xᵢ − μ)²   (biased)        r = 1/√(σ² + ε)
    x̂ᵢ = (xᵢ − μ)·r       yᵢ = γ·x̂ᵢ + β

computed as y = x·(γr) + (β − μγr), one multiply-add per element.

Training mode normalises with the batch's μ and σ² and updates the running statistics in place:

    running_mean ← (1 − m)·running_mean + m·μ
    running_var  ← (1 − m)·running_var  + m·σ²·n/(n − 1)     (unbiased, as PyTorch)

Evaluation mode normalises with the running statistics and leaves them alone.

Backward, training mode. With g = dL/dy, μ and r depend on every xᵢ:
∂μ/∂xᵢ = 1/n and ∂r/∂xᵢ = −r³(xᵢ − μ)/n (from σ²'s derivative 2(xᵢ − μ)/n). Then

    dL/dβ = Σ gᵢ          dL/dγ = Σ gᵢ·x̂ᵢ
    dL/dx̂ᵢ = γ gᵢ
    dL/dxⱼ = γ r · ( gⱼ − (1/n) Σ gᵢ − x̂ⱼ · (1/n) Σ gᵢ x̂ᵢ )

(the two subtracted terms are the paths through μ and through r). Written per channel as
dx = g_scale·g + centred_scale·(x − μ) + shift with g_scale = γr, centred_scale = −γr³·Σg(x−μ)/n
and shift = −γr·Σg/n, this needs two reductions (Σg, Σg(x − μ)) and one element-wise pass: the
``bn_backward_*`` kernels.

Backward, evaluation mode: μ and r are constants, so dL/dx = γ r g, dL/dγ = Σ g x̂, dL/dβ = Σ g.

Saved for backward (the memory of a training step): the input x itself, and only when the
gradient of γ is wanted, or that of x in training mode (β's gradient needs only g, and x's in
evaluation mode only γr), plus μ, r and γ ([C] each).
Not x̂: it has x's size, and x is kept alive anyway at no cost when it is a view of the caller's
array, while x̂ would be a second full-size array written in forward. Not y: recovering x̂ from
(y − β)/γ fails for γ = 0, which is exactly the zero-init of every block's second BN.
"""

from __future__ import annotations

import math

from tinyspike import backend, checks, kernels, tensor_checks
from tinyspike.autograd import Function

_FN = "batch_norm"


def channel_axis(ndim: int) -> int:
    """The channel axis: 2 for time-first [T, B, C, H, W], else 1."""
    return 2 if ndim == 5 else 1


def as_rows(array, axis: int):
    """View ``array`` as [M, C, S] (M = product of the axes before the channel, S after it)."""
    shape = array.shape
    rows, length = math.prod(shape[:axis]), math.prod(shape[axis + 1 :])
    return backend.array_module_of(array).ascontiguousarray(array).reshape(rows, shape[axis], length)


# The formulas of the module docstring, written once: ``tinyspike/distributed/sync_bn.py`` uses
# them with global statistics, ``tinyspike/nn/fused.py`` the evaluation-mode ``affine``.


def update_running_stats(running_mean, running_var, mean, var, n, momentum) -> None:
    """running ← (1 − m)·running + m·batch, with the unbiased variance σ²·n/(n − 1); in place."""
    unbiased = var * (n / (n - 1))
    running_mean[...] = ((1 - momentum) * running_mean + momentum * mean).astype(running_mean.dtype)
    running_var[...] = ((1 - momentum) * running_var + momentum * unbiased).astype(running_var.dtype)


def affine(mean, var, weight, bias, eps):
    """(scale, shift, r, γ), float64 [C]: the norm is y = x·scale + shift, scale = γr, shift = β − μγr."""
    xp, channels = backend.array_module_of(mean), mean.shape[0]
    invstd = 1.0 / xp.sqrt(var + eps)
    gamma = weight.astype(xp.float64) if weight is not None else xp.ones(channels, dtype=xp.float64)
    beta = bias.astype(xp.float64) if bias is not None else xp.zeros(channels, dtype=xp.float64)
    return gamma * invstd, beta - mean * (gamma * invstd), invstd, gamma


def normalize(ops, x3, mean, var, weight, bias, eps):
    """y = x·scale + shift (``affine``) on rows ``x3`` [M, C, S]; returns (y3, r, γ)."""
    scale, shift, invstd, gamma = affine(mean, var, weight, bias, eps)
    return ops.bn_apply(x3, scale, shift), invstd, gamma


def training_input_gradient(ops, g3, x3, mean, invstd, gamma, sum_g, sum_g_xc, n):
    """dL/dx in training mode from the two per-channel sums Σg and Σg(x − μ) over n values."""
    g_scale = gamma * invstd  # γr
    centred_scale = -g_scale * invstd * invstd * sum_g_xc / n  # the path through r
    shift = -g_scale * sum_g / n  # the path through μ
    return ops.bn_backward_apply(g3, x3, mean, g_scale, centred_scale, shift)


class BatchNormFunction(Function):
    """y = γ·(x − μ)/√(σ² + ε) + β per channel; see the module docstring for the derivation."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, training, momentum, eps):
        xp = backend.array_module_of(x)
        axis = channel_axis(x.ndim)
        x3 = as_rows(x, axis)
        n = x3.shape[0] * x3.shape[2]
        ctx.kernels = kernels.NORM.pick()  # once: backward runs the same implementation
        if training:
            mean, var = ctx.kernels.bn_stats(x3)
            if running_mean is not None:  # in place: the layer's buffers are these very arrays
                update_running_stats(running_mean, running_var, mean, var, n, momentum)
        else:
            # Copies, so that a later change of the buffers cannot change this call's backward.
            mean, var = running_mean.astype(xp.float64), running_var.astype(xp.float64)
        y3, invstd, gamma = normalize(ctx.kernels, x3, mean, var, weight, bias, eps)

        needs_x, needs_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        keep_x = needs_w or (training and needs_x)
        ctx.save_for_backward(x3 if keep_x else None, mean, invstd, gamma)
        ctx.training, ctx.shape, ctx.axis, ctx.n = training, x.shape, axis, n
        return y3.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad_y):
        x3, mean, invstd, gamma = ctx.saved_tensors
        needs_x, needs_w, needs_b = ctx.needs_input_grad[:3]
        xp = backend.array_module_of(grad_y)
        dtype = grad_y.dtype
        g3 = as_rows(grad_y, ctx.axis)

        sum_g = sum_g_xc = None
        if x3 is not None:
            sum_g, sum_g_xc = ctx.kernels.bn_backward_reduce(g3, x3, mean)
        elif needs_b:  # x was not kept: only β's gradient (and, in eval mode, x's) is wanted
            sum_g = g3.sum(axis=(0, 2), dtype=xp.float64)

        grad_x = grad_w = grad_b = None
        if needs_x:
            if ctx.training:
                grad_x = training_input_gradient(ctx.kernels, g3, x3, mean, invstd, gamma, sum_g, sum_g_xc, ctx.n)
            else:  # γr g: μ and r are constants
                g_scale = gamma * invstd
                grad_x = ctx.kernels.bn_apply(g3, g_scale, xp.zeros_like(g_scale))
            grad_x = grad_x.reshape(ctx.shape)
        if needs_w:
            grad_w = (sum_g_xc * invstd).astype(dtype)  # Σ g·x̂
        if needs_b:
            grad_b = sum_g.astype(dtype)
        return grad_x, grad_w, grad_b, None, None, None, None, None


def batch_norm(x, weight, bias, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """Batch norm over the channel axis (1; 2 for 5-D time-first input, i.e. tdBN).

    Args:
        x: Tensor [N, C], [N, C, L], [N, C, H, W] or [T, B, C, H, W].
        weight, bias: γ and β, Tensors [C] of x's dtype, or None (γ = 1, β = 0; affine=False).
        running_mean, running_var: buffers, arrays [C] (or None to use batch statistics only,
            training mode). Updated **in place** in training mode; used in evaluation mode.
        training: bool. True: batch statistics + running update; False: running statistics.
        momentum: weight of the new batch in the running average, in [0, 1] (PyTorch's 0.1).
        eps: added to the variance, finite and > 0.

    In evaluation mode the running statistics must be finite and running_var >= 0 (a ValueError
    names the buffer otherwise).

    Returns a Tensor of x's shape and dtype. See the module docstring for the maths.
    """
    data = tensor_checks.tensor_arg(_FN, "x", x, ndims=(2, 3, 4, 5))
    training = checks.boolean(_FN, "training", training)
    momentum = checks.real(_FN, "momentum", momentum, 0.0, 1.0)
    eps = checks.real(_FN, "eps", eps, 0.0, None, low_open=True)
    axis = channel_axis(data.ndim)
    channels = data.shape[axis]

    where = f" (channel axis {axis} of x with shape {tuple(data.shape)})"
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None:
            tensor_checks.parameter(_FN, name, value, data, 1, (channels,), where)
    running_mean, running_var = tensor_checks.running_stats(_FN, running_mean, running_var, data, channels, training)
    if training:
        n = data.size // channels if channels else 0
        if n < 2:
            raise ValueError(
                f"{_FN}: training mode needs more than one value per channel to estimate a variance, "
                f"got x with shape {tuple(data.shape)} ({n} per channel)"
            )
    return BatchNormFunction.apply(x, weight, bias, running_mean, running_var, training, momentum, eps)
