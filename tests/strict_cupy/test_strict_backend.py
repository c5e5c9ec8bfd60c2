"""The CuPy code path, run on the strict CuPy stand-in (``fake_cupy``) and compared with NumPy.

Every Function of ``tinyspike.functional`` and every elementary op runs forward and backward on the
stand-in; gradcheck runs on it in float64; an MS-ResNet-8 takes SGD steps; a checkpoint goes from
the stand-in to NumPy and back; the Trainer runs an epoch on the digits. The stand-in refuses NumPy
touching device arrays (see its docstring), so a NumPy leak on the GPU path fails here.

Tolerances: none. Both backends run the reference kernels (see ``conftest.py``) and the stand-in
computes with NumPy, so the same operations in the same order give the same bits; every result is
compared with ``assert_array_equal``, dtype included. A backend-dependent branch that computed
something else would show up as a difference.
"""

import operator

import numpy as np
import pytest

from tinyspike import backend, gradcheck, models, optim
from tinyspike import functional as F
from tinyspike.autograd import Tensor, concatenate, stack
from tinyspike.functional import surrogate as surrogates
from tinyspike.nn.checkpoint import load_checkpoint, save_checkpoint

from helpers import host

BACKENDS = ("numpy", "cupy")


def normal(shape, seed, dtype=np.float32, loc=0.0, scale=1.0):
    return np.random.default_rng(seed).normal(loc, scale, shape).astype(dtype)


def assert_same(got: dict, want: dict):
    assert got.keys() == want.keys()
    for key in want:
        assert got[key].dtype == want[key].dtype, key
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


# ---- the stand-in itself ------------------------------------------------------------------------


def test_stand_in_refuses_numpy_on_device_arrays(strict_cupy):
    cp = strict_cupy
    host_array = np.arange(6.0).reshape(2, 3)
    device = cp.asarray(host_array)
    assert backend.is_gpu_array(device) and not isinstance(device, np.ndarray)
    refused = {
        "np.asarray": lambda: np.asarray(device),
        "np.exp (ufunc)": lambda: np.exp(device),
        "np.sum (function)": lambda: np.sum(device),
        "np.concatenate": lambda: np.concatenate([device, device]),
        "device + host": lambda: device + host_array,
        "host + device": lambda: host_array + device,
        "host == device": lambda: host_array == device,
        "device + list": lambda: device + [1.0, 2.0, 3.0],
        "cupy.where(host)": lambda: cp.where(host_array > 0, device, 0.0),
        "device[...] = host": lambda: device.__setitem__(Ellipsis, host_array),
        "float(device)": lambda: float(device[0, 0]),
        "int(device)": lambda: int(device.sum()),
        "bool(device)": lambda: bool(device[0, 0]),
        "operator.index(device)": lambda: operator.index(cp.asarray(np.int64(2))),
        "format(device)": lambda: f"{device.sum():.3f}",
    }
    for label, call in refused.items():
        with pytest.raises(TypeError):
            call()
            pytest.fail(f"{label} was not refused")
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(device)
    with pytest.raises(AttributeError):
        device.ptp()  # a NumPy-only method


def test_stand_in_allows_what_cupy_allows(strict_cupy):
    cp = strict_cupy
    host_array = np.arange(6.0).reshape(2, 3)
    device = cp.asarray(host_array)
    host_array[0, 0] = 100.0  # asarray copied: the device array does not see host changes
    got = device.get()
    assert isinstance(got, np.ndarray) and got[0, 0] == 0.0
    total = device.sum()
    assert backend.is_gpu_array(total) and total.shape == () and total.item() == 15.0  # 0-d, not a scalar
    for scaled in (2.0 * device, np.float64(2) * device, device * np.float32(2), cp.exp(device)):
        assert backend.is_gpu_array(scaled)
    np.testing.assert_array_equal((np.float64(2) * device).get(), 2 * np.arange(6.0).reshape(2, 3))
    assert backend.array_module_of(device) is cp and cp.get_array_module(device) is cp
    assert cp.get_array_module(host_array) is np
    # CuPy generators draw another stream than NumPy's, and their state is no dict
    draws = cp.random.default_rng(0).random((4,), dtype=np.float32)
    assert draws.dtype == np.float32 and not np.array_equal(draws.get(), np.random.default_rng(0).random(4, np.float32))
    assert callable(cp.random.default_rng(0).bit_generator.state)


