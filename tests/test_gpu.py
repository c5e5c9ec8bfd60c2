"""The CuPy backend and its CUDA kernels, against the reference on NumPy.

- each CUDA kernel equals its reference: LIF bit for bit (all surrogates but the tanh-based
  sigmoid/smooth, which agree to an ulp-level tolerance), im2col/col2im exactly, conv to tolerance
  (float32 at 1e-5 relative also proves cuBLAS did not use TF32, whose mantissa has 10 bits);
- gradcheck of the Functions on CuPy in float64;
- MS-ResNet-20 forward + backward on both backends from the same weights agree in float64;
- a few SGD steps agree in float32; a checkpoint written on the GPU loads on the CPU.

Every test is marked ``gpu`` and skipped, with the reason, unless CuPy imports and sees a GPU.
Run them with ``python -m pytest -m gpu tests/test_gpu.py``.
"""

import numpy as np
import pytest

from tinyspike import backend, models, optim
from tinyspike.autograd import Tensor
from tinyspike.functional import surrogate as surrogates
from tinyspike.functional.conv import conv2d
from tinyspike.functional.lif import lif
from tinyspike.functional.linear import linear
from tinyspike.functional.loss import cross_entropy
from tinyspike.functional.norm import batch_norm
from tinyspike.extras.pool import max_pool2d
from tinyspike.functional.pool import avg_pool2d
from tinyspike.gradcheck import gradcheck
from tinyspike.kernels.reference import conv as ref_conv
from tinyspike.kernels.reference import lif as ref_lif
from tinyspike.nn.checkpoint import load_checkpoint, save_checkpoint

from helpers import host


def _no_gpu_reason():
    try:
        import cupy
    except ImportError as err:
        return f"CuPy is not installed ({err})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CuPy raises its own error types when the driver is missing
        return f"CuPy sees no usable GPU ({type(err).__name__}: {err})"
    return None if count > 0 else "CuPy sees no GPU"


NO_GPU = _no_gpu_reason()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(NO_GPU is not None, reason=str(NO_GPU))]


@pytest.fixture
def gpu():
    """Switch to the CuPy backend for the test; back to NumPy (and float32) afterwards."""
    backend.use("cupy")
    try:
        yield
    finally:
        backend.use("numpy")
        backend.set_default_dtype(np.float32)


def cp():
    import cupy

    return cupy


def rel_err(got, want):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    scale = max(np.abs(want).max(initial=0.0), 1e-300)
    return np.abs(got - want).max(initial=0.0) / scale


# ---- LIF kernels ---------------------------------------------------------------------------------


def lif_input(dtype, seed=0, shape=(6, 3, 5, 7)):
    """Random drive plus values exactly on the threshold and on the surrogate's interval ends."""
    x = np.random.default_rng(seed).normal(0.5, 0.6, shape)
    flat = x.reshape(shape[0], -1)
    flat[0, :4] = [0.5, 0.0, 1.0, -0.0]  # u = V_th does not fire; u = 0, 1 are outside (0, 1)
    flat[:, 4] = 0.5  # a neuron sitting on the threshold at t = 0
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(surrogates.SURROGATES))
@pytest.mark.parametrize("detach_reset", [True, False])
def test_cuda_lif_equals_reference(gpu, dtype, name, detach_reset):
    from tinyspike.kernels.cuda import lif as cuda_lif

    sg = surrogates.get(name)
    x = lif_input(dtype)
    g = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    spikes, saved = ref_lif.lif_forward(x, 0.5, 0.25, sg, detach_reset)
    grad = ref_lif.lif_backward(g, saved, 0.5, 0.25, sg, detach_reset)
    d_spikes, d_saved = cuda_lif.lif_forward(cp().asarray(x), 0.5, 0.25, sg, detach_reset)
    d_grad = cuda_lif.lif_backward(cp().asarray(g), d_saved, 0.5, 0.25, sg, detach_reset)
    assert d_saved.dtype == saved.dtype and d_spikes.dtype == spikes.dtype == d_grad.dtype
    if name in ("sigmoid", "smooth"):  # tanh: CUDA's and NumPy's differ by an ulp or two
        tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
        for got, want in ((d_spikes, spikes), (d_saved, saved), (d_grad, grad)):
            np.testing.assert_allclose(host(got), want, **tol)
    else:  # same operations in the same order, no FMA: bit for bit
        np.testing.assert_array_equal(host(d_spikes), spikes)
        np.testing.assert_array_equal(host(d_saved), saved)
        np.testing.assert_array_equal(host(d_grad), grad)


