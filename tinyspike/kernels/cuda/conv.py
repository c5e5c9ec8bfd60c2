"""CUDA im2col / col2im, and the im2col convolution on cuBLAS (CuPy backend).

Same signatures, layout and numbers as ``kernels.reference.conv``: columns ``[C·kh·kw, N·OH·OW]``,
row ``r = (c·kh + a)·kw + b`` (kernel tap), column ``q = (n·OH + i)·OW + j`` (output position).

im2col: one thread per column entry ``(r, q)``, in a grid-stride loop over the flat index
``r·(N·OH·OW) + q``. Consecutive threads write consecutive entries of one row (coalesced) and read
pixels ``sw`` apart in one input row. A padding position writes 0. It is a pure copy (with a cast
from bool/uint8 spikes to float), so it equals the reference exactly.

col2im: one thread per *input* pixel ``(n, c, h, w)``, which gathers the taps that copied it:
tap ``(a, b)`` read this pixel for output ``(i, j)`` when ``h + ph - a = i·sh`` and
``w + pw - b = j·sw`` with ``0 ≤ i < OH``, ``0 ≤ j < OW``. Why gather and not scatter (one thread
per column entry, ``atomicAdd`` onto its pixel): no atomics, so no contention on overlapping
windows, no float64 atomics, and a *fixed* summation order, hence deterministic results. The taps
are added in (a, b) row-major order starting from 0, the order in which the reference adds its
shifted slices, so col2im equals the reference bit for bit too.

conv2d_forward / conv2d_backward: the reference's driver itself (``conv2d_forward_with``,
``conv2d_backward_with`` in ``kernels.reference.conv``) given these kernels; its matrix products
on CuPy arrays are ``cupy.matmul`` (cuBLAS). TF32: CuPy uses TF32 tensor cores for float32 matmul
only when the environment variable ``CUPY_TF32=1`` is set (default 0, full float32 precision); we
do not set it, so float32 convolutions keep a 24-bit mantissa (``tests/test_gpu.py`` checks it).

dtypes: float32/float64 columns from float32/float64/bool/uint8 input; anything else falls back
to the reference (which runs on CuPy arrays too).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from tinyspike.kernels.cuda.launch import launch
from tinyspike.kernels.reference import conv as reference
from tinyspike.kernels.reference.conv import output_size, pack_spikes  # noqa: F401 (re-export: the reference runs on CuPy)
_C_TYPES = {
    np.dtype(np.float32): "float",
    np.dtype(np.float64): "double",
    np.dtype(np.bool_): "bool",
    np.dtype(np.uint8): "unsigned char",
}
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

_IM2COL = r"""
typedef __IN_TYPE__ in_t;
typedef __OUT_TYPE__ out_t;

extern "C" __global__ void im2col(const in_t* __restrict__ x, out_t* __restrict__ cols,
        int n, int c, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw, int oh, int ow) {
    long long ncols = (long long)n * oh * ow;
    long long total = (long long)c * kh * kw * ncols;
    for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < total;
         k += (long long)gridDim.x * blockDim.x) {
        long long q = k % ncols;  // output position (n, i, j)
        long long r = k / ncols;  // kernel tap (c, a, b)
        int j = (int)(q % ow);
        int i = (int)((q / ow) % oh);
        int s = (int)(q / ((long long)ow * oh));
        int b = (int)(r % kw);
        int a = (int)((r / kw) % kh);
        int ch = (int)(r / ((long long)kw * kh));
        int y = i * sh + a - ph;
        int xx = j * sw + b - pw;
        out_t value = (out_t)0;
        if (y >= 0 && y < h && xx >= 0 && xx < w) {
            value = (out_t)x[(((long long)s * c + ch) * h + y) * w + xx];
        }
        cols[k] = value;
    }
}
"""

_COL2IM = r"""
typedef __TYPE__ real;

