"""Elementary differentiable operations, each a Function with its backward derived.

Notation: ``g`` is the gradient arriving at the output, dL/dy. Broadcasting: when an input of
shape ``s`` was broadcast to the output's shape, its gradient is ``g`` summed over the broadcast
axes (each copy of the input contributed once), see ``unbroadcast``.

Python numbers mixed with Tensors take the Tensor's dtype (``x * 2`` stays float32); two arrays
of different dtypes raise a TypeError rather than being silently promoted.
"""

from __future__ import annotations

import numpy as np

from tinyspike import backend
from tinyspike.autograd import Function, Tensor


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the adjoint of broadcasting an array of ``shape``."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1
    )
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


def _operands(a, b):
    """Make a binary op's operands arrays of one dtype: numbers take the other side's dtype."""
    a_arr, b_arr = (x.data if isinstance(x, Tensor) else x for x in (a, b))
    a_is_arr = hasattr(a_arr, "dtype") and hasattr(a_arr, "shape")
    b_is_arr = hasattr(b_arr, "dtype") and hasattr(b_arr, "shape")
    xp = backend.xp()
    if a_is_arr and not b_is_arr:
        b = xp.asarray(b_arr, dtype=a_arr.dtype)
    elif b_is_arr and not a_is_arr:
        a = xp.asarray(a_arr, dtype=b_arr.dtype)
    elif a_arr.dtype != b_arr.dtype:
        raise TypeError(
            f"operands have different dtypes {a_arr.dtype} and {b_arr.dtype}; "
            "convert one explicitly with .astype(...)"
        )
    return a, b


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


class Sub(Function):
    """y = a - b;  dL/da = g, dL/db = -g (each unbroadcast)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return a - b

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        return unbroadcast(g, sa), unbroadcast(-g, sb)


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


class Neg(Function):
    """y = -a;  dL/da = -g."""

    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, g):
        return (-g,)


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


class MatMul(Function):
    """Y = A @ B (batched over leading axes, broadcast as numpy.matmul);
    dL/dA = G @ Bᵀ, dL/dB = Aᵀ @ G (transposing the last two axes, then unbroadcast).
    1-D operands are treated as a row (A) or column (B) vector, as numpy does."""

    @staticmethod
    def forward(ctx, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError("matmul operands must be at least 1-D; use * for scalars")
        inner_a, inner_b = a.shape[-1], (b.shape[0] if b.ndim == 1 else b.shape[-2])
        if inner_a != inner_b:
            raise ValueError(f"matmul shapes {a.shape} and {b.shape} do not match: {inner_a} != {inner_b}")
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = g2[..., None, :]
        if b.ndim == 1:
            g2 = g2[..., None]
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = unbroadcast(g2 @ b2.swapaxes(-1, -2), a2.shape).reshape(a.shape)
        if ctx.needs_input_grad[1]:
            gb = unbroadcast(a2.swapaxes(-1, -2) @ g2, b2.shape).reshape(b.shape)
        return ga, gb


def _normalise_axis(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    for ax in axes:
        if not -ndim <= ax < ndim:
            raise ValueError(f"axis {ax} is out of range for a tensor with {ndim} dimensions")
    return tuple(sorted(ax % ndim for ax in axes))


def _expand_reduced(g, shape, axes, keepdims):
    """Reinsert the reduced axes into a reduction's gradient so it broadcasts against the input."""
    if not keepdims:
        g = g.reshape([1 if i in axes else n for i, n in enumerate(shape)])
    return g


class Sum(Function):
    """y = Σ_axes a;  dL/da = g broadcast back over the summed axes."""

    @staticmethod
    def forward(ctx, a, axis, keepdims):
        ctx.shape, ctx.axes, ctx.keepdims = a.shape, _normalise_axis(axis, a.ndim), keepdims
        return backend.array_module_of(a).asarray(a.sum(axis=ctx.axes, keepdims=keepdims))

    @staticmethod
    def backward(ctx, g):
        g = _expand_reduced(g, ctx.shape, ctx.axes, ctx.keepdims)
        return backend.array_module_of(g).broadcast_to(g, ctx.shape).copy(), None, None


class Mean(Function):
    """y = (1/n) Σ_axes a with n the number of reduced elements;  dL/da = g / n, broadcast."""

    @staticmethod
    def forward(ctx, a, axis, keepdims):
        ctx.shape, ctx.axes, ctx.keepdims = a.shape, _normalise_axis(axis, a.ndim), keepdims
        ctx.n = int(np.prod([a.shape[i] for i in ctx.axes])) if ctx.axes else 1
        return backend.array_module_of(a).asarray(a.mean(axis=ctx.axes, keepdims=keepdims))

    @staticmethod
    def backward(ctx, g):
        g = _expand_reduced(g, ctx.shape, ctx.axes, ctx.keepdims) / g.dtype.type(ctx.n)
        return backend.array_module_of(g).broadcast_to(g, ctx.shape).copy(), None, None