def test_lif_uses_cuda_kernels_and_codes_on_cupy(gpu):
    from tinyspike import kernels
    from tinyspike.kernels.cuda import lif as cuda_lif

    assert kernels.LIF.pick() is cuda_lif
    _, saved = cuda_lif.lif_forward(cp().zeros((3, 4), np.float32), 0.5, 0.25, surrogates.get("rectangular"))
    assert saved.dtype == np.uint8  # 1 byte per neuron-step


VECTORS = [  # REFERENCE.md §1: (x, s, dL/dx with g_s = 1)
    ([0.3, 0.4, 0.6, 0.1, 0.9, 0.2], [0, 0, 1, 0, 1, 0], [1.3125, 1.25, 1.0, 1.25, 1.0, 1.0]),
    ([1.2, -0.3, 0.5, 0.5001, 0.0, 1.0], [1, 0, 0, 1, 0, 1], [0.0, 0.3125, 1.25, 1.0, 0.0, 0.0]),
]


@pytest.mark.parametrize("x,s,dx", VECTORS)
def test_reference_section_1_vectors_on_cupy(gpu, x, s, dx):
    xt = Tensor(backend.to_device(np.array(x).reshape(6, 1)), requires_grad=True)
    spikes = lif(xt)
    spikes.sum().backward()
    np.testing.assert_array_equal(host(spikes).ravel(), s)
    np.testing.assert_allclose(host(xt.grad).ravel(), dx, rtol=1e-12)


def test_lif_falls_back_for_float16_and_user_surrogates(gpu):
    from tinyspike.kernels.cuda import lif as cuda_lif

    class Mine(surrogates.Rectangular):  # a user surrogate: grad is Python code
        def grad(self, d):
            return super().grad(d) * 2

    x = lif_input(np.float64)
    g = np.ones_like(x)
    for sg, dtype in ((Mine(), np.float64), (surrogates.get("rectangular"), np.float16)):
        xs = x.astype(dtype)
        spikes, saved = ref_lif.lif_forward(xs, 0.5, 0.25, sg, False)
        d_spikes, d_saved = cuda_lif.lif_forward(cp().asarray(xs), 0.5, 0.25, sg, False)
        np.testing.assert_array_equal(host(d_spikes), spikes)
        want = ref_lif.lif_backward(g.astype(dtype), saved, 0.5, 0.25, sg, False)
        np.testing.assert_array_equal(host(cuda_lif.lif_backward(cp().asarray(g.astype(dtype)), d_saved, 0.5, 0.25, sg, False)), want)


# ---- im2col / col2im / conv ----------------------------------------------------------------------

