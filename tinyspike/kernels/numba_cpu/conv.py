"""Convolution kernels compiled with Numba: same signatures and results as ``kernels.reference.conv``.

Layout (read the reference module first): ``cols[(c, a, b), (n, i, j)] = xpad[n, c, i*sh + a,
j*sw + b]``, ``cols`` of shape ``[C*kh*kw, N*OH*OW]``. Padding is never materialised: for each
tap the kernels compute the range of output columns that land inside the image, and write zeros
elsewhere.

Two ways to run the same per-block loops:

1. ``im2col`` / ``col2im``: the whole batch at once, ``prange`` over blocks (Numba threads).
   - im2col: one task per (tap, sample) = one ``[OH, OW]`` block of ``cols``; disjoint writes.
   - col2im: a *gather by ownership*: one task per (sample, channel) image plane, which adds the
     ``kh*kw`` tap blocks that map onto it. No two tasks write the same plane: no races, no
     atomics, and the plane stays in L1 while its taps stream past.

2. ``conv2d_forward`` / ``conv2d_backward``: the whole layer, fused and chunked. The full ``cols``
   of a 16-channel 32×32 layer at T·B = 384 is 226 MB: writing it and reading it back through
   DRAM costs more than the GEMM itself, and allocating it costs page faults. So the batch is cut
   into chunks of a few samples whose columns fit in the L2/L3 cache, and each chunk goes
   im2col → GEMM → scatter (forward) or gather → GEMMs → col2im (backward) while its columns are
   still in cache. The chunks are shared dynamically between one worker per core (Python threads;
   the Numba loops here release the GIL and so does NumPy's GEMM), each with its own reused
   workspace, and the BLAS is held to one thread meanwhile (``blas_threads``): one thread per
   core and no spinning pools fighting over the two cores (benchmarks/README.md, "conv2d").
   Still one GEMM per operand per chunk: forward ``W·cols``, backward ``cols·dYᵀ`` (the operand
   order DESIGN.md measured fastest for the weight gradient) and ``Wᵀ·dY``.

Inputs may be bool/uint8 (spikes saved compactly): values are converted on the fly into the
float dtype of the columns, so the float input never has to exist again in full.
"""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit, prange

from tinyspike.kernels.numba_cpu.blas_threads import single_threaded_blas
from tinyspike.kernels.reference.conv import output_size

# Bytes of columns per chunk. Measured on the 2-core CI machine (benchmarks/README.md): from
# 0.5 to 4 MiB the time is flat within noise; far above, the columns fall out of cache; far below,
# the per-chunk overhead (Python, GEMM call) shows.
CHUNK_BYTES = 1 << 21


# ---- per-block loops, shared by the parallel and the chunked drivers --------------------------


