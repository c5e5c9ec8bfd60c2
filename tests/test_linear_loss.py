"""linear, relu/softmax/log_softmax, dropout, cross_entropy, mse_loss: formulas, gradients, errors."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinyspike import backend
from tinyspike.autograd import Tensor
from tinyspike.extras.activation import log_softmax, relu, softmax
from tinyspike.extras.loss import mse_loss
from tinyspike.functional.dropout import dropout
from tinyspike.functional.linear import linear
from tinyspike.functional.loss import cross_entropy
from tinyspike.gradcheck import gradcheck

from helpers import dev, host


def gen(seed):
    return backend.new_generator(seed)


# ---- linear --------------------------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(
    lead=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    n_in=st.integers(1, 4), n_out=st.integers(1, 4), with_bias=st.booleans(), seed=st.integers(0, 2**16),
)
def test_linear(lead, n_in, n_out, with_bias, seed):
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal(tuple(lead) + (n_in,)), rng.standard_normal((n_out, n_in)), rng.standard_normal(n_out)
    y = linear(Tensor(dev(x)), dev(w), dev(b) if with_bias else None)
    np.testing.assert_allclose(host(y), x @ w.T + (b if with_bias else 0), rtol=1e-12, atol=1e-12)
    if with_bias:
        assert gradcheck(linear, dev(x), dev(w), dev(b))
    else:
        assert gradcheck(linear, dev(x), dev(w))


def test_linear_errors():
    x = Tensor(dev(np.ones((2, 3))))
    with pytest.raises(ValueError, match="in_features"):
        linear(x, dev(np.ones((4, 5))))
    with pytest.raises(ValueError, match="weight"):
        linear(x, dev(np.ones(3)))
    with pytest.raises(ValueError, match="bias"):
        linear(x, dev(np.ones((4, 3))), dev(np.ones(3)))
    with pytest.raises(TypeError, match="weight"):
        linear(x, dev(np.ones((4, 3), np.float32)))


# ---- activations ---------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 4)), axis=st.sampled_from([0, 1, -1]), seed=st.integers(0, 2**16))
def test_softmax_and_log_softmax(shape, axis, seed):
    x = np.random.default_rng(seed).standard_normal(shape) * 3
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    want = e / e.sum(axis=axis, keepdims=True)
    np.testing.assert_allclose(host(softmax(Tensor(dev(x)), axis)), want, rtol=1e-12)
    np.testing.assert_allclose(host(log_softmax(Tensor(dev(x)), axis)), np.log(want), rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda x: softmax(x, axis), dev(x))
    assert gradcheck(lambda x: log_softmax(x, axis), dev(x))


def test_softmax_is_stable_for_huge_logits():
    x = Tensor(dev(np.array([[1000.0, 0.0, -1000.0]], np.float32)))
    np.testing.assert_allclose(host(softmax(x)), [[1, 0, 0]])
    assert np.isfinite(host(log_softmax(x))).all()
    with pytest.raises(ValueError, match="axis"):
        softmax(x, 2)


def test_relu():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5))
    x[np.abs(x) < 0.01] = 0.5  # away from the kink at 0
    np.testing.assert_array_equal(host(relu(Tensor(dev(x)))), np.maximum(x, 0))
    assert gradcheck(relu, dev(x))
    assert relu(Tensor(dev(x.astype(np.float32)))).dtype == np.float32
    (mask,) = relu(Tensor(dev(x), requires_grad=True)).grad_fn.ctx.saved_tensors
    assert mask.dtype == bool  # the docstring's promise: 1 byte per element, not x's 8


# ---- dropout -------------------------------------------------------------------------------------


def test_dropout_is_inverted_and_repeatable():
    x = dev(np.ones((200, 100), np.float32))
    y1 = host(dropout(Tensor(x), 0.25, True, gen(3)))
    y2 = host(dropout(Tensor(x), 0.25, True, gen(3)))
    np.testing.assert_array_equal(y1, y2)
    assert y1.dtype == np.float32
    assert set(np.unique(y1)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((y1 == 0).mean() - 0.25) < 0.02
    assert abs(y1.mean() - 1.0) < 0.03


def test_dropout_gradcheck_and_saved_mask():
    x = dev(np.random.default_rng(1).standard_normal((4, 6)))
    assert gradcheck(lambda x: dropout(x, 0.4, True, gen(7)), x)
    xt = Tensor(x, requires_grad=True)
    y = dropout(xt, 0.4, True, gen(7))
    (mask,) = y.grad_fn.ctx.saved_tensors
    assert mask.dtype == bool
    y.sum().backward()
    np.testing.assert_allclose(host(xt.grad), host(mask) / 0.6)


def test_dropout_eval_and_p_zero_are_identity_and_global_rng_is_used():
    xt = Tensor(dev(np.ones((3, 3))))
    assert dropout(xt, 0.5, False) is xt
    assert dropout(xt, 0.0, True) is xt
    backend.seed(11)
    a = host(dropout(xt, 0.5, True))
    backend.seed(11)
    np.testing.assert_array_equal(a, host(dropout(xt, 0.5, True)))


@pytest.mark.parametrize(
    "kwargs, error, word",
    [
        (dict(p=1.0), ValueError, "p must"),
        (dict(p=-0.1), ValueError, "p must"),
        (dict(p="0.5"), TypeError, "p must"),
        (dict(training=1), TypeError, "training"),
        (dict(rng=42), TypeError, "rng"),
    ],
)
def test_dropout_errors(kwargs, error, word):
    args = dict(p=0.5, training=True, rng=None) | kwargs
    with pytest.raises(error, match=word):
        dropout(Tensor(dev(np.ones(3))), **args)


# ---- cross-entropy -------------------------------------------------------------------------------


def hand_cross_entropy(z, t, eps):
    """−Σ_k q_k log p_k with q = (1 − ε)·onehot + ε/K, p = softmax(z), per sample."""
    n, k = z.shape
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    q = np.full((n, k), eps / k)
    q[np.arange(n), t] += 1 - eps
    return -(q * log_p).sum(axis=1)


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(1, 4), k=st.integers(1, 5), eps=st.sampled_from([0.0, 0.1, 0.5]),
    reduction=st.sampled_from(["mean", "sum", "none"]), seed=st.integers(0, 2**16),
)
def test_cross_entropy(n, k, eps, reduction, seed):
    rng = np.random.default_rng(seed)
    z, t = rng.standard_normal((n, k)) * 2, rng.integers(0, k, n)
    per_sample = hand_cross_entropy(z, t, eps)
    want = {"mean": per_sample.mean(), "sum": per_sample.sum(), "none": per_sample}[reduction]
    got = cross_entropy(Tensor(dev(z)), dev(t), label_smoothing=eps, reduction=reduction)
    np.testing.assert_allclose(host(got), want, rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda z: cross_entropy(z, dev(t), eps, reduction), dev(z))


def test_cross_entropy_gradient_is_softmax_minus_smoothed_target():
    z, t = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]]), np.array([0, 1])
    zt = Tensor(dev(z), requires_grad=True)
    cross_entropy(zt, dev(t), label_smoothing=0.1).backward()
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    q = np.full((2, 3), 0.1 / 3)
    q[[0, 1], t] += 0.9
    np.testing.assert_allclose(host(zt.grad), (p - q) / 2, rtol=1e-12)


def test_cross_entropy_float32_and_large_logits():
    z = Tensor(dev(np.array([[1000.0, -1000.0], [0.0, 0.0]], np.float32)), requires_grad=True)
    loss = cross_entropy(z, dev(np.array([0, 1], np.int32)))
    assert loss.dtype == np.float32 and loss.shape == ()
    np.testing.assert_allclose(host(loss), np.log(2) / 2, rtol=1e-6)
    loss.backward()
    assert z.grad.dtype == np.float32


@pytest.mark.parametrize(
    "logits, target, kwargs, error, word",
    [
        (np.ones((2, 3)), np.array([0.0, 1.0]), {}, TypeError, "target"),
        (np.ones((2, 3)), np.array([0, 3]), {}, ValueError, "target"),
        (np.ones((2, 3)), np.array([-1, 0]), {}, ValueError, "target"),
        (np.ones((2, 3)), np.array([0, 1, 2]), {}, ValueError, "target"),
        (np.ones((2, 3)), [0, 1], {}, TypeError, "target"),
        (np.ones(3), np.array([0]), {}, ValueError, "logits"),
        (np.ones((2, 3), np.int64), np.array([0, 1]), {}, TypeError, "logits"),
        (np.ones((2, 3)), np.array([0, 1]), dict(label_smoothing=1.0), ValueError, "label_smoothing"),
        (np.ones((2, 3)), np.array([0, 1]), dict(label_smoothing=-0.1), ValueError, "label_smoothing"),
        (np.ones((2, 3)), np.array([0, 1]), dict(reduction="avg"), ValueError, "reduction"),
    ],
)
def test_cross_entropy_errors(logits, target, kwargs, error, word):
    target = dev(target) if isinstance(target, np.ndarray) else target
    with pytest.raises(error, match=word):
        cross_entropy(Tensor(dev(logits)), target, **kwargs)


# ---- MSE -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(reduction):
    rng = np.random.default_rng(2)
    x, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    sq = (x - t) ** 2
    want = {"mean": sq.mean(), "sum": sq.sum(), "none": sq}[reduction]
    np.testing.assert_allclose(host(mse_loss(Tensor(dev(x)), dev(t), reduction)), want, rtol=1e-12)
    assert gradcheck(lambda a, b: mse_loss(a, b, reduction), dev(x), dev(t))


def test_mse_errors():
    with pytest.raises(ValueError, match="target"):
        mse_loss(Tensor(dev(np.ones(3))), dev(np.ones(4)))
    with pytest.raises(TypeError, match="target"):
        mse_loss(Tensor(dev(np.ones(3))), dev(np.ones(3, np.float32)))
    with pytest.raises(ValueError, match="reduction"):
        mse_loss(Tensor(dev(np.ones(3))), dev(np.ones(3)), "avg")