def test_backend_to_numpy_of_a_device_array(strict_cupy):
    """Regression: ``to_numpy`` read ``array.data`` (a MemoryPointer on CuPy) before ``.get()``."""
    backend.use("cupy")
    device = backend.to_device(np.arange(4.0))
    np.testing.assert_array_equal(backend.to_numpy(device), np.arange(4.0))
    np.testing.assert_array_equal(backend.to_numpy(Tensor(device)), np.arange(4.0))


# ---- every Function and op, forward and backward, NumPy vs stand-in ----------------------------


def run(case, name):
    """Run ``case(leaf)`` on backend ``name``: forward, backward with a fixed random gradient.

    ``leaf(host_array, grad=True)`` makes a Tensor on the backend. The case returns the output
    Tensor, or (output, {name: array read after backward}). Returns NumPy copies of the output, of
    every leaf's gradient and of the extras; on the stand-in each must be a device array first.
    """
    backend.use(name)
    leaves = []

    def leaf(array, grad=True):
        tensor = Tensor(backend.to_device(array), requires_grad=grad)
        if grad:
            leaves.append(tensor)
        return tensor

    result = case(leaf)
    out, extras = result if isinstance(result, tuple) else (result, {})
    seed_grad = np.random.default_rng(99).standard_normal(out.shape).astype(out.dtype)
    out.backward(backend.to_device(seed_grad))
    arrays = {"out": out.data, **{f"grad{i}": t.grad for i, t in enumerate(leaves)}, **extras}
    for key, array in arrays.items():
        assert backend.is_gpu_array(array) == (name == "cupy"), f"{key} lives on the wrong backend"
    return {key: backend.to_numpy(array) for key, array in arrays.items()}


def _bn(shape, training, seed):
    channels = shape[2 if len(shape) == 5 else 1]

    def case(leaf):
        rm = backend.to_device(normal((channels,), seed + 1, scale=0.1))
        rv = backend.to_device(np.abs(normal((channels,), seed + 2)) + np.float32(0.5))
        x, g, b = leaf(normal(shape, seed, loc=1.0)), leaf(normal((channels,), seed + 3)), leaf(normal((channels,), seed + 4))
        return F.batch_norm(x, g, b, rm, rv, training), {"running_mean": rm, "running_var": rv}

    return case


def _lif(name, detach_reset):
    return lambda leaf: F.lif(leaf(normal((5, 3, 4), 7, loc=0.5, scale=0.6)), detach_reset=detach_reset,
                              surrogate=name)


def _ce(reduction, smoothing):
    def case(leaf):
        target = Tensor(backend.to_device(np.array([0, 3, 1, 3, 2, 0])))
        return F.cross_entropy(leaf(normal((6, 4), 11)), target, label_smoothing=smoothing, reduction=reduction)

    return case


def _spikes(shape, seed):
    return (np.random.default_rng(seed).random(shape) < 0.3).astype(np.float32)


