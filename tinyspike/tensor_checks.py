"""The Tensor- and array-aware argument checks, on top of the scalar vocabulary of ``tinyspike.checks``.

``tinyspike.checks`` holds what needs no Tensor (``real``, ``integer``, ``boolean``, ``choice``,
``int_pair``, ``float_dtype``, and the array-level ``same_dtype``/``same_backend``); this module adds
what needs to know about Tensors: is an argument a Tensor or an array, of which dimensions and
dtype, do two operands broadcast, is an axis, a shape, an index or a random generator valid for
them. The elementary ops (``tinyspike.ops``), the functional ops, ``extras`` and ``distributed``
all check their arguments with it, so each mistake reads the same everywhere.

Each check raises a ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, wrong
value) whose message names the function, the argument, what was expected and what came, so a
user never meets a bare broadcasting error (or a Numba ``NotImplementedError: float16``) from
deep inside a kernel. They look at shapes, dtypes and Python values only, never at the data, and
run once per call in a public wrapper: the Functions' forward and backward assume checked input.
"""

from __future__ import annotations

import math

import numpy as np

from tinyspike import backend, checks
from tinyspike.autograd import Tensor

# ---- Tensors and arrays ----------------------------------------------------------------------


def got(value) -> str:
    """What came, for a message: its type and (shortened) repr, e.g. "str '1.5'"."""
    return f"{checks.kind_of(value)} {checks.show(value)}"


def array_of(value):
    """The backend array inside a Tensor, or the value itself."""
    return value.data if isinstance(value, Tensor) else value


def is_array_like(value) -> bool:
    """A Tensor, a NumPy array or a CuPy array (not a list, not a NumPy scalar)."""
    return isinstance(value, Tensor) or backend.is_array(value)


def array_arg(op: str, name: str, value):
    """The array of a Tensor (or array) operand of an elementary op, of a dtype a Tensor may hold."""
    if isinstance(value, Tensor):
        return value.data
    if backend.is_array(value):
        checks.check_tensor_dtype(op, name, value.dtype)
        return value
    raise TypeError(f"{op}: {name} must be a Tensor or an array, got {got(value)}")


def not_bool(op: str, name: str, data) -> None:
    """TypeError if ``data`` is boolean: bools have no arithmetic."""
    if data.dtype.kind == "b":
        raise TypeError(f"{op}: {name} has dtype bool, which has no arithmetic; convert it with .astype(...) first")


def floating(op: str, name: str, data) -> None:
    """TypeError unless ``data`` has a floating dtype."""
    if data.dtype.kind != "f":
        raise TypeError(
            f"{op}: {name} must have a floating dtype, got {data.dtype}; convert it with .astype(np.float32) first"
        )


def arithmetic(op: str, a, floating_only: bool = False):
    """``a`` of a one-operand op (neg, exp, log): a Tensor or array, not bool (a float if ``floating_only``)."""
    data = array_arg(op, "a", a)
    (floating if floating_only else not_bool)(op, "a", data)
    return a


def tensor_arg(fn: str, name: str, value, ndims=None, floating=True):
    """Check that ``value`` is a Tensor or array (of one of ``ndims`` dims); return its array.

    ``floating=True`` (every functional op that computes): the dtype must be float32 or float64,
    the two the kernels are written for (``checks.float_dtype``: float16 and integers are refused
    here, by name).
    """
    if not is_array_like(value):
        raise TypeError(f"{fn}: {name} must be a Tensor or array, got {got(value)}")
    data = array_of(value)
    if floating:
        checks.float_dtype(fn, name, data.dtype)
    if ndims is not None and data.ndim not in ndims:
        expected = " or ".join(f"{n}-D" for n in ndims)
        raise ValueError(f"{fn}: {name} must be {expected}, got shape {tuple(data.shape)}")
    return data


