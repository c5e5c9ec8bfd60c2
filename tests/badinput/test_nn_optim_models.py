"""Bad input to the layers, the Module methods, the optimizers and schedules, the model builder and
the DataLoader: each must fail at once (at construction, not at the first forward or step) with a
TypeError/ValueError naming the argument; NumPy scalars, which are valid numbers, must be accepted.

Every case draws a bad value from a strategy for the argument's kind (a real in a range, an int,
a flag): NaN, ±inf, values just outside the range, strings of numbers, None, bools where numbers
are wanted, numbers where flags are wanted, lists, arbitrary objects.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bad_input import assert_clear
from tinyspike import models, nn, optim
from tinyspike.data.dataset import ArrayDataset
from tinyspike.data.loader import DataLoader
from tinyspike.autograd import Tensor

FEW, SOME, MANY = 10, 25, 50  # max_examples per test, by how many argument kinds a test covers

# ---- strategies: bad values by kind ------------------------------------------------------------

NOT_NUMBERS = st.sampled_from(["0.1", "1", "nan", None, [0.5], (0.5,), {"v": 1}, object(), 0.5j, b"1"])
BOOLS = st.sampled_from([True, False, np.True_, np.False_])
NON_FINITE = st.sampled_from([float("nan"), float("inf"), float("-inf"), np.float32("nan"), np.float64("inf")])


def bad_real(low=None, high=None, low_open=False, high_open=False, none_ok=False):
    """Values a finite real argument in the given range must refuse."""
    options = [NON_FINITE, BOOLS, NOT_NUMBERS.filter(lambda v: not (none_ok and v is None))]
    finite = dict(allow_nan=False, allow_infinity=False)
    if low is not None:  # below the range (or at an open end)
        options.append(st.floats(max_value=low, exclude_max=not low_open, **finite))
    if high is not None:
        options.append(st.floats(min_value=high, exclude_min=not high_open, **finite))
    return st.one_of(*options)


def bad_int(low=None, none_ok=False):
    """Values an int argument (>= low) must refuse: floats, even integral ones, bools, strings."""
    options = [
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([2.0, np.float64(3.0), "3", True, False, np.True_, [2], (2, 2)[:1]]),
    ]
    if not none_ok:
        options.append(st.just(None))
    if low is not None:
        options.append(st.integers(max_value=low - 1, min_value=low - 10**6))
    return st.one_of(*options)


BAD_FLAG = st.sampled_from(["no", "yes", "False", "", 0, 1, 0.0, 1.0, None, [True], np.int64(1), object()])
BAD_GENERATOR = st.sampled_from([-1, -(2**40), 1.5, "0", True, np.True_, np.random.RandomState(0), object(), [0]])


def params():
    return [nn.Parameter(np.ones(3, dtype=np.float32))]


# ---- optimizers --------------------------------------------------------------------------------

OPTIMIZER_ARGS = {  # (optimizer, argument): the strategy of values it must refuse
    (optim.SGD, "lr"): bad_real(low=0.0),
    (optim.SGD, "momentum"): bad_real(0.0, 1.0),
    (optim.SGD, "dampening"): bad_real(0.0, 1.0),
    (optim.SGD, "weight_decay"): bad_real(low=0.0),
    (optim.SGD, "nesterov"): BAD_FLAG,
    (optim.Adam, "lr"): bad_real(low=0.0),
    (optim.Adam, "eps"): bad_real(low=0.0, low_open=True),
    (optim.Adam, "weight_decay"): bad_real(low=0.0),
    (optim.AdamW, "lr"): bad_real(low=0.0),
    (optim.AdamW, "eps"): bad_real(low=0.0, low_open=True),
    (optim.AdamW, "weight_decay"): bad_real(low=0.0),
}


@settings(max_examples=MANY, deadline=None)
@given(st.sampled_from(sorted(OPTIMIZER_ARGS, key=lambda k: (k[0].__name__, k[1]))).flatmap(
    lambda key: st.tuples(st.just(key), OPTIMIZER_ARGS[key])))
def test_optimizer_hyperparameters_refuse_bad_values(case):
    (cls, name), value = case
    kwargs = {"lr": 0.1, name: value} if cls is optim.SGD else {name: value}
    assert_clear(f"{cls.__name__} {name}", lambda: cls(params(), **kwargs), name, value)


BAD_BETA = st.one_of(bad_real(0.0, 1.0, high_open=True))


@settings(max_examples=SOME, deadline=None)
@given(cls=st.sampled_from([optim.Adam, optim.AdamW]), which=st.integers(0, 1), beta=BAD_BETA,
       other=st.floats(0.0, 0.999))
def test_adam_betas_refuse_bad_values(cls, which, beta, other):
    betas = (beta, other) if which == 0 else (other, beta)
    assert_clear(f"{cls.__name__} betas", lambda: cls(params(), betas=betas), "betas", betas)


@settings(max_examples=FEW, deadline=None)
@given(betas=st.sampled_from([0.9, "0.9,0.999", None, (0.9,), (0.9, 0.99, 0.999), {0.9, 0.99}]))
def test_adam_betas_must_be_a_pair(betas):
    assert_clear("Adam betas shape", lambda: optim.Adam(params(), betas=betas), "betas", betas)


@settings(max_examples=FEW, deadline=None)
@given(wrong=st.sampled_from(["model", "string", "number", "dict", "none"]))
def test_optimizer_params_must_be_parameters(wrong):
    model = nn.Linear(3, 2, generator=0)
    value = {"model": model, "string": "weights", "number": 3, "dict": {"params": params()}, "none": None}[wrong]
    names = "model.parameters()" if wrong == "model" else "params"
    message = assert_clear("SGD params", lambda: optim.SGD(value, lr=0.1), names, wrong)
    if wrong == "model":  # the hint says what to pass instead
        assert "pass model.parameters()" in message


@settings(max_examples=SOME, deadline=None)
@given(momentum=st.floats(0.0, 1.0), beta1=st.floats(0.0, 0.99), beta2=st.floats(0.0, 0.999),
       lr=st.floats(1e-4, 1.0), kind=st.sampled_from([np.float32, np.float64]))
def test_optimizers_accept_numpy_scalars_as_the_same_numbers(momentum, beta1, beta2, lr, kind):
    """np.float32(0.9) is a valid momentum: the step equals the one with float(np.float32(0.9))."""
    results = []
    for convert in (kind, lambda v: float(kind(v))):
        sgd_p, adam_p = params(), params()
        opts = [
            optim.SGD(sgd_p, lr=convert(lr), momentum=convert(momentum), weight_decay=convert(0.01)),
            optim.Adam(adam_p, lr=convert(lr), betas=(convert(beta1), convert(beta2)), eps=convert(1e-8)),
        ]
        for opt, ps in zip(opts, (sgd_p, adam_p)):
            for _ in range(2):
                ps[0].grad = np.array([1.0, -2.0, 0.5], dtype=np.float32)
                opt.step()
        results.append([sgd_p[0].data.copy(), adam_p[0].data.copy()])
    for got, expected in zip(*results):
        np.testing.assert_array_equal(got, expected)  # exact: the same float64 hyper-parameters


# ---- schedules and clipping --------------------------------------------------------------------

SCHEDULE_ARGS = {
    ("MultiStepLR", "gamma"): bad_real(low=0.0),
    ("MultiStepLR", "steps_per_epoch"): bad_int(low=1),
    ("CosineLR", "total_epochs"): bad_real(low=0.0, low_open=True),
    ("CosineLR", "warmup_epochs"): bad_real(low=0.0),
    ("CosineLR", "min_lr"): bad_real(low=0.0),
    ("CosineLR", "warmup_start_factor"): bad_real(0.0, 1.0),
    ("CosineLR", "steps_per_epoch"): bad_int(low=1),
}


def make_schedule(cls_name, **kwargs):
    opt = optim.SGD(params(), lr=0.1)
    if cls_name == "MultiStepLR":
        return optim.MultiStepLR(opt, **{"milestones": [2, 4], **kwargs})
    return optim.CosineLR(opt, **{"total_epochs": 10, **kwargs})


@settings(max_examples=SOME, deadline=None)
@given(st.sampled_from(sorted(SCHEDULE_ARGS)).flatmap(lambda key: st.tuples(st.just(key), SCHEDULE_ARGS[key])))
def test_schedule_arguments_refuse_bad_values(case):
    (cls_name, name), value = case
    assert_clear(f"{cls_name} {name}", lambda: make_schedule(cls_name, **{name: value}), name, value)


@settings(max_examples=FEW, deadline=None)
@given(milestones=st.one_of(
    st.sampled_from([40, "40,60", None, [40, "60"], [float("nan")], [-1, 2], [True, 2], [60, 40], [float("inf")]]),
    st.lists(st.floats(allow_nan=False), min_size=2, max_size=4).filter(lambda m: m != sorted(m) or min(m) < 0),
))
def test_multistep_milestones_refuse_bad_values(milestones):
    assert_clear("MultiStepLR milestones", lambda: make_schedule("MultiStepLR", milestones=milestones), "milestones",
                 milestones)


CLIP_ARGS = {"max_norm": bad_real(low=0.0), "norm_type": bad_real(low=0.0, low_open=True).filter(
    lambda v: v != float("inf")), "error_if_nonfinite": BAD_FLAG}


@settings(max_examples=SOME, deadline=None)
@given(st.sampled_from(sorted(CLIP_ARGS)).flatmap(lambda key: st.tuples(st.just(key), CLIP_ARGS[key])))
def test_clip_grad_norm_refuses_bad_values(case):
    name, value = case
    ps = params()
    ps[0].grad = np.ones(3, dtype=np.float32)
    kwargs = {"max_norm": 1.0, name: value}
    assert_clear(f"clip_grad_norm_ {name}", lambda: optim.clip_grad_norm_(ps, **kwargs), name, value)
    np.testing.assert_array_equal(ps[0].grad, 1.0)  # refused before touching the gradient


# ---- layers ------------------------------------------------------------------------------------

LAYER_ARGS = {  # (layer, argument): (how to build it with that argument, the values it must refuse)
    ("Conv2d", "in_channels"): (lambda v: nn.Conv2d(v, 4, 3), bad_int(low=1)),
    ("Conv2d", "out_channels"): (lambda v: nn.Conv2d(3, v, 3), bad_int(low=1)),
    ("Conv2d", "kernel_size"): (lambda v: nn.Conv2d(3, 4, v), bad_int(low=1)),
    ("Conv2d", "stride"): (lambda v: nn.Conv2d(3, 4, 3, stride=v), bad_int(low=1)),
    ("Conv2d", "padding"): (lambda v: nn.Conv2d(3, 4, 3, padding=v), bad_int(low=0)),
    ("Conv2d", "bias"): (lambda v: nn.Conv2d(3, 4, 3, bias=v), BAD_FLAG),
    ("Conv2d", "spike_input"): (lambda v: nn.Conv2d(3, 4, 3, spike_input=v), BAD_FLAG),
    ("Conv2d", "generator"): (lambda v: nn.Conv2d(3, 4, 3, generator=v), BAD_GENERATOR),
    ("BatchNorm2d", "num_features"): (lambda v: nn.BatchNorm2d(v), bad_int(low=1)),
    ("BatchNorm2d", "eps"): (lambda v: nn.BatchNorm2d(3, eps=v), bad_real(low=0.0, low_open=True)),
    ("BatchNorm2d", "momentum"): (lambda v: nn.BatchNorm2d(3, momentum=v), bad_real(0.0, 1.0)),
    ("BatchNorm2d", "affine"): (lambda v: nn.BatchNorm2d(3, affine=v), BAD_FLAG),
    ("BatchNorm2d", "gamma_init"): (lambda v: nn.BatchNorm2d(3, gamma_init=v), bad_real()),
    ("TDBatchNorm", "alpha"): (lambda v: nn.TDBatchNorm(3, alpha=v), bad_real(low=0.0, low_open=True)),
    ("TDBatchNorm", "v_th"): (lambda v: nn.TDBatchNorm(3, v_th=v), bad_real(low=0.0, low_open=True)),
    ("LIF", "v_th"): (lambda v: nn.LIF(v_th=v), bad_real(low=0.0, low_open=True)),
    ("LIF", "decay"): (lambda v: nn.LIF(decay=v), bad_real(0.0, 1.0)),
    ("LIF", "detach_reset"): (lambda v: nn.LIF(detach_reset=v), BAD_FLAG),
    ("LIF", "surrogate"): (lambda v: nn.LIF(surrogate=v), st.sampled_from(["heaviside", "", 1, None, True, 0.5])),
    ("LIF", "monitor"): (lambda v: nn.LIF(monitor=v), BAD_FLAG),
    ("Linear", "in_features"): (lambda v: nn.Linear(v, 2), bad_int(low=1)),
    ("Linear", "out_features"): (lambda v: nn.Linear(3, v), bad_int(low=1)),
    ("Linear", "bias"): (lambda v: nn.Linear(3, 2, bias=v), BAD_FLAG),
    ("AvgPool2d", "kernel_size"): (lambda v: nn.AvgPool2d(v), bad_int(low=1)),
    ("AvgPool2d", "stride"): (lambda v: nn.AvgPool2d(2, stride=v), bad_int(low=1, none_ok=True)),
    ("MaxPool2d", "padding"): (lambda v: nn.MaxPool2d(2, padding=v), st.one_of(bad_int(low=0), st.integers(2, 9))),
    ("Dropout", "p"): (lambda v: nn.Dropout(v), bad_real(0.0, 1.0, high_open=True)),
    ("Dropout", "generator"): (lambda v: nn.Dropout(0.5, generator=v), BAD_GENERATOR),
    ("Flatten", "start_dim"): (lambda v: nn.Flatten(v), bad_int(none_ok=True)),
    ("broadcast_time", "time_steps"): (lambda v: nn.broadcast_time(Tensor(np.ones(2, np.float32)), v), bad_int(low=1)),
}


@settings(max_examples=3 * MANY, deadline=None)  # 30 (layer, argument) pairs: ~5 values each
@given(st.sampled_from(sorted(LAYER_ARGS)).flatmap(lambda key: st.tuples(st.just(key), LAYER_ARGS[key][1])))
def test_layer_constructors_refuse_bad_values(case):
    (layer, name), value = case
    build = LAYER_ARGS[(layer, name)][0]
    assert_clear(f"{layer} {name}", lambda: build(value), name, value)


@settings(max_examples=FEW, deadline=None)
@given(kind=st.sampled_from([np.int32, np.int64, np.uint8]), real=st.sampled_from([np.float32, np.float64]))
def test_layers_accept_numpy_scalars(kind, real):
    conv = nn.Conv2d(kind(3), kind(4), kind(3), stride=kind(2), padding=kind(1), bias=np.True_)
    assert conv.weight.shape == (4, 3, 3, 3) and conv.stride == (2, 2) and type(conv.in_channels) is int
    bn = nn.TDBatchNorm(kind(4), alpha=real(1.0), v_th=real(0.5), eps=real(1e-5), momentum=real(0.1))
    np.testing.assert_array_equal(bn.weight.data, 0.5)
    lif = nn.LIF(v_th=real(0.5), decay=real(0.25), detach_reset=np.True_)
    assert type(lif.v_th) is float and lif.detach_reset is True
    assert nn.Dropout(real(0.25)).p == float(real(0.25))


# ---- Module methods ----------------------------------------------------------------------------


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3, generator=0)
        self.bn = nn.BatchNorm2d(3)


SMALL = Small()
SMALL_KEYS = sorted(SMALL.state_dict())


@settings(max_examples=MANY, deadline=None)
@given(method=st.sampled_from(["train", "load_state_dict", "register_buffer", "register_forward_hook",
                                "num_parameters", "Parameter"]), value=BAD_FLAG)
def test_module_methods_refuse_bad_flags_and_hooks(method, value):
    module = Small()
    if method == "train":
        assert_clear("Module.train mode", lambda: module.train(value), "mode", value)
    elif method == "load_state_dict":
        state = module.to_numpy_state()
        assert_clear("Module.load_state_dict strict", lambda: module.load_state_dict(state, strict=value), "strict",
                     value)
    elif method == "register_buffer":
        assert_clear("Module.register_buffer persistent",
                     lambda: module.register_buffer("extra", np.zeros(2), persistent=value), "persistent", value)
    elif method == "num_parameters":
        assert_clear("Module.num_parameters trainable_only", lambda: module.num_parameters(value), "trainable_only",
                     value)
    elif method == "Parameter":
        assert_clear("Parameter requires_grad", lambda: nn.Parameter(np.ones(2), requires_grad=value), "requires_grad",
                     value)
    elif not callable(value):
        assert_clear("Module.register_forward_hook hook", lambda: module.register_forward_hook(value), "hook", value)


@settings(max_examples=SOME, deadline=None)
@given(name=st.sampled_from(["running_mean", "running_var"]), shape=st.sampled_from([(3,), (2, 3), ()]),
       how=st.sampled_from(["flag", "broadcast", "list", "string", "tensor", "complex"]))
def test_buffers_refuse_read_only_or_non_arrays(name, shape, how):
    """A read-only array in a buffer would fail deep inside the next training step (an in-place update)."""
    bn = nn.BatchNorm2d(3)
    if how == "flag":
        value = np.zeros(shape, np.float32)
        value.flags.writeable = False
    elif how == "broadcast":
        value = np.broadcast_to(np.float32(1.0), shape)  # a stride-0 view: read-only
    else:
        value = {"list": [0.0, 0.0, 0.0], "string": "zeros", "tensor": Tensor(np.zeros(3, np.float32)),
                 "complex": np.zeros(3, np.complex64)}[how]
    before = bn.running_mean.copy()
    assert_clear(f"buffer {how}", lambda: setattr(bn, name, value), name, how)
    np.testing.assert_array_equal(bn.running_mean, before)


def corrupt(kind, target, rng):
    """A value for a state-dict key that must be refused, built from the key's target array."""
    shape = target.shape
    if kind == "none_objects":
        return np.full(shape, None, dtype=object)
    if kind == "complex":
        return (target + 1j).astype(np.complex64)
    if kind == "strings":
        return np.full(shape, "0.5")
    if kind == "bools":
        return np.ones(shape, dtype=bool)
    if kind == "float64":  # a lossy cast into the float32 model
        return target.astype(np.float64)
    if kind == "int64":
        return np.zeros(shape, dtype=np.int64)
    if kind == "shape":
        return np.zeros(shape + (2,), dtype=target.dtype)
    if kind in ("nan", "inf", "-inf"):
        value = target.copy()
        value.reshape(-1)[rng.integers(value.size)] = float(kind)
        return value
    return {"python_none": None, "text": "weights", "ragged": [[1.0], [1.0, 2.0]]}[kind]