extern "C" __global__ void col2im(const real* __restrict__ cols, real* __restrict__ x,
        int n, int c, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw, int oh, int ow) {
    long long ncols = (long long)n * oh * ow;
    long long total = (long long)n * c * h * w;
    for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < total;
         k += (long long)gridDim.x * blockDim.x) {
        int px = (int)(k % w);
        int py = (int)((k / w) % h);
        int ch = (int)((k / ((long long)w * h)) % c);
        int s = (int)(k / ((long long)w * h * c));
        real sum = (real)0;
        // taps in (a, b) row-major order: the reference's order of additions
        for (int a = 0; a < kh; ++a) {
            int yi = py + ph - a;  // = i * sh for the output row i that read this pixel with tap a
            if (yi < 0 || yi % sh != 0 || yi / sh >= oh) continue;
            int i = yi / sh;
            for (int b = 0; b < kw; ++b) {
                int xj = px + pw - b;
                if (xj < 0 || xj % sw != 0 || xj / sw >= ow) continue;
                int j = xj / sw;
                long long r = ((long long)ch * kh + a) * kw + b;
                long long q = ((long long)s * oh + i) * ow + j;
                sum += cols[r * ncols + q];
            }
        }
        x[k] = sum;
    }
}
"""


def im2col_source(in_dtype, out_dtype) -> str:
    """CUDA source of ``im2col`` reading ``in_dtype`` pixels into ``out_dtype`` columns."""
    in_dtype, out_dtype = np.dtype(in_dtype), np.dtype(out_dtype)
    for role, dt in (("input", in_dtype), ("output", out_dtype)):
        if dt not in _C_TYPES:
            raise TypeError(f"CUDA im2col: unsupported {role} dtype {dt}")
    return _IM2COL.replace("__IN_TYPE__", _C_TYPES[in_dtype]).replace("__OUT_TYPE__", _C_TYPES[out_dtype])


def col2im_source(dtype) -> str:
    """CUDA source of ``col2im`` for float32 or float64 columns."""
    dtype = np.dtype(dtype)
    if dtype not in _FLOATS:
        raise TypeError(f"CUDA col2im: columns must be float32 or float64, got {dtype}")
    return _COL2IM.replace("__TYPE__", _C_TYPES[dtype])


@lru_cache(maxsize=None)
def _kernel(kind: str, *dtypes: str):
    import cupy  # only on the CuPy backend: this module must import without CuPy (nvcc tests)

    source = im2col_source(*dtypes) if kind == "im2col" else col2im_source(*dtypes)
    return cupy.RawKernel(source, kind)


def _geometry(n, c, h, w, kh, kw, stride, padding, oh, ow):
    return tuple(np.int32(v) for v in (n, c, h, w, kh, kw, stride[0], stride[1], padding[0], padding[1], oh, ow))


def im2col(x, kh: int, kw: int, stride=(1, 1), padding=(0, 0), out=None):
    """Columns ``[C*kh*kw, N*OH*OW]`` of ``x [N, C, H, W]``; see ``kernels.reference.conv.im2col``."""
    import cupy

    out_dtype = np.dtype(x.dtype if out is None else out.dtype)
    if np.dtype(x.dtype) not in _C_TYPES or out_dtype not in _C_TYPES:
        return reference.im2col(x, kh, kw, stride, padding, out=out)
    n, c, h, w = x.shape
    oh, ow = output_size(h, kh, stride[0], padding[0]), output_size(w, kw, stride[1], padding[1])
    shape = (c * kh * kw, n * oh * ow)
    if out is None:
        out = cupy.empty(shape, dtype=x.dtype)
    elif tuple(out.shape) != shape or not out.flags.c_contiguous:
        raise ValueError(f"im2col: out must be a C-contiguous array of shape {shape}, got {tuple(out.shape)}")
    if out.size:
        x = cupy.ascontiguousarray(x)
        launch(_kernel("im2col", x.dtype.str, out_dtype.str), out.size,
                (x, out) + _geometry(n, c, h, w, kh, kw, stride, padding, oh, ow))
    return out


def col2im(cols, x_shape, kh: int, kw: int, stride=(1, 1), padding=(0, 0), out=None):
    """The adjoint of ``im2col``, as a gather (no atomics); see ``kernels.reference.conv.col2im``."""
    import cupy

    if np.dtype(cols.dtype) not in _FLOATS:
        return reference.col2im(cols, x_shape, kh, kw, stride, padding, out=out)
    n, c, h, w = x_shape
    oh, ow = output_size(h, kh, stride[0], padding[0]), output_size(w, kw, stride[1], padding[1])
    if tuple(cols.shape) != (c * kh * kw, n * oh * ow):
        raise ValueError(f"col2im: cols must have shape {(c * kh * kw, n * oh * ow)}, got {tuple(cols.shape)}")
    cols = cupy.ascontiguousarray(cols)
    direct = out is not None and out.dtype == cols.dtype and out.flags.c_contiguous and tuple(out.shape) == tuple(x_shape)
    result = out if direct else cupy.empty(tuple(x_shape), dtype=cols.dtype)
    if result.size:
        launch(_kernel("col2im", cols.dtype.str), result.size,
                (cols, result) + _geometry(n, c, h, w, kh, kw, stride, padding, oh, ow))
    if out is None or direct:
        return result
    out[...] = result
    return out


def conv2d_forward(x, weight, bias, stride=(1, 1), padding=(0, 0), spikes_out=None):
    """``(y, not_binary)``: ``weight.reshape(O, C·kh·kw) @ im2col(x)`` on cuBLAS; see the reference."""
    return reference.conv2d_forward_with(im2col, x, weight, bias, stride, padding, spikes_out)


def conv2d_backward(grad_y, x, weight, stride, padding, needs, x_shape, w_shape):
    """(dx, dW, db): ``dW = (cols · Gᵀ)ᵀ``, ``dx = col2im(W₂ᵀ · G)``, ``db = Σ G``; see the reference."""
    return reference.conv2d_backward_with(im2col, col2im, grad_y, x, weight, stride, padding, needs, x_shape, w_shape)
