"""Batch-norm kernels compiled with Numba: same names, signatures and results as
``kernels.reference.norm`` (read that first).

Why these are faster than the reference: NumPy reduces ``x[M, C, S]`` over axes (0, 2) with
strided passes and float64 temporaries the size of ``x``. Here every loop runs over the rows
``x[m, c, :]`` (contiguous, S elements each), in parallel over the M·C rows (ranges of rows on
the worker threads, ``workers.ranges``: the kernels are serial and ``nogil``), and each kernel
reads its inputs exactly once:

- ``bn_stats``: one pass computing Σ(x − K) and Σ(x − K)² per row (float64), then a tiny
  reduction of the [M, C] partial sums over M.
- ``bn_apply``: one fused multiply-add per element.
- ``bn_backward_reduce``: one pass computing Σdy and Σdy·(x − μ) per row.
- ``bn_backward_apply``: one pass computing dx.

One-pass variance, and why it is accurate here. var = E[(x−K)²] − (E[x−K])² for any constant
K. With K = 0 this is the notorious E[x²] − E[x]², which cancels catastrophically when |μ| ≫ σ:
the relative error of var is about ε_acc · (1 + μ²/σ²). Two choices make it harmless:

1. float64 accumulators (ε_acc ≈ 1e-16, and x² of a float32 is exact in float64);
2. the shift K[c] = x[0, c, 0], a sample of the channel, so that E[(x−K)²] = σ² + (μ−K)² is a
   few σ² for any realistic data, and the cancellation factor stays O(1) instead of μ²/σ².

The resulting error (≈ n·1e-16 in the worst case, n ≤ 10⁷) is far below float32 resolution,
while reading x only once (a two-pass or a Welford update per element would cost either a
second sweep over memory or a division per element). The test suite checks equality with the
two-pass reference, also for data with |μ|/σ = 1e4.

Fast-math: reassociation (so the reductions vectorise), contraction (FMA), and the harmless
``nsz`` (sign of zero) and ``arcp`` (reciprocals; these kernels divide nothing) only; not
``nnan``/``ninf``, because a NaN in the activations must propagate to the loss, where the
Trainer catches it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tinyspike.kernels.numba_cpu import workers

FASTMATH = {"reassoc", "contract", "nsz", "arcp"}  # also the conv's fused norm (conv._scatter_affine)
ROWS_GRAIN = 16  # the fewest rows x[m, c, :] a worker takes at once


def _over_rows(x, body) -> None:
    """``body(first, last)`` on ranges of the M·C rows of ``x[M, C, S]``, on every worker."""
    workers.ranges(x.shape[0] * x.shape[1], ROWS_GRAIN, body, x.size)


@njit(nogil=True, fastmath=FASTMATH, cache=True)
def _row_shifted_sums(x, shift, sums, squares, first, last):
    channels, length = x.shape[1], x.shape[2]
    for r in range(first, last):
        m = r // channels
        c = r - m * channels
        channel_shift = shift[c]
        s1 = 0.0
        s2 = 0.0
        for j in range(length):
            d = np.float64(x[m, c, j]) - channel_shift
            s1 += d
            s2 += d * d
        sums[m, c] = s1
        squares[m, c] = s2


def bn_stats(x):
    """Per-channel mean and biased variance of ``x[M, C, S]`` over axes (0, 2), in float64."""
    rows, _, length = x.shape
    n = rows * length
    shift = x[0, :, 0].astype(np.float64)
    sums, squares = np.empty(x.shape[:2]), np.empty(x.shape[:2])
    _over_rows(x, lambda lo, hi: _row_shifted_sums(x, shift, sums, squares, lo, hi))
    shifted_mean = sums.sum(axis=0) / n
    var = squares.sum(axis=0) / n - shifted_mean * shifted_mean
    # Rounding can leave a constant channel at -1e-17; a variance is never negative.
    return shift + shifted_mean, np.maximum(var, 0.0)


@njit(nogil=True, fastmath=FASTMATH, cache=True)
def _apply(x, scale, shift, y, first, last):
    channels, length = x.shape[1], x.shape[2]
    for r in range(first, last):
        m = r // channels
        c = r - m * channels
        channel_scale = scale[c]
        channel_shift = shift[c]
        for j in range(length):
            y[m, c, j] = x[m, c, j] * channel_scale + channel_shift


def channel_affine(affine, dtype):
    """(scale, shift) float64 [C] as the contiguous arrays of ``dtype`` that the kernels multiply by."""
    return tuple(np.ascontiguousarray(vector, dtype=dtype) for vector in affine)


def bn_apply(x, scale, shift):
    """``y[m, c, s] = x[m, c, s] · scale[c] + shift[c]`` in ``x``'s dtype."""
    (scale, shift), y = channel_affine((scale, shift), x.dtype), np.empty_like(x)
    _over_rows(x, lambda lo, hi: _apply(x, scale, shift, y, lo, hi))
    return y


@njit(nogil=True, fastmath=FASTMATH, cache=True)
def _row_backward_sums(dy, x, mean, sums, dots, first, last):
    channels, length = x.shape[1], x.shape[2]
    for r in range(first, last):
        m = r // channels
        c = r - m * channels
        mu = mean[c]
        s1 = 0.0
        s2 = 0.0
        for j in range(length):
            g = np.float64(dy[m, c, j])
            s1 += g
            s2 += g * (np.float64(x[m, c, j]) - mu)
        sums[m, c] = s1
        dots[m, c] = s2


def bn_backward_reduce(dy, x, mean):
    """``(Σ dy, Σ dy · (x − μ))`` per channel, in float64."""
    mean, sums, dots = mean.astype(np.float64), np.empty(x.shape[:2]), np.empty(x.shape[:2])
    _over_rows(x, lambda lo, hi: _row_backward_sums(dy, x, mean, sums, dots, lo, hi))
    return sums.sum(axis=0), dots.sum(axis=0)


@njit(nogil=True, fastmath=FASTMATH, cache=True)
def _backward_apply(dy, x, mean, g_scale, centred_scale, shift, dx, first, last):
    channels, length = x.shape[1], x.shape[2]
    for r in range(first, last):
        m = r // channels
        c = r - m * channels
        mu = mean[c]
        channel_g_scale = g_scale[c]
        channel_centred_scale = centred_scale[c]
        channel_shift = shift[c]
        for j in range(length):
            dx[m, c, j] = dy[m, c, j] * channel_g_scale + (x[m, c, j] - mu) * channel_centred_scale + channel_shift


def bn_backward_apply(dy, x, mean, g_scale, centred_scale, shift):
    """``dx = g_scale[c] · dy + centred_scale[c] · (x − μ[c]) + shift[c]`` in ``x``'s dtype."""
    dtype = x.dtype
    mean, g_scale, centred_scale, shift = (a.astype(dtype) for a in (mean, g_scale, centred_scale, shift))
    dx = np.empty_like(x)
    _over_rows(x, lambda lo, hi: _backward_apply(dy, x, mean, g_scale, centred_scale, shift, dx, lo, hi))
    return dx
