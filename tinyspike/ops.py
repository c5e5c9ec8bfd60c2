"""Elementary differentiable operations, each a Function with its backward derived.

Notation: ``g`` is the gradient arriving at the output, dL/dy. Broadcasting: when an input of
shape ``s`` was broadcast to the output's shape, its gradient is ``g`` summed over the broadcast
axes (each copy of the input contributed once), see ``unbroadcast``.

Python and NumPy numbers mixed with Tensors take the Tensor's dtype (``x * 2`` stays float32),
so they must fit it without changing kind (``int_tensor * 0.5`` raises: convert first); two
arrays of different dtypes raise a TypeError rather than being silently promoted.

Each Function is followed by its public form (``add``, ``sum``, ``getitem``...), which checks the
arguments once per call with ``tinyspike.tensor_checks`` (shapes and Python values only), so a bad
one raises a TypeError/ValueError naming the op and the argument (both shapes for a broadcasting
or matmul mismatch); the Functions' forward and backward assume checked arguments.
"""

from __future__ import annotations

import math

import numpy as np

from tinyspike import backend, checks, tensor_checks
from tinyspike.autograd import Function, Tensor


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the adjoint of broadcasting an array of ``shape``."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


class TensorIndexError(IndexError, ValueError):
    """An index out of a tensor's range. An IndexError, so ``for row in tensor`` stops where it
    should (Python's sequence protocol), and a ValueError (a right-kind, wrong-value argument), as
    NumPy's ``AxisError`` is both."""


# ---- the Functions, each followed by its public form (which checks the arguments, then applies it) --


class Add(Function):
    """y = a + b;  dL/da = unbroadcast(g), dL/db = unbroadcast(g)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return a + b

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        return unbroadcast(g, sa), unbroadcast(g, sb)


def add(a, b):
    return Add.apply(*tensor_checks.elementwise("add", a, b))


class Neg(Function):
    """y = -a;  dL/da = -g."""

    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, g):
        return (-g,)


def neg(a):
    return Neg.apply(tensor_checks.arithmetic("neg", a))


def sub(a, b):
    """a - b = a + (-b): two recorded steps, Add's unbroadcast and Neg's sign, give dL/db = -g
    (each term unbroadcast); no Function of its own is needed, as in micrograd."""
    a, b = tensor_checks.elementwise("sub", a, b)
    return Add.apply(a, Neg.apply(b))


class Mul(Function):
    """y = a · b;  dL/da = g · b, dL/db = g · a (each unbroadcast)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a if ctx.needs_input_grad[1] else None, b if ctx.needs_input_grad[0] else None)
        ctx.shapes = (a.shape, b.shape)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        sa, sb = ctx.shapes
        ga = unbroadcast(g * b, sa) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(g * a, sb) if ctx.needs_input_grad[1] else None
        return ga, gb


def mul(a, b):
    return Mul.apply(*tensor_checks.elementwise("mul", a, b))


class Div(Function):
    """y = a / b;  dL/da = g / b, dL/db = -g · a / b² = -g · y / b."""

    @staticmethod
    def forward(ctx, a, b):
        y = a / b
        ctx.save_for_backward(b, y if ctx.needs_input_grad[1] else None)  # y only for dL/db
        ctx.shapes = (a.shape, b.shape)
        return y

    @staticmethod
    def backward(ctx, g):
        b, y = ctx.saved_tensors
        sa, sb = ctx.shapes
        ga = unbroadcast(g / b, sa) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(-g * y / b, sb) if ctx.needs_input_grad[1] else None
        return ga, gb


def div(a, b):
    """a / b; integer tensors are refused (true division would change their dtype to float64)."""
    return Div.apply(*tensor_checks.division("div", a, b))


class Pow(Function):
    """y = a^p for a constant exponent p;  dL/da = g · p · a^(p-1)."""

    @staticmethod
    def forward(ctx, a, p):
        ctx.save_for_backward(a)
        ctx.p = p
        return a**p

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        return g * (ctx.p * a ** (ctx.p - 1)), None


def pow(a, exponent):
    """a ** exponent for a constant real exponent (a Python or NumPy number, finite)."""
    return Pow.apply(*tensor_checks.power("pow", a, exponent))