class Max(Function):
    """y = max_axes a;  dL/da = g at the maximal entries, 0 elsewhere.

    Where several entries tie for the maximum, the gradient is split equally among them (so that
    the total is g, as for a subgradient of the max).
    """

    @staticmethod
    def forward(ctx, a, axis, keepdims):
        axes = _normalise_axis(axis, a.ndim)
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


class Reshape(Function):
    """y = a viewed with a new shape;  dL/da = g reshaped back."""

    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise ValueError(f"cannot reshape a tensor of shape {a.shape} into shape {tuple(shape)}") from None

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.shape), None


class Transpose(Function):
    """y = a with axes permuted by ``axes`` (reversed when None);  dL/da = g permuted by the inverse."""

    @staticmethod
    def forward(ctx, a, axes):
        axes = tuple(reversed(range(a.ndim))) if axes is None else tuple(axes)
        if sorted(ax % a.ndim for ax in axes) != list(range(a.ndim)):
            raise ValueError(f"axes must be a permutation of 0..{a.ndim - 1}, got {axes}")
        ctx.inverse = tuple(np.argsort([ax % a.ndim for ax in axes]))
        return a.transpose(axes)

    @staticmethod
    def backward(ctx, g):
        return g.transpose(ctx.inverse), None


class GetItem(Function):
    """y = a[index] (basic or advanced indexing);  dL/da = zeros with g scattered (added) at index.

    Scatter-add (not assignment) because advanced indexing may pick the same element twice.
    """

    @staticmethod
    def forward(ctx, a, index):
        ctx.shape, ctx.dtype, ctx.index = a.shape, a.dtype, index
        return a[index]

    @staticmethod
    def backward(ctx, g):
        xp = backend.array_module_of(g)
        grad = xp.zeros(ctx.shape, dtype=ctx.dtype)
        xp.add.at(grad, ctx.index, g)
        return grad, None


class AsType(Function):
    """y = a converted to another dtype;  dL/da = g converted back to a's dtype."""

    @staticmethod
    def forward(ctx, a, dtype):
        ctx.dtype = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return g.astype(ctx.dtype), None


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


def _tensor_args(values, name):
    if not values:
        raise ValueError(f"{name} needs at least one tensor")
    dtypes = {(v.data if isinstance(v, Tensor) else v).dtype for v in values}
    if len(dtypes) > 1:
        raise TypeError(f"{name}: all tensors must have one dtype, got {sorted(map(str, dtypes))}")
    return list(values)


# ---- the public functional forms ----------------------------------------------------------


def add(a, b):
    return Add.apply(*_operands(a, b))


def sub(a, b):
    return Sub.apply(*_operands(a, b))


def mul(a, b):
    return Mul.apply(*_operands(a, b))


def div(a, b):
    return Div.apply(*_operands(a, b))


def neg(a):
    return Neg.apply(a)


def pow(a, exponent):
    if isinstance(exponent, Tensor):
        raise TypeError("pow supports a constant (Python number) exponent; use exp(b * log(a)) for a tensor one")
    return Pow.apply(a, exponent)


def exp(a):
    return Exp.apply(a)


def log(a):
    return Log.apply(a)


def matmul(a, b):
    return MatMul.apply(*_operands(a, b))


def sum(a, axis=None, keepdims=False):
    return Sum.apply(a, axis, keepdims)


def mean(a, axis=None, keepdims=False):
    return Mean.apply(a, axis, keepdims)


def max(a, axis=None, keepdims=False):
    return Max.apply(a, axis, keepdims)


def reshape(a, shape):
    return Reshape.apply(a, tuple(shape))


def transpose(a, axes=None):
    return Transpose.apply(a, axes)


def getitem(a, index):
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return GetItem.apply(a, index)


def astype(a, dtype):
    return AsType.apply(a, np.dtype(dtype))


def concatenate(tensors, axis=0):
    """Join tensors along an existing axis."""
    return Concatenate.apply(axis, *_tensor_args(tensors, "concatenate"))


def stack(tensors, axis=0):
    """Join tensors along a new axis (each gets a length-1 axis, then they are concatenated)."""
    tensors = _tensor_args(tensors, "stack")
    ndim = tensors[0].ndim + 1
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for stacking {ndim - 1}-D tensors")
    axis %= ndim
    expanded = [reshape(t, t.shape[:axis] + (1,) + t.shape[axis:]) for t in tensors]
    return concatenate(expanded, axis=axis)