def parameter(fn: str, name: str, value, data, ndim: int, shape=None, shape_note: str = ""):
    """A weight or bias of ``fn``: a float Tensor/array with ``ndim`` dims, x's dtype and backend.

    ``shape``, if given, is the exact shape wanted (``shape_note`` says why, in the message).
    Returns its array. (conv2d, linear and batch_norm check their parameters with it.)
    """
    param = tensor_arg(fn, name, value, ndims=(ndim,))
    if shape is not None and tuple(param.shape) != tuple(shape):
        raise ValueError(f"{fn}: {name} must have shape {tuple(shape)}{shape_note}, got {tuple(param.shape)}")
    checks.same_dtype(fn, name, param, "x", data)
    checks.same_backend(fn, name, param, "x", data)
    return param


def weight_and_bias(fn: str, weight, bias, data, ndim: int):
    """The weight (``ndim`` dims, output features first) and optional bias ([out]) of conv2d and linear."""
    w = parameter(fn, "weight", weight, data, ndim)
    b = None if bias is None else parameter(fn, "bias", bias, data, 1, (w.shape[0],))
    return w, b


def generator_for(fn: str, name: str, value, data):
    """``value`` if it is the random ``Generator`` type of ``data``'s backend (NumPy's or CuPy's).

    On NumPy this is ``checks.numpy_generator`` (a legacy ``RandomState`` is refused with a hint);
    on CuPy a ``cupy.random.Generator`` (from ``backend.new_generator()``) is what draws CuPy arrays.
    """
    module = backend.array_module_of(data)
    if module is np:
        return checks.numpy_generator(fn, name, value)
    if not isinstance(value, module.random.Generator):
        raise TypeError(
            f"{fn}: {name} must be a {module.__name__}.random.Generator (backend.new_generator()) for "
            f"{module.__name__} arrays, got {checks.kind_of(value)}"
        )
    return value


REDUCTIONS = ("mean", "sum", "none")


def reduction_arg(fn: str, value) -> str:
    """A loss's ``reduction``: one of ``REDUCTIONS``."""
    return checks.choice(fn, "reduction", value, REDUCTIONS)


def time_first(fn: str, x):
    """The array of a time-first ``x`` [T, ...]: floating, at least 2-D, at least one time step."""
    data = tensor_arg(fn, "x", x)
    if data.ndim < 2:
        raise ValueError(f"{fn}: x must be at least 2-D, time first [T, ...], got shape {tuple(data.shape)}")
    if data.shape[0] < 1:
        raise ValueError(f"{fn}: x must have at least one time step (x.shape[0] >= 1), got shape {tuple(data.shape)}")
    return data


def conv2d_geometry(fn: str, x, weight, bias, stride, padding):
    """``(stride, padding)`` of a 2-D convolution, after checking x, weight and bias against them.

    x [N, C, H, W] or [T, B, C, H, W]; weight [O, C, kh, kw] with sizes >= 1 and x's channels; bias
    None or [O]; stride pairs >= 1, padding pairs >= 0; the output must not be empty.
    """
    data = tensor_arg(fn, "x", x, ndims=(4, 5))
    w, _ = weight_and_bias(fn, weight, bias, data, ndim=4)
    if min(w.shape) < 1:
        raise ValueError(f"{fn}: weight must have sizes >= 1 ([out, in, kh, kw]), got shape {tuple(w.shape)}")
    if data.shape[-3] != w.shape[1]:
        layout = "[T, B, C, H, W]" if data.ndim == 5 else "[N, C, H, W]"
        raise ValueError(
            f"{fn}: x has {data.shape[-3]} channels (shape {tuple(data.shape)}, {layout}) but weight "
            f"expects {w.shape[1]} (weight shape {tuple(w.shape)} is [out, in, kh, kw])"
        )
    stride = checks.int_pair(fn, "stride", stride, low=1)
    padding = checks.int_pair(fn, "padding", padding, low=0)
    for axis, name in ((0, "height"), (1, "width")):
        size, kernel = data.shape[-2 + axis], w.shape[2 + axis]
        if size + 2 * padding[axis] < kernel:
            raise ValueError(
                f"{fn}: the output would be empty: input {name} {size} + 2·padding {padding[axis]} "
                f"is smaller than the kernel {name} {kernel}"
            )
    return stride, padding