GEOMETRIES = [  # (N, C, H, W, kh, kw, stride, padding)
    (2, 3, 8, 8, 3, 3, (1, 1), (1, 1)),
    (3, 4, 9, 7, 3, 3, (2, 2), (1, 1)),
    (2, 5, 8, 8, 1, 1, (2, 2), (0, 0)),
    (1, 2, 7, 10, 2, 3, (1, 2), (0, 1)),
    (2, 3, 12, 12, 7, 7, (2, 2), (3, 3)),
    (1, 1, 5, 5, 5, 5, (3, 1), (2, 0)),
]


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_im2col_col2im_equal_reference(gpu, geometry, dtype):
    from tinyspike.kernels.cuda import conv as cuda_conv

    n, c, h, w, kh, kw, stride, padding = geometry
    rng = np.random.default_rng(0)
    x = rng.integers(-8, 9, (n, c, h, w)).astype(dtype)  # integer values: every sum is exact
    cols = ref_conv.im2col(x, kh, kw, stride, padding)
    d_cols = cuda_conv.im2col(cp().asarray(x), kh, kw, stride, padding)
    np.testing.assert_array_equal(host(d_cols), cols)
    dc = rng.integers(-8, 9, cols.shape).astype(dtype)
    np.testing.assert_array_equal(host(cuda_conv.col2im(cp().asarray(dc), x.shape, kh, kw, stride, padding)),
                                  ref_conv.col2im(dc, x.shape, kh, kw, stride, padding))
    # random floats: the gather adds the taps in the reference's order
    df = rng.standard_normal(cols.shape).astype(dtype)
    np.testing.assert_allclose(host(cuda_conv.col2im(cp().asarray(df), x.shape, kh, kw, stride, padding)),
                               ref_conv.col2im(df, x.shape, kh, kw, stride, padding), rtol=1e-6, atol=1e-6)
    # spikes: bool and uint8 input expand into float columns exactly
    spikes = rng.random((n, c, h, w)) < 0.3
    for packed in (spikes, spikes.astype(np.uint8)):
        out = cp().empty(cols.shape, dtype=dtype)
        cuda_conv.im2col(cp().asarray(packed), kh, kw, stride, padding, out=out)
        np.testing.assert_array_equal(host(out), ref_conv.im2col(spikes.astype(dtype), kh, kw, stride, padding))


