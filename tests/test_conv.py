"""conv2d: im2col/col2im kernels (numba == reference, adjointness), the fused chunked kernels,
forward against a direct sliding-window convolution, gradients, 5-D folding, dtypes and errors."""


import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from tinyspike import backend, kernels
from tinyspike.autograd import Tensor
from tinyspike.functional.conv import conv2d
from tinyspike.gradcheck import gradcheck

from helpers import dev, host

on_numpy = pytest.mark.skipif(backend.name() != "numpy", reason="Numba kernels run on the NumPy backend")
ALL = (True, True, True)


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of one or two samples, so the fused kernels run several chunks on both workers."""
    from tinyspike.kernels.numba_cpu import conv as fast

    monkeypatch.setattr(fast, "CHUNK_BYTES", 256)


def direct_conv(x, w, b, stride, padding):
    """The definition, with NumPy's sliding windows: y[n,o,i,j] = b[o] + Σ w[o,c,a,b']·xpad[n,c,i·sh+a,j·sw+b']."""
    (sh, sw), (ph, pw) = stride, padding
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = sliding_window_view(xpad, w.shape[2:], axis=(2, 3))[:, :, ::sh, ::sw]
    y = np.einsum("ncijab,ocab->noij", windows, w)
    return y if b is None else y + b.reshape(1, -1, 1, 1)


# A geometry: (N, C, O, H, W, kh, kw, stride, padding) with a non-empty output.
geometries = st.tuples(
    st.integers(1, 3),  # N
    st.integers(1, 3),  # C
    st.integers(1, 3),  # O
    st.integers(1, 9),  # H
    st.integers(1, 9),  # W
    st.sampled_from([1, 3, 5]),
    st.sampled_from([1, 3, 5]),
    st.tuples(st.sampled_from([1, 2]), st.sampled_from([1, 2])),
    st.tuples(st.sampled_from([0, 1, 2]), st.sampled_from([0, 1, 2])),
).filter(lambda g: g[3] + 2 * g[8][0] >= g[5] and g[4] + 2 * g[8][1] >= g[6])


def integer_valued(rng, shape):
    """Small integers as float64: every sum of products is exact, so results compare with ==."""
    return rng.integers(-4, 5, shape).astype(np.float64)


# ---- im2col / col2im ----------------------------------------------------------------------------


@on_numpy
@settings(max_examples=40, deadline=None)
@given(geometries, st.integers(0, 2**16))
def test_numba_im2col_col2im_equal_reference_and_are_adjoint(geometry, seed):
    n, c, _, h, w, kh, kw, stride, padding = geometry
    rng = np.random.default_rng(seed)
    reference = kernels.CONV.reference.im2col, kernels.CONV.reference.col2im
    fast = kernels.CONV.numba_cpu.im2col, kernels.CONV.numba_cpu.col2im
    x = integer_valued(rng, (n, c, h, w))

    cols = reference[0](x, kh, kw, stride, padding)
    np.testing.assert_array_equal(fast[0](x, kh, kw, stride, padding), cols)

    d = integer_valued(rng, cols.shape)
    back = reference[1](d, x.shape, kh, kw, stride, padding)
    np.testing.assert_array_equal(fast[1](d, x.shape, kh, kw, stride, padding), back)
    # col2im is the transpose of im2col: <im2col(x), d> == <x, col2im(d)> (exact in integers)
    assert (cols * d).sum() == (x * back).sum()


def test_im2col_layout_on_a_tiny_example():
    """cols[(c, a, b), (n, i, j)] = xpad[n, c, i + a, j + b]: rows are taps, columns positions."""
    x = dev(np.arange(1.0, 5.0).reshape(1, 1, 2, 2))  # [[1, 2], [3, 4]]
    cols = host(kernels.CONV.reference.im2col(x, 2, 2, (1, 1), (0, 0)))
    np.testing.assert_array_equal(cols, [[1], [2], [3], [4]])
    cols = host(kernels.CONV.reference.im2col(x, 1, 1, (1, 1), (1, 1)))
    np.testing.assert_array_equal(cols, [[0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0, 0, 0, 0, 0]])


@on_numpy
@pytest.mark.parametrize("implementation", ["reference", "numba_cpu"])
def test_im2col_expands_bool_spikes_into_the_out_dtype(implementation):
    rng = np.random.default_rng(1)
    spikes = rng.random((2, 3, 5, 4)) < 0.3
    im2col = getattr(kernels.CONV, implementation).im2col
    expected = kernels.CONV.reference.im2col(spikes.astype(np.float32), 3, 3, (2, 1), (1, 1))
    out = np.empty(expected.shape, np.float32)
    np.testing.assert_array_equal(im2col(spikes, 3, 3, (2, 1), (1, 1), out=out), expected)


@on_numpy
def test_numba_kernels_reject_a_wrong_out():
    im2col = kernels.CONV.numba_cpu.im2col
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match="out must be a C-contiguous array of shape"):
        im2col(x, 3, 3, (1, 1), (0, 0), out=np.zeros((9, 5)))
    with pytest.raises(ValueError, match="contiguous"):
        im2col(x, 3, 3, (1, 1), (0, 0), out=np.zeros((4, 9)).T)