FUNCTIONS = {
    "conv2d": lambda leaf: F.conv2d(leaf(normal((2, 3, 7, 6), 0)), leaf(normal((4, 3, 3, 3), 1)),
                                    leaf(normal((4,), 2)), stride=(2, 1), padding=1),
    "conv2d_time_first": lambda leaf: F.conv2d(leaf(normal((2, 2, 3, 5, 5), 3)), leaf(normal((4, 3, 3, 3), 4))),
    "conv2d_spike_input": lambda leaf: F.conv2d(leaf(_spikes((2, 3, 6, 6), 5)), leaf(normal((4, 3, 3, 3), 6)),
                                                padding=1, spike_input=True),
    "batch_norm_train": _bn((4, 3, 5, 5), True, 8),
    "batch_norm_tdbn": _bn((2, 3, 4, 3, 3), True, 9),
    "batch_norm_eval": _bn((4, 3, 5, 5), False, 10),
    "batch_norm_2d": _bn((6, 3), True, 12),
    **{f"lif_{name}_{detach}": _lif(name, detach) for name in sorted(surrogates.SURROGATES) for detach in (True, False)},
    "avg_pool2d": lambda leaf: F.avg_pool2d(leaf(normal((2, 3, 6, 6), 13)), 2),
    "avg_pool2d_padded": lambda leaf: F.avg_pool2d(leaf(normal((2, 2, 7, 6), 14)), 3, 2, 1),
    "max_pool2d_padded": lambda leaf: F.max_pool2d(leaf(normal((2, 2, 7, 6), 15)), 3, 2, 1),
    "max_pool2d_time_first": lambda leaf: F.max_pool2d(leaf(normal((2, 2, 3, 4, 4), 16)), 2),
    "adaptive_avg_pool2d": lambda leaf: F.adaptive_avg_pool2d(leaf(normal((2, 3, 7, 5), 17)), (3, 2)),
    "adaptive_avg_pool2d_1": lambda leaf: F.adaptive_avg_pool2d(leaf(normal((2, 3, 4, 4), 18)), 1),
    "global_avg_pool2d": lambda leaf: F.global_avg_pool2d(leaf(normal((2, 2, 3, 4, 5), 19))),
    "linear": lambda leaf: F.linear(leaf(normal((2, 3, 5), 20)), leaf(normal((4, 5), 21)), leaf(normal((4,), 22))),
    **{f"cross_entropy_{r}_{s}": _ce(r, s) for r in ("mean", "sum", "none") for s in (0.0, 0.1)},
    **{f"mse_loss_{r}": (lambda r: lambda leaf: F.mse_loss(leaf(normal((3, 4), 23)), leaf(normal((3, 4), 24)), r))(r)
       for r in ("mean", "sum", "none")},
    "relu": lambda leaf: F.relu(leaf(normal((3, 5), 25))),
    "softmax": lambda leaf: F.softmax(leaf(normal((3, 5), 26)), axis=0),
    "log_softmax": lambda leaf: F.log_softmax(leaf(normal((3, 5), 27))),
}

OPS = {
    "add_broadcast": lambda leaf: leaf(normal((3, 4), 30)) + leaf(normal((4,), 31)),
    "sub_scalar": lambda leaf: 2.0 - leaf(normal((3, 4), 32)) - 0.5,
    "mul_broadcast": lambda leaf: leaf(normal((2, 3, 4), 33)) * leaf(normal((3, 1), 34)) * 3,
    "div": lambda leaf: leaf(normal((3, 4), 35)) / leaf(normal((3, 4), 36, loc=3.0)) / 2,
    "neg_pow": lambda leaf: -(leaf(normal((3, 4), 37)) ** 3),
    "exp_log": lambda leaf: leaf(normal((3, 4), 38)).exp() + leaf(normal((3, 4), 39, loc=4.0)).log(),
    "matmul_batched": lambda leaf: leaf(normal((2, 3, 4), 40)) @ leaf(normal((4, 5), 41)),
    "matmul_vector": lambda leaf: leaf(normal((4,), 42)) @ leaf(normal((4, 3), 43)),
    "sum_axis": lambda leaf: leaf(normal((3, 4, 2), 44)).sum(axis=(0, 2)),
    "sum_all": lambda leaf: leaf(normal((3, 4), 45)).sum(),
    "mean_keepdims": lambda leaf: leaf(normal((3, 4), 46)).mean(axis=1, keepdims=True),
    "max_with_ties": lambda leaf: leaf(np.array([[1, 3, 3], [2, 2, 0]], np.float32)).max(axis=1),
    "reshape_transpose": lambda leaf: leaf(normal((2, 3, 4), 47)).reshape(4, 6).T.transpose(1, 0),
    "getitem_basic": lambda leaf: leaf(normal((4, 5), 48))[1:3, ::2],
    "getitem_repeated_index": lambda leaf: leaf(normal((4, 3), 49))[Tensor(backend.to_device(np.array([0, 2, 0, 0])))],
    "astype": lambda leaf: leaf(normal((3, 4), 50)).astype(np.float64),
    "concatenate": lambda leaf: concatenate([leaf(normal((2, 3), 51)), leaf(normal((1, 3), 52))], axis=0),
    "stack": lambda leaf: stack([leaf(normal((2, 3), 53)), leaf(normal((2, 3), 54))], axis=1),
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS) + sorted(OPS))
def test_forward_backward_equal_numpy(strict_cupy, name):
    case = FUNCTIONS.get(name) or OPS[name]
    assert_same(run(case, "cupy"), run(case, "numpy"))


