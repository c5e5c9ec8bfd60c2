"""Batch norm / tdBN: kernels (numba == reference), gradients, REFERENCE.md §2 statistics, errors."""

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinyspike import backend, kernels
from tinyspike.autograd import Tensor
from tinyspike.functional.norm import batch_norm
from tinyspike.gradcheck import gradcheck

from helpers import dev, host

KERNELS = ("bn_stats", "bn_apply", "bn_backward_reduce", "bn_backward_apply")
on_numpy = pytest.mark.skipif(backend.name() != "numpy", reason="Numba kernels run on the NumPy backend")


def channel_axis(ndim):
    return 2 if ndim == 5 else 1


def numpy_batch_norm(x, gamma, beta, mean, var, eps=1e-5):
    """The formula of REFERENCE §2, straight from the page."""
    axis = channel_axis(x.ndim)
    shape = [1] * x.ndim
    shape[axis] = -1
    r = lambda v: np.reshape(v, shape)  # noqa: E731
    return r(gamma) * (x - r(mean)) / np.sqrt(r(var) + eps) + r(beta)


def reduce_axes(ndim):
    axis = channel_axis(ndim)
    return tuple(i for i in range(ndim) if i != axis)


shapes = st.sampled_from([2, 3, 4, 5]).flatmap(
    lambda ndim: st.tuples(*[st.integers(1, 3) for _ in range(ndim)]).filter(
        lambda s: np.prod(s) // s[channel_axis(len(s))] >= 2
    )
)


# ---- kernels -------------------------------------------------------------------------------------


def kernel_inputs(shape, dtype, offset, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2 + offset).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    c = shape[1]
    coeffs = [rng.standard_normal(c) for _ in range(4)]
    return x, dy, coeffs


@on_numpy
@settings(max_examples=25, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 5), st.integers(1, 4), st.integers(1, 37)),
    dtype=st.sampled_from([np.float32, np.float64]),
    offset=st.sampled_from([0.0, 3.0, -50.0]),
    seed=st.integers(0, 2**16),
    shared=st.booleans(),
)
def test_numba_kernels_equal_reference(shape, dtype, offset, seed, shared):
    # shared: the rows split into ranges run by both workers (small work otherwise runs on one thread)
    with sharing_rows(shared):
        check_numba_kernels_equal_reference(shape, dtype, offset, seed)


@contextlib.contextmanager
def sharing_rows(shared: bool):
    """With ``shared``, even tiny inputs split their rows into ranges run by two workers."""
    from tinyspike.kernels.numba_cpu import workers

    norm_kernels = kernels.NORM.numba_cpu
    saved = workers.SERIAL_BELOW, norm_kernels.ROWS_GRAIN, workers.count
    if shared:
        workers.SERIAL_BELOW, norm_kernels.ROWS_GRAIN, workers.count = 0, 1, (lambda: 2)
    try:
        yield
    finally:
        workers.SERIAL_BELOW, norm_kernels.ROWS_GRAIN, workers.count = saved


def check_numba_kernels_equal_reference(shape, dtype, offset, seed):
    x, dy, (m, a, b, c) = kernel_inputs(shape, dtype, offset, seed)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    fast = {name: getattr(kernels.NORM.numba_cpu, name) for name in KERNELS}
    ref = {name: getattr(kernels.NORM.reference, name) for name in KERNELS}

    for got, want in zip(fast["bn_stats"](x), ref["bn_stats"](x)):
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    for got, want in zip(fast["bn_backward_reduce"](dy, x, m), ref["bn_backward_reduce"](dy, x, m)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-9)
    y_fast, y_ref = fast["bn_apply"](x, a, b), ref["bn_apply"](x, a, b)
    assert y_fast.dtype == y_ref.dtype == dtype
    np.testing.assert_allclose(y_fast, y_ref, **tol)
    dx_fast, dx_ref = fast["bn_backward_apply"](dy, x, m, a, b, c), ref["bn_backward_apply"](dy, x, m, a, b, c)
    assert dx_fast.dtype == dtype
    np.testing.assert_allclose(dx_fast, dx_ref, **tol)