def pool_window(fn: str, x, kernel_size, stride, padding):
    """A windowed pool's checked (kernel, stride, padding) pairs for x [N, C, H, W] or [T, B, C, H, W].

    stride None means kernel; padding at most half the kernel (PyTorch's rule: every window then
    holds a real pixel); at least one output pixel: ⌊(H + 2ph − kh)/sh⌋ + 1 ≥ 1 ⇔ H + 2ph ≥ kh.
    """
    data = tensor_arg(fn, "x", x, ndims=(4, 5))
    kernel = checks.int_pair(fn, "kernel_size", kernel_size, low=1)
    stride = kernel if stride is None else checks.int_pair(fn, "stride", stride, low=1)
    padding = checks.int_pair(fn, "padding", padding, low=0)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{fn}: padding must be at most half of kernel_size {kernel}, got {padding}")
    in_size = tuple(data.shape[-2:])
    if any(n + 2 * p < k for n, p, k in zip(in_size, padding, kernel)):
        raise ValueError(f"{fn}: input of spatial size {in_size} is smaller than kernel_size {kernel} "
                         f"(padding {padding}): no output pixel")
    return kernel, stride, padding


def in_features(fn: str, x, weight, bias):
    """Check x [..., in_features], weight [out_features, in_features] and bias [out_features] of a linear map."""
    data = tensor_arg(fn, "x", x)
    if data.ndim < 1:
        raise ValueError(f"{fn}: x must have at least 1 dimension, got a scalar")
    w, _ = weight_and_bias(fn, weight, bias, data, ndim=2)
    if w.shape[1] != data.shape[-1]:
        raise ValueError(f"{fn}: x's last dimension ({data.shape[-1]}) must equal weight's in_features "
                         f"(weight shape {tuple(w.shape)} is [out_features, in_features])")


def class_targets(fn: str, target, logits):
    """The array of ``target``: integer class indices [N] in [0, K) for ``logits`` [N, K] (an array).

    The range check reads two numbers, min and max, in one host-device synchronisation.
    """
    t = array_of(target)
    if not is_array_like(t):
        raise TypeError(f"{fn}: target must be a Tensor or array of class indices, got {type(target).__name__}")
    if t.dtype.kind not in "iu":
        raise TypeError(f"{fn}: target must have an integer dtype (class indices), got {t.dtype}")
    n, k = logits.shape
    if t.shape != (n,):
        raise ValueError(f"{fn}: target must have shape ({n},) to match logits {tuple(logits.shape)}, got {tuple(t.shape)}")
    if n == 0 or k == 0:
        raise ValueError(f"{fn}: logits must have at least one sample and one class, got shape {tuple(logits.shape)}")
    checks.same_backend(fn, "target", t, "logits", logits)
    bounds = backend.array_module_of(t).stack([t.min(), t.max()])
    low, high = (int(v) for v in backend.to_numpy(bounds))
    if low < 0 or high >= k:
        raise ValueError(f"{fn}: target values must be in [0, {k}) for {k} classes, got values in [{low}, {high}]")
    return t