STATE_CORRUPTIONS = ["none_objects", "complex", "strings", "bools", "float64", "int64", "shape", "nan", "inf", "-inf",
                     "python_none", "text", "ragged"]


@settings(max_examples=MANY, deadline=None)
@given(key=st.sampled_from(SMALL_KEYS), kind=st.sampled_from(STATE_CORRUPTIONS), seed=st.integers(0, 2**16))
def test_load_state_dict_refuses_non_real_non_finite_lossy_or_misshaped_values(key, kind, seed):
    module = Small()
    state = module.to_numpy_state()
    before = module.to_numpy_state()
    state[key] = corrupt(kind, state[key], np.random.default_rng(seed))
    assert_clear(f"load_state_dict {kind}", lambda: module.load_state_dict(state), key, kind)
    for name, value in module.to_numpy_state().items():  # nothing half-loaded
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_load_state_dict_accepts_a_lossless_upcast_and_tensors():
    """float32 values into a float64 model are exact, so they load; a Tensor loads as its array."""
    from tinyspike import backend

    with backend.default_dtype_as(np.float64):
        wide = Small()
    state = Small().to_numpy_state()
    state["fc.bias"] = Tensor(state["fc.bias"])
    wide.load_state_dict(state)
    assert wide.fc.weight.dtype == np.float64
    np.testing.assert_array_equal(wide.fc.weight.data, Small().fc.weight.data.astype(np.float64))