@on_numpy
def test_one_pass_variance_is_accurate_for_large_mean():
    # |μ|/σ = 1e4: the unshifted E[x²] − E[x]² in float64 would lose ~8 of its 16 digits.
    rng = np.random.default_rng(0)
    x = (1e4 + rng.standard_normal((64, 3, 100))).astype(np.float32)
    mean, var = kernels.NORM.numba_cpu.bn_stats(x)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=(0, 2)), rtol=1e-13)
    np.testing.assert_allclose(var, x64.var(axis=(0, 2)), rtol=1e-9)


@on_numpy
def test_constant_channel_has_zero_variance():
    x = np.full((4, 2, 5), 3.25, dtype=np.float32)
    mean, var = kernels.NORM.numba_cpu.bn_stats(x)
    np.testing.assert_array_equal(mean, 3.25)
    np.testing.assert_array_equal(var, 0.0)


# ---- forward values and REFERENCE §2 statistics ---------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(shape=shapes, affine=st.booleans(), seed=st.integers(0, 2**16))
def test_forward_matches_formula(shape, affine, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 3 + 1
    c = shape[channel_axis(len(shape))]
    gamma = rng.standard_normal(c) if affine else np.ones(c)
    beta = rng.standard_normal(c) if affine else np.zeros(c)
    rm, rv = rng.standard_normal(c), rng.random(c) + 0.5
    w, b = (dev(gamma), dev(beta)) if affine else (None, None)

    y = batch_norm(Tensor(dev(x)), w, b, dev(rm), dev(rv), training=True)
    axes = reduce_axes(x.ndim)
    want = numpy_batch_norm(x, gamma, beta, x.mean(axis=axes), x.var(axis=axes))
    np.testing.assert_allclose(host(y), want, rtol=1e-10, atol=1e-10)

    y_eval = batch_norm(Tensor(dev(x)), w, b, dev(rm), dev(rv), training=False)
    np.testing.assert_allclose(host(y_eval), numpy_batch_norm(x, gamma, beta, rm, rv), rtol=1e-10, atol=1e-10)


def test_running_statistics_follow_reference_section_2():
    """One training call on [T, B, C, H, W]: momentum 0.1, unbiased var with n = T·B·H·W."""
    rng = np.random.default_rng(1)
    t, b, c, h, w = 3, 4, 2, 5, 3
    x = (rng.standard_normal((t, b, c, h, w)) * 1.5 + 0.7).astype(np.float32)
    running_mean = dev(rng.standard_normal(c).astype(np.float32))
    running_var = dev((rng.random(c) + 0.5).astype(np.float32))
    rm0, rv0 = host(running_mean).copy(), host(running_var).copy()

    buffers = (running_mean, running_var)
    batch_norm(Tensor(dev(x)), None, None, running_mean, running_var, training=True)
    assert (running_mean, running_var) == buffers  # updated in place, same arrays

    x64 = x.astype(np.float64)
    n = t * b * h * w
    per_channel = x64.transpose(2, 0, 1, 3, 4).reshape(c, n)
    mu = per_channel.sum(axis=1) / n
    unbiased = ((per_channel - mu[:, None]) ** 2).sum(axis=1) / (n - 1)
    np.testing.assert_allclose(host(running_mean), 0.9 * rm0 + 0.1 * mu, rtol=1e-6)
    np.testing.assert_allclose(host(running_var), 0.9 * rv0 + 0.1 * unbiased, rtol=1e-6)
    assert host(running_mean).dtype == np.float32


def test_eval_mode_uses_running_statistics_and_leaves_them():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 4, 4))
    rm, rv = rng.standard_normal(3), rng.random(3) + 0.5
    running_mean, running_var = dev(rm), dev(rv)
    y = batch_norm(Tensor(dev(x)), None, None, running_mean, running_var, training=False)
    np.testing.assert_array_equal(host(running_mean), rm)
    np.testing.assert_array_equal(host(running_var), rv)
    np.testing.assert_allclose(host(y), numpy_batch_norm(x, np.ones(3), np.zeros(3), rm, rv), rtol=1e-12)