def running_stats(fn: str, running_mean, running_var, data, channels: int, training: bool):
    """The running-statistics buffers of a batch norm (arrays [C] of x's backend, or both None).

    Evaluation needs them, finite and with running_var >= 0: a negative variance would make
    √(σ² + ε) NaN for every value of its channel. That costs one pass over two [C] vectors per
    call and one host-device synchronisation (``.item()``) for both; which buffer is bad is found
    only when one is.
    """
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{fn}: running_mean and running_var must both be arrays or both be None")
    if running_mean is None:
        if not training:
            raise ValueError(f"{fn}: evaluation mode (training=False) needs running_mean and running_var")
        return None, None
    running_mean, running_var = array_of(running_mean), array_of(running_var)
    for name, buf in (("running_mean", running_mean), ("running_var", running_var)):
        tensor_arg(fn, name, buf, ndims=(1,))
        if buf.shape != (channels,):
            raise ValueError(f"{fn}: {name} must have shape ({channels},), got {tuple(buf.shape)}")
        checks.same_backend(fn, name, buf, "x", data)
    if not training:
        xp = backend.array_module_of(running_mean)
        mean_ok = xp.isfinite(running_mean).all()
        if not (mean_ok & (xp.isfinite(running_var) & (running_var >= 0)).all()).item():
            if not mean_ok.item():
                raise ValueError(f"{fn}: running_mean must be finite in evaluation mode, got "
                                 f"{_first_bad(running_mean, False)}")
            raise ValueError(f"{fn}: running_var must be finite and >= 0 in evaluation mode, got "
                             f"{_first_bad(running_var, True)}")
    return running_mean, running_var


def _first_bad(buffer, negative_is_bad: bool) -> str:
    """The first non-finite (or negative) entry of a [C] buffer, for the message."""
    values = backend.to_numpy(buffer)
    bad = ~np.isfinite(values) | ((values < 0) if negative_is_bad else False)
    channel = int(np.argmax(bad))
    return f"{values[channel]} at channel {channel}"


# ---- Tensor(data) and backward(grad) ---------------------------------------------------------------


def tensor_data(data):
    """``Tensor(data)``'s array: arrays and NumPy scalars keep their dtype, Python floats take the default."""
    if isinstance(data, Tensor):
        raise TypeError("Tensor: data is already a Tensor: use tensor.detach() to share its array")
    if backend.is_array(data):
        checks.check_tensor_dtype("Tensor", "data", data.dtype)
        return data if backend.array_module_of(data) is backend.xp() else backend.to_device(data)
    if isinstance(data, np.generic):  # a NumPy scalar has a dtype of its own: keep it
        checks.check_tensor_dtype("Tensor", "data", data.dtype)
        return backend.to_device(np.asarray(data))
    if data is None or isinstance(data, (str, bytes)):
        raise TypeError(f"Tensor: data must be an array, a number or a (nested) list of numbers, got {got(data)}")
    try:  # Python numbers and (nested) lists, converted on the host first to check what they hold
        array = np.asarray(data)
    except (ValueError, TypeError) as err:  # ragged lists: NumPy refuses to guess a shape
        raise TypeError(f"Tensor: data must be a rectangular (nested) list of numbers, got "
                        f"{checks.show(data)} ({err})") from None
    checks.check_tensor_dtype("Tensor", "data", array.dtype)
    if array.dtype.kind == "f":  # Python floats take the default floating dtype
        array = array.astype(backend.default_dtype(), copy=False)
    return backend.to_device(array)


def backward_seed(tensor, grad):
    """``grad`` of ``tensor.backward(grad)`` as an array of the tensor's backend, shape and dtype;
    None means 1, for a single-element tensor.

    The engine never converts a seed, so a wrong one is named here and not deep in a backward.
    """
    if grad is None:
        if tensor.size != 1:
            raise ValueError(f"backward() without grad needs a single-element tensor, got shape {tensor.shape}")
        return backend.xp().ones(tensor.shape, dtype=tensor.dtype)
    grad = array_of(grad)
    if not backend.is_array(grad):
        raise TypeError(f"backward: grad must be a Tensor or an array, got {got(grad)}")
    checks.same_backend("backward", "grad", grad, "the tensor", tensor.data)
    if grad.shape != tensor.shape:
        raise ValueError(f"backward: grad must have shape {tensor.shape}, got {grad.shape}")
    if grad.dtype != tensor.dtype:  # the seed's own wording: it must match, not merely agree
        raise TypeError(f"backward: grad must have the tensor's dtype {tensor.dtype}, got {grad.dtype}; "
                        "convert it with .astype(...)")
    return grad