class Exp(Function):
    """y = exp(a);  dL/da = g · y."""

    @staticmethod
    def forward(ctx, a):
        y = backend.array_module_of(a).exp(a)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return (g * y,)


def exp(a):
    return Exp.apply(tensor_checks.arithmetic("exp", a, floating_only=True))


class Log(Function):
    """y = log(a);  dL/da = g / a."""

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return backend.array_module_of(a).log(a)

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        return (g / a,)


def log(a):
    return Log.apply(tensor_checks.arithmetic("log", a, floating_only=True))


class MatMul(Function):
    """Y = A @ B (batched over leading axes, broadcast as numpy.matmul);
    dL/dA = G @ Bᵀ, dL/dB = Aᵀ @ G (transposing the last two axes, then unbroadcast).
    1-D operands are treated as a row (A) or column (B) vector, as numpy does."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        # a 1-D a is a row [1, n] and a 1-D b a column [n, 1]; g gets back the axis each one dropped
        a2, b2 = (a[None, :] if a.ndim == 1 else a), (b[:, None] if b.ndim == 1 else b)
        g2 = g[..., None, :] if a.ndim == 1 else g
        g2 = g2[..., None] if b.ndim == 1 else g2
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = unbroadcast(g2 @ b2.swapaxes(-1, -2), a2.shape).reshape(a.shape)
        if ctx.needs_input_grad[1]:
            gb = unbroadcast(a2.swapaxes(-1, -2) @ g2, b2.shape).reshape(b.shape)
        return ga, gb


def matmul(a, b):
    """a @ b as numpy.matmul: 1-D operands are vectors, leading axes are batch axes (broadcast)."""
    return MatMul.apply(*tensor_checks.matmul_operands("matmul", a, b))


def _expand_reduced(g, shape, axes, keepdims):
    """Reinsert the reduced axes into a reduction's gradient so it broadcasts against the input."""
    if not keepdims:
        g = g.reshape([1 if i in axes else n for i, n in enumerate(shape)])
    return g


class Sum(Function):
    """y = Σ_axes a;  dL/da = g broadcast back over the summed axes."""

    @staticmethod
    def forward(ctx, a, axes, keepdims):
        ctx.shape, ctx.axes, ctx.keepdims = a.shape, axes, keepdims
        return backend.array_module_of(a).asarray(a.sum(axis=ctx.axes, keepdims=keepdims))

    @staticmethod
    def backward(ctx, g):
        g = _expand_reduced(g, ctx.shape, ctx.axes, ctx.keepdims)
        return backend.array_module_of(g).broadcast_to(g, ctx.shape).copy(), None, None


def sum(a, axis=None, keepdims=False):
    return Sum.apply(*tensor_checks.reduction("sum", a, axis, keepdims))


def mean(a, axis=None, keepdims=False):
    """(1/n) Σ_axes a = Σ_axes a / n, n the number of reduced elements: Sum then Div, so
    dL/da = g / n broadcast back, and the value is NumPy's mean (the same sum, then one division)."""
    a, axes, keepdims = tensor_checks.reduction("mean", a, axis, keepdims, floating_only=True,
                                                empty_axis="cannot average over an empty axis")
    data = tensor_checks.array_of(a)
    count = backend.array_module_of(data).asarray(math.prod(data.shape[ax] for ax in axes), dtype=data.dtype)
    return Div.apply(Sum.apply(a, axes, keepdims), count)


class Max(Function):
    """y = max_axes a;  dL/da = g at the maximal entries, 0 elsewhere.

    Where several entries tie for the maximum, the gradient is split equally among them (so that
    the total is g, as for a subgradient of the max).
    """

    @staticmethod
    def forward(ctx, a, axes, keepdims):
        y = a.max(axis=axes, keepdims=True)
        is_max = a == y
        ctx.save_for_backward(is_max)
        ctx.shape, ctx.axes, ctx.keepdims = a.shape, axes, keepdims
        return y if keepdims else y.reshape([n for i, n in enumerate(a.shape) if i not in axes])

    @staticmethod
    def backward(ctx, g):
        (is_max,) = ctx.saved_tensors
        g = _expand_reduced(g, ctx.shape, ctx.axes, ctx.keepdims)
        count = is_max.sum(axis=ctx.axes, keepdims=True).astype(g.dtype)
        return (is_max * (g / count)).astype(g.dtype, copy=False), None, None