@pytest.mark.parametrize("geometry", GEOMETRIES[:4])
@pytest.mark.parametrize("dtype,rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_cuda_conv_equals_reference(gpu, geometry, dtype, rtol):
    """1e-5 in float32 would fail under TF32 (relative error about 1e-3)."""
    from tinyspike.kernels.cuda import conv as cuda_conv

    n, c, h, w, kh, kw, stride, padding = geometry
    rng = np.random.default_rng(1)
    o = 6
    x, wt, b = (rng.standard_normal(s).astype(dtype) for s in ((n, c, h, w), (o, c, kh, kw), (o,)))
    y, _ = ref_conv.conv2d_forward(x, wt, b, stride, padding)
    d_y, _ = cuda_conv.conv2d_forward(cp().asarray(x), cp().asarray(wt), cp().asarray(b), stride, padding)
    assert rel_err(host(d_y), y) < rtol
    gy = rng.standard_normal(y.shape).astype(dtype)
    want = ref_conv.conv2d_backward(gy, x, wt, stride, padding, (True, True, True), x.shape, wt.shape)
    got = cuda_conv.conv2d_backward(cp().asarray(gy), cp().asarray(x), cp().asarray(wt), stride, padding,
                                    (True, True, True), x.shape, wt.shape)
    for g, r in zip(got, want):
        assert g.dtype == dtype and rel_err(host(g), r) < rtol
    spikes = (rng.random((n, c, h, w)) < 0.3).astype(dtype)
    packed = cp().empty(spikes.shape, dtype=bool)
    d_y, not_binary = cuda_conv.conv2d_forward(cp().asarray(spikes), cp().asarray(wt), None, stride, padding, packed)
    assert not_binary == 0 and (host(packed) == (spikes != 0)).all()
    assert rel_err(host(d_y), ref_conv.conv2d_forward(spikes, wt, None, stride, padding)[0]) < rtol


# ---- gradcheck on CuPy, float64 ------------------------------------------------------------------


def dev64(shape, seed, loc=0.0, scale=1.0):
    return backend.to_device(np.random.default_rng(seed).normal(loc, scale, shape))


def test_gradcheck_conv2d(gpu):
    x, w, b = dev64((2, 3, 6, 5), 0), dev64((4, 3, 3, 3), 1), dev64((4,), 2)
    assert gradcheck(lambda x, w, b: conv2d(x, w, b, stride=(2, 1), padding=1), x, w, b)
    assert gradcheck(lambda x, w: conv2d(x, w, None, stride=1, padding=0), dev64((2, 2, 3, 4, 4), 3), dev64((3, 3, 2, 2), 4))


@pytest.mark.parametrize("decay", [0.25, 0.9])
def test_gradcheck_lif_smooth(gpu, decay):
    """detach_reset=False: only then is the BPTT the exact derivative of the smooth network."""
    x = dev64((6, 2, 3), 3, loc=0.5, scale=0.6)
    assert gradcheck(lambda x: lif(x, decay=decay, detach_reset=False, surrogate="smooth"), x, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("training", [True, False])
def test_gradcheck_batch_norm(gpu, training):
    x = dev64((2, 3, 4, 3, 3), 5, loc=1.0)  # time-first: tdBN
    rm, rv = backend.to_device(np.zeros(4)), backend.to_device(np.ones(4))
    assert gradcheck(lambda x, g, b: batch_norm(x, g, b, rm.copy(), rv.copy(), training), x, dev64((4,), 6), dev64((4,), 7))


def test_gradcheck_pools(gpu):
    x = backend.to_device(np.random.default_rng(8).permutation(2 * 3 * 6 * 6).reshape(2, 3, 6, 6) / 7.0)
    assert gradcheck(lambda x: avg_pool2d(x, 2), x)
    assert gradcheck(lambda x: max_pool2d(x, 3, 2, 1), x)


def test_gradcheck_linear_and_cross_entropy(gpu):
    assert gradcheck(linear, dev64((5, 4), 9), dev64((3, 4), 10), dev64((3,), 11))
    target = backend.to_device(np.array([0, 2, 1, 2, 0]))
    assert gradcheck(lambda z: cross_entropy(z, target, label_smoothing=0.1), dev64((5, 3), 12))


# ---- whole networks: NumPy vs CuPy ---------------------------------------------------------------


def build_on(name, state, dtype, **options):
    """``models.build`` on the active backend, then the given (NumPy) state copied in."""
    with backend.default_dtype_as(dtype):
        model = models.build(name, seed=0, **options)
    if state is not None:
        model.load_state_dict(state)
    return model


def forward_backward(model, x, y):
    model.zero_grad()
    logits = model(Tensor(backend.to_device(x)))
    loss = cross_entropy(logits, backend.to_device(y))
    loss.backward()
    grads = {name: host(p.grad) for name, p in model.named_parameters()}
    return host(logits), float(host(loss)), grads


def test_ms_resnet20_forward_backward_agree_across_backends_float64(gpu):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 3, 32, 32)), rng.integers(0, 10, 2)
    backend.use("numpy")
    cpu_model = build_on("ms_resnet20", None, np.float64, time_steps=2)
    state = cpu_model.to_numpy_state()
    cpu = forward_backward(cpu_model, x, y)
    backend.use("cupy")
    gpu_model = build_on("ms_resnet20", state, np.float64, time_steps=2)
    got = forward_backward(gpu_model, x, y)
    assert rel_err(got[0], cpu[0]) <= 1e-6
    assert abs(got[1] - cpu[1]) <= 1e-6 * abs(cpu[1])
    # a gradient that is zero in exact arithmetic (stem.bn.bias here: about 1e-18 of rounding
    # noise) has no relative error to speak of; it is measured against the largest gradient instead
    floor = 1e-6 * max(np.abs(g).max() for g in cpu[2].values())
    for name, grad in cpu[2].items():
        assert got[2][name].dtype == np.float64
        error = np.abs(got[2][name] - grad).max()
        assert error <= 1e-6 * max(np.abs(grad).max(), floor), (name, error, np.abs(grad).max())


def sgd_losses(name, state, x, y, steps, **options):
    model = build_on(name, state, np.float32, **options)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = cross_entropy(model(Tensor(backend.to_device(x))), backend.to_device(y))
        loss.backward()
        opt.step()
        losses.append(float(host(loss)))
    return losses, model.to_numpy_state()