def test_optimizer_load_state_dict_refuses_non_finite_buffers_and_hyperparameters():
    ps = params()
    opt = optim.SGD(ps, lr=0.1, momentum=0.9)
    ps[0].grad = np.ones(3, dtype=np.float32)
    opt.step()
    for key, value in [("param0.momentum_buffer", np.array([np.nan, 0, 0], np.float32)),
                       ("param0.momentum_buffer", np.zeros(3, np.complex64)),
                       ("group0.lr", np.float64("nan")), ("group0.momentum", 2.0), ("group0.nesterov", "no")]:
        state = opt.state_dict()
        state[key] = value
        name = key.split(".")[1] if key.startswith("group") else key
        assert_clear(f"SGD.load_state_dict {key}", lambda: opt.load_state_dict(state), name, value)
        assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["momentum"] == 0.9  # unchanged


# ---- models.build ------------------------------------------------------------------------------

BUILD_OPTIONS = {  # option: the values build must refuse (before making any layer)
    "num_classes": bad_int(low=1, none_ok=True),
    "time_steps": bad_int(low=1),
    "widths": st.sampled_from([5, "16,32,64", None, [16, 32], [0, 16, 32], [16.0, 32, 64], (16, True, 64),
                               (16, 32, 64, 128)]),
    "stage_strides": st.sampled_from([2, [0, 2, 2], [1, 2], [1, 2.0, 2], "122"]),
    "stem": st.sampled_from(["resnet", "", 1, None]),
    "stem_stride": bad_int(low=1),
    "in_channels": bad_int(low=1),
    "dropout": bad_real(0.0, 1.0, high_open=True),
    "zero_init_residual": st.sampled_from([1, 0, "yes", "Auto", None, 1.0, np.int64(0)]),
    "shortcut": st.sampled_from(["pool", "", 1, None, True]),
    "bn_alpha": bad_real(low=0.0, low_open=True),
    "v_th": bad_real(low=0.0, low_open=True),
    "decay": bad_real(0.0, 1.0),
    "detach_reset": BAD_FLAG,
    "surrogate": st.sampled_from(["heaviside", "", 1, None, True]),
    "seed": BAD_GENERATOR,
}