@njit(cache=True, inline="always")
def _valid_range(stride, pad, tap, in_size, out_size):
    """Output indices j with 0 <= j*stride - pad + tap < in_size, as a half-open [lo, hi)."""
    first = pad - tap  # need j*stride >= first
    lo = 0 if first <= 0 else (first + stride - 1) // stride
    last = in_size - 1 + pad - tap  # need j*stride <= last
    hi = 0 if last < 0 else min(out_size, last // stride + 1)
    return min(lo, out_size), max(min(lo, out_size), hi)


@njit(cache=True, inline="always")
def _im2col_block(x, cols, row, n, n_out, kh, kw, sh, sw, ph, pw):
    """cols[row, n_out] = tap ``row`` of sample x[n], zero where it falls into the padding."""
    height, width = x.shape[2], x.shape[3]
    oh_size, ow_size = cols.shape[2], cols.shape[3]
    c = row // (kh * kw)
    a = (row // kw) % kh
    b = row % kw
    zero = cols.dtype.type(0)
    j_lo, j_hi = _valid_range(sw, pw, b, width, ow_size)
    offset = b - pw
    block = cols[row, n_out]
    image = x[n, c]
    for i in range(oh_size):
        dst = block[i]
        ih = i * sh - ph + a
        if ih < 0 or ih >= height:
            for j in range(ow_size):
                dst[j] = zero
            continue
        src = image[ih]
        for j in range(j_lo):
            dst[j] = zero
        if sw == 1:  # the common case, separate so that LLVM vectorises a contiguous copy
            for j in range(j_lo, j_hi):
                dst[j] = src[j + offset]
        else:
            for j in range(j_lo, j_hi):
                dst[j] = src[j * sw + offset]
        for j in range(j_hi, ow_size):
            dst[j] = zero


@njit(cache=True, inline="always")
def _col2im_plane(cols, out, n_cols, n, c, kh, kw, sh, sw, ph, pw):
    """out[n, c] = sum over the taps (c, a, b) of cols[(c, a, b), n_cols] put back in place."""
    height, width = out.shape[2], out.shape[3]
    oh_size, ow_size = cols.shape[2], cols.shape[3]
    plane = out[n, c]
    plane[:, :] = 0
    for a in range(kh):
        i_lo, i_hi = _valid_range(sh, ph, a, height, oh_size)
        for b in range(kw):
            block = cols[(c * kh + a) * kw + b, n_cols]
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


# ---- whole batch, Numba threads ---------------------------------------------------------------


@njit(parallel=True, cache=True)
def _im2col_parallel(x, kh, kw, sh, sw, ph, pw, cols):
    n_batch = x.shape[0]
    for task in prange(cols.shape[0] * n_batch):
        row = task // n_batch
        n = task - row * n_batch
        _im2col_block(x, cols, row, n, n, kh, kw, sh, sw, ph, pw)


@njit(parallel=True, cache=True)
def _col2im_parallel(cols, kh, kw, sh, sw, ph, pw, out):
    channels = out.shape[1]
    for task in prange(out.shape[0] * channels):
        n = task // channels
        c = task - n * channels
        _col2im_plane(cols, out, n, n, c, kh, kw, sh, sw, ph, pw)


def _check_out(out, shape, dtype, name):
    if out.shape != shape or not out.flags.c_contiguous or (dtype is not None and out.dtype != dtype):
        raise ValueError(
            f"{name}: out must be a C-contiguous array of shape {shape}"
            + (f" and dtype {dtype}" if dtype is not None else "")
            + f", got shape {out.shape}, dtype {out.dtype}, contiguous={out.flags.c_contiguous}"
        )


def _as_numeric(x):
    """Numba cannot convert bool to float on a store; uint8 has the same bytes and converts."""
    x = np.ascontiguousarray(x)
    return x.view(np.uint8) if x.dtype == np.bool_ else x


def im2col(x, kh: int, kw: int, stride=(1, 1), padding=(0, 0), out=None):
    """Columns ``[C*kh*kw, N*OH*OW]`` of ``x [N, C, H, W]``; see ``kernels.reference.conv.im2col``."""
    (sh, sw), (ph, pw) = stride, padding
    n, c, h, w = x.shape
    oh, ow = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
    shape = (c * kh * kw, n * oh * ow)
    if out is None:
        out = np.empty(shape, dtype=x.dtype)
    _check_out(out, shape, None, "im2col")
    _im2col_parallel(_as_numeric(x), kh, kw, sh, sw, ph, pw, out.reshape(c * kh * kw, n, oh, ow))
    return out


def col2im(cols, x_shape, kh: int, kw: int, stride=(1, 1), padding=(0, 0), out=None):
    """Sum columns back onto ``[N, C, H, W]``; see ``kernels.reference.conv.col2im``."""
    (sh, sw), (ph, pw) = stride, padding
    n, c, h, w = x_shape
    oh, ow = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
    if out is None:
        out = np.empty((n, c, h, w), dtype=cols.dtype)
    _check_out(out, (n, c, h, w), cols.dtype, "col2im")
    cols = np.ascontiguousarray(cols).reshape(c * kh * kw, n, oh, ow)
    _col2im_parallel(cols, kh, kw, sh, sw, ph, pw, out)
    return out


# ---- chunks of samples, one worker thread per core --------------------------------------------


@njit(nogil=True, cache=True)
def _im2col_chunk(x, n0, kh, kw, sh, sw, ph, pw, cols):
    """cols [K, m, OH, OW] = columns of samples x[n0 : n0 + m]."""
    for row in range(cols.shape[0]):
        for n in range(cols.shape[1]):
            _im2col_block(x, cols, row, n0 + n, n, kh, kw, sh, sw, ph, pw)


@njit(nogil=True, cache=True)
def _col2im_chunk(cols, n0, kh, kw, sh, sw, ph, pw, out):
    """out[n0 : n0 + m] = col2im of cols [K, m, OH, OW]."""
    for n in range(cols.shape[1]):
        for c in range(out.shape[1]):
            _col2im_plane(cols, out, n, n0 + n, c, kh, kw, sh, sw, ph, pw)


@njit(nogil=True, cache=True)
def _scatter_output(y2, bias, has_bias, n0, y):
    """y[n0 + n, o, :] = y2[o, n, :] (+ bias[o]): the GEMM's [O, m, P] back to NCHW."""
    for n in range(y2.shape[1]):
        for o in range(y2.shape[0]):
            dst = y[n0 + n, o]
            src = y2[o, n]
            if has_bias:
                b = bias[o]
                for p in range(src.shape[0]):
                    dst[p] = src[p] + b
            else:
                for p in range(src.shape[0]):
                    dst[p] = src[p]


@njit(nogil=True, cache=True)
def _gather_grad(grad_y, n0, dy2, grad_b):
    """dy2[o, n, :] = grad_y[n0 + n, o, :], and grad_b[o] += its sum (float64 accumulator)."""
    for n in range(dy2.shape[1]):
        for o in range(dy2.shape[0]):
            dst = dy2[o, n]
            src = grad_y[n0 + n, o]
            total = 0.0
            for p in range(src.shape[0]):
                value = src[p]
                dst[p] = value
                total += value
            grad_b[o] += total


_pool_lock = threading.Lock()
_pool: dict = {"executor": None, "size": 0}
_workspaces = threading.local()  # per worker thread: buffers reused from call to call


def _workspace(name: str, size: int, dtype) -> np.ndarray:
    """A 1-D buffer of at least ``size`` elements owned by the calling thread (grown, never shrunk)."""
    buffers = getattr(_workspaces, "buffers", None)
    if buffers is None:
        buffers = _workspaces.buffers = {}
    key = (name, np.dtype(dtype))
    buffer = buffers.get(key)
    if buffer is None or buffer.size < size:
        buffer = buffers[key] = np.empty(size, dtype=dtype)
    return buffer[:size]


def _executor(workers: int) -> ThreadPoolExecutor:
    with _pool_lock:
        if _pool["size"] < workers:
            if _pool["executor"] is not None:
                _pool["executor"].shutdown(wait=True)
            _pool["executor"] = ThreadPoolExecutor(workers, thread_name_prefix="tinyspike-conv")
            _pool["size"] = workers
        return _pool["executor"]


def _run_chunks(n_samples: int, per_chunk: int, work) -> list:
    """Call ``work(next_chunk)`` on one worker per core; return each worker's result.

    ``next_chunk()`` hands out (n0, n1) sample ranges until none are left, so a core that runs
    faster (the other one busy with something else) simply takes more chunks.
    """
    starts = range(0, n_samples, per_chunk)
    workers = max(1, min(numba.get_num_threads(), len(starts)))
    counter = itertools.count()  # next() on it is atomic under the GIL

    def next_chunk():
        index = next(counter)
        if index >= len(starts):
            return None
        n0 = starts[index]
        return n0, min(n_samples, n0 + per_chunk)

    with single_threaded_blas():
        if workers == 1:
            return [work(next_chunk)]
        futures = [_executor(workers - 1).submit(work, next_chunk) for _ in range(workers - 1)]
        results = [work(next_chunk)]  # the calling thread is one of the workers
        return results + [future.result() for future in futures]


def _samples_per_chunk(rows: int, positions: int, itemsize: int) -> int:
    return max(1, CHUNK_BYTES // (rows * positions * itemsize))


def _geometry(x_shape, w_shape, stride, padding):
    n, c, h, w = x_shape
    o, _, kh, kw = w_shape
    oh, ow = output_size(h, kh, stride[0], padding[0]), output_size(w, kw, stride[1], padding[1])
    return n, c, o, kh, kw, oh, ow


def conv2d_forward(x, weight, bias, stride=(1, 1), padding=(0, 0)):
    """y [N, O, OH, OW] = conv of x [N, C, H, W] (float, or bool/uint8 spikes) with weight [O, C, kh, kw].

    Same maths as ``kernels.reference.conv.conv2d_forward`` (y = W·cols + b), chunked; y has
    weight's dtype.
    """
    (sh, sw), (ph, pw) = stride, padding
    n, c, o, kh, kw, oh, ow = _geometry(x.shape, weight.shape, stride, padding)
    k, positions, dtype = c * kh * kw, oh * ow, weight.dtype
    x = _as_numeric(x)
    w2 = np.ascontiguousarray(weight).reshape(o, k)
    has_bias = bias is not None
    bias = np.ascontiguousarray(bias) if has_bias else np.zeros(0, dtype)
    y = np.empty((n, o, oh, ow), dtype=dtype)
    y3 = y.reshape(n, o, positions)
    per_chunk = _samples_per_chunk(k, positions, dtype.itemsize)

    def work(next_chunk):
        cols_buffer = _workspace("cols", k * per_chunk * positions, dtype)
        y2_buffer = _workspace("y2", o * per_chunk * positions, dtype)
        while (chunk := next_chunk()) is not None:
            n0, n1 = chunk
            m = n1 - n0
            cols = cols_buffer[: k * m * positions].reshape(k, m * positions)
            _im2col_chunk(x, n0, kh, kw, sh, sw, ph, pw, cols.reshape(k, m, oh, ow))
            y2 = y2_buffer[: o * m * positions].reshape(o, m * positions)
            np.matmul(w2, cols, out=y2)
            _scatter_output(y2.reshape(o, m, positions), bias, has_bias, n0, y3)

    _run_chunks(n, per_chunk, work)
    return y


def conv2d_backward(x, weight, grad_y, stride=(1, 1), padding=(0, 0), needs=(True, True, True)):
    """(dx, dW, db) of ``conv2d_forward``; ``needs`` says which to compute (None for the others).

    Same maths as ``kernels.reference.conv.conv2d_backward``, chunked: the columns of x are
    recomputed chunk by chunk (never stored), dW and db are summed per worker, then together.
    """
    (sh, sw), (ph, pw) = stride, padding
    n, c, o, kh, kw, oh, ow = _geometry(x.shape, weight.shape, stride, padding)
    k, positions, dtype = c * kh * kw, oh * ow, weight.dtype
    need_x, need_w, need_b = needs
    x = _as_numeric(x)
    w2 = np.ascontiguousarray(weight).reshape(o, k)
    w2t = w2.T  # a view: BLAS reads it transposed, no copy
    g3 = np.ascontiguousarray(grad_y).reshape(n, o, positions)
    grad_x = np.empty((n, c) + x.shape[2:], dtype=dtype) if need_x else None
    per_chunk = _samples_per_chunk(k, positions, dtype.itemsize)

    def work(next_chunk):
        dy2_buffer = _workspace("dy2", o * per_chunk * positions, dtype)
        cols_buffer = _workspace("cols", k * per_chunk * positions, dtype)
        dwt_chunk = np.empty((k, o), dtype)
        dwt = np.zeros((k, o), np.float64)
        db = np.zeros(o, np.float64)
        while (chunk := next_chunk()) is not None:
            n0, n1 = chunk
            m = n1 - n0
            dy2 = dy2_buffer[: o * m * positions].reshape(o, m * positions)
            _gather_grad(g3, n0, dy2.reshape(o, m, positions), db)
            cols = cols_buffer[: k * m * positions].reshape(k, m * positions)
            if need_w:
                _im2col_chunk(x, n0, kh, kw, sh, sw, ph, pw, cols.reshape(k, m, oh, ow))
                np.matmul(cols, dy2.T, out=dwt_chunk)  # dWᵀ = cols·dYᵀ
                dwt += dwt_chunk
            if need_x:  # the columns are no longer needed: their buffer takes dcols
                np.matmul(w2t, dy2, out=cols)
                _col2im_chunk(cols.reshape(k, m, oh, ow), n0, kh, kw, sh, sw, ph, pw, grad_x)
        return dwt, db

    if need_x or need_w:
        partials = _run_chunks(n, per_chunk, work)
        dwt = sum(p[0] for p in partials)
        db = sum(p[1] for p in partials)
    else:  # only the bias: a plain reduction
        dwt, db = None, g3.sum(axis=(0, 2), dtype=np.float64)
    grad_w = dwt.T.astype(dtype).reshape(weight.shape) if need_w else None
    grad_b = db.astype(dtype) if need_b else None
    return grad_x, grad_w, grad_b