# ---- what tinyspike.gradcheck is given ------------------------------------------------------------


def returned_tensors(result) -> tuple:
    """What gradcheck's ``fn`` returned, as a tuple of Tensors (one Tensor or a tuple of them)."""
    outputs = result if isinstance(result, tuple) else (result,)
    for out in outputs:
        if not isinstance(out, Tensor):
            raise TypeError(f"fn must return a Tensor or a tuple of Tensors, got {type(out).__name__}")
    return outputs


def gradcheck_inputs(inputs):
    """(fn's arguments, [(position, Tensor) to check]): float arrays become Tensors that require grad."""
    args, checked = [], []
    for position, value in enumerate(inputs):
        if isinstance(value, Tensor):
            tensor = value
        elif hasattr(value, "dtype") and getattr(value, "dtype").kind == "f":
            tensor = Tensor(value, requires_grad=True)
        else:
            args.append(value)
            continue
        if tensor.requires_grad:
            if tensor.dtype != np.float64:
                raise TypeError(f"gradcheck input {position} must be float64, got {tensor.dtype}")
            # perturbation writes through a flat view, which needs contiguous memory; a copy with
            # order="C" (not ascontiguousarray, which turns a 0-d array into shape (1,))
            if not tensor.data.flags.c_contiguous:
                tensor.data = tensor.data.copy(order="C")
            checked.append((position, tensor))
        args.append(tensor)
    if not checked:
        raise ValueError("gradcheck found no input to check (pass float64 arrays or Tensors with requires_grad=True)")
    return args, checked


# ---- the operands of the elementary ops (tinyspike.ops) ----------------------------------------


def scalar_in_dtype(op: str, name: str, value, other: str, other_array):
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
                f"{op}: {name} is {got(value)} but {other} has integer dtype {dtype}; "
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


def operands(op: str, a, b):
    """A binary op's operands as arrays of one dtype and backend: a number takes the other side's dtype."""
    a_num = not is_array_like(a)
    b_num = not is_array_like(b)
    for name, value, is_number in (("a", a, a_num), ("b", b, b_num)):
        if is_number and not checks.is_real(value):
            raise TypeError(f"{op}: {name} must be a Tensor, an array or a real number, got {got(value)}")
    if a_num and b_num:
        raise TypeError(f"{op}: needs a Tensor or an array, got two numbers {checks.show(a)} and {checks.show(b)}")
    if b_num:
        return a, scalar_in_dtype(op, "b", b, "a", array_arg(op, "a", a))
    if a_num:
        return scalar_in_dtype(op, "a", a, "b", array_arg(op, "b", b)), b
    a_arr, b_arr = array_arg(op, "a", a), array_arg(op, "b", b)
    checks.same_dtype(op, "b", b_arr, "a", a_arr)
    checks.same_backend(op, "b", b_arr, "a", a_arr)
    return a, b


def elementwise(op: str, a, b):
    """Checked operands of +, -, *, /: kinds, dtypes, backends and broadcastable shapes."""
    a, b = operands(op, a, b)
    a_arr, b_arr = array_of(a), array_of(b)
    not_bool(op, "a", a_arr)
    not_bool(op, "b", b_arr)
    broadcast_shape(op, a_arr.shape, b_arr.shape)
    return a, b


def division(op: str, a, b):
    """Checked operands of a / b; integer tensors are refused (true division would make float64)."""
    a, b = elementwise(op, a, b)
    for name, value in (("a", a), ("b", b)):
        data = array_of(value)
        if data.dtype.kind in "iu":
            raise TypeError(
                f"{op}: {name} has integer dtype {data.dtype} (true division would make float64); "
                "convert it with .astype(np.float32) (or float64) first"
            )
    return a, b