@settings(max_examples=MANY + SOME, deadline=None)
@given(name=st.sampled_from(["ms_resnet8", "vanilla_resnet8", "ms_resnet18_imagenet"]),
       case=st.sampled_from(sorted(BUILD_OPTIONS)).flatmap(lambda k: st.tuples(st.just(k), BUILD_OPTIONS[k])))
def test_build_refuses_bad_options_naming_them(name, case):
    """Checked at build, naming the option the caller passed (not a Conv2d or LIF inside)."""
    option, value = case
    if option == "widths" and name.endswith("_imagenet") and value == (16, 32, 64, 128):
        value = (16, 32, 64)  # four stages there: three widths are the wrong count
    assert_clear(f"build {option}", lambda: models.build(name, **{option: value}), option, value)


@settings(max_examples=FEW, deadline=None)
@given(value=bad_int(low=1))
def test_build_dvs_first_stage_stride(value):
    assert_clear("build first_stage_stride", lambda: models.build("ms_resnet20_dvs", first_stage_stride=value),
                 "first_stage_stride", value)


def test_build_accepts_numpy_scalars():
    model = models.build("ms_resnet8", num_classes=np.int64(5), time_steps=np.int32(2), widths=(np.int64(4), 8, 8),
                         v_th=np.float32(0.5), decay=np.float64(0.25), bn_alpha=np.float32(1.0),
                         detach_reset=np.True_, dropout=np.float64(0.1), seed=np.int64(0))
    assert model.fc.out_features == 5 and model.time_steps == 2 and type(model.time_steps) is int
    assert model(Tensor(np.zeros((1, 3, 8, 8), np.float32))).shape == (1, 5)