def test_sgd_steps_agree_across_backends_float32(gpu):
    """Tolerance 1e-3: in float32 the two backends sum in different orders, and a membrane a few
    ulps from V_th may fire on one and not the other; a wrong kernel gives O(1) differences."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((4, 3, 16, 16)).astype(np.float32), rng.integers(0, 10, 4)
    options = dict(widths=(8, 16, 32), time_steps=2)
    backend.use("numpy")
    state = build_on("ms_resnet8", None, np.float32, **options).to_numpy_state()
    cpu_losses, cpu_state = sgd_losses("ms_resnet8", state, x, y, 3, **options)
    backend.use("cupy")
    gpu_losses, gpu_state = sgd_losses("ms_resnet8", state, x, y, 3, **options)
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-3)
    for name, value in cpu_state.items():
        assert gpu_state[name].dtype == value.dtype
        assert rel_err(gpu_state[name], value) <= 1e-3, name


def test_checkpoint_saved_on_gpu_loads_on_cpu(gpu, tmp_path):
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((2, 3, 16, 16)), rng.integers(0, 10, 2)
    options = dict(widths=(4, 8, 8), time_steps=2)
    gpu_model = build_on("ms_resnet8", None, np.float64, **options)
    forward_backward(gpu_model, x, y)  # a training-mode forward moves the running statistics
    path = tmp_path / "gpu.npz"
    save_checkpoint(path, gpu_model, epoch=3)
    gpu_model.eval()
    want = host(gpu_model(Tensor(backend.to_device(x))))
    backend.use("numpy")
    cpu_model = build_on("ms_resnet8", None, np.float64, **options)
    extras = load_checkpoint(path, cpu_model)
    assert extras["epoch"] == 3
    for name, value in cpu_model.state_dict().items():
        assert isinstance(value, np.ndarray)
        np.testing.assert_array_equal(value, gpu_model.to_numpy_state()[name])
    cpu_model.eval()
    assert rel_err(host(cpu_model(Tensor(x))), want) <= 1e-6


def test_benchmark_pytorch_model_equals_tinyspike_ms_resnet20():
    """benchmarks/bench_gpu.py times a PyTorch MS-ResNet-20 against ours: it must be the same net.

    Same weights (parameters in the same order; the zero-initialised second BNs set non-zero so
    that every branch counts), float64, on the CPU: logits and every gradient agree to rounding.
    """
    import os
    import sys

    torch = pytest.importorskip("torch")
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    try:
        import bench_gpu
    finally:
        sys.path.pop(0)
    rng = np.random.default_rng(0)
    ours = build_on("ms_resnet20", None, np.float64, time_steps=2)
    theirs = bench_gpu.build_torch_model(torch, 20, time_steps=2).double()
    pairs = list(zip(ours.named_parameters(), theirs.parameters()))
    assert len(pairs) == len(list(theirs.parameters())) == len(list(ours.parameters()))
    for (name, p), q in pairs:
        assert tuple(p.shape) == tuple(q.shape), name
        if name.endswith("bn2.weight"):
            p.data[...] = rng.uniform(0.2, 0.8, p.shape)
        with torch.no_grad():
            q.copy_(torch.from_numpy(np.array(p.data)))
    x, y = rng.standard_normal((3, 3, 32, 32)), rng.integers(0, 10, 3)
    logits = ours(Tensor(x))
    cross_entropy(logits, y).backward()
    torch_logits = theirs(torch.from_numpy(x))
    torch.nn.functional.cross_entropy(torch_logits, torch.from_numpy(y)).backward()
    assert rel_err(logits.data, torch_logits.detach().numpy()) <= 1e-10
    for (name, p), q in pairs:
        assert rel_err(p.grad, q.grad.numpy()) <= 1e-8 or np.abs(q.grad.numpy()).max() < 1e-12, name