def power(op: str, a, exponent):
    """``(a, exponent)`` of a ** exponent: a constant real exponent that keeps a's dtype."""
    data = array_arg(op, "a", a)
    not_bool(op, "a", data)
    if is_array_like(exponent):
        raise TypeError(f"{op}: exponent must be a constant number; use exp(b * log(a)) for a tensor exponent")
    if checks.is_integer(exponent):
        exponent = int(exponent)  # a Python int keeps a's dtype (a NumPy int64 would promote int32)
        if data.dtype.kind in "iu" and exponent < 0:
            raise ValueError(f"{op}: exponent {exponent} < 0 for integer dtype {data.dtype}; convert a to float first")
    else:
        exponent = checks.real(op, "exponent", exponent)  # a Python float: float32 stays float32
        if data.dtype.kind in "iu":
            raise TypeError(f"{op}: exponent {exponent} is a float but a has integer dtype {data.dtype}; "
                            "convert a with .astype(np.float32) first")
    return a, exponent


def matmul_operands(op: str, a, b):
    """Checked operands of a @ b (numpy.matmul's rules): at least 1-D, inner sizes equal, batch axes broadcast."""
    a_arr, b_arr = array_arg(op, "a", a), array_arg(op, "b", b)
    a, b = operands(op, a, b)
    not_bool(op, "a", a_arr)
    not_bool(op, "b", b_arr)
    if a_arr.ndim == 0 or b_arr.ndim == 0:
        raise ValueError(f"{op}: operands must be at least 1-D, got shapes {a_arr.shape} and {b_arr.shape}; "
                         "use * for scalars")
    inner_a, inner_b = a_arr.shape[-1], (b_arr.shape[0] if b_arr.ndim == 1 else b_arr.shape[-2])
    if inner_a != inner_b:
        raise ValueError(f"{op}: shapes {a_arr.shape} and {b_arr.shape} do not match: {inner_a} != {inner_b}")
    if a_arr.ndim > 2 or b_arr.ndim > 2:
        try:
            np.broadcast_shapes(a_arr.shape[:-2], b_arr.shape[:-2])
        except ValueError:
            raise ValueError(f"{op}: the batch axes of shapes {a_arr.shape} and {b_arr.shape} cannot be "
                             "broadcast together") from None
    return a, b


def comparison_operand(op: str, tensor, other):
    """``other`` of ``tensor > other`` (and <, >=, <=) as an array or number, checked."""
    if is_array_like(other):
        other_arr = array_arg(op, "other", other)
        checks.same_backend(op, "other", other_arr, "the tensor", tensor.data)
        broadcast_shape(op, tensor.shape, other_arr.shape, ("the tensor", "other"))
        return other_arr
    if not checks.is_real(other):
        raise TypeError(f"{op}: other must be a Tensor, an array or a real number, got {got(other)}")
    return other


# ---- axes, shapes, indices, dtypes ---------------------------------------------------------------


def axes_arg(op: str, axis, ndim: int) -> tuple[int, ...]:
    """``axis`` (None, an int or a tuple/list of ints) as sorted non-negative axes, checked."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if checks.is_integer(axis) else axis
    if not isinstance(axes, (tuple, list)) or not all(checks.is_integer(ax) for ax in axes):
        raise TypeError(f"{op}: axis must be None, an int or a tuple of ints, got {got(axis)}")
    for ax in axes:
        if not -ndim <= ax < ndim:
            raise ValueError(f"{op}: axis {ax} is out of range for a tensor with {ndim} dimensions")
    normalised = tuple(sorted(int(ax) % ndim for ax in axes))
    if len(set(normalised)) != len(normalised):
        raise ValueError(f"{op}: axis {checks.show(axis)} names an axis twice")
    return normalised


def reduction(op: str, a, axis, keepdims, floating_only: bool = False, empty_axis: str | None = None):
    """``(a, axes, keepdims)`` of sum/mean/max, checked; ``empty_axis`` (a message) refuses an empty axis."""
    data = array_arg(op, "a", a)
    keepdims = checks.boolean(op, "keepdims", keepdims)
    axes = axes_arg(op, axis, data.ndim)
    if floating_only:
        floating(op, "a", data)
    if empty_axis is not None and any(data.shape[ax] == 0 for ax in axes):
        raise ValueError(f"{op}: {empty_axis} (shape {data.shape}, axis {checks.show(axis)})")
    return a, axes, keepdims


def reshaping(op: str, a, shape):
    """``(a, shape)`` of a reshape: ints >= 0 with at most one -1, holding a's number of elements."""
    data = array_arg(op, "a", a)
    size = data.size
    dims = (shape,) if checks.is_integer(shape) else shape
    if not isinstance(dims, (tuple, list)) or not all(checks.is_integer(n) for n in dims):
        raise TypeError(f"{op}: shape must be an int or a tuple of ints, got {got(shape)}")
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
            f"{op}: cannot reshape a tensor of shape {tuple(data.shape)} ({size} elements) into shape {dims}"
        )
    return a, dims