def test_no_running_statistics_in_training_mode():
    x = np.random.default_rng(3).standard_normal((4, 2, 3))
    y = batch_norm(Tensor(dev(x)), None, None, None, None, training=True)
    np.testing.assert_allclose(host(y), numpy_batch_norm(x, 1, 0, x.mean(axis=(0, 2)), x.var(axis=(0, 2))), rtol=1e-10)


@pytest.mark.parametrize("training", [True, False])
def test_time_first_5d_equals_bn_on_time_folded_tensor(training):
    rng = np.random.default_rng(4)
    t, b, c, h, w = 3, 2, 4, 3, 5
    x = rng.standard_normal((t, b, c, h, w)).astype(np.float32)
    gamma, beta = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    results = []
    for shape in (x.shape, (t * b, c, h, w)):
        xt, wt, bt = Tensor(dev(x.reshape(shape)), True), Tensor(dev(gamma), True), Tensor(dev(beta), True)
        rm, rv = dev(np.zeros(c, np.float32) + 0.1), dev(np.ones(c, np.float32) * 2)
        y = batch_norm(xt, wt, bt, rm, rv, training=training)
        y.backward(dev(g.reshape(shape)))
        results.append([host(y).reshape(x.shape), host(xt.grad).reshape(x.shape), host(wt.grad), host(bt.grad), host(rm), host(rv)])
    for five_d, folded in zip(*results):
        np.testing.assert_allclose(five_d, folded, rtol=1e-6, atol=1e-6)


def test_float32_stays_float32_and_gradients_match_dtype():
    rng = np.random.default_rng(5)
    x = Tensor(dev(rng.standard_normal((4, 3, 2, 2)).astype(np.float32)), requires_grad=True)
    w = Tensor(dev(np.full(3, 0.5, np.float32)), requires_grad=True)
    b = Tensor(dev(np.zeros(3, np.float32)), requires_grad=True)
    y = batch_norm(x, w, b, dev(np.zeros(3, np.float32)), dev(np.ones(3, np.float32)), training=True)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == np.float32
    # Σ over a channel of dL/dx is 0 when L = Σ y (the mean absorbs any constant shift).
    np.testing.assert_allclose(host(x.grad).sum(axis=(0, 2, 3)), 0, atol=1e-5)


def test_zero_gamma_passes_gradient_to_gamma_only():
    """The zero-init BN of every residual branch: y = β, dL/dx = 0, but dL/dγ ≠ 0 (it can learn)."""
    rng = np.random.default_rng(6)
    x = Tensor(dev(rng.standard_normal((4, 2, 3, 3))), requires_grad=True)
    w = Tensor(dev(np.zeros(2)), requires_grad=True)
    y = batch_norm(x, w, None, dev(np.zeros(2)), dev(np.ones(2)), training=True)
    y.backward(dev(rng.standard_normal((4, 2, 3, 3))))
    np.testing.assert_array_equal(host(y), 0)
    np.testing.assert_array_equal(host(x.grad), 0)
    assert np.all(host(w.grad) != 0)


def test_nan_propagates():
    x = np.ones((4, 2, 3))
    x[1, 0, 2] = np.nan
    y = host(batch_norm(Tensor(dev(x)), None, None, dev(np.zeros(2)), dev(np.ones(2)), training=True))
    assert np.isnan(y[:, 0]).all() and not np.isnan(y[:, 1]).any()


