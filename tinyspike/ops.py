"""Elementary differentiable operations, each a Function with its backward derived.

Notation: ``g`` is the gradient arriving at the output, dL/dy. Broadcasting: when an input of
shape ``s`` was broadcast to the output's shape, its gradient is ``g`` summed over the broadcast
axes (each copy of the input contributed once), see ``unbroadcast``.

Python and NumPy numbers mixed with Tensors take the Tensor's dtype (``x * 2`` stays float32),
so they must fit it without changing kind (``int_tensor * 0.5`` raises: convert first); two
arrays of different dtypes raise a TypeError rather than being silently promoted.

Arguments are checked in the public forms at the end (``add``, ``sum``, ``getitem``...), once per
call and on shapes and Python values only, so a bad one raises a TypeError/ValueError naming the
op and the argument (both shapes for a broadcasting or matmul mismatch); the Functions' forward
and backward assume checked arguments.
"""

from __future__ import annotations

import math

import numpy as np

from tinyspike import backend, checks
from tinyspike.autograd import Function, Tensor, check_tensor_dtype, same_backend, same_dtype


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the adjoint of broadcasting an array of ``shape``."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1
    )
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


class TensorIndexError(IndexError, ValueError):
    """An index out of a tensor's range. An IndexError, so ``for row in tensor`` stops where it
    should (Python's sequence protocol), and a ValueError (a right-kind, wrong-value argument), as
    NumPy's ``AxisError`` is both."""


# ---- argument checks shared by the public forms below --------------------------------------
# Every check runs once per call in the public wrapper, on shapes and Python values only: never
# a pass over the data.


def _got(value) -> str:
    """What came, for a message: its type and (shortened) repr, e.g. "str '1.5'"."""
    return f"{checks.kind_of(value)} {checks.show(value)}"


def _array_arg(op: str, name: str, value):
    """The array of a Tensor (or array) operand; a TypeError naming ``op`` and ``name`` otherwise."""
    if isinstance(value, Tensor):
        return value.data
    if backend.is_array(value):
        check_tensor_dtype(op, name, value.dtype)
        return value
    raise TypeError(f"{op}: {name} must be a Tensor or an array, got {_got(value)}")


def _not_bool(op: str, name: str, data) -> None:
    if data.dtype.kind == "b":
        raise TypeError(f"{op}: {name} has dtype bool, which has no arithmetic; convert it with .astype(...) first")


def _floating(op: str, name: str, data) -> None:
    if data.dtype.kind != "f":
        raise TypeError(
            f"{op}: {name} must have a floating dtype, got {data.dtype}; convert it with .astype(np.float32) first"
        )


def _scalar_in_dtype(op: str, name: str, value, other: str, other_array):
    """A Python/NumPy number as a 0-d array of ``other_array``'s dtype and backend, refused if the
    cast would change it.

    The number takes the Tensor's dtype (``x * 2`` stays float32), so it must be representable
    there without changing kind: a float cannot join an integer tensor (it would be truncated,
    0.5 → 0), an integer must fit the integer dtype's range, a finite float must not overflow.
    """
    dtype = other_array.dtype
    if dtype.kind == "b":
        raise TypeError(f"{op}: {other} has dtype bool, which has no arithmetic; convert it with .astype(...) first")
    if dtype.kind in "iu":
        if not checks.is_integer(value):
            raise TypeError(
                f"{op}: {name} is {_got(value)} but {other} has integer dtype {dtype}; "
                f"convert {other} with .astype(np.float32) (or float64) first"
            )
        info = np.iinfo(dtype)
        if not info.min <= int(value) <= info.max:
            raise ValueError(f"{op}: {name} = {value} does not fit {other}'s dtype {dtype} [{info.min}, {info.max}]")
    else:
        non_finite_float = not checks.is_integer(value) and not math.isfinite(value)
        # float(): a Python float compares exactly with any Python int, a NumPy float32 would overflow
        if not non_finite_float and abs(value) > float(np.finfo(dtype).max):
            raise ValueError(f"{op}: {name} = {checks.show(value)} overflows {other}'s dtype {dtype}")
    return backend.array_module_of(other_array).asarray(value, dtype=dtype)


def broadcast_shape(op: str, shape_a, shape_b, names=("a", "b")) -> tuple:
    """The broadcast of two shapes, or a ValueError naming ``op`` and both shapes."""
    if shape_a == shape_b:
        return tuple(shape_a)
    try:
        return np.broadcast_shapes(shape_a, shape_b)
    except ValueError:
        raise ValueError(
            f"{op}: {names[0]} of shape {tuple(shape_a)} and {names[1]} of shape {tuple(shape_b)} cannot be "
            "broadcast together (trailing dimensions must be equal or 1)"
        ) from None