# ---- the fused kernels --------------------------------------------------------------------------


@on_numpy
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(geometries, st.booleans(), st.integers(0, 2**16))
def test_fused_numba_conv_equals_reference(small_chunks, geometry, with_bias, seed):
    n, c, o, h, w, kh, kw, stride, padding = geometry
    rng = np.random.default_rng(seed)
    x, weight = integer_valued(rng, (n, c, h, w)), integer_valued(rng, (o, c, kh, kw))
    bias = integer_valued(rng, (o,)) if with_bias else None
    ref_fwd, ref_bwd = (getattr(kernels.CONV.reference, k) for k in ("conv2d_forward", "conv2d_backward"))
    fast_fwd, fast_bwd = (getattr(kernels.CONV.numba_cpu, k) for k in ("conv2d_forward", "conv2d_backward"))

    y, _ = ref_fwd(x, weight, bias, stride, padding)
    np.testing.assert_array_equal(fast_fwd(x, weight, bias, stride, padding)[0], y)
    np.testing.assert_array_equal(y, direct_conv(x, weight, bias, stride, padding))

    g = integer_valued(rng, y.shape)
    for needs in [ALL, (True, False, False), (False, True, False), (False, False, True)]:
        expected = ref_bwd(g, x, weight, stride, padding, needs, x.shape, weight.shape)
        got = fast_bwd(g, x, weight, stride, padding, needs, x.shape, weight.shape)
        for e, f in zip(expected, got):
            assert (e is None) == (f is None)
            if e is not None:
                assert f.dtype == e.dtype
                np.testing.assert_array_equal(f, e)


@on_numpy
def test_fused_numba_conv_float32_close_to_reference(small_chunks):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 4, 9, 7), dtype=np.float32)
    weight = rng.standard_normal((6, 4, 3, 3), dtype=np.float32)
    g = rng.standard_normal((5, 6, 9, 7), dtype=np.float32)
    y_ref, _ = kernels.CONV.reference.conv2d_forward(x, weight, None, (1, 1), (1, 1))
    y, _ = kernels.CONV.numba_cpu.conv2d_forward(x, weight, None, (1, 1), (1, 1))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    args = (g, x, weight, (1, 1), (1, 1), ALL, x.shape, weight.shape)
    for e, f in zip(kernels.CONV.reference.conv2d_backward(*args),
                    kernels.CONV.numba_cpu.conv2d_backward(*args)):
        assert f.dtype == np.float32
        np.testing.assert_allclose(f, e, rtol=1e-4, atol=1e-4)


