"""The autograd engine: elementary ops against central differences, graph mechanics, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyspike import ops
from tinyspike.autograd import Function, Tensor, is_grad_enabled, no_grad
from tinyspike.gradcheck import GradcheckError, central_difference, gradcheck

small_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
finite = st.floats(-3, 3, allow_nan=False, width=64)


def arrays(shape):
    return hnp.arrays(np.float64, shape, elements=finite)


@settings(max_examples=25, deadline=None)
@given(data=st.data(), shape=small_shapes)
def test_binary_ops_with_broadcasting_match_finite_differences(data, shape):
    # b gets a shape that broadcasts against a: some axes of a set to 1, maybe fewer axes
    b_shape = tuple(1 if data.draw(st.booleans()) else n for n in shape)[data.draw(st.integers(0, len(shape) - 1)):]
    a = data.draw(arrays(shape))
    b = data.draw(arrays(b_shape))
    positive_b = np.abs(b) + 0.5  # keep division away from 0
    assert gradcheck(lambda x, y: x + y, a, b)
    assert gradcheck(lambda x, y: x - y, a, b)
    assert gradcheck(lambda x, y: x * y, a, b)
    assert gradcheck(lambda x, y: x / y, a, positive_b)
    assert gradcheck(lambda x, y: y - x * 3.0 + 2.0 / y, a, positive_b)


@settings(max_examples=25, deadline=None)
@given(data=st.data(), shape=small_shapes)
def test_unary_ops_and_reductions_match_finite_differences(data, shape):
    a = data.draw(arrays(shape))
    axis = data.draw(st.integers(0, len(shape) - 1))
    keepdims = data.draw(st.booleans())
    assert gradcheck(lambda x: -x, a)
    assert gradcheck(lambda x: x.exp(), a)
    assert gradcheck(lambda x: (x * x + 1.0).log(), a)
    assert gradcheck(lambda x: (x * x + 1.0) ** 1.5, a)
    assert gradcheck(lambda x: x.sum(axis, keepdims), a)
    assert gradcheck(lambda x: x.mean(axis, keepdims), a)
    assert gradcheck(lambda x: x.mean(), a)
    # max: make the entries distinct so that max is differentiable there
    distinct = a + np.arange(a.size).reshape(a.shape) * 1e-2
    assert gradcheck(lambda x: x.max(axis, keepdims), distinct)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_matmul_shape_ops_and_joins_match_finite_differences(data):
    n, k, m, batch = (data.draw(st.integers(1, 4)) for _ in range(4))
    a = data.draw(arrays((batch, n, k)))
    b = data.draw(arrays((k, m)))
    v = data.draw(arrays((k,)))
    assert gradcheck(lambda x, y: x @ y, a, b)
    assert gradcheck(lambda x, y: x @ y, a, v)
    assert gradcheck(lambda x, y: y @ x[0].T, a, v)
    assert gradcheck(lambda x: x.transpose(2, 0, 1).reshape(k, batch * n), a)
    assert gradcheck(lambda x: x[:, ::2, [0, 0]] * 2.0, a)  # repeated index: gradients add
    assert gradcheck(lambda x, y: ops.concatenate([x[0], x[0] * y[:1]], axis=1), a, v)
    assert gradcheck(lambda x: ops.stack([x, x * x], axis=1), a)


def test_gradients_accumulate_until_zero_grad():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])
    x.zero_grad()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])


def test_a_tensor_used_twice_receives_both_gradients():
    x = Tensor(np.array(3.0), requires_grad=True)
    y = x * x + x  # dy/dx = 2x + 1 = 7
    y.backward()
    assert x.grad == pytest.approx(7.0)


def test_backward_frees_saved_arrays_and_refuses_a_second_pass():
    x = Tensor(np.ones(3), requires_grad=True)
    y = (x * x).sum()
    node = y.grad_fn
    y.backward()
    assert node.ctx.saved_tensors == ()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_retain_graph_allows_a_second_pass():
    x = Tensor(np.ones(3), requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad, [4.0, 4.0, 4.0])


def test_deep_graph_does_not_hit_the_recursion_limit():
    x = Tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0 + 0.0
    y.sum().backward()
    assert x.grad[0] == 1.0


def test_no_grad_records_nothing():
    x = Tensor(np.ones(2), requires_grad=True)
    with no_grad():
        assert not is_grad_enabled()
        y = x * 2.0
    assert is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None


def test_detach_cuts_the_graph():
    x = Tensor(np.array([2.0]), requires_grad=True)
    y = x * x.detach()  # d/dx treats the detached copy as a constant: dy/dx = 2, not 4
    y.sum().backward()
    assert x.grad[0] == 2.0


def test_python_numbers_take_the_tensor_dtype_and_mixed_dtypes_raise():
    x = Tensor(np.ones(2, dtype=np.float32))
    assert (x * 2.5).dtype == np.float32
    assert (1.0 - x).dtype == np.float32
    with pytest.raises(TypeError, match="dtype"):
        x + Tensor(np.ones(2, dtype=np.float64))


def test_arrays_and_numpy_scalars_keep_their_dtype_python_floats_take_the_default():
    assert Tensor(np.float64(1.5)).dtype == np.float64
    assert Tensor(np.ones(2, dtype=np.float64)).dtype == np.float64
    assert Tensor(1.5).dtype == np.float32
    assert Tensor([1.0, 2.0]).dtype == np.float32


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="floating"):
        Tensor(np.arange(3), requires_grad=True)


def test_backward_of_a_non_scalar_needs_a_seed_of_its_shape():
    x = Tensor(np.ones((2, 2)), requires_grad=True)
    with pytest.raises(ValueError, match="single-element"):
        (x * 2.0).backward()
    with pytest.raises(ValueError, match="shape"):
        (x * 2.0).backward(np.ones(3))
    (x * 2.0).backward(np.full((2, 2), 0.5))
    np.testing.assert_array_equal(x.grad, np.ones((2, 2)))


def test_shape_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        Tensor(np.ones((2, 3))) @ Tensor(np.ones((4, 5)))
    with pytest.raises(ValueError, match="cannot reshape"):
        Tensor(np.ones(6)).reshape(4, 2)


class _WrongSquare(Function):
    """y = x², with a deliberately wrong backward (2x + 0.01): gradcheck must catch it."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return (g * (2 * x + 0.01),)