def _operands(op: str, a, b):
    """A binary op's operands as arrays of one dtype and backend: a number takes the other side's dtype."""
    a_num = not isinstance(a, Tensor) and not backend.is_array(a)
    b_num = not isinstance(b, Tensor) and not backend.is_array(b)
    for name, value, is_number in (("a", a, a_num), ("b", b, b_num)):
        if is_number and not checks.is_real(value):
            raise TypeError(
                f"{op}: {name} must be a Tensor, an array or a real number, got {_got(value)}"
            )
    if a_num and b_num:
        raise TypeError(f"{op}: needs a Tensor or an array, got two numbers {checks.show(a)} and {checks.show(b)}")
    if b_num:
        a_arr = _array_arg(op, "a", a)
        return a, _scalar_in_dtype(op, "b", b, "a", a_arr)
    if a_num:
        b_arr = _array_arg(op, "b", b)
        return _scalar_in_dtype(op, "a", a, "b", b_arr), b
    a_arr, b_arr = _array_arg(op, "a", a), _array_arg(op, "b", b)
    same_dtype(op, "b", b_arr, "a", a_arr)
    same_backend(op, "b", b_arr, "a", a_arr)
    return a, b


def _elementwise(op: str, a, b):
    """Checked operands of +, -, *, /: kinds, dtypes, backends and broadcastable shapes."""
    a, b = _operands(op, a, b)
    a_arr, b_arr = (x.data if isinstance(x, Tensor) else x for x in (a, b))
    _not_bool(op, "a", a_arr)
    _not_bool(op, "b", b_arr)
    broadcast_shape(op, a_arr.shape, b_arr.shape)
    return a, b


def comparison_operand(op: str, tensor, other):
    """``other`` of ``tensor > other`` (and <, >=, <=) as an array or number, checked."""
    if isinstance(other, Tensor) or backend.is_array(other):
        other_arr = _array_arg(op, "other", other)
        same_backend(op, "other", other_arr, "the tensor", tensor.data)
        broadcast_shape(op, tensor.shape, other_arr.shape, ("the tensor", "other"))
        return other_arr
    if not checks.is_real(other):
        raise TypeError(f"{op}: other must be a Tensor, an array or a real number, got {_got(other)}")
    return other