@on_numpy
@pytest.mark.parametrize("implementation", ["reference", "numba_cpu"])
def test_forward_packs_binary_inputs_as_bool(small_chunks, implementation):
    rng = np.random.default_rng(8)
    spikes = (rng.random((5, 2, 6, 5)) < 0.4).astype(np.float32)
    weight = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    forward = getattr(kernels.CONV, implementation).conv2d_forward
    pack = getattr(kernels.CONV, implementation).pack_spikes
    packed = np.zeros(spikes.shape, dtype=np.bool_)
    y, not_binary = forward(spikes, weight, None, (1, 1), (1, 1), packed)
    assert not_binary == 0
    np.testing.assert_array_equal(y, forward(spikes, weight, None, (1, 1), (1, 1))[0])
    np.testing.assert_array_equal(packed, spikes != 0)
    alone = np.zeros(spikes.shape, dtype=np.bool_)
    assert pack(spikes, alone) == 0
    np.testing.assert_array_equal(alone, packed)
    spikes[4, 1, 5, 4] = 2.0  # in the last chunk
    spikes[0, 0, 0, 0] = -1.0  # in the first
    assert forward(spikes, weight, None, (1, 1), (1, 1), packed)[1] == 2
    assert pack(spikes, alone) == 2


# ---- the Function --------------------------------------------------------------------------------


@pytest.mark.parametrize("choice", ["fast", "reference"])
@settings(max_examples=30, deadline=None)
@given(geometry=geometries, with_bias=st.booleans(), seed=st.integers(0, 2**16))
def test_conv2d_gradcheck(choice, geometry, with_bias, seed):
    n, c, o, h, w, kh, kw, stride, padding = geometry
    assume(n * c * h * w <= 300)  # finite differences cost two forward passes per element
    rng = np.random.default_rng(seed)
    x = dev(rng.standard_normal((n, c, h, w)))
    weight = dev(rng.standard_normal((o, c, kh, kw)))
    inputs = (x, weight) + ((dev(rng.standard_normal(o)),) if with_bias else ())
    with kernels.use(choice):
        assert gradcheck(lambda x, w, *b: conv2d(x, w, b[0] if b else None, stride, padding), *inputs)


@pytest.mark.parametrize("choice", ["fast", "reference"])
@settings(max_examples=15, deadline=None)
@given(geometry=geometries, with_bias=st.booleans(), seed=st.integers(0, 2**16))
def test_conv2d_forward_equals_direct_convolution(choice, geometry, with_bias, seed):
    n, c, o, h, w, kh, kw, stride, padding = geometry
    rng = np.random.default_rng(seed)
    x, weight = rng.standard_normal((n, c, h, w)), rng.standard_normal((o, c, kh, kw))
    bias = rng.standard_normal(o) if with_bias else None
    with kernels.use(choice):
        y = conv2d(dev(x), dev(weight), None if bias is None else dev(bias), stride, padding)
    np.testing.assert_allclose(host(y), direct_conv(x, weight, bias, stride, padding), rtol=1e-12, atol=1e-12)


def test_gradients_of_only_some_inputs():
    """x constant (the stem conv on images), or only x wanting a gradient: the others stay None."""
    rng = np.random.default_rng(3)
    x, weight = rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 3))
    g = rng.standard_normal((2, 4, 6, 5))
    w_t = Tensor(dev(weight), requires_grad=True)
    conv2d(dev(x), w_t, padding=1).backward(dev(g))
    expected_x, expected_w, _ = kernels.CONV.reference.conv2d_backward(
        dev(g), dev(x), dev(weight), (1, 1), (1, 1), ALL, x.shape, weight.shape
    )
    np.testing.assert_allclose(host(w_t.grad), host(expected_w), rtol=1e-12)

    x_t = Tensor(dev(x), requires_grad=True)
    w_const = Tensor(dev(weight))
    y = conv2d(x_t, w_const, padding=1)
    assert y.grad_fn.ctx.saved_tensors[0] is None  # x is needed only for dW: not saved
    y.backward(dev(g))
    assert w_const.grad is None
    np.testing.assert_allclose(host(x_t.grad), host(expected_x), rtol=1e-12, atol=1e-12)