def test_comparisons_give_device_bool_tensors(strict_cupy):
    results = {}
    for name in BACKENDS:
        backend.use(name)
        x = Tensor(backend.to_device(normal((3, 4), 55)))
        y = Tensor(backend.to_device(normal((3, 4), 56)))
        masks = [x > y, x >= 0.1, x < y, x <= np.float32(0)]
        assert all(backend.is_gpu_array(m.data) == (name == "cupy") and m.dtype == np.bool_ for m in masks)
        results[name] = {str(i): host(m) for i, m in enumerate(masks)}
    assert_same(results["cupy"], results["numpy"])


@pytest.mark.parametrize("name", BACKENDS)
def test_dropout_applies_the_generators_mask(strict_cupy, name):
    """Backends draw different masks (CuPy's stream is not NumPy's): each must apply its own."""
    backend.use(name)
    x_host, p = normal((4, 50), 57), 0.3
    x = Tensor(backend.to_device(x_host), requires_grad=True)
    y = F.dropout(x, p, True, rng=backend.new_generator(3))
    keep = host(backend.new_generator(3).random((4, 50), dtype=np.float32)) >= p
    scale = np.float32(1.0 / (1.0 - p))
    assert backend.is_gpu_array(y.data) == (name == "cupy")
    np.testing.assert_array_equal(host(y), x_host * keep * scale)
    y.sum().backward()
    np.testing.assert_array_equal(host(x.grad), np.ones_like(x_host) * keep * scale)
    assert 0.5 < keep.mean() < 0.9
    F.dropout(x, p, True)  # the backend's global generator works too
    if name == "cupy":
        with pytest.raises(TypeError, match="rng"):  # a NumPy generator for device arrays
            F.dropout(x, p, True, rng=np.random.default_rng(0))


# ---- gradcheck on the stand-in, float64 ----------------------------------------------------------


def dev64(shape, seed, loc=0.0, scale=1.0):
    return backend.to_device(normal(shape, seed, np.float64, loc, scale))


GRADCHECKS = {
    "conv2d": lambda: gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1),
                                dev64((1, 2, 5, 4), 60), dev64((3, 2, 3, 3), 61), dev64((3,), 62)),
    "lif_smooth": lambda: gradcheck(lambda x: F.lif(x, detach_reset=False, surrogate="smooth"),
                                    dev64((5, 2, 3), 63, loc=0.5, scale=0.6), atol=1e-7, rtol=1e-6),
    "batch_norm_tdbn": lambda: gradcheck(
        lambda x, g, b: F.batch_norm(x, g, b, None, None, True), dev64((2, 3, 2, 3, 2), 64, loc=1.0),
        dev64((2,), 65), dev64((2,), 66)),
    "pools": lambda: gradcheck(lambda x: F.avg_pool2d(x, 3, 2, 1) + F.max_pool2d(x, 3, 2, 1),
                               backend.to_device(np.random.default_rng(67).permutation(2 * 5 * 5).reshape(1, 2, 5, 5) / 7.0)),
    "adaptive_pool": lambda: gradcheck(lambda x: F.adaptive_avg_pool2d(x, (2, 3)), dev64((1, 2, 5, 4), 68)),
    "linear": lambda: gradcheck(F.linear, dev64((3, 4), 69), dev64((2, 4), 70), dev64((2,), 71)),
    "cross_entropy": lambda: gradcheck(
        lambda z: F.cross_entropy(z, backend.to_device(np.array([0, 2, 1, 2])), label_smoothing=0.1), dev64((4, 3), 72)),
    "softmax_log_softmax": lambda: gradcheck(lambda z: F.softmax(z, 0) * F.log_softmax(z), dev64((3, 4), 73)),
    "mse_loss": lambda: gradcheck(F.mse_loss, dev64((3, 2), 74), dev64((3, 2), 75)),
}


@pytest.mark.parametrize("name", sorted(GRADCHECKS))
def test_gradcheck_on_stand_in(strict_cupy, name):
    backend.use("cupy")
    assert GRADCHECKS[name]() is True


