"""Bad inputs to the engine (Tensor, tinyspike.ops) and the functional ops (tinyspike.functional).

Each property test draws a bad argument and asserts, through ``assert_clear``, that the public
call raises a TypeError/ValueError whose message names the op and the argument (the audit's
"clear"), never a bare NumPy/Numba error, a NaN result, or silence. The regression tests at the
end pin the defects of the audit one by one (each failed on the code before this file).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyspike import functional as F
from tinyspike import kernels, ops
from tinyspike.autograd import Tensor
from tinyspike.functional import surrogate

from bad_input import assert_clear

FEW = settings(max_examples=15, deadline=None)
SOME = settings(max_examples=25, deadline=None)

# ---- strategies of bad values -------------------------------------------------------------
non_finite = st.sampled_from([math.nan, math.inf, -math.inf, np.float32("nan"), np.float64("inf")])
not_numbers = st.sampled_from([None, "0.1", "1", b"1", 1 + 2j, [0.5], (1,), {"a": 1}, object()])
bools = st.sampled_from([True, False, np.bool_(True)])
not_bools = st.sampled_from([None, "no", "True", 0, 1, 1.0, np.int64(1), [True]])


def bad_real(low=None, high=None):
    """Values a real-number hyper-parameter must refuse: NaN/inf, non-numbers, bools, out of range."""
    out_of_range = []
    if low is not None:
        out_of_range.append(st.floats(low - 1e6, low, exclude_max=False, allow_nan=False).filter(lambda v: v <= low))
    if high is not None:
        out_of_range.append(st.floats(high, high + 1e6, exclude_min=True, allow_nan=False))
    return st.one_of(non_finite, not_numbers, bools, *out_of_range)


bad_int_pair = st.one_of(
    st.integers(-5, 0), st.sampled_from([1.5, 2.0, "2", None, True, (1,), (1, 2, 3), (1, "2"), (1.0, 2), (2, 0)])
)


def x4(dtype=np.float32, shape=(2, 3, 6, 6)):
    return Tensor(np.random.default_rng(0).standard_normal(shape).astype(dtype))


OPS = {"add": ops.add, "sub": ops.sub, "mul": ops.mul, "div": ops.div}


# ---- the engine ---------------------------------------------------------------------------


@SOME
@given(data=st.one_of(
    not_numbers.filter(lambda v: not isinstance(v, (list, tuple))),
    st.sampled_from([[1, None], ["a", "b"], [[1, 2], [3]], [1 + 1j], [[1.0], 2.0], np.array(["x"]), np.array([None])]),
))
def test_tensor_refuses_data_that_is_not_real_numbers(data):
    assert_clear("Tensor data", lambda: Tensor(data), "Tensor: data", data)


@FEW
@given(flag=not_bools)
def test_tensor_requires_grad_must_be_a_bool(flag):
    assert_clear("Tensor requires_grad", lambda: Tensor(np.ones(2), requires_grad=flag), "Tensor: requires_grad", flag)


@SOME
@given(op=st.sampled_from(sorted(OPS)), operand=not_numbers.filter(lambda v: not isinstance(v, tuple)) | bools,
       tensor_first=st.booleans())
def test_binary_ops_refuse_operands_that_are_not_numbers(op, operand, tensor_first):
    x = Tensor(np.ones(3))
    args, name = ((x, operand), "b") if tensor_first else ((operand, x), "a")
    assert_clear(f"{op} operand", lambda: OPS[op](*args), f"{op}: {name}", operand)


@SOME
@given(op=st.sampled_from(sorted(OPS)), dtype=st.sampled_from([np.int64, np.int32, np.uint8]),
       number=st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([np.float32(0.5), np.float64(2.0)]))
def test_a_float_never_joins_an_integer_tensor(op, dtype, number):
    x = Tensor(np.arange(4, dtype=dtype))
    assert_clear(f"{op} float with int tensor", lambda: OPS[op](x, number), ".astype", number)


@FEW
@given(dtype=st.sampled_from([np.int8, np.uint8, np.int16]), number=st.integers(-(10**30), 10**30))
def test_an_integer_must_fit_the_integer_tensor_dtype(dtype, number):
    info = np.iinfo(dtype)
    if info.min <= number <= info.max:
        assert (Tensor(np.zeros(2, dtype=dtype)) + number).dtype == dtype  # fits: kept, dtype unchanged
    else:
        assert_clear("add int out of range", lambda: Tensor(np.zeros(2, dtype=dtype)) + number, "add: b", number)


def _non_broadcastable(draw_shape):
    a, b = draw_shape
    try:
        np.broadcast_shapes(a, b)
        return False
    except ValueError:
        return True


shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)


@SOME
@given(op=st.sampled_from(sorted(OPS)), pair=st.tuples(shapes, shapes).filter(_non_broadcastable))
def test_broadcasting_errors_name_the_op_and_both_shapes(op, pair):
    a, b = (Tensor(np.ones(s)) for s in pair)
    message = assert_clear(f"{op} broadcast", lambda: OPS[op](a, b), f"{op}: a of shape {pair[0]}", pair)
    assert str(pair[1]) in message


@FEW
@given(a=shapes, b=shapes)
def test_matmul_mismatches_name_both_shapes(a, b):
    inner_b = b[0] if len(b) == 1 else b[-2]
    batch_ok = len(a) <= 2 or len(b) <= 2 or not _non_broadcastable((a[:-2], b[:-2]))
    if a[-1] == inner_b and batch_ok:
        return  # a valid product
    message = assert_clear("matmul shapes", lambda: Tensor(np.ones(a)) @ Tensor(np.ones(b)), "matmul: ", (a, b))
    assert str(a) in message and str(b) in message


bad_axis = st.one_of(
    st.integers(-10, -4),
    st.integers(3, 10),
    st.sampled_from(["0", 0.0, 1.5, True, (0, 0), (0, "1"), (0, 5), [None], {0}]),
)


@SOME
@given(op=st.sampled_from(["sum", "mean", "max"]), axis=bad_axis)
def test_reductions_refuse_bad_axes(op, axis):
    x = Tensor(np.ones((2, 3, 4)))
    assert_clear(f"{op} axis", lambda: getattr(x, op)(axis), f"{op}: axis", axis)


@FEW
@given(op=st.sampled_from(["sum", "mean", "max"]), keepdims=not_bools)
def test_reductions_keepdims_must_be_a_bool(op, keepdims):
    x = Tensor(np.ones((2, 3)))
    assert_clear(f"{op} keepdims", lambda: getattr(x, op)(0, keepdims), f"{op}: keepdims", keepdims)


@FEW
@given(shape=st.one_of(
    st.sampled_from([("2", 3), (2.0, 3), (True, 6), (-2, -3), (-1, -1), (None,), "23", 6.0, None, (0, -1)]),
    st.lists(st.integers(0, 7), min_size=1, max_size=3).map(tuple).filter(lambda s: math.prod(s) != 6),
))
def test_reshape_refuses_bad_shapes(shape):
    x = Tensor(np.ones((2, 3)))
    assert_clear("reshape shape", lambda: ops.reshape(x, shape), ["reshape: shape", "reshape: cannot reshape"], shape)


@FEW
@given(axes=st.sampled_from([("a", "b"), (0,), (0, 0), (0, 1, 2), (0, 2), (1.0, 0), (True, False), "10", 1, (None, 0)]))
def test_transpose_refuses_what_is_not_a_permutation(axes):
    x = Tensor(np.ones((2, 3)))
    assert_clear("transpose axes", lambda: ops.transpose(x, axes), "transpose: axes", axes)


@SOME
@given(index=st.one_of(
    st.integers(3, 100), st.integers(-100, -4),
    st.sampled_from([0.5, "0", None if False else 1.0, True, slice("a"), slice(0, 2, 0), slice(0.5, 2), [0.5, 1.0],
                     [[0, 1], [2]], np.array([0.5]), Tensor(np.ones(2)), (0, 0, 0), np.ones(4, dtype=bool), {0: 1}]),
))
def test_getitem_refuses_bad_and_out_of_range_indices(index):
    x = Tensor(np.ones((3, 2)))
    assert_clear("getitem index", lambda: x[index], "getitem: index", index)


@FEW
@given(exponent=st.one_of(non_finite, not_numbers, bools, st.just(Tensor(np.ones(2)))))
def test_pow_exponent_must_be_a_finite_number(exponent):
    x = Tensor(np.ones(2))
    assert_clear("pow exponent", lambda: x**exponent, "pow: exponent", exponent)


@FEW
@given(dtype=st.sampled_from([None, "abc", object, np.object_, complex, np.complex64, "U3", str, 3.5, "datetime64[s]"]))
def test_astype_refuses_what_is_not_a_real_dtype(dtype):
    assert_clear("astype dtype", lambda: Tensor(np.ones(2)).astype(dtype), "astype: dtype", dtype)


@SOME
@given(op=st.sampled_from(["concatenate", "stack"]), case=st.sampled_from(
    ["axis_high", "axis_low", "axis_float", "axis_bool", "axis_str",
     "empty", "one_tensor", "not_tensor", "dtype", "shape"]
))
def test_joins_name_the_bad_tensors_or_axis(op, case):
    a, b = Tensor(np.ones((2, 3))), Tensor(np.ones((2, 3)))
    tensors, axis, name = [a, b], 0, "axis"
    if case == "axis_high":
        axis = 3
    elif case == "axis_low":
        axis = -4
    elif case in ("axis_float", "axis_bool", "axis_str"):
        axis = {"axis_float": 1.0, "axis_bool": True, "axis_str": "0"}[case]
    elif case == "empty":
        tensors, name = [], "tensors"
    elif case == "one_tensor":
        tensors, name = a, "tensors"
    elif case == "not_tensor":
        tensors, name = [a, [[1.0, 2.0, 3.0]]], "tensors[1]"
    elif case == "dtype":
        tensors, name = [a, Tensor(np.ones((2, 3), np.float32))], "tensors[1]"
    else:
        tensors, name = [a, Tensor(np.ones((3, 2)))], "tensors[1]"
    assert_clear(f"{op} {case}", lambda: getattr(ops, op)(tensors, axis), f"{op}: {name}", case)


@FEW
@given(grad=st.one_of(
    st.sampled_from([1.0, [1.0, 1.0], "1", True, np.float32(1)]),
    st.sampled_from([np.ones(2), np.ones((2, 1), np.float32), np.ones(3, np.float32), np.ones(2, np.int32)]),
))
def test_backward_names_a_bad_seed(grad):
    y = Tensor(np.ones(2, np.float32), requires_grad=True) * 2.0
    assert_clear("backward grad", lambda: y.backward(grad), "backward: grad", grad)


# ---- the functional ops -------------------------------------------------------------------


@SOME
@given(name=st.sampled_from(["stride", "padding"]), value=bad_int_pair)
def test_conv2d_geometry(name, value):
    if name == "padding" and value in (0, (2, 0)):
        return  # padding 0 is valid
    w = Tensor(np.ones((4, 3, 3, 3), np.float32))
    assert_clear(f"conv2d {name}", lambda: F.conv2d(x4(), w, **{name: value}), f"conv2d: {name}", value)


@FEW
@given(which=st.sampled_from(["x", "weight", "bias"]),
       dtype=st.sampled_from([np.float16, np.int32, np.uint8, np.bool_, np.complex64]))
def test_conv2d_computes_only_in_float32_or_float64(which, dtype):
    args = {"x": x4(np.float64), "weight": Tensor(np.ones((4, 3, 3, 3))), "bias": Tensor(np.ones(4))}
    args[which] = Tensor(np.ones(args[which].shape).astype(dtype)) if dtype is not np.complex64 else np.ones(
        args[which].shape, dtype)
    assert_clear(f"conv2d {which} dtype", lambda: F.conv2d(**args), f"conv2d: {which}", dtype)


@FEW
@given(flag=not_bools)
def test_conv2d_spike_input_must_be_a_bool(flag):
    w = Tensor(np.ones((4, 3, 3, 3), np.float32))
    assert_clear("conv2d spike_input", lambda: F.conv2d(x4(), w, spike_input=flag), "conv2d: spike_input", flag)


def _bn(**kwargs):
    channels = np.ones(3, np.float32)
    args = dict(x=x4(), weight=None, bias=None, running_mean=channels * 0, running_var=channels.copy(), training=True)
    args.update(kwargs)
    return F.batch_norm(**args)


@SOME
@given(name=st.sampled_from(["eps", "momentum"]), data=st.data())
def test_batch_norm_hyper_parameters(name, data):
    value = data.draw(bad_real(low=0.0) if name == "eps" else bad_real(low=-0.0, high=1.0), label=name)
    if name == "momentum" and isinstance(value, float) and value == 0.0:
        return  # momentum 0 is valid (frozen running statistics)
    assert_clear(f"batch_norm {name}", lambda: _bn(**{name: value}), f"batch_norm: {name}", value)


@FEW
@given(name=st.sampled_from(["running_mean", "running_var"]),
       bad=st.sampled_from([math.nan, math.inf, -math.inf, -1e-3, -1.0]))
def test_batch_norm_evaluation_checks_the_running_statistics(name, bad):
    if name == "running_mean" and bad < 0 and math.isfinite(bad):
        return  # a negative mean is fine
    buffer = np.ones(3, np.float32)
    buffer[1] = bad
    call = lambda: _bn(training=False, **{name: buffer})  # noqa: E731
    assert_clear(f"batch_norm {name}", call, f"batch_norm: {name}", bad)


@FEW
@given(flag=not_bools)
def test_batch_norm_training_must_be_a_bool(flag):
    assert_clear("batch_norm training", lambda: _bn(training=flag), "batch_norm: training", flag)


LIF_X = Tensor(np.random.default_rng(1).random((3, 2, 4)).astype(np.float32))


@SOME
@given(name=st.sampled_from(["v_th", "decay"]), data=st.data())
def test_lif_neuron_parameters(name, data):
    value = data.draw(bad_real(low=0.0) if name == "v_th" else bad_real(low=-0.0, high=1.0), label=name)
    if name == "decay" and isinstance(value, float) and value == 0.0:
        return  # decay 0 is valid (no memory)
    assert_clear(f"lif {name}", lambda: F.lif(LIF_X, **{name: value}), f"lif: {name}", value)


@FEW
@given(name=st.sampled_from(["detach_reset", "surrogate"]), data=st.data())
def test_lif_options(name, data):
    if name == "detach_reset":
        value = data.draw(not_bools)
    else:
        value = data.draw(st.sampled_from(["step", 1.0, None, "", surrogate.Rectangular]))
    assert_clear(f"lif {name}", lambda: F.lif(LIF_X, **{name: value}), f"lif: {name}", value)


def _run_lif_using(choice):
    with kernels.use(choice):
        F.lif(LIF_X)


@FEW
@given(choice=st.sampled_from(["cuda", "gpu", "numba", "numba_cpu", 1, True, None, "", "REFERENCE"]))
def test_kernel_choice(choice):
    assert_clear("kernels.use choice", lambda: _run_lif_using(choice), "kernels.use: choice", choice)


@FEW
@given(kind=st.sampled_from(sorted(surrogate.SURROGATES)), value=bad_real(low=0.0).filter(lambda v: v is not None))
def test_surrogate_parameters(kind, value):  # (None is the default parameter)
    cls = surrogate.SURROGATES[kind]
    assert_clear(f"surrogate {kind}", lambda: surrogate.get(kind, **{cls.param_name: value}), cls.param_name, value)


@SOME
@given(op=st.sampled_from(["avg_pool2d", "max_pool2d"]), name=st.sampled_from(["kernel_size", "stride", "padding"]),
       value=bad_int_pair)
def test_pool_geometry(op, name, value):
    if (name == "padding" and value in (0, (2, 0))) or (name == "stride" and value is None):
        return  # valid: paddings for a 2x2 kernel, stride None (= kernel_size)
    args = dict(kernel_size=2, stride=None, padding=0)
    args[name] = value
    assert_clear(f"{op} {name}", lambda: getattr(F, op)(x4(), **args), [f"{op}: {name}", f"{op}: padding"], value)


@FEW
@given(value=bad_int_pair)
def test_adaptive_pool_output_size(value):
    assert_clear("adaptive output_size", lambda: F.adaptive_avg_pool2d(x4(), value),
                 "adaptive_avg_pool2d: output_size", value)


@SOME
@given(name=st.sampled_from(["p", "training", "rng"]), data=st.data())
def test_dropout_arguments(name, data):
    args = dict(p=0.5, training=True, rng=np.random.default_rng(0))
    if name == "p":
        value = data.draw(bad_real(low=-0.0, high=1.0).filter(lambda v: not (isinstance(v, float) and v == 0.0)))
    elif name == "training":
        value = data.draw(not_bools)
    else:
        value = data.draw(st.sampled_from([np.random.RandomState(0), 0, "seed", object(), np.random.default_rng]))
    args[name] = value
    assert_clear(f"dropout {name}", lambda: F.dropout(x4(), **args), f"dropout: {name}", value)


@FEW
@given(name=st.sampled_from(["label_smoothing", "reduction", "target"]), data=st.data())
def test_cross_entropy_arguments(name, data):
    args = dict(logits=Tensor(np.zeros((3, 4), np.float32)), target=np.array([0, 1, 3]), label_smoothing=0.0,
                reduction="mean")
    if name == "label_smoothing":
        value = data.draw(bad_real(low=-0.0, high=1.0).filter(lambda v: not (isinstance(v, float) and v == 0.0)))
    elif name == "reduction":
        value = data.draw(st.sampled_from(["avg", None, 1, "MEAN", True]))
    else:
        value = data.draw(st.sampled_from([np.array([0.0, 1.0, 2.0]), np.array([0, 1, 4]), np.array([-1, 0, 0]),
                                           np.array([0, 1]), [0, 1, 2], np.array([True, False, True])]))
    args[name] = value
    assert_clear(f"cross_entropy {name}", lambda: F.cross_entropy(**args), f"cross_entropy: {name}", value)


@FEW
@given(op=st.sampled_from(["relu", "softmax", "log_softmax", "linear", "mse_loss"]),
       dtype=st.sampled_from([np.float16, np.int64, np.bool_]))
def test_elementwise_ops_compute_only_in_float32_or_float64(op, dtype):
    x = Tensor(np.ones((2, 3)).astype(dtype))
    name = "input" if op == "mse_loss" else "x"
    calls = {"relu": lambda: F.relu(x), "softmax": lambda: F.softmax(x), "log_softmax": lambda: F.log_softmax(x),
             "linear": lambda: F.linear(x, Tensor(np.ones((4, 3)).astype(dtype))), "mse_loss": lambda: F.mse_loss(x, x)}
    assert_clear(f"{op} dtype", calls[op], f"{op}: {name}", dtype)


@FEW
@given(op=st.sampled_from(["softmax", "log_softmax"]),
       axis=bad_axis.filter(lambda a: not isinstance(a, (tuple, list, set))))
def test_softmax_axis(op, axis):
    assert_clear(f"{op} axis", lambda: getattr(F, op)(Tensor(np.ones((2, 3), np.float32)), axis), f"{op}: axis", axis)


@FEW
@given(case=st.sampled_from(["in_features", "weight_dtype", "bias_shape", "bias_dtype", "weight_1d"]))
def test_linear_mismatches_name_both_arguments(case):
    x, w, b = Tensor(np.ones((2, 3))), Tensor(np.ones((4, 3))), None
    if case == "in_features":
        w, names = Tensor(np.ones((4, 5))), "linear: x's last dimension (3) must equal weight"
    elif case == "weight_dtype":
        w, names = Tensor(np.ones((4, 3), np.float32)), "linear: weight has dtype float32 but x has float64"
    elif case == "bias_shape":
        b, names = Tensor(np.ones(3)), "linear: bias"
    elif case == "bias_dtype":
        b, names = Tensor(np.ones(4, np.float32)), "linear: bias has dtype float32 but x"
    else:
        w, names = Tensor(np.ones(3)), "linear: weight"
    assert_clear(f"linear {case}", lambda: F.linear(x, w, b), names, case)


# ---- what must still be accepted ----------------------------------------------------------


def test_numpy_scalars_are_accepted_as_hyper_parameters():
    x = x4()
    y = F.batch_norm(x, None, None, np.zeros(3, np.float32), np.ones(3, np.float32), True,
                     momentum=np.float32(0.1), eps=np.float64(1e-5))
    assert y.shape == x.shape and y.dtype == np.float32
    w = Tensor(np.ones((4, 3, 3, 3), np.float32))
    assert F.conv2d(x, w, stride=np.int64(2), padding=np.int32(1)).shape == (2, 4, 3, 3)
    assert F.lif(LIF_X, v_th=np.float32(0.5), decay=np.float64(0.25)).shape == LIF_X.shape
    assert F.max_pool2d(x, np.int64(2)).shape == (2, 3, 3, 3)
    assert (Tensor(np.ones(2, np.float32)) * np.float64(2.5)).dtype == np.float32  # takes the tensor's dtype
    assert (Tensor(np.arange(3)) * np.int32(2)).dtype == np.int64
    assert Tensor(np.ones((2, 3))).sum(axis=np.int64(1)).shape == (2,)


def test_iterating_a_tensor_still_stops_at_its_end():
    # out-of-range indices raise TensorIndexError, an IndexError too: Python's iteration relies on it
    rows = list(Tensor(np.arange(6.0).reshape(3, 2)))
    assert [r.numpy().tolist() for r in rows] == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    with pytest.raises(IndexError):
        Tensor(np.ones(2))[2]


# ---- one regression test per defect of the audit ------------------------------------------


def test_defect1_numbers_mixed_with_tensors_keep_their_value_or_raise():
    ints = Tensor(np.arange(4))
    with pytest.raises(TypeError, match=r"div: b is float 0.5 .* integer dtype int64.*\.astype"):
        ints / 0.5  # was [nan inf inf inf]: 0.5 cast to int64 is 0
    with pytest.raises(TypeError, match=r"add: b is float 2.7 .*\.astype"):
        ints + 2.7  # was [2 3 4 5]
    assert (ints + 2).numpy().tolist() == [2, 3, 4, 5]  # an int fits an int tensor
    floats = Tensor(np.arange(4.0))
    assert (floats + 2).numpy().tolist() == [2.0, 3.0, 4.0, 5.0]  # and a float one
    with pytest.raises(TypeError, match="mul: b must be a Tensor, an array or a real number, got NoneType"):
        floats * None  # was NaN
    with pytest.raises(TypeError, match="add: b must be .* got str '1.5'"):
        floats + "1.5"  # was + 1.5
    for data in ("abc", None):
        with pytest.raises(TypeError, match="Tensor: data"):
            Tensor(data)  # were object tensors
    with pytest.raises(TypeError, match="Tensor: requires_grad must be True or False"):
        Tensor(np.ones(2), requires_grad="no")  # was True


def test_defect3_float16_is_refused_by_name_before_the_kernels():
    half = x4(np.float16)
    with pytest.raises(TypeError, match="conv2d: x must be float32 or float64, got float16"):
        F.conv2d(half, Tensor(np.ones((4, 3, 3, 3), np.float16)))  # was NotImplementedError from Numba
    with pytest.raises(TypeError, match="batch_norm: x must be float32 or float64, got float16"):
        F.batch_norm(half, None, None, None, None, True)


def test_defect4_batch_norm_eps_and_running_statistics():
    with pytest.raises(ValueError, match="batch_norm: eps must be a finite real number"):
        _bn(eps=math.inf)  # was accepted
    with pytest.raises(ValueError, match="batch_norm: running_var must be finite and >= 0.*-1.0 at channel 2"):
        _bn(training=False, running_var=np.array([1.0, 1.0, -1.0], np.float32))  # was NaN output + a warning


def test_defect6_conv2d_checks_the_binary_promise_without_a_weight_gradient():
    x = x4()  # normal values, not spikes
    frozen = Tensor(np.ones((4, 3, 3, 3), np.float32))  # requires_grad=False: dW not needed
    with pytest.raises(ValueError, match="conv2d: spike_input=True but x holds values other than 0 and 1"):
        F.conv2d(x, frozen, spike_input=True)  # was accepted silently
    spikes = Tensor((x.numpy() > 0).astype(np.float32))
    np.testing.assert_array_equal(F.conv2d(spikes, frozen, spike_input=True).numpy(),
                                  F.conv2d(spikes, frozen).numpy())  # the kept promise changes nothing


def test_defect7_backward_checks_the_seed_dtype():
    y = Tensor(np.ones(2, np.float32), requires_grad=True) * 2.0
    with pytest.raises(TypeError, match="backward: grad must have the tensor's dtype float32, got float64"):
        y.backward(np.ones(2))  # was an error inside Mul.backward
    with pytest.raises(TypeError, match="backward: grad must be a Tensor or an array, got list"):
        y.backward([1.0, 1.0])


def test_defect8_tensor_op_arguments_are_named():
    x = Tensor(np.ones((2, 3)))
    with pytest.raises(TypeError, match="transpose: axes must be None or a tuple of ints"):
        x.transpose(("a", "b"))  # was "not all arguments converted during string formatting"
    with pytest.raises(ValueError, match="concatenate: axis 2 is out of range"):
        ops.concatenate([x, x], axis=2)  # was IndexError
    with pytest.raises(ValueError, match=r"add: a of shape \(2, 3\) and b of shape \(4,\) cannot be broadcast"):
        x + Tensor(np.ones(4))  # was NumPy's message without the op


def test_defect11_dropout_rng_and_kernel_choice():
    with pytest.raises(TypeError, match="dropout: rng must be a numpy.random.Generator.*RandomState"):
        F.dropout(x4(), 0.5, True, rng=np.random.RandomState(0))  # was an error deep inside
    with pytest.raises(ValueError, match="kernels.use: choice must be one of"):
        with kernels.use("cuda"):  # one way to choose, by role ("reference" or "fast"), not by name
            F.lif(LIF_X)