def test_time_first_input_equals_folding_time_into_the_batch():
    rng = np.random.default_rng(4)
    t, b, c, h, w = 3, 2, 2, 5, 5
    x5 = rng.standard_normal((t, b, c, h, w))
    weight, bias = rng.standard_normal((3, c, 3, 3)), rng.standard_normal(3)
    g5 = rng.standard_normal((t, b, 3, 3, 3))

    x5_t, w5_t, b5_t = (Tensor(dev(a), requires_grad=True) for a in (x5, weight, bias))
    y5 = conv2d(x5_t, w5_t, b5_t, stride=2, padding=1)
    y5.backward(dev(g5))
    x4_t, w4_t, b4_t = (Tensor(dev(a), requires_grad=True) for a in (x5.reshape(t * b, c, h, w), weight, bias))
    y4 = conv2d(x4_t, w4_t, b4_t, stride=2, padding=1)
    y4.backward(dev(g5.reshape(t * b, 3, 3, 3)))

    assert y5.shape == (t, b, 3, 3, 3)
    np.testing.assert_array_equal(host(y5).reshape(y4.shape), host(y4))
    np.testing.assert_array_equal(host(x5_t.grad).reshape(x4_t.shape), host(x4_t.grad))
    np.testing.assert_array_equal(host(w5_t.grad), host(w4_t.grad))
    np.testing.assert_array_equal(host(b5_t.grad), host(b4_t.grad))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype):
    rng = np.random.default_rng(5)
    x = Tensor(dev(rng.standard_normal((2, 3, 6, 6)).astype(dtype)), requires_grad=True)
    weight = Tensor(dev(rng.standard_normal((4, 3, 3, 3)).astype(dtype)), requires_grad=True)
    bias = Tensor(dev(rng.standard_normal(4).astype(dtype)), requires_grad=True)
    y = conv2d(x, weight, bias, padding=1)
    assert y.dtype == dtype
    y.sum().backward()
    assert x.grad.dtype == weight.grad.dtype == bias.grad.dtype == dtype


def test_spike_input_saves_bool_and_gives_the_same_gradients():
    rng = np.random.default_rng(6)
    spikes = (rng.random((4, 3, 6, 6)) < 0.3).astype(np.float32)
    weight = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    g = dev(rng.standard_normal((4, 5, 6, 6)).astype(np.float32))
    grads = []
    for binary in (False, True):
        x_t, w_t = Tensor(dev(spikes), requires_grad=True), Tensor(dev(weight), requires_grad=True)
        y = conv2d(x_t, w_t, padding=1, spike_input=binary)
        saved_x = y.grad_fn.ctx.saved_tensors[0]
        assert saved_x.dtype == (np.bool_ if binary else np.float32)
        y.backward(g)
        grads.append((host(x_t.grad), host(w_t.grad)))
    np.testing.assert_array_equal(grads[0][0], grads[1][0])
    np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-6)

    not_spikes = Tensor(dev(spikes * 0.5), requires_grad=True)
    with pytest.raises(ValueError, match="spike_input=True but x holds values other than 0 and 1"):
        conv2d(not_spikes, Tensor(dev(weight), requires_grad=True), padding=1, spike_input=True)


# ---- argument checks ----------------------------------------------------------------------------


def _x(shape=(2, 3, 5, 5), dtype=np.float32):
    return Tensor(dev(np.zeros(shape, dtype)))