def test_gradcheck_catches_a_wrong_backward_on_stand_in(strict_cupy):
    """The gradcheck above is not vacuous on the stand-in: a backward off by 1 % is caught."""
    from tinyspike.autograd import Function
    from tinyspike.gradcheck import GradcheckError

    class WrongSquare(Function):
        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return a * a

        @staticmethod
        def backward(ctx, g):
            (a,) = ctx.saved_tensors
            return g * a * 2.02

    backend.use("cupy")
    with pytest.raises(GradcheckError):
        gradcheck(WrongSquare.apply, dev64((3,), 76, loc=2.0))


# ---- a model step, a checkpoint round trip, a Trainer epoch ---------------------------------------

SMALL = dict(widths=(4, 8, 8), time_steps=2)


def build(state=None, dtype=np.float32):
    """ms_resnet8 (small) on the active backend; ``state`` (NumPy arrays) copied in when given.

    The weights are always copied from one NumPy build: the backends' generators differ."""
    with backend.default_dtype_as(dtype):
        model = models.build("ms_resnet8", seed=0, **SMALL)
    if state is not None:
        model.load_state_dict(state)
    return model


def sgd_steps(state, x, y, steps=2):
    model = build(state)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    record = {}
    for step in range(steps):
        opt.zero_grad()
        logits = model(Tensor(backend.to_device(x)))
        loss = F.cross_entropy(logits, backend.to_device(y))
        loss.backward()
        opt.step()
        record[f"loss{step}"] = host(loss)
        record[f"logits{step}"] = host(logits)
    for name, p in model.named_parameters():
        assert backend.is_gpu_array(p.data) == (backend.name() == "cupy"), name
        record[f"grad:{name}"] = host(p.grad)
    record.update({f"state:{k}": v for k, v in model.to_numpy_state().items()})
    record.update({f"opt:{k}": np.asarray(v) for k, v in opt.state_dict().items()})
    return record


def test_model_sgd_steps_equal_numpy(strict_cupy):
    rng = np.random.default_rng(80)
    x, y = rng.standard_normal((3, 3, 12, 12)).astype(np.float32), rng.integers(0, 10, 3)
    backend.use("numpy")
    state = build().to_numpy_state()
    want = sgd_steps(state, x, y)
    backend.use("cupy")
    got = sgd_steps(state, x, y)
    assert_same(got, want)
    assert not np.array_equal(want["state:stem.convs.0.weight"], state["stem.convs.0.weight"])  # the step moved it


def test_checkpoint_round_trip_stand_in_numpy_stand_in(strict_cupy, tmp_path):
    rng = np.random.default_rng(81)
    x, y = rng.standard_normal((2, 3, 12, 12)), rng.integers(0, 10, 2)
    backend.use("numpy")
    state = build(dtype=np.float64).to_numpy_state()
    backend.use("cupy")
    device_model = build(state, np.float64)
    opt = optim.SGD(device_model.parameters(), lr=0.1, momentum=0.9)
    F.cross_entropy(device_model(Tensor(backend.to_device(x))), backend.to_device(y)).backward()
    opt.step()  # moves weights, running statistics and momentum buffers
    save_checkpoint(tmp_path / "device.npz", device_model, epoch=3, optimizer=opt.state_dict())
    device_model.eval()
    want = host(device_model(Tensor(backend.to_device(x))))

    backend.use("numpy")
    cpu_model = build(None, np.float64)
    extras = load_checkpoint(tmp_path / "device.npz", cpu_model)
    assert extras["epoch"] == 3
    for name, value in cpu_model.state_dict().items():
        assert isinstance(value, np.ndarray)
        np.testing.assert_array_equal(value, device_model.to_numpy_state()[name])
    cpu_model.eval()
    np.testing.assert_array_equal(host(cpu_model(Tensor(x))), want)
    save_checkpoint(tmp_path / "cpu.npz", cpu_model, optimizer=extras["optimizer"])

    backend.use("cupy")
    back = build(None, np.float64)
    back_opt = optim.SGD(back.parameters(), lr=0.1, momentum=0.9)
    again = load_checkpoint(tmp_path / "cpu.npz", back)
    back_opt.load_state_dict(again["optimizer"])
    for name, value in back.state_dict().items():
        assert backend.is_gpu_array(value), name
        np.testing.assert_array_equal(host(value), cpu_model.to_numpy_state()[name])
    buffers = [s["momentum_buffer"] for s in back_opt.state.values()]
    assert len(buffers) == len(list(back.parameters())) and all(backend.is_gpu_array(b) for b in buffers)
    assert_same({k: np.asarray(v) for k, v in back_opt.state_dict().items()},
                {k: np.asarray(v) for k, v in opt.state_dict().items()})
    back.eval()
    np.testing.assert_array_equal(host(back(Tensor(backend.to_device(x)))), want)


