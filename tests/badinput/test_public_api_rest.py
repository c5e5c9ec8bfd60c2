"""Bad input to the public names the other bad-input suites do not reach: the backend switch,
gradcheck, global average pooling, the containers, set_monitoring, conv_bn, checkpoint files,
cifar_depth_to_blocks, BlockConfig and the Trainer's own arguments. Each must fail at once with a
TypeError/ValueError naming the argument (``bad_input.assert_clear``).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyspike
from bad_input import assert_clear
from tinyspike import models, nn, optim
from tinyspike import functional as F
from tinyspike.autograd import Tensor
from tinyspike.data.dataset import ArrayDataset
from tinyspike.data.loader import DataLoader
from tinyspike.train import Trainer

NOT_NUMBERS = st.sampled_from(["0.1", "1", None, [0.5], (0.5,), {"v": 1}, object(), 0.5j, b"1"])
NON_FINITE = st.sampled_from([float("nan"), float("inf"), float("-inf"), np.float32("nan")])
BOOLS = st.sampled_from([True, False, np.True_])
NOT_MODULES = st.sampled_from([3, "conv", None, 1.5, [nn.LIF()], (lambda x: x), np.ones(2), nn.Module])
NOT_PATHS = st.sampled_from([None, 3, 1.5, True, b"x.npz", ["a.npz"], object(), "", "   "])
NOT_INTS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["8", None, True, [8]]))


def bad_real(low=None, high=None, low_open=False):
    options = [NON_FINITE, BOOLS, NOT_NUMBERS]
    if low is not None:
        options.append(st.floats(max_value=low, exclude_max=not low_open, allow_nan=False, allow_infinity=False))
    if high is not None:
        options.append(st.floats(min_value=high, exclude_min=True, allow_nan=False, allow_infinity=False))
    return st.one_of(*options)


@settings(max_examples=20, deadline=None)
@given(which=st.sampled_from(["conv", "bn"]), value=NOT_MODULES)
def test_conv_bn_needs_a_conv_and_a_batch_norm(which, value):
    layers = {"conv": nn.Conv2d(2, 3, 3, padding=1), "bn": nn.TDBatchNorm(3)}
    layers[which] = value
    x = Tensor(np.ones((1, 2, 4, 4), np.float32))
    assert_clear(f"conv_bn {which}", lambda: nn.conv_bn(layers["conv"], layers["bn"], x), f"conv_bn: {which}", value)


@settings(max_examples=10, deadline=None)
@given(name=st.sampled_from([1, None, "gpu", "torch", "", True, ["numpy"]]))
def test_use_refuses_unknown_backends(name):
    assert_clear("use name", lambda: tinyspike.use(name), "backend name", name)
    assert tinyspike.backend.name() == "numpy"  # the refused switch changed nothing


GRADCHECK_ARGS = {"eps": bad_real(0.0), "atol": bad_real(0.0).filter(lambda v: v != 0.0),
                  "rtol": bad_real(0.0).filter(lambda v: v != 0.0),
                  "seed": st.one_of(NOT_INTS, st.integers(max_value=-1))}


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(sorted(GRADCHECK_ARGS)).flatmap(lambda k: st.tuples(st.just(k), GRADCHECK_ARGS[k])))
def test_gradcheck_arguments(case):
    name, value = case
    call = lambda: tinyspike.gradcheck(lambda t: t * 2.0, np.ones(2), **{name: value})  # noqa: E731
    assert_clear(f"gradcheck {name}", call, f"gradcheck: {name}", value)


@settings(max_examples=12, deadline=None)
@given(x=st.sampled_from([np.ones((2, 3, 4), np.float32), np.ones((2, 3, 4, 4), np.int64), np.ones(3),
                          np.ones((2, 3, 4, 4), np.float16), [[1.0]], None, "x"]),
       as_layer=st.booleans())
def test_global_avg_pool_refuses_what_is_not_a_float_image_batch(x, as_layer):
    data = Tensor(x) if isinstance(x, np.ndarray) else x
    call = (lambda: nn.GlobalAvgPool2d()(data)) if as_layer else (lambda: F.global_avg_pool2d(data))
    assert_clear("global_avg_pool2d x", call, "global_avg_pool2d: x", x)


@settings(max_examples=15, deadline=None)
@given(container=st.sampled_from(["Sequential", "ModuleList", "ModuleList.append"]), item=NOT_MODULES)
def test_containers_hold_only_modules(container, item):
    if container == "Sequential":
        call = lambda: nn.Sequential(nn.LIF(), item)  # noqa: E731
    elif container == "ModuleList":
        call = lambda: nn.ModuleList([nn.LIF(), item])  # noqa: E731
    else:
        call = lambda: nn.ModuleList().append(item)  # noqa: E731
    assert_clear(f"{container} item", call, ["must be a Module", "must be an iterable of Modules"], item)


@settings(max_examples=12, deadline=None)
@given(which=st.sampled_from(["model", "on"]), data=st.data())
def test_set_monitoring_arguments(which, data):
    if which == "model":
        value = data.draw(NOT_MODULES.filter(lambda v: v is not nn.Module), label="model")
        call = lambda: nn.set_monitoring(value, True)  # noqa: E731
    else:
        value = data.draw(st.sampled_from(["yes", 1, 0, None, 1.0, [True]]), label="on")
        call = lambda: nn.set_monitoring(nn.LIF(), value)  # noqa: E731
    assert_clear(f"set_monitoring {which}", call, f"set_monitoring: {which}", value)


@settings(max_examples=20, deadline=None)
@given(op=st.sampled_from(["save_checkpoint", "load_checkpoint", "read_checkpoint"]), path=NOT_PATHS)
def test_checkpoint_functions_name_a_bad_path(op, path):
    calls = {"save_checkpoint": lambda: nn.save_checkpoint(path, nn.Linear(2, 2, generator=0)),
             "load_checkpoint": lambda: nn.load_checkpoint(path, nn.Linear(2, 2, generator=0)),
             "read_checkpoint": lambda: nn.read_checkpoint(path)}
    assert_clear(f"{op} path", calls[op], "path", path)


@settings(max_examples=15, deadline=None)
@given(depth=st.one_of(NOT_INTS, st.integers(-100, 7), st.integers(9, 500).filter(lambda d: (d - 2) % 6 != 0)))
def test_cifar_depth_to_blocks_refuses_what_is_not_6n_plus_2(depth):
    assert_clear("cifar_depth_to_blocks depth", lambda: models.cifar_depth_to_blocks(depth), "depth", depth)


BLOCK_CONFIG_ARGS = {"v_th": bad_real(0.0), "decay": bad_real(0.0, 1.0).filter(lambda v: v != 0.0),
                     "bn_alpha": bad_real(0.0), "detach_reset": st.sampled_from(["no", 1, 0, None, 1.0]),
                     "surrogate": st.sampled_from(["heaviside", "", 1, None]),
                     "shortcut": st.sampled_from(["pool", "", 1, None]),
                     "zero_init": st.sampled_from(["yes", "Auto", 1, None, 1.0])}


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(sorted(BLOCK_CONFIG_ARGS)).flatmap(lambda k: st.tuples(st.just(k), BLOCK_CONFIG_ARGS[k])))
def test_block_config_refuses_bad_values(case):
    name, value = case
    assert_clear(f"BlockConfig {name}", lambda: models.BlockConfig(**{name: value}), f"BlockConfig: {name}", value)


# ---- the Trainer's own arguments (the train() entry point has its own suite, test_cli_train) -----

DATASET = ArrayDataset(np.zeros((4, 1, 2, 2), np.float32), np.arange(4, dtype=np.int64) % 2, ["a", "b"])
TRAINER_ARGS = {
    "epochs": st.one_of(NOT_INTS, st.integers(-10, 0)),
    "time_steps": st.one_of(st.floats(allow_nan=True), st.sampled_from(["2", True, [2]]), st.integers(-5, 0)),
    "schedule_per": st.sampled_from(["batch", "Epoch", "", 1, None]),
    "label_smoothing": bad_real(0.0, 1.0).filter(lambda v: v != 0.0),
    "grad_clip": st.one_of(NON_FINITE, BOOLS, st.sampled_from(["1", [1.0]]), st.floats(max_value=0.0)),
    "progress": st.sampled_from(["no", 1, 0, None]),
}


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(sorted(TRAINER_ARGS)).flatmap(lambda k: st.tuples(st.just(k), TRAINER_ARGS[k])))
def test_trainer_refuses_bad_arguments(case):
    name, value = case
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, generator=0))
    kwargs = {"epochs": 1, name: value}
    call = lambda: Trainer(model, optim.SGD(model.parameters(), lr=0.1), DataLoader(DATASET, 2), **kwargs)  # noqa
    assert_clear(f"Trainer {name}", call, name, value)
