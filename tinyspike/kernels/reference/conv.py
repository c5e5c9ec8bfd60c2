"""im2col / col2im: turn a 2-D convolution into one matrix product (reference version).

A convolution of ``x [N, C, H, W]`` with ``w [O, C, kh, kw]`` (stride ``(sh, sw)``, zero padding
``(ph, pw)``) is

    y[n, o, i, j] = sum_{c, a, b} w[o, c, a, b] * xpad[n, c, i*sh + a, j*sw + b],

with ``OH = (H + 2 ph - kh) // sh + 1`` and ``OW`` alike. Gather every input value one output
position needs into one column and the sum becomes a matrix product:

    cols[(c, a, b), (n, i, j)] = xpad[n, c, i*sh + a, j*sw + b]        (im2col)
    y2 = w.reshape(O, C*kh*kw) @ cols                                 [O, N*OH*OW]

Column layout: ``cols`` is ``[C*kh*kw, N*OH*OW]`` (rows = kernel taps, columns = output
positions, sample-major). Why this one and not ``[N*OH*OW, C*kh*kw]``:

- reading NCHW input, each row of ``cols`` is a run of whole image rows, so both im2col and
  col2im move contiguous memory (the other layout strides by ``C*kh*kw`` on every element);
- all three GEMMs of a layer are then plain row-major products with the long ``N*OH*OW``
  dimension contiguous: ``w2 @ cols`` (forward), ``cols @ dy2.T`` (weight gradient, the operand
  order DESIGN.md measured fastest) and ``w2.T @ dy2`` (input gradient);
- the price is one transpose ``[O, N, OH*OW] -> [N, O, OH*OW]`` of the output (and of its
  gradient), ``C*kh*kw / O`` times smaller than ``cols`` (9× for a 3×3 conv with C = O).

``col2im`` is the adjoint (transpose) of ``im2col``: it adds every column entry back onto the
input pixel it was copied from, so ``<im2col(x), c> == <x, col2im(c)>`` for all x, c; this is
exactly the chain rule ``dx = im2col^T (dcols)``.

These functions are plain array code: they run on NumPy and CuPy arrays alike.
"""

from __future__ import annotations

from tinyspike import backend


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Number of kernel positions along one axis: ``(size + 2*padding - kernel) // stride + 1``."""
    return (size + 2 * padding - kernel) // stride + 1


def im2col(x, kh: int, kw: int, stride=(1, 1), padding=(0, 0), out=None):
    """Columns ``[C*kh*kw, N*OH*OW]`` of ``x [N, C, H, W]`` (layout: see the module docstring).

    ``stride`` and ``padding`` are ``(vertical, horizontal)`` pairs. ``x`` may be bool/uint8
    (spikes): the columns then take the dtype of ``out``, which must be given.
    ``out``, if given, is a C-contiguous ``[C*kh*kw, N*OH*OW]`` array that is overwritten.
    """
    xp = backend.array_module_of(x)
    (sh, sw), (ph, pw) = stride, padding
    n, c, h, w = x.shape
    oh, ow = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
    if out is None:
        out = xp.empty((c * kh * kw, n * oh * ow), dtype=x.dtype)
    xpad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if (ph or pw) else x
    cols = out.reshape(c, kh, kw, n, oh, ow)
    for a in range(kh):
        for b in range(kw):
            # tap (a, b) sees xpad[n, c, i*sh + a, j*sw + b]: one strided window, moved to [C, N, ...]
            window = xpad[:, :, a : a + sh * (oh - 1) + 1 : sh, b : b + sw * (ow - 1) + 1 : sw]
            cols[:, a, b] = window.transpose(1, 0, 2, 3)
    return out


def col2im(cols, x_shape, kh: int, kw: int, stride=(1, 1), padding=(0, 0), out=None):
    """The adjoint of ``im2col``: sum the columns back onto an image of shape ``x_shape``.

    ``cols`` is ``[C*kh*kw, N*OH*OW]``; the result is ``[N, C, H, W]`` with the dtype of ``cols``.
    A pixel covered by several kernel taps receives the sum of their entries.
    """
    xp = backend.array_module_of(cols)
    (sh, sw), (ph, pw) = stride, padding
    n, c, h, w = x_shape
    oh, ow = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
    grid = cols.reshape(c, kh, kw, n, oh, ow)
    xpad = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for a in range(kh):
        for b in range(kw):
            # taps at different (a, b) overlap in xpad, so they are added one offset at a time
            xpad[:, :, a : a + sh * (oh - 1) + 1 : sh, b : b + sw * (ow - 1) + 1 : sw] += grid[
                :, a, b
            ].transpose(1, 0, 2, 3)
    result = xpad[:, :, ph : ph + h, pw : pw + w]
    if out is None:
        return xp.ascontiguousarray(result)
    out[...] = result
    return out


