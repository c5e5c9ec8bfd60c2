"""Convolution kernels compiled with Numba: same signatures and results as ``kernels.reference.conv``.

Two layouts of the same columns (read the reference module first):

- ``im2col`` / ``col2im``: the reference's layout ``cols[(c, a, b), (n, i, j)] = xpad[n, c,
  i*sh + a, j*sw + b]``, ``[C*kh*kw, N*OH*OW]``, for the whole batch at once, ranges of samples
  shared by the workers (each sample writes its own columns and its own image planes: no races,
  no atomics).
  Each sample is first copied, zero-padded, into ``xpad [C, H + 2ph, W + 2pw]``, so every row of
  a column block is one plain copy of OW values with no edge cases.

- ``conv2d_forward`` / ``conv2d_backward``, the layer itself, use their transpose, **rows**:
  ``rows[(n, i, j), (a, b, c)] = xpad[n, c, i*sh + a, j*sw + b]``, one row of kh*kw*C values
  per output position, tap-major, with the weight reordered to match (``W_r [O, kh*kw*C]``).
  Then the three products are ``Y_rows = rows · W_rᵀ`` [P, O], ``dW_rᵀ = rowsᵀ · dY_rows`` and
  ``d_rows = dY_rows · W_r``: the long dimension (positions) is the GEMM's M, the short ones (O,
  C·kh·kw) are N and K. For the narrow layers of a spiking ResNet (O = 16 or 32) this is what
  OpenBLAS runs fast: measured 1.6-3× faster GEMMs at 16 channels than ``W · cols``, whose M is
  only O (benchmarks/README.md, "conv2d, row layout"). Building rows is cheap too: with the
  sample moved channels-last (``xhwc [H + 2ph, W + 2pw, C]``), the kw taps of a kernel row are
  neighbouring pixels, one contiguous run of kw*C values at any stride.

The layer is fused and chunked. The full columns of a 16-channel 32×32 layer at T·B = 384 are
226 MB: writing them and reading them back through DRAM costs more than the GEMM itself, and
allocating them costs page faults. So the batch is cut into chunks of a few samples whose rows
fit in the L2/L3 cache, and each chunk goes im2row → GEMM → scatter to NCHW (forward) or gather
→ GEMMs → row2im (backward) while its rows are still in cache. The chunks are shared dynamically
between one worker per core (Python threads; the Numba loops here release the GIL and so does
NumPy's GEMM), each with its own reused workspace, and the BLAS is held to one thread meanwhile
(``blas_threads``): one thread per core and no spinning pools fighting over the cores.

Inputs may be bool/uint8 (spikes saved compactly): values are converted on the fly into the
float dtype of the columns, so the float input never has to exist again in full.

Two details that matter for speed: every inner loop runs j from 0 over a sliced view (Numba
supports negative indices, so ``a[j + offset]`` with j of unknown sign costs a wrap-around test
per element and blocks vectorisation), and the whole-batch drivers have their loop twice, once
with the horizontal stride as the literal 1, which LLVM turns into plain vector copies (3×
faster than the same code with a run-time stride that happens to be 1).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tinyspike.kernels.numba_cpu import norm, workers
from tinyspike.kernels.numba_cpu.blas_threads import single_threaded_blas
from tinyspike.kernels.reference.conv import output_size

# Bytes of columns per chunk. Measured on the 2-core CI machine (benchmarks/README.md): from
# 0.5 to 4 MiB the time is flat within noise; far above, the columns fall out of cache; far below,
# the per-chunk overhead (Python, GEMM call) shows.
CHUNK_BYTES = 1 << 21


# ---- per-sample loops, shared by the parallel and the chunked drivers -------------------------


@njit(cache=True, inline="always")
def _pad_sample(x, n, ph, pw, xpad):
    """xpad [C, H + 2ph, W + 2pw] = x[n] inside a zero border (converted to xpad's dtype)."""
    height, width = x.shape[2], x.shape[3]
    zero = xpad.dtype.type(0)
    for c in range(x.shape[1]):
        plane = xpad[c]
        image = x[n, c]
        for i in range(ph):
            top, bottom = plane[i], plane[ph + height + i]
            for j in range(top.shape[0]):
                top[j] = zero
                bottom[j] = zero
        for i in range(height):
            row = plane[ph + i]
            for j in range(pw):
                row[j] = zero
            inside, src = row[pw:], image[i]
            for j in range(width):
                inside[j] = src[j]
            tail = row[pw + width :]
            for j in range(tail.shape[0]):
                tail[j] = zero


@njit(cache=True, inline="always")
def _im2col_sample(xpad, kh, kw, sh, sw, cols, n_out):
    """cols[(c, a, b), n_out, i, j] = xpad[c, i*sh + a, j*sw + b] for every tap (c, a, b)."""
    oh_size, ow_size = cols.shape[2], cols.shape[3]
    for c in range(xpad.shape[0]):
        plane = xpad[c]
        for a in range(kh):
            for b in range(kw):
                block = cols[(c * kh + a) * kw + b, n_out]
                for i in range(oh_size):
                    dst, src = block[i], plane[i * sh + a, b:]
                    for j in range(ow_size):
                        dst[j] = src[j * sw]


@njit(cache=True, inline="always")
def _col2im_sample(cols, n_cols, kh, kw, sh, sw, ph, pw, plane, out, n):
    """out[n, c] = sum of the taps (c, a, b) of cols[:, n_cols] put back, for every channel c.

    ``plane`` is a scratch [H + 2ph, W + 2pw]: taps are added into it, the border (padding,
    which has no gradient) is dropped when its interior is copied into out[n, c].
    """
    oh_size, ow_size = cols.shape[2], cols.shape[3]
    height, width = out.shape[2], out.shape[3]
    for c in range(out.shape[1]):
        plane[:, :] = 0
        for a in range(kh):
            for b in range(kw):
                block = cols[(c * kh + a) * kw + b, n_cols]
                for i in range(oh_size):
                    dst, src = plane[i * sh + a, b:], block[i]
                    for j in range(ow_size):
                        dst[j * sw] += src[j]
        image = out[n, c]
        for i in range(height):
            dst, src = image[i], plane[ph + i, pw:]
            for j in range(width):
                dst[j] = src[j]


# ---- whole batch, samples shared by the workers --------------------------------------------------


@njit(nogil=True, cache=True)
def _im2col_samples(x, kh, kw, sh, sw, ph, pw, cols, first, last):
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    xpad = np.empty((channels, height + 2 * ph, width + 2 * pw), dtype=cols.dtype)
    for n in range(first, last):
        _pad_sample(x, n, ph, pw, xpad)
        if sw == 1:
            _im2col_sample(xpad, kh, kw, sh, 1, cols, n)
        else:
            _im2col_sample(xpad, kh, kw, sh, sw, cols, n)


@njit(nogil=True, cache=True)
def _col2im_samples(cols, kh, kw, sh, sw, ph, pw, out, first, last):
    height, width = out.shape[2], out.shape[3]
    plane = np.empty((height + 2 * ph, width + 2 * pw), dtype=out.dtype)
    for n in range(first, last):
        if sw == 1:
            _col2im_sample(cols, n, kh, kw, sh, 1, ph, pw, plane, out, n)
        else:
            _col2im_sample(cols, n, kh, kw, sh, sw, ph, pw, plane, out, n)


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
    x, grid = _as_numeric(x), out.reshape(c * kh * kw, n, oh, ow)
    workers.ranges(n, 1, lambda lo, hi: _im2col_samples(x, kh, kw, sh, sw, ph, pw, grid, lo, hi), out.size)
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
    workers.ranges(n, 1, lambda lo, hi: _col2im_samples(cols, kh, kw, sh, sw, ph, pw, out, lo, hi), cols.size)
    return out


# ---- chunks of samples, one worker thread per core --------------------------------------------


@njit(nogil=True, cache=True, inline="always")
def _pad_sample_hwc(x, n, ph, pw, xhwc):
    """xhwc [H + 2ph, W + 2pw, C] = x[n] (NCHW) moved to channels-last inside a zero border."""
    height, width = x.shape[2], x.shape[3]
    xhwc[:ph] = 0
    xhwc[ph + height :] = 0
    for i in range(height):
        row = xhwc[ph + i]
        row[:pw] = 0
        row[pw + width :] = 0
        for c in range(x.shape[1]):
            src = x[n, c, i]
            for j in range(width):
                row[pw + j, c] = src[j]


@njit(nogil=True, cache=True)
def _im2row_chunk(x, n0, kh, kw, sh, sw, ph, pw, xhwc, rows):
    """rows [m, OH, OW, kh*kw*C]: rows[n, i, j, (a, b, c)] = xpad[n0 + n, c, i*sh + a, j*sw + b].

    One row per output position, its kh*kw*C entries tap-major. With the sample channels-last
    (``xhwc``), the kw taps (b = 0..kw-1) of one kernel row a are kw neighbouring pixels, so they
    are one contiguous run of kw*C values in memory, at any stride: one copy per kernel row.
    """
    span = kw * x.shape[1]
    flat = xhwc.reshape(xhwc.shape[0], -1)  # [H + 2ph, (W + 2pw)*C]
    for n in range(rows.shape[0]):
        _pad_sample_hwc(x, n0 + n, ph, pw, xhwc)
        for i in range(rows.shape[1]):
            for j in range(rows.shape[2]):
                row = rows[n, i, j]
                for a in range(kh):
                    dst = row[a * span :]
                    src = flat[i * sh + a, j * sw * x.shape[1] :]
                    for q in range(span):
                        dst[q] = src[q]


@njit(nogil=True, cache=True)
def _row2im_chunk(rows, n0, kh, kw, sh, sw, ph, pw, acc, out):
    """out[n0 + n] = the adjoint of ``_im2row_chunk``: every row entry added back onto its pixel.

    ``acc`` [H + 2ph, W + 2pw, C] is a scratch: each kernel row's run of kw*C values is added into
    it channels-last (overlapping windows add up), then its interior (the border is padding,
    which has no gradient) is moved to NCHW.
    """
    channels, height, width = out.shape[1], out.shape[2], out.shape[3]
    span = kw * channels
    flat = acc.reshape(acc.shape[0], -1)
    for n in range(rows.shape[0]):
        acc[:, :, :] = 0
        for i in range(rows.shape[1]):
            for j in range(rows.shape[2]):
                row = rows[n, i, j]
                for a in range(kh):
                    src = row[a * span :]
                    dst = flat[i * sh + a, j * sw * channels :]
                    for q in range(span):
                        dst[q] += src[q]
        for c in range(channels):
            for i in range(height):
                dst = out[n0 + n, c, i]
                for j in range(width):
                    dst[j] = acc[ph + i, pw + j, c]


@njit(nogil=True, cache=True)
def _pack_chunk(x, n0, m, packed):
    """packed[n0 : n0 + m] = x != 0; returns how many of those values were neither 0 nor 1.

    Run right after ``_im2row_chunk`` on the same samples, which are then still in cache.
    """
    bad = 0
    for n in range(n0, n0 + m):
        src = x[n].reshape(-1)
        dst = packed[n].reshape(-1)
        for i in range(src.shape[0]):
            value = src[i]
            bad += (value != 0) & (value != 1)
            dst[i] = value != 0
    return bad


@njit(nogil=True, cache=True)
def _scatter_output(y_rows, bias, has_bias, n0, y):
    """y[n0 + n, o, p] = y_rows[n, p, o] (+ bias[o]): the GEMM's [m, P, O] back to NCHW."""
    for n in range(y_rows.shape[0]):
        for o in range(y_rows.shape[2]):
            dst = y[n0 + n, o]
            b = bias[o] if has_bias else y_rows.dtype.type(0)
            for p in range(y_rows.shape[1]):
                dst[p] = y_rows[n, p, o] + b


@njit(nogil=True, fastmath=norm.FASTMATH, cache=True)
def _scatter_affine(y_rows, scale, shift, n0, y):
    """y[n0 + n, o, p] = y_rows[n, p, o]·scale[o] + shift[o]: the GEMM's [m, P, O] back to NCHW
    through an evaluation-mode batch norm, with the very expression (and floating-point flags)
    of ``norm.bn_apply``, so the numbers are those of the conv followed by the norm."""
    for n in range(y_rows.shape[0]):
        for o in range(y_rows.shape[2]):
            dst = y[n0 + n, o]
            channel_scale = scale[o]
            channel_shift = shift[o]
            for p in range(y_rows.shape[1]):
                dst[p] = y_rows[n, p, o] * channel_scale + channel_shift


@njit(nogil=True, cache=True)
def _gather_grad(grad_y, n0, dy_rows, grad_b):
    """dy_rows[n, p, o] = grad_y[n0 + n, o, p], and grad_b[o] += its sum (float64 accumulator)."""
    for n in range(dy_rows.shape[0]):
        for o in range(dy_rows.shape[2]):
            src = grad_y[n0 + n, o]
            total = 0.0
            for p in range(src.shape[0]):
                value = src[p]
                dy_rows[n, p, o] = value
                total += value
            grad_b[o] += total


def _run_chunks(n_samples: int, per_chunk: int, work) -> list:
    """Call ``work(next_chunk)`` on every worker (``workers.run``) with the BLAS on one thread.

    ``next_chunk()`` hands out (n0, n1) sample ranges until none are left.
    """
    starts = range(0, n_samples, per_chunk)

    def chunks(next_task):
        def next_chunk():
            index = next_task()
            if index is None:
                return None
            return starts[index], min(n_samples, starts[index] + per_chunk)

        return work(next_chunk)

    with single_threaded_blas():
        return workers.run(len(starts), chunks)


def _samples_per_chunk(n_samples: int, row_length: int, positions: int, itemsize: int) -> int:
    """Samples per chunk: as many as ``CHUNK_BYTES`` of rows hold, then evened out so that the
    number of chunks is a multiple of the workers (5 chunks on 2 cores would leave one core idle
    for a fifth of the layer; 6 slightly smaller ones keep both busy)."""
    fit = max(1, CHUNK_BYTES // (row_length * positions * itemsize))
    if n_samples == 0:  # an empty batch: no chunk at all
        return fit
    n_chunks = -(-n_samples // fit)
    n_chunks = -(-n_chunks // workers.count()) * workers.count()
    return max(1, -(-n_samples // n_chunks))


def _geometry(x_shape, w_shape, stride, padding):
    n, c, h, w = x_shape
    o, _, kh, kw = w_shape
    oh, ow = output_size(h, kh, stride[0], padding[0]), output_size(w, kw, stride[1], padding[1])
    return n, c, o, kh, kw, oh, ow, h + 2 * padding[0], w + 2 * padding[1]


def _weight_rows(weight):
    """W [O, C, kh, kw] as W_r [O, kh*kw*C]: its columns in the tap-major order of the rows."""
    o = weight.shape[0]
    return np.ascontiguousarray(weight.transpose(0, 2, 3, 1)).reshape(o, -1)


def conv2d_forward(x, weight, bias, stride=(1, 1), padding=(0, 0), spikes_out=None, norm_affine=None):
    """``(y, not_binary)``: y [N, O, OH, OW] = conv of x [N, C, H, W] (float, or bool/uint8 spikes) with weight [O, C, kh, kw].

    Same maths and arguments as ``kernels.reference.conv.conv2d_forward``, chunked, with the
    columns stored as rows (one per output position, see the module docstring):
    ``Y_rows = rows · W_rᵀ``, then Y_rows [m, P, O] is moved to NCHW with the bias added.
    y has weight's dtype. With ``spikes_out`` the bool copy of x is written while each chunk of
    x is in cache anyway (no second pass over x).

    ``norm_affine``: None, or ``(scale, shift)`` [O] float64 of an evaluation-mode batch norm
    that follows the conv (``nn.fused.conv_bn``; bias must then be None): y is written as
    ``norm.bn_apply`` would write it from the conv's output, bit for bit, in the pass that
    moves each chunk to NCHW (no second pass over y, and no second array of its size).
    """
    (sh, sw), (ph, pw) = stride, padding
    n, c, o, kh, kw, oh, ow, padded_h, padded_w = _geometry(x.shape, weight.shape, stride, padding)
    k, positions, dtype = c * kh * kw, oh * ow, weight.dtype
    x = _as_numeric(x)
    w_rows_t = _weight_rows(weight).T  # a view: BLAS reads it transposed
    has_bias = bias is not None
    bias = np.ascontiguousarray(bias) if has_bias else np.zeros(0, dtype)
    if norm_affine is not None:
        if has_bias:
            raise ValueError("conv2d_forward: norm_affine is for a conv without bias")
        scale, shift = norm.channel_affine(norm_affine, dtype)
    y = np.empty((n, o, oh, ow), dtype=dtype)
    y3 = y.reshape(n, o, positions)
    pack = spikes_out is not None
    per_chunk = _samples_per_chunk(n, k, positions, dtype.itemsize)

    def work(next_chunk):
        rows_buffer = workers.workspace("rows", per_chunk * positions * k, dtype)
        y_buffer = workers.workspace("y_rows", per_chunk * positions * o, dtype)
        xhwc = workers.workspace("xhwc", padded_h * padded_w * c, dtype).reshape(padded_h, padded_w, c)
        not_binary = 0
        while (chunk := next_chunk()) is not None:
            n0, n1 = chunk
            m = n1 - n0
            rows = rows_buffer[: m * positions * k].reshape(m * positions, k)
            _im2row_chunk(x, n0, kh, kw, sh, sw, ph, pw, xhwc, rows.reshape(m, oh, ow, k))
            if pack:
                not_binary += _pack_chunk(x, n0, m, spikes_out)
            y_rows = y_buffer[: m * positions * o].reshape(m * positions, o)
            np.matmul(rows, w_rows_t, out=y_rows)
            if norm_affine is None:
                _scatter_output(y_rows.reshape(m, positions, o), bias, has_bias, n0, y3)
            else:
                _scatter_affine(y_rows.reshape(m, positions, o), scale, shift, n0, y3)
        return not_binary

    return y, int(sum(_run_chunks(n, per_chunk, work)))


def conv2d_backward(grad_y, x, weight, stride, padding, needs, x_shape, w_shape):
    """(dx, dW, db) of ``conv2d_forward``; arguments as ``kernels.reference.conv.conv2d_backward``.

    Same maths, chunked, in the row layout: with dY_rows [m·P, O] the chunk's gradient,
    ``dW_rᵀ += rowsᵀ · dY_rows`` and ``d_rows = dY_rows · W_r``, added back onto the pixels
    (the adjoint of im2row). The rows of x are recomputed chunk by chunk (never stored whole);
    dW and db are kept per chunk and summed in chunk order (float64), so the result does not
    depend on which worker ran which chunk.
    """
    (sh, sw), (ph, pw) = stride, padding
    n, c, o, kh, kw, oh, ow, padded_h, padded_w = _geometry(x_shape, w_shape, stride, padding)
    k, positions, dtype = c * kh * kw, oh * ow, grad_y.dtype
    need_x, need_w, need_b = needs
    g3 = np.ascontiguousarray(grad_y).reshape(n, o, positions)
    if not (need_x or need_w):  # only the bias: a plain reduction
        return None, None, (g3.sum(axis=(0, 2), dtype=np.float64).astype(dtype) if need_b else None)
    x = _as_numeric(x) if need_w else None
    w_rows = _weight_rows(weight) if need_x else None
    grad_x = np.empty(x_shape, dtype=dtype) if need_x else None
    per_chunk = _samples_per_chunk(n, k, positions, dtype.itemsize)

    # One partial dW and db per chunk, summed in chunk order at the end: the result is then the
    # same bit for bit whichever worker took which chunk (a sum per worker would depend on it).
    n_chunks = -(-n // per_chunk)
    dwt_chunks = np.zeros((n_chunks, k, o), dtype) if need_w else None
    db_chunks = np.zeros((n_chunks, o), np.float64)

    def work(next_chunk):
        dy_buffer = workers.workspace("dy_rows", per_chunk * positions * o, dtype)
        rows_buffer = workers.workspace("rows", per_chunk * positions * k, dtype)
        xhwc = workers.workspace("xhwc", padded_h * padded_w * c, dtype).reshape(padded_h, padded_w, c)
        while (chunk := next_chunk()) is not None:
            n0, n1 = chunk
            m, index = n1 - n0, n0 // per_chunk
            dy_rows = dy_buffer[: m * positions * o].reshape(m * positions, o)
            _gather_grad(g3, n0, dy_rows.reshape(m, positions, o), db_chunks[index])
            rows = rows_buffer[: m * positions * k].reshape(m * positions, k)
            if need_w:
                _im2row_chunk(x, n0, kh, kw, sh, sw, ph, pw, xhwc, rows.reshape(m, oh, ow, k))
                np.matmul(rows.T, dy_rows, out=dwt_chunks[index])  # dW_rᵀ = rowsᵀ·dY_rows
            if need_x:  # the rows are used up: their buffer takes d_rows = dY_rows·W_r
                np.matmul(dy_rows, w_rows, out=rows)
                _row2im_chunk(rows.reshape(m, oh, ow, k), n0, kh, kw, sh, sw, ph, pw, xhwc, grad_x)

    _run_chunks(n, per_chunk, work)
    grad_w = None
    if need_w:  # dW_r [O, (a, b, c)] back to [O, C, kh, kw], the chunks summed in float64
        dw_rows = dwt_chunks.sum(axis=0, dtype=np.float64).T.astype(dtype)
        grad_w = np.ascontiguousarray(dw_rows.reshape(o, kh, kw, c).transpose(0, 3, 1, 2))
    grad_b = db_chunks.sum(axis=0).astype(dtype) if need_b else None
    return grad_x, grad_w, grad_b


@njit(nogil=True, cache=True)
def _pack_spikes(x, out, first, last):
    """out[first:last] = (x != 0); returns how many of those values were neither 0 nor 1."""
    not_binary = 0
    for i in range(first, last):
        value = x[i]
        not_binary += (value != 0) & (value != 1)
        out[i] = value != 0
    return not_binary


def pack_spikes(x, out) -> int:
    """out = (x != 0) as bool; returns how many values of x were neither 0 nor 1 (see the reference)."""
    flat_x, flat_out, counts = np.ascontiguousarray(x).reshape(-1), out.reshape(-1), []
    workers.ranges(flat_x.size, 1 << 16, lambda lo, hi: counts.append(_pack_spikes(flat_x, flat_out, lo, hi)), flat_x.size)
    return int(sum(counts))