def _w(shape=(4, 3, 3, 3), dtype=np.float32):
    return Tensor(dev(np.zeros(shape, dtype)))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(x=_x((3, 5, 5))), ValueError, "x must be 4-D or 5-D, got shape"),
        (dict(x=[[1.0]]), TypeError, "x must be a Tensor or array, got list"),
        (dict(x=_x(dtype=np.int32)), TypeError, "x must be float32 or float64, got int32"),
        (dict(weight=_w((4, 3, 3))), ValueError, "weight must be 4-D, got shape"),
        (dict(weight=_w((4, 2, 3, 3))), ValueError, "x has 3 channels .* but weight expects 2"),
        (dict(weight=_w(dtype=np.float64)), TypeError, "weight has dtype float64 but x has float32"),
        (dict(bias=Tensor(dev(np.zeros(5, np.float32)))), ValueError, r"bias must have shape \(4,\), got \(5,\)"),
        (dict(bias=Tensor(dev(np.zeros(4, np.float64)))), TypeError, "bias has dtype float64 but x has float32"),
        (dict(stride=0), ValueError, "stride must be an int >= 1, got 0"),
        (dict(stride=(1, 0)), ValueError, r"stride must be an int >= 1, got 0"),
        (dict(stride=1.5), TypeError, "stride must be an int or a pair of ints, got 1.5"),
        (dict(padding=-1), ValueError, "padding must be an int >= 0, got -1"),
        (dict(weight=_w((4, 3, 7, 3))), ValueError, "the output would be empty: input height 5 .* kernel height 7"),
        (dict(weight=_w((4, 3, 1, 9)), padding=1), ValueError, "the output would be empty: input width 5"),
        (dict(spike_input="yes"), TypeError, "spike_input must be True or False"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, error, message):
    args = dict(x=_x(), weight=_w(), bias=None, stride=1, padding=0)
    args.update(kwargs)
    with pytest.raises(error, match="conv2d: " + message):
        conv2d(**args)


def test_five_d_channel_mismatch_names_the_layout():
    with pytest.raises(ValueError, match=r"\[T, B, C, H, W\]"):
        conv2d(_x((2, 2, 5, 4, 4)), _w())


# ---- GPU ----------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_reference_kernels_run_on_cupy():
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() == 0:
            pytest.skip("CuPy sees no GPU")
    except Exception as err:  # no driver
        pytest.skip(f"CuPy sees no GPU ({type(err).__name__})")
    rng = np.random.default_rng(7)
    x, weight, bias = rng.standard_normal((3, 2, 7, 6)), rng.standard_normal((4, 2, 3, 3)), rng.standard_normal(4)
    g = rng.standard_normal((3, 4, 4, 3))
    forward = kernels.CONV.reference.conv2d_forward
    backward = kernels.CONV.reference.conv2d_backward
    y, _ = forward(cupy.asarray(x), cupy.asarray(weight), cupy.asarray(bias), (2, 2), (1, 0))
    np.testing.assert_allclose(y.get(), direct_conv(x, weight, bias, (2, 2), (1, 0)), rtol=1e-10, atol=1e-10)
    on_gpu = backward(
        cupy.asarray(g), cupy.asarray(x), cupy.asarray(weight), (2, 2), (1, 0), ALL, x.shape, weight.shape
    )
    on_cpu = backward(g, x, weight, (2, 2), (1, 0), ALL, x.shape, weight.shape)
    for a, b in zip(on_gpu, on_cpu):
        np.testing.assert_allclose(a.get(), b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("implementation", ["reference", "fast"])
def test_an_empty_batch_gives_empty_results_and_zero_weight_gradient(implementation):
    x = Tensor(dev(np.zeros((0, 2, 5, 5))), requires_grad=True)
    w = Tensor(dev(np.ones((3, 2, 3, 3))), requires_grad=True)
    with kernels.use(implementation):
        y = conv2d(x, w, padding=1, spike_input=True)
        y.sum().backward()
    assert y.shape == (0, 3, 5, 5) and x.grad.shape == (0, 2, 5, 5)
    np.testing.assert_array_equal(host(w.grad), np.zeros((3, 2, 3, 3)))  # a sum over no samples
