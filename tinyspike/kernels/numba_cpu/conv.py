"""im2col / col2im compiled with Numba: same signatures and results as ``kernels.reference.conv``.

Layout (see the reference module): ``cols[(c, a, b), (n, i, j)] = xpad[n, c, i*sh + a, j*sw + b]``,
``cols`` of shape ``[C*kh*kw, N*OH*OW]``. Padding is never materialised: the kernels compute, for
each tap row, the range of output columns that land inside the image and write zeros elsewhere.

Parallelism without races:

- ``im2col``: one task per (tap, sample) pair = one ``[OH, OW]`` block of ``cols``; tasks write
  disjoint blocks.
- ``col2im``: a *gather* by ownership: one task per (sample, channel) image plane, which adds
  the ``kh*kw`` tap blocks that map onto it. No two tasks write the same plane, so no atomics;
  the plane (``H*W`` floats) stays in L1 while its taps stream past.

Inputs may be bool/uint8 (spikes saved compactly) for ``im2col``: values are converted on the
fly into the float dtype of ``out``, so the float input never has to exist in full.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from tinyspike.kernels.reference.conv import output_size


@njit(cache=True, inline="always")
def _valid_range(stride, pad, tap, in_size, out_size):
    """Output indices j with 0 <= j*stride - pad + tap < in_size, as a half-open [lo, hi)."""
    first = pad - tap  # need j*stride >= first
    lo = 0 if first <= 0 else (first + stride - 1) // stride
    last = in_size - 1 + pad - tap  # need j*stride <= last
    hi = 0 if last < 0 else min(out_size, last // stride + 1)
    return lo, max(lo, hi)


@njit(cache=True, inline="always")
def _copy_row(src, dst, offset, stride, lo, hi):
    """dst[j] = src[j*stride + offset] for j in [lo, hi), zeros elsewhere in dst."""
    zero = dst.dtype.type(0)
    for j in range(lo):
        dst[j] = zero
    if stride == 1:  # the common case, kept separate so LLVM vectorises the contiguous copy
        for j in range(lo, hi):
            dst[j] = src[j + offset]
    else:
        for j in range(lo, hi):
            dst[j] = src[j * stride + offset]
    for j in range(hi, dst.shape[0]):
        dst[j] = zero


@njit(parallel=True, cache=True)
def _im2col(x, kh, kw, sh, sw, ph, pw, cols):
    n_batch, channels, height, width = x.shape
    oh_size, ow_size = cols.shape[2], cols.shape[3]
    zero = cols.dtype.type(0)
    for task in prange(channels * kh * kw * n_batch):
        row = task // n_batch  # row = (c*kh + a)*kw + b
        n = task - row * n_batch
        c = row // (kh * kw)
        a = (row // kw) % kh
        b = row % kw
        j_lo, j_hi = _valid_range(sw, pw, b, width, ow_size)
        block = cols[row, n]
        image = x[n, c]
        for i in range(oh_size):
            ih = i * sh - ph + a
            if ih < 0 or ih >= height:
                block[i, :] = zero
            else:
                _copy_row(image[ih], block[i], b - pw, sw, j_lo, j_hi)


@njit(parallel=True, cache=True)
def _col2im(cols, kh, kw, sh, sw, ph, pw, out):
    n_batch, channels, height, width = out.shape
    oh_size, ow_size = cols.shape[2], cols.shape[3]
    for task in prange(n_batch * channels):
        n = task // channels
        c = task - n * channels
        plane = out[n, c]
        plane[:, :] = 0
        for a in range(kh):
            i_lo, i_hi = _valid_range(sh, ph, a, height, oh_size)
            for b in range(kw):
                block = cols[(c * kh + a) * kw + b, n]
                j_lo, j_hi = _valid_range(sw, pw, b, width, ow_size)
                offset = b - pw
                for i in range(i_lo, i_hi):
                    dst = plane[i * sh - ph + a]
                    src = block[i]
                    if sw == 1:
                        for j in range(j_lo, j_hi):
                            dst[j + offset] += src[j]
                    else:
                        for j in range(j_lo, j_hi):
                            dst[j * sw + offset] += src[j]


def im2col(x, kh: int, kw: int, stride=(1, 1), padding=(0, 0), out=None):
    """Columns ``[C*kh*kw, N*OH*OW]`` of ``x [N, C, H, W]``; see ``kernels.reference.conv.im2col``."""
    (sh, sw), (ph, pw) = stride, padding
    n, c, h, w = x.shape
    oh, ow = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
    if out is None:
        out = np.empty((c * kh * kw, n * oh * ow), dtype=x.dtype)
    x = np.ascontiguousarray(x)
    if x.dtype == np.bool_:
        x = x.view(np.uint8)  # same bytes; Numba converts uint8 -> float on the store
    _im2col(x, kh, kw, sh, sw, ph, pw, out.reshape(c * kh * kw, n, oh, ow))
    return out


def col2im(cols, x_shape, kh: int, kw: int, stride=(1, 1), padding=(0, 0), out=None):
    """Sum columns back onto ``[N, C, H, W]``; see ``kernels.reference.conv.col2im``."""
    (sh, sw), (ph, pw) = stride, padding
    n, c, h, w = x_shape
    oh, ow = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
    if out is None:
        out = np.empty((n, c, h, w), dtype=cols.dtype)
    cols = np.ascontiguousarray(cols)
    _col2im(cols.reshape(c * kh * kw, n, oh, ow), kh, kw, sh, sw, ph, pw, out)
    return out