# ---- the convolution: one driver, given its im2col and col2im ------------------------------------
# The CUDA kernels run this very driver with their own im2col/col2im (``kernels.cuda.conv``); the
# Numba ones fuse the steps chunk by chunk instead (``kernels.numba_cpu.conv``).


def conv2d_forward_with(im2col, x, weight, bias, stride, padding, spikes_out=None):
    """``(y, not_binary)`` of ``conv2d_forward``, with the given ``im2col``."""
    xp = backend.array_module_of(weight)
    o, c, kh, kw = weight.shape
    n, _, h, w = x.shape
    oh, ow = output_size(h, kh, stride[0], padding[0]), output_size(w, kw, stride[1], padding[1])
    cols = xp.empty((c * kh * kw, n * oh * ow), dtype=weight.dtype)
    im2col(x, kh, kw, stride, padding, out=cols)
    y2 = weight.reshape(o, c * kh * kw) @ cols
    del cols  # the largest buffer of the layer: give it back (to CuPy's pool) before the transpose
    y = y2.reshape(o, n, oh, ow).transpose(1, 0, 2, 3)
    if bias is not None:
        y = y + bias.reshape(1, o, 1, 1)
    not_binary = pack_spikes(x, spikes_out) if spikes_out is not None else 0
    return xp.ascontiguousarray(y), not_binary


def conv2d_backward_with(im2col, col2im, grad_y, x, weight, stride, padding, needs, x_shape, w_shape):
    """``(dx, dW, db)`` of ``conv2d_backward``, with the given ``im2col`` and ``col2im``."""
    xp = backend.array_module_of(grad_y)
    o, c, kh, kw = w_shape
    need_x, need_w, need_b = needs
    g2 = xp.ascontiguousarray(grad_y.transpose(1, 0, 2, 3)).reshape(o, -1)
    grad_x = grad_w = grad_b = None
    if need_w:
        cols = xp.empty((c * kh * kw, g2.shape[1]), dtype=grad_y.dtype)
        im2col(x, kh, kw, stride, padding, out=cols)
        grad_w = xp.ascontiguousarray((cols @ g2.T).T).reshape(w_shape)
        del cols
    if need_x:
        dcols = weight.reshape(o, c * kh * kw).T @ g2
        grad_x = col2im(dcols, x_shape, kh, kw, stride, padding)
    if need_b:
        grad_b = grad_y.sum(axis=(0, 2, 3))
    return grad_x, grad_w, grad_b


def conv2d_forward(x, weight, bias, stride=(1, 1), padding=(0, 0), spikes_out=None):
    """``(y, not_binary)``: y [N, O, OH, OW] of x [N, C, H, W] (float, or bool/uint8 spikes) and weight [O, C, kh, kw].

    One GEMM: ``y2 = W2 · cols`` with ``W2 = weight.reshape(O, C*kh*kw)``, then ``y2 [O, N, OH,
    OW]`` is transposed to NCHW and the bias added per output channel. y has weight's dtype.
    ``spikes_out``: None, or a bool array shaped like x that receives ``x != 0`` (spikes saved in
    1 byte); ``not_binary`` is then how many values of x were neither 0 nor 1 (the caller refuses
    x if any), else 0. The fast kernels pack x while they read it anyway.
    """
    return conv2d_forward_with(im2col, x, weight, bias, stride, padding, spikes_out)


def conv2d_backward(grad_y, x, weight, stride, padding, needs, x_shape, w_shape):
    """(dx, dW, db) of ``conv2d_forward`` given grad_y = dL/dy [N, O, OH, OW].

    ``needs`` = (dx wanted, dW wanted, db wanted); an unwanted gradient comes back as None, and
    its operand may be None: x is read only for dW, weight only for dx (their shapes are given).
    With ``G = grad_y`` as ``[O, N*OH*OW]`` (the layout of y2) and ``y2 = W2 · cols``:
    ``dW2 = G · colsᵀ`` (computed as ``(cols · Gᵀ)ᵀ``), ``dcols = W2ᵀ · G``,
    ``dx = col2im(dcols)`` and ``db = Σ_{n,i,j} grad_y``. The columns are recomputed from x.
    """
    return conv2d_backward_with(im2col, col2im, grad_y, x, weight, stride, padding, needs, x_shape, w_shape)


def pack_spikes(x, out) -> int:
    """out = (x != 0), a bool array (1 byte instead of 4 or 8); returns how many values were neither 0 nor 1.

    For spike inputs saved for backward: ``im2col`` expands bool back into floats exactly.
    """
    xp = backend.array_module_of(x)
    out[...] = x != 0
    return int(xp.count_nonzero((x != 0) & (x != 1)).item())  # .item(): an explicit device sync on CuPy
