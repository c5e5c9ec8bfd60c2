"""Pooling: forward against explicit loops, gradients, time-first folding, ties, errors."""

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from tinyspike import backend
from tinyspike.autograd import Tensor
from tinyspike.extras.pool import adaptive_avg_pool2d, max_pool2d
from tinyspike.functional.pool import avg_pool2d, global_avg_pool2d
from tinyspike.gradcheck import gradcheck

from helpers import dev, host


def loop_pool(x, k, s, p, how):
    """Pooling written as the definition: one window at a time (padding = 0 for avg, −∞ for max)."""
    n, c, h, w = x.shape
    fill = 0.0 if how == "avg" else -np.inf
    padded = np.full((n, c, h + 2 * p, w + 2 * p), fill)
    padded[:, :, p : p + h, p : p + w] = x
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    y = np.empty((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            window = padded[:, :, i * s : i * s + k, j * s : j * s + k]
            y[:, :, i, j] = window.mean(axis=(2, 3)) if how == "avg" else window.max(axis=(2, 3))
    return y


def distinct(shape, seed):
    """Values without ties (max pooling is not differentiable at a tie), spaced by 0.1."""
    return np.random.default_rng(seed).permutation(int(np.prod(shape))).reshape(shape) * 0.1 - 1.0


@st.composite
def pool_geometry(draw):
    k = draw(st.integers(1, 5))
    s = draw(st.integers(1, 3))
    p = draw(st.integers(0, min(2, k // 2)))
    h = draw(st.integers(max(1, k - 2 * p), 7))
    w = draw(st.integers(max(1, k - 2 * p), 7))
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    return (n, c, h, w), k, s, p


@settings(max_examples=40, deadline=None)
@given(geometry=pool_geometry(), seed=st.integers(0, 2**16))
def test_forward_matches_loops(geometry, seed):
    shape, k, s, p = geometry
    x = distinct(shape, seed)
    for fn, how in ((avg_pool2d, "avg"), (max_pool2d, "max")):
        np.testing.assert_allclose(host(fn(Tensor(dev(x)), k, s, p)), loop_pool(x, k, s, p, how), rtol=1e-12, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(geometry=pool_geometry(), seed=st.integers(0, 2**16))
def test_gradcheck_avg_and_max(geometry, seed):
    shape, k, s, p = geometry
    assume(np.prod(shape) <= 100)
    x = dev(distinct(shape, seed))
    assert gradcheck(lambda x: avg_pool2d(x, k, s, p), x)
    assert gradcheck(lambda x: max_pool2d(x, k, s, p), x)


def test_stride_defaults_to_kernel_and_tuples_work():
    x = distinct((1, 2, 6, 9), 0)
    np.testing.assert_allclose(host(avg_pool2d(Tensor(dev(x)), 3)), loop_pool(x, 3, 3, 0, "avg"))
    y = host(max_pool2d(Tensor(dev(x)), (2, 3), stride=(2, 3)))
    want = x.reshape(1, 2, 3, 2, 3, 3).max(axis=(3, 5))
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("fn", [avg_pool2d, max_pool2d])
def test_time_first_equals_folded(fn):
    x = distinct((3, 2, 2, 5, 5), 1)
    g = np.random.default_rng(2).standard_normal((3, 2, 2, 3, 3))
    results = []
    for shape in (x.shape, (6, 2, 5, 5)):
        xt = Tensor(dev(x.reshape(shape)), requires_grad=True)
        y = fn(xt, 3, 2, 1)
        y.backward(dev(g.reshape(shape[:-2] + (3, 3))))
        results.append((host(y).reshape(g.shape), host(xt.grad).reshape(x.shape)))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_max_pool_ties_route_gradient_to_the_first_maximum():
    x = np.array([[[[1.0, 3.0], [3.0, 3.0]]]])
    xt = Tensor(dev(x), requires_grad=True)
    max_pool2d(xt, 2).sum().backward()
    np.testing.assert_array_equal(host(xt.grad), [[[[0.0, 1.0], [0.0, 0.0]]]])


def test_max_pool_overlapping_windows_accumulate():
    x = np.array([[[[0.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 0.0]]]])
    xt = Tensor(dev(x), requires_grad=True)
    max_pool2d(xt, 2, stride=1).sum().backward()  # the 9 is the max of all four windows
    assert host(xt.grad)[0, 0, 1, 1] == 4.0 and host(xt.grad).sum() == 4.0


def test_max_pool_propagates_nan_and_keeps_float32():
    x = distinct((1, 1, 4, 4), 3).astype(np.float32)
    x[0, 0, 1, 1] = np.nan
    y = host(max_pool2d(Tensor(dev(x)), 2))
    assert y.dtype == np.float32 and np.isnan(y[0, 0, 0, 0]) and not np.isnan(y[0, 0, 1, 1])


# ---- adaptive and global average -----------------------------------------------------------------


def loop_adaptive(x, ho, wo):
    """PyTorch's rule: bin o covers [floor(o·in/out), ceil((o+1)·in/out))."""
    h, w = x.shape[-2:]
    y = np.empty(x.shape[:-2] + (ho, wo))
    for i in range(ho):
        for j in range(wo):
            r0, r1 = (i * h) // ho, -(-((i + 1) * h) // ho)
            c0, c1 = (j * w) // wo, -(-((j + 1) * w) // wo)
            y[..., i, j] = x[..., r0:r1, c0:c1].mean(axis=(-2, -1))
    return y


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(1, 7), w=st.integers(1, 7), ho=st.integers(1, 4), wo=st.integers(1, 4),
    five_d=st.booleans(), seed=st.integers(0, 2**16),
)
def test_adaptive_avg_pool(h, w, ho, wo, five_d, seed):
    shape = (2, 1, 2, h, w) if five_d else (2, 2, h, w)
    x = np.random.default_rng(seed).standard_normal(shape)
    y = adaptive_avg_pool2d(Tensor(dev(x)), (ho, wo))
    np.testing.assert_allclose(host(y), loop_adaptive(x, ho, wo), rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda x: adaptive_avg_pool2d(x, (ho, wo)), dev(x))


def test_adaptive_divisible_equals_avg_pool_and_one_equals_global():
    x = np.random.default_rng(4).standard_normal((2, 3, 6, 8))
    np.testing.assert_allclose(host(adaptive_avg_pool2d(Tensor(dev(x)), (3, 2))), host(avg_pool2d(Tensor(dev(x)), (2, 4))))
    one = host(adaptive_avg_pool2d(Tensor(dev(x)), 1))
    assert one.shape == (2, 3, 1, 1)
    np.testing.assert_allclose(one[..., 0, 0], x.mean(axis=(2, 3)), rtol=1e-12)
    np.testing.assert_allclose(host(global_avg_pool2d(Tensor(dev(x)))), x.mean(axis=(2, 3)), rtol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 2, 3, 3, 4)])
def test_global_avg_pool_gradcheck_and_shape(shape):
    x = dev(np.random.default_rng(5).standard_normal(shape))
    assert global_avg_pool2d(Tensor(x)).shape == shape[:-2]
    assert gradcheck(global_avg_pool2d, x)
    assert gradcheck(lambda x: adaptive_avg_pool2d(x, 1), x)


# ---- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [avg_pool2d, max_pool2d])
@pytest.mark.parametrize(
    "x_shape, args, error, word",
    [
        ((2, 4, 4), (2,), ValueError, "x must"),
        ((1, 1, 4, 4), (0,), ValueError, "kernel_size"),
        ((1, 1, 4, 4), (2.0,), TypeError, "kernel_size"),
        ((1, 1, 4, 4), (2, 0), ValueError, "stride"),
        ((1, 1, 4, 4), (2, 2, 2), ValueError, "padding"),
        ((1, 1, 4, 4), (2, 2, -1), ValueError, "padding"),
        ((1, 1, 2, 2), (3,), ValueError, "kernel_size"),
    ],
)
def test_bad_arguments(fn, x_shape, args, error, word):
    with pytest.raises(error, match=word):
        fn(Tensor(dev(np.ones(x_shape))), *args)


def test_bad_adaptive_arguments():
    with pytest.raises(ValueError, match="output_size"):
        adaptive_avg_pool2d(Tensor(dev(np.ones((1, 1, 4, 4)))), 0)
    with pytest.raises(ValueError, match="x must"):
        global_avg_pool2d(Tensor(dev(np.ones((4, 4)))))
