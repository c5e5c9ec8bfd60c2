"""nn.conv_bn: a conv and an evaluation-mode batch norm in one pass of the Numba conv kernel.

The promise is "the same numbers as bn(conv(x)), bit for bit, only faster": checked on the kernel
(the fused epilogue against the conv kernel followed by the norm kernel), on the layer pair,
through whole models of every block type, and for every condition under which the fused path
must not be taken (then it is literally bn(conv(x)), errors included).
"""

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinyspike import backend, kernels, models, nn, no_grad
from tinyspike.autograd import Tensor
from tinyspike.functional import conv as functional_conv

pytestmark = pytest.mark.skipif(backend.name() != "numpy", reason="the fused path is the Numba kernels'")


def spikes_or_reals(rng, shape, dtype, spikes):
    return (rng.random(shape) < 0.3).astype(dtype) if spikes else rng.standard_normal(shape).astype(dtype)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 4), st.integers(1, 6), st.integers(1, 20), st.integers(1, 9), st.integers(1, 9),
    st.sampled_from([(3, 1, 1), (1, 1, 0), (3, 2, 1), (5, 1, 2)]), st.sampled_from([np.float32, np.float64]),
    st.booleans(), st.integers(0, 2**16),
)
def test_the_fused_epilogue_equals_the_conv_kernel_then_the_norm_kernel(n, c, o, h, w, geometry, dtype, spikes, seed):
    kernel, stride, padding = geometry
    if h + 2 * padding < kernel or w + 2 * padding < kernel:
        return
    rng = np.random.default_rng(seed)
    conv, norm = kernels.CONV.numba_cpu, kernels.NORM.numba_cpu
    x = spikes_or_reals(rng, (n, c, h, w), dtype, spikes)
    weight = rng.standard_normal((o, c, kernel, kernel)).astype(dtype)
    scale, shift = rng.standard_normal(o), rng.standard_normal(o)  # float64, as batch norm has them
    y, _ = conv.conv2d_forward(x, weight, None, (stride, stride), (padding, padding))
    expected = norm.bn_apply(y.reshape(n, o, -1), scale, shift).reshape(y.shape)
    fused, _ = conv.conv2d_forward(x, weight, None, (stride, stride), (padding, padding), norm_affine=(scale, shift))
    assert fused.dtype == dtype
    np.testing.assert_array_equal(fused, expected)


def test_the_fused_epilogue_refuses_a_bias():
    conv = kernels.CONV.numba_cpu
    x, weight = np.ones((1, 1, 3, 3), np.float32), np.ones((2, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match="norm_affine is for a conv without bias"):
        conv.conv2d_forward(x, weight, np.zeros(2, np.float32), (1, 1), (1, 1), norm_affine=(np.ones(2), np.zeros(2)))


def trained_looking_pair(rng, c=3, o=5, dtype=np.float32, affine=True, bias=False):
    """A conv and a TDBatchNorm in eval mode with running statistics and γ, β away from their init."""
    conv = nn.Conv2d(c, o, 3, padding=1, bias=bias, generator=int(rng.integers(1 << 30)))
    bn = nn.TDBatchNorm(o, affine=affine)
    bn.running_mean[...] = rng.standard_normal(o)
    bn.running_var[...] = rng.random(o) + 0.1
    if affine:
        bn.weight.data[...] = rng.random(o) + 0.2
        bn.bias.data[...] = rng.standard_normal(o)
    if dtype == np.float64:
        for p in (conv.weight, bn.weight, bn.bias, conv.bias):
            if p is not None:
                p.data = p.data.astype(np.float64)
    return conv, bn.eval()


@pytest.fixture
def conv_calls(monkeypatch):
    """How many times the conv ran as an autograd Function (the unfused path)."""
    calls = []
    original = functional_conv.Conv2dFunction.forward

    def counted(ctx, *args):
        calls.append(1)
        return original(ctx, *args)

    monkeypatch.setattr(functional_conv.Conv2dFunction, "forward", staticmethod(counted))
    return calls


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4, 3, 7, 6), (3, 2, 3, 8, 8)])
@pytest.mark.parametrize("affine", [True, False])
def test_conv_bn_under_no_grad_is_fused_and_bit_equal(conv_calls, dtype, shape, affine):
    rng = np.random.default_rng(sum(shape))
    conv, bn = trained_looking_pair(rng, c=shape[-3], dtype=dtype, affine=affine)
    x = Tensor(spikes_or_reals(rng, shape, dtype, spikes=len(shape) == 5))
    expected = bn(conv(x)).numpy()
    assert len(conv_calls) == 1
    with no_grad():
        fused = nn.conv_bn(conv, bn, x)
    assert len(conv_calls) == 1, "the fused path must not run the conv Function"
    assert fused.shape == expected.shape and fused.dtype == dtype and not fused.requires_grad
    np.testing.assert_array_equal(fused.numpy(), expected)