class _WrongShape(Function):
    @staticmethod
    def forward(ctx, x):
        return x.sum(axis=0)

    @staticmethod
    def backward(ctx, g):
        return (g,)  # forgot to broadcast back to x's shape


def test_gradcheck_catches_a_wrong_backward_and_says_where():
    x = np.array([[0.5, -1.0], [2.0, 0.25]])
    with pytest.raises(GradcheckError, match=r"input 0 .*index \(0, 0\).*analytic .*numerical"):
        gradcheck(_WrongSquare.apply, x)


def test_the_engine_rejects_a_gradient_of_the_wrong_shape():
    x = Tensor(np.ones((3, 2)), requires_grad=True)
    with pytest.raises(RuntimeError, match="_WrongShape.backward returned a gradient of shape"):
        _WrongShape.apply(x).sum().backward()


def test_gradcheck_refuses_float32_inputs():
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda x: x * 2.0, Tensor(np.ones(2, dtype=np.float32), requires_grad=True))


def test_the_graph_does_not_keep_activations_no_backward_needs():
    import gc
    import weakref

    x = Tensor(np.ones(1000), requires_grad=True)
    hidden = x * 2.0
    hidden_array = weakref.ref(hidden.data)
    out = (hidden + 1.0).sum()  # Add saves nothing: the graph needs only hidden's shape and dtype
    del hidden
    gc.collect()
    assert hidden_array() is None
    out.backward()
    np.testing.assert_array_equal(x.grad, np.full(1000, 2.0))