def max(a, axis=None, keepdims=False):
    return Max.apply(*tensor_checks.reduction("max", a, axis, keepdims, empty_axis="an empty axis has no maximum"))


class Reshape(Function):
    """y = a viewed with a new shape;  dL/da = g reshaped back."""

    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        return a.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.shape), None


def reshape(a, shape):
    return Reshape.apply(*tensor_checks.reshaping("reshape", a, shape))


class Transpose(Function):
    """y = a with axes permuted by ``axes`` (non-negative, a permutation);  dL/da = g permuted by the inverse."""

    @staticmethod
    def forward(ctx, a, axes):
        ctx.inverse = tuple(int(i) for i in np.argsort(axes))
        return a.transpose(axes)

    @staticmethod
    def backward(ctx, g):
        return g.transpose(ctx.inverse), None


def transpose(a, axes=None):
    """a with its axes permuted by ``axes`` (a permutation of 0..ndim-1, negatives allowed); reversed when None."""
    return Transpose.apply(*tensor_checks.permutation("transpose", a, axes))


class GetItem(Function):
    """y = a[index] (basic or advanced indexing);  dL/da = zeros with g scattered (added) at index.

    Scatter-add (not assignment) because advanced indexing may pick the same element twice.
    """

    @staticmethod
    def forward(ctx, a, index):
        ctx.shape, ctx.dtype, ctx.index = a.shape, a.dtype, index
        try:
            return a[index]
        except IndexError as err:  # out of range, too many indices, a mask of the wrong shape
            raise TensorIndexError(f"getitem: index {checks.show(index)} does not fit shape {a.shape}: {err}") from None

    @staticmethod
    def backward(ctx, g):
        xp = backend.array_module_of(g)
        grad = xp.zeros(ctx.shape, dtype=ctx.dtype)
        xp.add.at(grad, ctx.index, g)
        return grad, None


def getitem(a, index):
    """a[index] with basic (ints, slices, None, ...) or advanced (int/bool arrays) indexing."""
    return GetItem.apply(*tensor_checks.indexing("getitem", a, index))


class AsType(Function):
    """y = a converted to another dtype;  dL/da = g converted back to a's dtype."""

    @staticmethod
    def forward(ctx, a, dtype):
        ctx.dtype = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return g.astype(ctx.dtype), None


def astype(a, dtype):
    """a converted to ``dtype`` (float, int, uint or bool; a cast to int or bool is not differentiable)."""
    dtype = tensor_checks.cast_dtype("astype", a, dtype)
    if dtype.kind != "f":  # integers and bools carry no gradient: the result leaves the graph
        return Tensor._wrap(tensor_checks.array_of(a).astype(dtype))
    return AsType.apply(a, dtype)


class Concatenate(Function):
    """y = [a₀, a₁, …] joined along ``axis``;  dL/daᵢ = the slice of g that aᵢ filled."""

    @staticmethod
    def forward(ctx, axis, *arrays):
        ctx.axis = axis
        ctx.sizes = [a.shape[axis] for a in arrays]
        return backend.array_module_of(arrays[0]).concatenate(arrays, axis=axis)

    @staticmethod
    def backward(ctx, g):
        splits = np.cumsum(ctx.sizes)[:-1]
        parts = backend.array_module_of(g).split(g, splits, axis=ctx.axis)
        return (None, *parts)


def concatenate(tensors, axis=0):
    """Join tensors along an existing axis (shapes equal but along ``axis``)."""
    tensors, axis = tensor_checks.join("concatenate", tensors, axis, new_axis=False)
    return Concatenate.apply(axis, *tensors)


def stack(tensors, axis=0):
    """Join tensors of one shape along a new axis (each gets a length-1 axis, then they are concatenated)."""
    tensors, axis = tensor_checks.join("stack", tensors, axis, new_axis=True)
    expanded = [reshape(t, tuple(t.shape[:axis]) + (1,) + tuple(t.shape[axis:])) for t in tensors]
    return Concatenate.apply(axis, *expanded)
