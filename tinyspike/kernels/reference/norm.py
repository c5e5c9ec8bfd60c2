"""Batch-norm kernels, reference version: plain array code on any backend (NumPy or CuPy).

Every kernel works on a 3-D view ``x[M, C, S]`` of the input: M folds everything before the
channel axis (N, or T·B for time-first tensors), S everything after it (H·W, L, or 1). For a
contiguous input this is a free reshape, and the per-channel reductions of batch norm become
reductions over axes 0 and 2. The caller (``functional.norm``) makes the view.

Precision: the statistics and the backward reductions are accumulated in float64 whatever the
input dtype, and returned as float64 arrays of shape [C]; the caller casts the per-channel
coefficients it derives from them. The element-wise kernels compute in the input's dtype, with
the per-channel coefficients cast to that dtype first (so every implementation rounds alike).

The fast kernels (``kernels.numba_cpu.norm``, ...) have the same names and signatures and are
tested to return the same values.
"""

from __future__ import annotations

from tinyspike import backend


def _channel(vector, dtype):
    """A per-channel vector [C] as a [1, C, 1] array of ``dtype``, ready to broadcast."""
    return vector.astype(dtype, copy=False).reshape(1, -1, 1)


def bn_stats(x):
    """Per-channel mean and *biased* variance of ``x[M, C, S]`` over axes (0, 2), in float64.

    Two passes (mean first, then the mean of squared deviations): the textbook-stable way.
    """
    xp = backend.array_module_of(x)
    mean = x.mean(axis=(0, 2), dtype=xp.float64)
    centred = x.astype(xp.float64) - mean.reshape(1, -1, 1)
    var = (centred * centred).mean(axis=(0, 2))
    return mean, var


def bn_apply(x, scale, shift):
    """``y[m, c, s] = x[m, c, s] · scale[c] + shift[c]`` in ``x``'s dtype.

    With scale = γ/σ and shift = β − μ·γ/σ this is the whole batch-norm forward in one
    multiply-add per element (eval mode uses it with the running statistics).
    """
    return x * _channel(scale, x.dtype) + _channel(shift, x.dtype)


def bn_backward_reduce(dy, x, mean):
    """The two per-channel sums the batch-norm backward needs, in float64:

    ``sum_dy[c] = Σ dy``  and  ``sum_dy_xc[c] = Σ dy · (x − μ[c])``  (sums over axes 0 and 2).
    """
    xp = backend.array_module_of(x)
    sum_dy = dy.sum(axis=(0, 2), dtype=xp.float64)
    centred = x.astype(xp.float64) - mean.reshape(1, -1, 1)
    sum_dy_xc = (dy.astype(xp.float64) * centred).sum(axis=(0, 2))
    return sum_dy, sum_dy_xc


def bn_backward_apply(dy, x, mean, g_scale, centred_scale, shift):
    """``dx = g_scale[c] · dy + centred_scale[c] · (x − μ[c]) + shift[c]`` in ``x``'s dtype.

    The training-mode input gradient is of this form (see ``functional.norm``); keeping x − μ
    instead of expanding it into centred_scale·x + (shift − centred_scale·μ) avoids cancellation
    when |μ| ≫ σ.
    """
    dtype = x.dtype
    return (
        dy * _channel(g_scale, dtype)
        + (x - _channel(mean, dtype)) * _channel(centred_scale, dtype)
        + _channel(shift, dtype)
    )
