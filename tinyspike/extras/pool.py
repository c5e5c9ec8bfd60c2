"""Max pooling and adaptive average pooling: the pools no model of the zoo uses (MS-ResNet pools
by averaging). Geometry, the vectorisation over kernel offsets and the window checks are those of
``tinyspike.functional.pool``, whose helpers these Functions share."""

from __future__ import annotations

import numpy as np  # only for the small bin matrices of adaptive pooling, built on the host

from tinyspike import backend, checks, tensor_checks
from tinyspike.autograd import Function
from tinyspike.functional.pool import (
    GlobalAvgPool2dFunction, crop_spatial, fold_time, pad_spatial, pooled_size, window_offsets,
)


class MaxPool2dFunction(Function):
    """y[n,c,p,q] = max_{i,j} x_pad[n, c, p·sh + i, q·sw + j]   (padding counts as −∞).

    Backward: the max is locally the selected element, so its derivative is 1 there and 0 at
    the others: g[n,c,p,q] goes to the window's argmax (the first one on ties, as PyTorch; a NaN
    wins, so NaN propagates). Saves the argmax offset i·kw + j per output, as uint8 (kernels up to
    16×16): a quarter of a float32 output, and no copy of x.
    """

    @staticmethod
    def forward(ctx, x, kernel, stride, padding):
        x4, lead = fold_time(x)
        xp = backend.array_module_of(x)
        padded = pad_spatial(x4, padding, -np.inf)
        out_size = pooled_size(x4.shape[2:], kernel, stride, padding)
        index_dtype = xp.uint8 if kernel[0] * kernel[1] <= 256 else xp.int32
        best = argmax = None
        for offset, rows, cols in window_offsets(kernel, stride, out_size):
            window = padded[:, :, rows, cols]
            if best is None:
                best = window.copy()
                argmax = xp.zeros(best.shape, dtype=index_dtype)
                continue
            # strict '>' keeps the first maximum on ties; 'window != window' lets a NaN take over
            better = (window > best) | (window != window)
            best = xp.where(better, window, best)
            argmax[better] = offset
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(argmax)
        ctx.geometry = (x.shape, padded.shape, kernel, stride, padding, out_size)
        return best.reshape(lead + best.shape[1:])

    @staticmethod
    def backward(ctx, grad_y):
        (argmax,) = ctx.saved_tensors
        shape, padded_shape, kernel, stride, padding, out_size = ctx.geometry
        xp = backend.array_module_of(grad_y)
        g = grad_y.reshape(argmax.shape)
        zero = xp.zeros((), dtype=g.dtype)
        grad = xp.zeros(padded_shape, dtype=g.dtype)
        for offset, rows, cols in window_offsets(kernel, stride, out_size):
            grad[:, :, rows, cols] += xp.where(argmax == offset, g, zero)
        return crop_spatial(grad, padding).reshape(shape), None, None, None


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Max pooling of x [N, C, H, W] or [T, B, C, H, W]; stride defaults to kernel_size.

    The gradient goes to the first maximum of each window (row-major order inside the window).
    """
    kernel, stride, padding = tensor_checks.pool_window("max_pool2d", x, kernel_size, stride, padding)
    return MaxPool2dFunction.apply(x, kernel, stride, padding)


def _bin_matrix(in_size: int, out_size: int, dtype):
    """P[o, i] = 1/len(bin o) if input i lies in bin o: PyTorch's adaptive bins
    [⌊o·in/out⌋, ⌈(o+1)·in/out⌉), which may overlap when in is not a multiple of out."""
    matrix = np.zeros((out_size, in_size), dtype=dtype)
    for o in range(out_size):
        start = (o * in_size) // out_size
        end = -((-(o + 1) * in_size) // out_size)
        matrix[o, start:end] = 1.0 / (end - start)
    return matrix


class AdaptiveAvgPool2dFunction(Function):
    """y = P_h · x · P_wᵀ per (n, c) image, with the bin matrices P of ``_bin_matrix``.

    Averaging over a rectangle of bins is separable (mean over rows of the mean over columns),
    which is what makes the two small matrix products exact, for any in/out sizes.
    Backward: a linear map's adjoint, dL/dx = P_hᵀ · g · P_w. Saves the two bin matrices.
    """

    @staticmethod
    def forward(ctx, x, output_size):
        x4, lead = fold_time(x)
        xp = backend.array_module_of(x)
        (h, w), (ho, wo) = x4.shape[2:], output_size
        ph = xp.asarray(_bin_matrix(h, ho, x.dtype))
        pw = xp.asarray(_bin_matrix(w, wo, x.dtype))
        y = xp.matmul(xp.matmul(ph, x4), pw.T)
        ctx.save_for_backward(ph, pw)
        ctx.shape = x.shape
        return y.reshape(lead + y.shape[1:])

    @staticmethod
    def backward(ctx, grad_y):
        ph, pw = ctx.saved_tensors
        xp = backend.array_module_of(grad_y)
        g = grad_y.reshape((-1,) + grad_y.shape[-3:])
        grad = xp.matmul(xp.matmul(ph.T, g), pw)
        return grad.reshape(ctx.shape), None


def adaptive_avg_pool2d(x, output_size):
    """Average pooling to a fixed output size (int or (Ho, Wo)), PyTorch's bin rule.

    Returns [N, C, Ho, Wo] (or [T, B, C, Ho, Wo]); output_size 1 is the global average with
    the spatial axes kept (use ``global_avg_pool2d`` to drop them).
    """
    tensor_checks.tensor_arg("adaptive_avg_pool2d", "x", x, ndims=(4, 5))
    output_size = checks.int_pair("adaptive_avg_pool2d", "output_size", output_size, low=1)
    if output_size == (1, 1):
        y = GlobalAvgPool2dFunction.apply(x)
        return y.reshape(y.shape + (1, 1))
    return AdaptiveAvgPool2dFunction.apply(x, output_size)