def _hook(module, inputs, output):
    return None


# Each case prepares (conv, bn) and returns the context in which conv_bn must take the plain path.
PLAIN_PATH_CASES = {
    "training mode": lambda conv, bn: (bn.train(), no_grad())[1],
    "hook on the conv": lambda conv, bn: (conv.register_forward_hook(_hook), no_grad())[1],
    "hook on the norm": lambda conv, bn: (bn.register_forward_hook(_hook), no_grad())[1],
    "reference kernels": lambda conv, bn: kernels.use("reference"),  # no_grad is added below
    "gradients recorded": lambda conv, bn: contextlib.nullcontext(),
}


@pytest.mark.parametrize("case", PLAIN_PATH_CASES)
def test_conv_bn_takes_the_plain_path_when_it_must(conv_calls, case):
    rng = np.random.default_rng(3)
    conv, bn = trained_looking_pair(rng)
    x = Tensor(rng.standard_normal((2, 3, 5, 5)).astype(np.float32))
    with PLAIN_PATH_CASES[case](conv, bn), (no_grad() if case == "reference kernels" else contextlib.nullcontext()):
        got = nn.conv_bn(conv, bn, x)
        assert len(conv_calls) == 1, case
        expected = bn(conv(x))
    np.testing.assert_array_equal(got.numpy(), expected.numpy())


def test_a_conv_with_bias_is_not_fused(conv_calls):
    rng = np.random.default_rng(4)
    conv, bn = trained_looking_pair(rng, bias=True)
    x = Tensor(rng.standard_normal((2, 3, 5, 5)).astype(np.float32))
    with no_grad():
        got = nn.conv_bn(conv, bn, x)
    assert len(conv_calls) == 1
    np.testing.assert_array_equal(got.numpy(), bn(conv(x)).numpy())


@pytest.mark.parametrize("bad, message", [
    ("nan mean", "running_mean must be finite in evaluation mode"),
    ("negative var", "running_var must be finite and >= 0 in evaluation mode"),
    ("channels", "x has 4 channels"),
    ("gamma shape", r"weight must have shape \(5,\)"),
])
def test_bad_arguments_raise_the_layers_own_errors(bad, message):
    rng = np.random.default_rng(5)
    conv, bn = trained_looking_pair(rng)
    x = Tensor(rng.standard_normal((2, 3, 5, 5)).astype(np.float32))
    if bad == "nan mean":
        bn.running_mean[1] = np.nan
    elif bad == "negative var":
        bn.running_var[0] = -1.0
    elif bad == "channels":
        x = Tensor(rng.standard_normal((2, 4, 5, 5)).astype(np.float32))
    else:
        bn.weight = nn.Parameter(np.ones(4, np.float32))
    with no_grad(), pytest.raises(ValueError, match=message):
        nn.conv_bn(conv, bn, x)


@pytest.mark.parametrize("name", ["ms_resnet20", "srb_resnet20", "src_resnet20", "vanilla_resnet20",
                                  "wolif_resnet20", "plainnet20"])
def test_every_block_type_evaluates_to_the_same_logits_fused_or_not(conv_calls, name):
    """Evaluation with gradients recorded runs every layer as before; under no_grad the blocks'
    conv → BN pairs are fused. The logits must be equal bit for bit (a spike flipped by a last-bit
    difference anywhere would show), and 2 conv Functions fewer per block (9 blocks) must have run."""
    model = models.build(name, time_steps=2, seed=0)
    rng = np.random.default_rng(6)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean[...] = 0.1 * rng.standard_normal(module.num_features)
            module.running_var[...] = rng.random(module.num_features) + 0.5
            module.weight.data[...] = rng.random(module.num_features) + 0.3
    model.eval()
    x = Tensor(rng.standard_normal((3, 3, 16, 16)).astype(np.float32))
    plain = model(x).numpy()
    plain_calls = len(conv_calls)
    with no_grad():
        fused = model(x).numpy()
    np.testing.assert_array_equal(fused, plain)
    unfused_calls = len(conv_calls) - plain_calls
    if name.startswith("srb"):  # full pre-activation: BN → LIF → conv, no conv is followed by a BN
        assert unfused_calls == plain_calls
    else:  # the blocks' two pairs each ran fused (the stem and projection shortcuts still not)
        assert unfused_calls == plain_calls - 2 * 9