def _axes(op: str, axis, ndim: int) -> tuple[int, ...]:
    """``axis`` (None, an int or a tuple/list of ints) as sorted non-negative axes, checked."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if checks.is_integer(axis) else axis
    if not isinstance(axes, (tuple, list)) or not all(checks.is_integer(ax) for ax in axes):
        raise TypeError(f"{op}: axis must be None, an int or a tuple of ints, got {_got(axis)}")
    for ax in axes:
        if not -ndim <= ax < ndim:
            raise ValueError(f"{op}: axis {ax} is out of range for a tensor with {ndim} dimensions")
    normalised = tuple(sorted(int(ax) % ndim for ax in axes))
    if len(set(normalised)) != len(normalised):
        raise ValueError(f"{op}: axis {checks.show(axis)} names an axis twice")
    return normalised


def _shape_arg(op: str, shape, size: int, from_shape) -> tuple[int, ...]:
    """A target shape (ints >= 0, at most one -1) that holds ``size`` elements."""
    dims = (shape,) if checks.is_integer(shape) else shape
    if not isinstance(dims, (tuple, list)) or not all(checks.is_integer(n) for n in dims):
        raise TypeError(f"{op}: shape must be an int or a tuple of ints, got {_got(shape)}")
    dims = tuple(int(n) for n in dims)
    if any(n < -1 for n in dims) or dims.count(-1) > 1:
        raise ValueError(f"{op}: shape must hold sizes >= 0 and at most one -1, got {dims}")
    known = math.prod(n for n in dims if n != -1)
    if -1 in dims:
        fits = known > 0 and size % known == 0  # with a 0 elsewhere, -1 could be anything
    else:
        fits = known == size
    if not fits:
        raise ValueError(
            f"{op}: cannot reshape a tensor of shape {tuple(from_shape)} ({size} elements) into shape {dims}"
        )
    return dims


def _reduction(op: str, a, axis, keepdims):
    data = _array_arg(op, "a", a)
    keepdims = checks.boolean(op, "keepdims", keepdims)
    axes = _axes(op, axis, data.ndim)
    return data, axes, keepdims


def _index_part(part, xp):
    """One component of an index, checked and with Tensors/lists turned into arrays."""
    if part is None or part is Ellipsis:
        return part
    if checks.is_integer(part):
        return part
    if isinstance(part, slice):
        for bound in (part.start, part.stop, part.step):
            if bound is not None and not checks.is_integer(bound):
                raise TypeError(f"getitem: index slice bounds must be ints or None, got {part!r}")
        if part.step == 0:
            raise ValueError(f"getitem: index slice step must not be 0, got {part!r}")
        return part
    if isinstance(part, (list, tuple)):
        try:
            part = np.asarray(part)
        except ValueError:
            raise TypeError(f"getitem: index lists must be rectangular, got {checks.show(part)}") from None
        if part.size == 0:
            part = part.astype(np.intp)  # [] is an empty integer index, not a float one
        part = xp.asarray(part)
    elif isinstance(part, Tensor):
        part = part.data
    if backend.is_array(part) and part.dtype.kind in "iub":
        return part
    what = f"array of dtype {part.dtype}" if backend.is_array(part) else f"{checks.kind_of(part)} {checks.show(part)}"
    raise TypeError(
        f"getitem: index entries must be ints, slices, None, ..., or int/bool arrays (lists, Tensors), got {what}"
    )


def _join_args(op: str, tensors, axis, new_axis: bool):
    """Check the tensors and axis of concatenate/stack; return (the tensors as a list, the axis >= 0)."""
    if not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{op}: tensors must be a list or tuple of Tensors, got {checks.kind_of(tensors)}")
    if not tensors:
        raise ValueError(f"{op}: tensors must hold at least one tensor, got an empty {checks.kind_of(tensors)}")
    arrays = [_array_arg(op, f"tensors[{i}]", t) for i, t in enumerate(tensors)]
    first = arrays[0]
    for i, data in enumerate(arrays[1:], start=1):
        same_dtype(op, f"tensors[{i}]", data, "tensors[0]", first)
        same_backend(op, f"tensors[{i}]", data, "tensors[0]", first)
    ndim = first.ndim + (1 if new_axis else 0)
    if ndim == 0:
        raise ValueError(f"{op}: tensors are 0-d, they have no axis to join along; use stack")
    axis = checks.integer(op, "axis", axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for a result with {ndim} dimensions")
    axis %= ndim
    for i, data in enumerate(arrays[1:], start=1):
        if new_axis:
            same = data.shape == first.shape
        else:
            same = data.ndim == first.ndim and all(
                n == m for d, (n, m) in enumerate(zip(data.shape, first.shape)) if d != axis
            )
        if not same:
            rule = "all shapes must be equal" if new_axis else f"shapes may differ only along axis {axis}"
            raise ValueError(f"{op}: tensors[{i}] has shape {tuple(data.shape)} but tensors[0] has "
                             f"{tuple(first.shape)}; {rule}")
    return list(tensors), axis


# ---- the Functions, each followed by its public form --------------------------------------
# A public form checks its arguments (names, kinds, shapes) and then applies its Function.


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
    return Add.apply(*_elementwise("add", a, b))


class Neg(Function):
    """y = -a;  dL/da = -g."""

    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, g):
        return (-g,)


def neg(a):
    _not_bool("neg", "a", _array_arg("neg", "a", a))
    return Neg.apply(a)


def sub(a, b):
    """a - b = a + (-b): two recorded steps, Add's unbroadcast and Neg's sign, give dL/db = -g
    (each term unbroadcast); no Function of its own is needed, as in micrograd."""
    a, b = _elementwise("sub", a, b)
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
    return Mul.apply(*_elementwise("mul", a, b))


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
    a, b = _elementwise("div", a, b)
    for name, value in (("a", a), ("b", b)):
        data = value.data if isinstance(value, Tensor) else value
        if data.dtype.kind in "iu":
            raise TypeError(
                f"div: {name} has integer dtype {data.dtype} (true division would make float64); "
                "convert it with .astype(np.float32) (or float64) first"
            )
    return Div.apply(a, b)


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
    data = _array_arg("pow", "a", a)
    _not_bool("pow", "a", data)
    if isinstance(exponent, Tensor) or backend.is_array(exponent):
        raise TypeError("pow: exponent must be a constant number; use exp(b * log(a)) for a tensor exponent")
    if checks.is_integer(exponent):
        exponent = int(exponent)  # a Python int keeps a's dtype (a NumPy int64 would promote int32)
        if data.dtype.kind in "iu" and exponent < 0:
            raise ValueError(f"pow: exponent {exponent} < 0 for integer dtype {data.dtype}; convert a to float first")
    else:
        exponent = checks.real("pow", "exponent", exponent)  # a Python float: float32 stays float32
        if data.dtype.kind in "iu":
            raise TypeError(f"pow: exponent {exponent} is a float but a has integer dtype {data.dtype}; "
                            "convert a with .astype(np.float32) first")
    return Pow.apply(a, exponent)


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
    _floating("exp", "a", _array_arg("exp", "a", a))
    return Exp.apply(a)


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
    _floating("log", "a", _array_arg("log", "a", a))
    return Log.apply(a)


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


def matmul(a, b):
    """a @ b as numpy.matmul: 1-D operands are vectors, leading axes are batch axes (broadcast)."""
    a_arr, b_arr = _array_arg("matmul", "a", a), _array_arg("matmul", "b", b)
    a, b = _operands("matmul", a, b)
    _not_bool("matmul", "a", a_arr)
    _not_bool("matmul", "b", b_arr)
    if a_arr.ndim == 0 or b_arr.ndim == 0:
        raise ValueError(f"matmul: operands must be at least 1-D, got shapes {a_arr.shape} and {b_arr.shape}; "
                         "use * for scalars")
    inner_a, inner_b = a_arr.shape[-1], (b_arr.shape[0] if b_arr.ndim == 1 else b_arr.shape[-2])
    if inner_a != inner_b:
        raise ValueError(f"matmul: shapes {a_arr.shape} and {b_arr.shape} do not match: {inner_a} != {inner_b}")
    if a_arr.ndim > 2 or b_arr.ndim > 2:
        try:
            np.broadcast_shapes(a_arr.shape[:-2], b_arr.shape[:-2])
        except ValueError:
            raise ValueError(f"matmul: the batch axes of shapes {a_arr.shape} and {b_arr.shape} cannot be "
                             "broadcast together") from None
    return MatMul.apply(a, b)


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
    _, axes, keepdims = _reduction("sum", a, axis, keepdims)
    return Sum.apply(a, axes, keepdims)


def mean(a, axis=None, keepdims=False):
    """(1/n) Σ_axes a = Σ_axes a / n, n the number of reduced elements: Sum then Div, so
    dL/da = g / n broadcast back, and the value is NumPy's mean (the same sum, then one division)."""
    data, axes, keepdims = _reduction("mean", a, axis, keepdims)
    _floating("mean", "a", data)
    if any(data.shape[ax] == 0 for ax in axes):
        raise ValueError(f"mean: cannot average over an empty axis (shape {data.shape}, axis {checks.show(axis)})")
    count = math.prod(data.shape[ax] for ax in axes)
    return Div.apply(Sum.apply(a, axes, keepdims), backend.array_module_of(data).asarray(count, dtype=data.dtype))


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
    data, axes, keepdims = _reduction("max", a, axis, keepdims)
    if any(data.shape[ax] == 0 for ax in axes):
        raise ValueError(f"max: an empty axis has no maximum (shape {data.shape}, axis {checks.show(axis)})")
    return Max.apply(a, axes, keepdims)


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
    data = _array_arg("reshape", "a", a)
    return Reshape.apply(a, _shape_arg("reshape", shape, data.size, data.shape))


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
    data = _array_arg("transpose", "a", a)
    ndim = data.ndim
    if axes is None:
        return Transpose.apply(a, tuple(reversed(range(ndim))))
    if not isinstance(axes, (tuple, list)) or not all(checks.is_integer(ax) for ax in axes):
        raise TypeError(f"transpose: axes must be None or a tuple of ints, got {_got(axes)}")
    if len(axes) != ndim or any(not -ndim <= ax < ndim for ax in axes) or sorted(
        int(ax) % ndim for ax in axes
    ) != list(range(ndim)):
        raise ValueError(
            f"transpose: axes must be a permutation of 0..{ndim - 1} for shape {data.shape}, got {tuple(axes)}"
        )
    return Transpose.apply(a, tuple(int(ax) % ndim for ax in axes))


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
    data = _array_arg("getitem", "a", a)
    xp = backend.array_module_of(data)
    if isinstance(index, tuple):
        index = tuple(_index_part(part, xp) for part in index)
    else:
        index = _index_part(index, xp)
    return GetItem.apply(a, index)


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
    _array_arg("astype", "a", a)
    if dtype is None:  # np.dtype(None) would quietly mean float64
        raise TypeError("astype: dtype must be a dtype such as np.float32, got None")
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"astype: dtype must be a dtype such as np.float32, got {checks.kind_of(dtype)} "
                        f"{checks.show(dtype)}") from None
    check_tensor_dtype("astype", "dtype", resolved)
    if resolved.kind != "f":  # integers and bools carry no gradient: the result leaves the graph
        data = a.data if isinstance(a, Tensor) else a
        return Tensor._wrap(data.astype(resolved))
    return AsType.apply(a, resolved)


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
    tensors, axis = _join_args("concatenate", tensors, axis, new_axis=False)
    return Concatenate.apply(axis, *tensors)


def stack(tensors, axis=0):
    """Join tensors of one shape along a new axis (each gets a length-1 axis, then they are concatenated)."""
    tensors, axis = _join_args("stack", tensors, axis, new_axis=True)
    expanded = [reshape(t, tuple(t.shape[:axis]) + (1,) + tuple(t.shape[axis:])) for t in tensors]
    return Concatenate.apply(axis, *expanded)