def test_reference_kernels_give_the_same_functional_results():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 2, 4, 5, 5)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    outs = []
    for choice in ("fast", "reference"):
        xt, wt = Tensor(dev(x), True), Tensor(dev(np.full(4, 0.5, np.float32)), True)
        with kernels.use(choice):
            y = batch_norm(xt, wt, None, None, None, training=True)
            y.backward(dev(g))
        outs.append((host(y), host(xt.grad), host(wt.grad)))
    for fast, ref in zip(*outs):
        np.testing.assert_allclose(fast, ref, rtol=1e-5, atol=1e-5)


# ---- gradients -----------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(shape=shapes, training=st.booleans(), affine=st.booleans(), seed=st.integers(0, 2**16))
def test_gradcheck(shape, training, affine, seed):
    rng = np.random.default_rng(seed)
    c = shape[channel_axis(len(shape))]
    x = dev(rng.standard_normal(shape) * 2 + 0.5)
    rm, rv = dev(rng.standard_normal(c)), dev(rng.random(c) + 0.5)
    if affine:
        fn = lambda x, w, b: batch_norm(x, w, b, rm, rv, training)  # noqa: E731
        assert gradcheck(fn, x, dev(rng.standard_normal(c)), dev(rng.standard_normal(c)))
    else:
        assert gradcheck(lambda x: batch_norm(x, None, None, rm, rv, training), x)


@pytest.mark.parametrize("training", [True, False])
def test_gradient_of_a_subset_of_inputs(training):
    """Only β (x not kept), only γ, only x: each equals the same entry of the full gradient."""
    rng = np.random.default_rng(8)
    x, w, b = rng.standard_normal((5, 3, 4)), rng.standard_normal(3), rng.standard_normal(3)
    g = dev(rng.standard_normal(x.shape))
    stats = (dev(np.zeros(3)), dev(np.ones(3)))

    def grads(wanted):
        ts = [Tensor(dev(a), requires_grad=(i in wanted)) for i, a in enumerate((x, w, b))]
        batch_norm(*ts, *stats, training=training).backward(g)
        return [host(t.grad) if t.grad is not None else None for t in ts]

    full = grads({0, 1, 2})
    for i in range(3):
        np.testing.assert_allclose(grads({i})[i], full[i], rtol=1e-12, atol=1e-12)


# ---- errors name the argument --------------------------------------------------------------------


def call(x=None, weight=None, bias=None, running_mean="default", running_var="default", training=True, **kw):
    x = Tensor(dev(np.ones((4, 3, 2, 2)))) if x is None else x
    running_mean = dev(np.zeros(3)) if isinstance(running_mean, str) else running_mean
    running_var = dev(np.ones(3)) if isinstance(running_var, str) else running_var
    return batch_norm(x, weight, bias, running_mean, running_var, training, **kw)


@pytest.mark.parametrize(
    "kwargs, error, word",
    [
        (dict(x=[1.0, 2.0]), TypeError, "x must"),
        (dict(x=Tensor(dev(np.ones(4)))), ValueError, "x must"),
        (dict(x=Tensor(dev(np.ones((1, 1, 1, 1, 1, 1))))), ValueError, "x must"),
        (dict(x=Tensor(dev(np.ones((4, 3), dtype=np.int64)))), TypeError, "x must"),
        (dict(weight=dev(np.ones(4))), ValueError, "weight"),
        (dict(bias=dev(np.ones((3, 1)))), ValueError, "bias"),
        (dict(weight=dev(np.ones(3, np.float32))), TypeError, "weight"),
        (dict(running_mean=dev(np.zeros(2))), ValueError, "running_mean"),
        (dict(running_var=None), ValueError, "running_var"),
        (dict(running_mean=None, running_var=None, training=False), ValueError, "running_mean"),
        (dict(training="yes"), TypeError, "training"),
        (dict(momentum=1.5), ValueError, "momentum"),
        (dict(momentum=None), TypeError, "momentum"),
        (dict(eps=0.0), ValueError, "eps"),
        (dict(x=Tensor(dev(np.ones((1, 3, 1, 1))))), ValueError, "more than one value"),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, error, word):
    with pytest.raises(error, match=word):
        call(**kwargs)