def permutation(op: str, a, axes):
    """``(a, axes)`` of a transpose: a permutation of 0..ndim-1 (negatives allowed), reversed when None."""
    data = array_arg(op, "a", a)
    ndim = data.ndim
    if axes is None:
        return a, tuple(reversed(range(ndim)))
    if not isinstance(axes, (tuple, list)) or not all(checks.is_integer(ax) for ax in axes):
        raise TypeError(f"{op}: axes must be None or a tuple of ints, got {got(axes)}")
    if len(axes) != ndim or any(not -ndim <= ax < ndim for ax in axes) or sorted(
        int(ax) % ndim for ax in axes
    ) != list(range(ndim)):
        raise ValueError(f"{op}: axes must be a permutation of 0..{ndim - 1} for shape {data.shape}, got {tuple(axes)}")
    return a, tuple(int(ax) % ndim for ax in axes)


def index_part(part, xp):
    """One component of a getitem index, checked and with Tensors/lists turned into arrays."""
    if part is None or part is Ellipsis or checks.is_integer(part):
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
    what = f"array of dtype {part.dtype}" if backend.is_array(part) else got(part)
    raise TypeError(
        f"getitem: index entries must be ints, slices, None, ..., or int/bool arrays (lists, Tensors), got {what}"
    )


def indexing(op: str, a, index):
    """``(a, index)`` of a[index]: every part checked, lists and Tensors as arrays of a's backend."""
    xp = backend.array_module_of(array_arg(op, "a", a))
    if isinstance(index, tuple):
        return a, tuple(index_part(part, xp) for part in index)
    return a, index_part(index, xp)


def cast_dtype(op: str, a, dtype) -> np.dtype:
    """The target dtype of ``a.astype(dtype)``, resolved: one a Tensor may hold (float, int, uint, bool)."""
    array_arg(op, "a", a)
    if dtype is None:  # np.dtype(None) would quietly mean float64
        raise TypeError(f"{op}: dtype must be a dtype such as np.float32, got None")
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{op}: dtype must be a dtype such as np.float32, got {got(dtype)}") from None
    checks.check_tensor_dtype(op, "dtype", resolved)
    return resolved


def join(op: str, tensors, axis, new_axis: bool):
    """Check the tensors and axis of concatenate/stack; return (the tensors as a list, the axis >= 0)."""
    if not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{op}: tensors must be a list or tuple of Tensors, got {checks.kind_of(tensors)}")
    if not tensors:
        raise ValueError(f"{op}: tensors must hold at least one tensor, got an empty {checks.kind_of(tensors)}")
    arrays = [array_arg(op, f"tensors[{i}]", t) for i, t in enumerate(tensors)]
    first = arrays[0]
    for i, data in enumerate(arrays[1:], start=1):
        checks.same_dtype(op, f"tensors[{i}]", data, "tensors[0]", first)
        checks.same_backend(op, f"tensors[{i}]", data, "tensors[0]", first)
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
