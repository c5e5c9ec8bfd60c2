"""2-D convolution by im2col and matrix products (NCHW; time-first 5-D input folds T into the batch).

Notation: x [N, C, H, W], weight W [O, C, kh, kw], bias b [O], stride (sh, sw), zero padding
(ph, pw), output y [N, O, OH, OW] with OH = (H + 2ph - kh)//sh + 1 (OW alike). xpad is x with
the zero border. The forward formula is

    y[n, o, i, j] = b[o] + Σ_{c, a, b'} W[o, c, a, b'] · xpad[n, c, i·sh + a, j·sw + b'].

im2col turns it into one matrix product (``kernels.reference.conv`` explains the layout):
X = im2col(x) [C·kh·kw, N·OH·OW], W₂ = W.reshape(O, C·kh·kw), and

    Y₂ = W₂ · X + b·1ᵀ         (Y₂ [O, N·OH·OW] is y with its axes in the order o, (n, i, j)).

Backward. Let G = ∂L/∂Y₂ (the incoming gradient in the same layout). A product Y₂ = A·B has
∂L/∂A = G·Bᵀ and ∂L/∂B = Aᵀ·G, so

    ∂L/∂W₂ = G · Xᵀ             computed as (X · Gᵀ)ᵀ, the faster operand order (DESIGN.md)
    ∂L/∂X  = W₂ᵀ · G
    ∂L/∂b[o] = Σ_{n,i,j} G[o, (n,i,j)].

For x: im2col is linear, X = M·x for a 0/1 matrix M that copies each pixel into every column
that sees it (padding entries copy nothing). Hence ∂L/∂x = Mᵀ·∂L/∂X: every entry of ∂L/∂X is
added back onto the pixel it was copied from (overlapping windows add up, padding entries are
dropped). That is col2im, so ∂L/∂x = col2im(W₂ᵀ · G).

Saved for backward: x (needed only for ∂L/∂W, and saved only then) and W (needed only for
∂L/∂x). x is the caller's array, kept by reference: no copy. The columns X are never saved:
backward recomputes them (at T·B = 384 the columns of one 16-channel layer are 226 MB; the
recomputation costs less than writing and re-reading them). With ``spike_input=True`` (x holds
spikes, 0/1, as a layer declares when a LIF feeds it) x is saved as bool, 1 byte per value, and
re-expanded exactly by im2col.

The kernels are the table ``kernels.CONV``: on the NumPy backend the Numba kernels run this chunk
by chunk of samples so that the columns stay in cache (``kernels.numba_cpu.conv``); the reference
kernels (``kernels.reference.conv``) run it as written here, and the CUDA ones run the reference's
driver with CUDA im2col/col2im (``kernels.cuda.conv``).
"""

from __future__ import annotations

from tinyspike import backend, checks, kernels, tensor_checks
from tinyspike.autograd import Function

_FN = "conv2d"


class Conv2dFunction(Function):
    """y = conv2d(x, W) + b on [N, C, H, W] or [T, B, C, H, W]; see the module docstring."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, spike_input):
        fold = x.shape[:2] if x.ndim == 5 else None  # (T, B) of a time-first x, folded into the batch
        x4 = x.reshape((-1,) + x.shape[2:]) if fold else x  # a view
        needs_x, needs_w = ctx.needs_input_grad[:2]
        ctx.kernels = kernels.CONV.pick()  # once: backward runs the same implementation
        # Spikes are checked on every call, gradient or not: the fast kernel tests each value while
        # it reads x for the columns anyway, and writes the bool copy saved for dW.
        spikes = backend.array_module_of(x4).empty(x4.shape, dtype=bool) if spike_input else None
        y, not_binary = ctx.kernels.conv2d_forward(x4, weight, bias, stride, padding, spikes)
        if not_binary:
            raise ValueError(f"{_FN}: spike_input=True but x holds values other than 0 and 1 ({not_binary} of them)")
        x_saved = (spikes if spike_input else x4) if needs_w else None  # x is needed only for dW
        ctx.save_for_backward(x_saved, weight if needs_x else None)
        ctx.x_shape, ctx.w_shape, ctx.fold = x4.shape, weight.shape, fold
        ctx.stride, ctx.padding = stride, padding
        return y.reshape(fold + y.shape[1:]) if fold else y

    @staticmethod
    def backward(ctx, grad_y):
        x4, weight = ctx.saved_tensors
        needs = tuple(ctx.needs_input_grad[:3])
        if ctx.fold:
            grad_y = grad_y.reshape((-1,) + grad_y.shape[2:])
        grad_x, grad_w, grad_b = ctx.kernels.conv2d_backward(
            grad_y, x4, weight, ctx.stride, ctx.padding, needs, ctx.x_shape, ctx.w_shape
        )
        if grad_x is not None and ctx.fold:
            grad_x = grad_x.reshape(ctx.fold + grad_x.shape[1:])
        return grad_x, grad_w, grad_b, None, None, None


def conv2d(x, weight, bias=None, stride=1, padding=0, spike_input=False):
    """2-D convolution (cross-correlation, as PyTorch's ``conv2d``), groups = 1, zero padding.

    Args:
        x: Tensor or array [N, C, H, W], or time-first [T, B, C, H, W] (T folds into the batch:
            the same weights at every step; the output is [T, B, O, OH, OW]).
        weight: [O, C, kh, kw], same dtype (float32 or float64) and backend as x.
        bias: None or [O].
        stride: int or (sh, sw), each >= 1.
        padding: int or (ph, pw), each >= 0 (zeros).
        spike_input: x holds only 0 and 1 (spikes): then x is saved for backward as bool (4×
            smaller than float32). Checked on every call (with or without gradients): a
            ValueError is raised if x holds anything else.

    Returns a Tensor [N, O, OH, OW] (or [T, B, O, OH, OW]) of x's dtype, with
    OH = (H + 2·ph - kh)//sh + 1 and OW alike.
    """
    stride, padding = tensor_checks.conv2d_geometry(_FN, x, weight, bias, stride, padding)
    spike_input = checks.boolean(_FN, "spike_input", spike_input)
    return Conv2dFunction.apply(x, weight, bias, stride, padding, spike_input)