def test_retain_grad_keeps_the_gradient_of_an_intermediate_tensor():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    hidden = x * 3.0
    hidden.retain_grad()
    (hidden * hidden).sum().backward()
    np.testing.assert_allclose(hidden.grad, 2 * np.array([3.0, 6.0]))
    np.testing.assert_allclose(x.grad, 3 * 2 * np.array([3.0, 6.0]))


def test_numpy_scalars_take_the_tensor_dtype_in_arithmetic_and_pow():
    # a NumPy float64 scalar is a number, not an array: it takes the tensor's dtype, as a Python float
    x = Tensor(np.array([1.0, 3.0], dtype=np.float32), requires_grad=True)
    assert (x * np.float64(2.5)).dtype == np.float32
    y = x ** np.float64(2.0)  # NumPy alone would promote float32 ** float64-scalar to float64
    assert y.dtype == np.float32
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, np.array([2.0, 6.0], dtype=np.float32))  # exact: 2·x in float32


def test_integer_tensors_refuse_true_division_and_float_operands():
    ints = Tensor(np.arange(3))
    with pytest.raises(TypeError, match="div: a has integer dtype int64"):
        ints / 2  # would be float64 behind the user's back
    with pytest.raises(TypeError, match="pow: exponent 0.5 is a float but a has integer dtype"):
        ints**0.5
    assert (ints * 3).numpy().tolist() == [0, 3, 6] and (ints * 3).dtype == np.int64


def test_gradcheck_checks_its_tolerances():
    x = np.ones(2)
    for name, value in (("eps", float("nan")), ("eps", 0.0), ("atol", -1.0), ("rtol", float("inf"))):
        with pytest.raises(ValueError, match=f"gradcheck: {name} must be"):
            gradcheck(lambda t: t * 2.0, x, **{name: value})
    with pytest.raises(TypeError, match="gradcheck: seed must be an int"):
        gradcheck(lambda t: t * 2.0, x, seed=0.5)


def test_gradcheck_keeps_a_0d_input_0d():
    """A scalar parameter (e.g. a learnable decay) reaches ``fn`` with shape (), as given."""
    seen = []

    def fn(w):
        seen.append(w.shape)
        return w * w

    assert gradcheck(fn, np.array(0.7))
    assert set(seen) == {()}


def test_central_difference_error_is_the_stated_truncation_term():
    # L(x) = exp(x[0]) has L‴ = exp, so the budget's truncation term ε²·L‴/6 predicts the error at
    # ε = 1e-3 (the rounding term, ~1e-13 there, and the next Taylor term, ~1e-14, are far below)
    x = np.array([0.3, -1.0])
    numerical = central_difference(lambda: float(np.exp(x[0])), x.reshape(-1), 0, 1e-3)
    predicted = (1e-3) ** 2 * np.exp(0.3) / 6
    assert abs((numerical - np.exp(0.3)) / predicted - 1) < 1e-3  # the error is that term, to 0.1 %
    np.testing.assert_array_equal(x, [0.3, -1.0])  # and the input is restored exactly


def test_central_difference_rounding_term_bounds_the_error_at_tiny_eps():
    # at ε = 1e-10 the truncation term is ~1e-21; what is left is rounding, about ε_machine·|L|/ε
    x = np.array([0.3])
    eps = 1e-10
    numerical = central_difference(lambda: float(np.exp(x[0])), x, 0, eps)
    bound = 4 * np.finfo(np.float64).eps * np.exp(0.3) / eps  # two evaluations off by ≤ ε_m·|L| each, ×2 margin
    assert abs(numerical - np.exp(0.3)) <= bound


@settings(max_examples=25, deadline=None)
@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=5))
def test_mean_is_numpys_mean_exactly(data, shape):
    # mean is Sum then Div by n: the same pairwise sum and one division as NumPy's, bit for bit
    x = data.draw(hnp.arrays(np.float32, shape, elements=st.floats(-1e3, 1e3, width=32)))
    axis = data.draw(st.none() | st.integers(0, len(shape) - 1))
    keepdims = data.draw(st.booleans())
    np.testing.assert_array_equal(ops.mean(Tensor(x), axis, keepdims).numpy(), x.mean(axis=axis, keepdims=keepdims))