def test_trainer_epoch_on_digits_equals_numpy(strict_cupy, tmp_path):
    from tinyspike.train import Trainer, build_parts, read_trainer_checkpoint, resolve_config

    settings = dict(dataset="digits", dataset_options={"size": 8}, model="ms_resnet8",
                    model_options={"widths": [4, 8, 8]}, T=2, epochs=1, batch_size=128, lr=0.05,
                    augment="crop-flip", seed=3, eval_batch_size=360)
    timing = {"images_per_s", "epoch_time_s", "train_time_s", "eval_time_s"}
    results, state = {}, None
    for name in BACKENDS:
        config = resolve_config({**settings, "backend": name})
        parts = build_parts(config, prefetch=0)
        if state is None:
            state = parts.model.to_numpy_state()
        parts.model.load_state_dict(state)  # the same starting weights on both backends
        trainer = Trainer(parts.model, parts.optimizer, parts.train_loader, parts.eval_loader, epochs=1,
                          time_steps=config.T, schedule=parts.schedule, schedule_per=config.schedule_per,
                          run_dir=tmp_path / name, config=config.to_dict(), plot=False)
        (record,) = trainer.fit()
        results[name] = ({k: v for k, v in record.items() if k not in timing},
                         read_trainer_checkpoint(tmp_path / name / "last.npz"))
    (cpu_record, cpu_ckpt), (dev_record, dev_ckpt) = results["numpy"], results["cupy"]
    assert dev_record == cpu_record
    assert 0 < cpu_record["train_loss"] < 10 and cpu_record["firing_rate"] is not None
    for group in ("model", "optimizer"):
        assert dev_ckpt[group].keys() == cpu_ckpt[group].keys()
        for key in cpu_ckpt[group]:
            np.testing.assert_array_equal(np.asarray(dev_ckpt[group][key]), np.asarray(cpu_ckpt[group][key]), err_msg=key)


def monitoring_clipping_adam_energy(state, x, y):
    """The host-facing helpers on one model: LIF monitors, gradient clipping, Adam/AdamW, energy."""
    from tinyspike.analysis.energy import measure_energy
    from tinyspike.nn import LIF, set_monitoring

    model = build(state)
    set_monitoring(model, True)
    F.cross_entropy(model(Tensor(backend.to_device(x))), backend.to_device(y)).backward()
    record = {f"rate:{name}": np.float64(m.firing_rate) for name, m in model.named_modules() if isinstance(m, LIF)}
    for norm_type in (2.0, float("inf"), 1.5):
        record[f"norm{norm_type}"] = np.float64(optim.clip_grad_norm_(model.parameters(), 1e-3, norm_type))
    for name, p in model.named_parameters():
        record[f"clipped:{name}"] = host(p.grad)
    for maker in (optim.Adam, optim.AdamW):
        opt = maker(model.parameters(), lr=1e-2)
        opt.step()
        opt.step()
        record.update({f"{maker.__name__}:{k}": np.asarray(v) for k, v in opt.state_dict().items()})
    twin = build(None)
    twin.load_state_dict(model.state_dict())  # a state of device arrays, checked and copied on the device
    record.update({f"twin:{k}": v for k, v in twin.to_numpy_state().items()})
    report = measure_energy(model, [backend.to_device(x)], time_steps=2)
    record.update({f"energy:{k}": np.asarray(v) for k, v in report.to_dict().items() if k != "layers"})
    return record


def test_monitoring_clipping_adam_energy_equal_numpy(strict_cupy):
    rng = np.random.default_rng(82)
    x, y = rng.standard_normal((3, 3, 12, 12)).astype(np.float32), rng.integers(0, 10, 3)
    backend.use("numpy")
    state = build().to_numpy_state()
    want = monitoring_clipping_adam_energy(state, x, y)
    backend.use("cupy")
    got = monitoring_clipping_adam_energy(state, x, y)
    assert_same(got, want)
    assert want["norm2.0"] > 1e-3  # the clip did act, so the clipped gradients test the scaling