# ---- DataLoader --------------------------------------------------------------------------------

DATASET = ArrayDataset(np.zeros((6, 1, 2, 2), np.float32), np.arange(6, dtype=np.int64) % 2, ["a", "b"])
LOADER_ARGS = {
    "batch_size": bad_int(low=1),
    "shuffle": BAD_FLAG,
    "seed": bad_int(low=0),
    "drop_last": BAD_FLAG,
    "prefetch": bad_int(low=0),
    "to_device": BAD_FLAG,
    "transform": st.sampled_from([3, "normalise", [None], 0.5]),
}


@settings(max_examples=MANY, deadline=None)
@given(st.sampled_from(sorted(LOADER_ARGS)).flatmap(lambda k: st.tuples(st.just(k), LOADER_ARGS[k])))
def test_dataloader_refuses_bad_arguments(case):
    name, value = case
    kwargs = {"batch_size": 2, name: value}
    assert_clear(f"DataLoader {name}", lambda: DataLoader(DATASET, **kwargs), name, value)


@settings(max_examples=FEW, deadline=None)
@given(epoch=bad_int(low=0))
def test_dataloader_set_epoch_refuses_bad_values(epoch):
    loader = DataLoader(DATASET, 2)
    assert_clear("DataLoader.set_epoch epoch", lambda: loader.set_epoch(epoch), "epoch", epoch)


def test_dataloader_takes_numpy_integers_and_never_a_bool_as_a_size():
    loader = DataLoader(DATASET, np.int64(4), shuffle=np.True_, seed=np.uint8(3), drop_last=np.False_)
    assert len(loader) == 2 and loader.shuffle is True and type(loader.batch_size) is int
    with pytest.raises(TypeError, match="batch_size"):  # True is not 1 here
        DataLoader(DATASET, True)
