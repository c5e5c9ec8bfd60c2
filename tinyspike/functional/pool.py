"""Spatial pooling: average and global average (MS-ResNet's two pools), on NCHW or time-first
[T, B, C, H, W] input (pooling has no time dynamics, so T folds into the batch). Max and adaptive
average pooling, which no model of the zoo uses, are in ``tinyspike/extras/pool.py`` and share the
helpers below.

Geometry (as PyTorch, ``ceil_mode=False``): kernel (kh, kw), stride (sh, sw), zero padding
(ph, pw) on both sides, output size Ho = ⌊(H + 2ph − kh)/sh⌋ + 1 (same for W). Padding may be
at most half the kernel (PyTorch's rule), so every window holds at least one real pixel.

How it is vectorised: a window position (i, j) inside the kernel selects the strided slice

    x_pad[:, :, i : i + sh·(Ho−1) + 1 : sh,  j : j + sw·(Wo−1) + 1 : sw]          [N, C, Ho, Wo]

that holds, for every output pixel, the input pixel at offset (i, j) of its window. Pooling is
a reduction over these kh·kw slices, so the Python loop runs over kernel offsets (4 or 9 of them),
never over pixels, and the same code runs on NumPy and CuPy. Backward scatters through the same
slices (adjoint of a gather = scatter-add).
"""

from __future__ import annotations

from tinyspike import backend, tensor_checks
from tinyspike.autograd import Function


def fold_time(x):
    """[T, B, C, H, W] → [T·B, C, H, W]; 4-D unchanged. Returns (x4, leading shape)."""
    return x.reshape((-1,) + x.shape[-3:]), x.shape[:-3]


def window_offsets(kernel, stride, out_size):
    """Yield (index, row slice, column slice) for every offset (i, j) of the kernel window."""
    (kh, kw), (sh, sw), (ho, wo) = kernel, stride, out_size
    for i in range(kh):
        for j in range(kw):
            yield i * kw + j, slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw)


def pad_spatial(x4, padding, value):
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x4
    xp = backend.array_module_of(x4)
    return xp.pad(x4, ((0, 0), (0, 0), (ph, ph), (pw, pw)), mode="constant", constant_values=value)


def crop_spatial(x4, padding):
    ph, pw = padding
    return x4[:, :, ph : x4.shape[2] - ph, pw : x4.shape[3] - pw]


def pooled_size(in_size, kernel, stride, padding):
    """(Ho, Wo): Ho = ⌊(H + 2ph − kh)/sh⌋ + 1, and the same for W."""
    return tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(in_size, kernel, stride, padding))


class AvgPool2dFunction(Function):
    """y[n,c,p,q] = (1/(kh·kw)) Σ_{i,j} x_pad[n, c, p·sh + i, q·sw + j]   (zeros count: PyTorch's
    default ``count_include_pad=True``).

    Backward: y is linear in x, each x_pad pixel receives g[n,c,p,q]/(kh·kw) from every window
    that contains it; then the padding border is cut off. Saves nothing but shapes.
    """

    @staticmethod
    def forward(ctx, x, kernel, stride, padding):
        x4, lead = fold_time(x)
        xp = backend.array_module_of(x)
        padded = pad_spatial(x4, padding, 0)
        out_size = pooled_size(x4.shape[2:], kernel, stride, padding)
        windows = (padded[:, :, rows, cols] for _, rows, cols in window_offsets(kernel, stride, out_size))
        acc = next(windows).copy()  # then added to in place: one output-sized buffer
        for window in windows:
            acc += window
        acc *= xp.asarray(1.0 / (kernel[0] * kernel[1]), dtype=x.dtype)
        ctx.geometry = (x.shape, padded.shape, kernel, stride, padding, out_size)
        return acc.reshape(lead + acc.shape[1:])

    @staticmethod
    def backward(ctx, grad_y):
        shape, padded_shape, kernel, stride, padding, out_size = ctx.geometry
        xp = backend.array_module_of(grad_y)
        g = grad_y.reshape((-1,) + grad_y.shape[-3:]) * xp.asarray(1.0 / (kernel[0] * kernel[1]), dtype=grad_y.dtype)
        grad = xp.zeros(padded_shape, dtype=grad_y.dtype)
        for _, rows, cols in window_offsets(kernel, stride, out_size):
            grad[:, :, rows, cols] += g
        return crop_spatial(grad, padding).reshape(shape), None, None, None


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Average pooling of x [N, C, H, W] or [T, B, C, H, W]; stride defaults to kernel_size.

    Padded zeros count in the average (PyTorch's ``count_include_pad=True``); no ``ceil_mode``.
    """
    kernel, stride, padding = tensor_checks.pool_window("avg_pool2d", x, kernel_size, stride, padding)
    return AvgPool2dFunction.apply(x, kernel, stride, padding)


class GlobalAvgPool2dFunction(Function):
    """y[..., c] = (1/(H·W)) Σ_{h,w} x[..., c, h, w]  (drops the two spatial axes).

    Backward: every pixel of a channel gets g[..., c]/(H·W). Saves only the shape.
    """

    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        return x.mean(axis=(-2, -1))

    @staticmethod
    def backward(ctx, grad_y):
        xp = backend.array_module_of(grad_y)
        h, w = ctx.shape[-2:]
        grad = xp.empty(ctx.shape, dtype=grad_y.dtype)
        grad[...] = (grad_y * xp.asarray(1.0 / (h * w), dtype=grad_y.dtype))[..., None, None]
        return grad


def global_avg_pool2d(x):
    """Mean over the spatial axes: [N, C, H, W] → [N, C], [T, B, C, H, W] → [T, B, C]."""
    tensor_checks.tensor_arg("global_avg_pool2d", "x", x, ndims=(4, 5))
    return GlobalAvgPool2dFunction.apply(x)
