"""The Module system, the layers, checkpoints, and the broadcast-over-time op."""

import os

import numpy as np
import pytest

from tinyspike import backend, nn
from tinyspike.autograd import Tensor
from tinyspike.gradcheck import gradcheck


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 3, generator=0)
        self.bn = nn.BatchNorm2d(3)
        self.body = nn.Sequential(nn.Linear(3, 3, generator=1), nn.Linear(3, 2, bias=False, generator=2))
        self.register_buffer("scratch", np.zeros(2, dtype=np.float32), persistent=False)

    def forward(self, x):
        return self.body(self.fc1(x))


# ---- Module ---------------------------------------------------------------------------------------


def test_parameters_and_buffers_are_registered_by_attribute_with_dotted_names():
    model = Tiny()
    names = [name for name, _ in model.named_parameters()]
    assert names == ["fc1.weight", "fc1.bias", "bn.weight", "bn.bias", "body.0.weight", "body.0.bias", "body.1.weight"]
    assert list(model.state_dict()) == names + ["bn.running_mean", "bn.running_var"]  # scratch: not persistent
    assert model.num_parameters() == 4 * 3 + 3 + 3 + 3 + 3 * 3 + 3 + 3 * 2
    assert isinstance(model.body[1], nn.Linear) and len(model.body) == 2


def test_reassigning_and_deleting_attributes_keeps_registries_consistent():
    model = Tiny()
    model.fc1 = nn.Linear(4, 3, bias=False)
    assert "fc1.bias" not in dict(model.named_parameters())
    model.fc1 = None
    assert "fc1.weight" not in dict(model.named_parameters())
    with pytest.raises(TypeError, match="bn"):
        model.bn = 3  # neither a Module nor None
    del model.body
    assert not any(name.startswith("body") for name, _ in model.named_parameters())


def test_train_eval_propagate_and_zero_grad_clears():
    model = Tiny()
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    out = model(Tensor(np.ones((2, 4), dtype=np.float32)))
    out.sum().backward()
    assert model.fc1.weight.grad is not None
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_forward_hook_sees_inputs_and_output_and_can_be_removed():
    model = Tiny()
    seen = []
    handle = model.body.register_forward_hook(lambda module, inputs, output: seen.append((module, inputs[0].shape, output.shape)))
    model(Tensor(np.ones((5, 4), dtype=np.float32)))
    assert seen == [(model.body, (5, 3), (5, 2))]
    handle.remove()
    model(Tensor(np.ones((5, 4), dtype=np.float32)))
    assert len(seen) == 1
    with model.fc1.register_forward_hook(lambda m, i, o: o * 0.0):  # a hook may replace the output
        assert np.all(model.fc1(Tensor(np.ones((1, 4), dtype=np.float32))).data == 0)


def test_load_state_dict_copies_in_place_and_names_missing_unexpected_and_misshaped_keys():
    source, target = Tiny(), Tiny()
    for p in source.parameters():
        p.data[...] = 0.5
    weight = target.fc1.weight
    target.load_state_dict(source.to_numpy_state())
    assert target.fc1.weight is weight and np.all(weight.data == 0.5)

    state = source.to_numpy_state()
    del state["body.0.bias"]
    with pytest.raises(KeyError, match="body.0.bias"):
        target.load_state_dict(state)
    state = source.to_numpy_state()
    state["extra.weight"] = np.zeros(1)
    with pytest.raises(KeyError, match="extra.weight"):
        target.load_state_dict(state)
    state = source.to_numpy_state()
    state["bn.running_var"] = np.ones(4, dtype=np.float32)
    before = target.fc1.weight.data.copy()
    with pytest.raises(ValueError, match="bn.running_var"):
        target.load_state_dict(state)
    np.testing.assert_array_equal(target.fc1.weight.data, before)  # nothing half-loaded
    state = source.to_numpy_state()
    del state["body.0.bias"]
    target.load_state_dict(state, strict=False)  # non-strict: missing keys keep their values


def test_checkpoint_round_trip_is_atomic_and_refuses_objects(tmp_path):
    model = Tiny()
    path = tmp_path / "sub" / "model.npz"
    nn.save_checkpoint(path, model, epoch=7, note="hello", schedule={"last_step": 3, "base_lrs": np.array([0.1])})
    assert sorted(os.listdir(path.parent)) == ["model.npz"]  # no temporary left behind
    other = Tiny()
    for p in other.parameters():
        p.data[...] = 0
    extras = nn.load_checkpoint(path, other)
    for (name, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert extras["epoch"] == 7 and extras["note"] == "hello" and extras["schedule"]["last_step"] == 3
    with np.load(path, allow_pickle=False) as data:
        assert "model/fc1.weight" in data.files
    with pytest.raises(TypeError, match="thing"):
        nn.save_checkpoint(path, model, thing=object())


def test_load_checkpoint_of_a_corrupt_file_names_it(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="broken.npz"):
        nn.load_checkpoint(path, Tiny())


# ---- layers ---------------------------------------------------------------------------------------


def test_init_is_kaiming_uniform_and_seeded():
    conv = nn.Conv2d(16, 32, 3, generator=5)
    bound = 1 / np.sqrt(16 * 9)
    w = conv.weight.data
    assert w.dtype == np.float32 and np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(float(w.mean())) < 0.05 * bound
    np.testing.assert_array_equal(w, nn.Conv2d(16, 32, 3, generator=5).weight.data)
    assert conv.bias is None and "bias" not in dict(conv.named_parameters())
    backend.seed(3)
    a = nn.Linear(8, 4).weight.data.copy()
    backend.seed(3)
    np.testing.assert_array_equal(a, nn.Linear(8, 4).weight.data)


def test_tdbn_starts_at_alpha_vth_and_normalises_over_time_and_batch():
    bn = nn.TDBatchNorm(3)
    np.testing.assert_array_equal(bn.weight.data, [0.5, 0.5, 0.5])
    np.testing.assert_array_equal(bn.bias.data, [0, 0, 0])
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (4, 2, 3, 5, 5)).astype(np.float32)  # [T, B, C, H, W]
    y = bn(Tensor(x)).data
    folded = x.reshape(8, 3, 5, 5)
    mean = folded.mean(axis=(0, 2, 3))
    std = np.sqrt(folded.var(axis=(0, 2, 3)) + 1e-5)
    np.testing.assert_allclose(y, 0.5 * (x - mean[:, None, None]) / std[:, None, None], atol=1e-5)
    n = folded.size // 3
    np.testing.assert_allclose(bn.running_mean, 0.1 * mean, rtol=1e-5)  # momentum 0.1 from 0
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * folded.var(axis=(0, 2, 3)) * n / (n - 1), rtol=1e-5)


def test_conv_linear_pool_accept_time_first_input_and_fold_time():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 4, 8, 8)).astype(np.float32)
    for layer in (nn.Conv2d(4, 6, 3, stride=2, padding=1, generator=0), nn.AvgPool2d(2), nn.MaxPool2d(2), nn.GlobalAvgPool2d()):
        five = layer(Tensor(x)).data
        steps = np.stack([layer(Tensor(x[t])).data for t in range(3)])
        np.testing.assert_allclose(five, steps, rtol=1e-5, atol=1e-6, err_msg=type(layer).__name__)
    flat = nn.Flatten()(Tensor(x))
    assert flat.shape == (3, 2, 4 * 64)
    assert nn.Flatten()(Tensor(x[0])).shape == (2, 256)
    assert nn.Linear(256, 5)(flat).shape == (3, 2, 5)


def test_lif_monitoring_records_rates_only_when_on():
    lif = nn.LIF()
    x = Tensor(np.full((4, 2, 3), 0.3, dtype=np.float32))  # u: 0.3, 0.375, 0.39.., never > 0.5
    lif(x)
    assert lif.firing_rate is None
    nn.set_monitoring(lif, True)
    x = Tensor(np.full((4, 2, 3), 0.6, dtype=np.float32))  # fires every step
    lif(x)
    assert lif.firing_rate == 1.0 and lif.num_neurons == 3 and lif.time_steps == 4 and lif.batch_size == 2
    assert lif.spike_count == 24.0


def test_dropout_is_identity_in_eval_and_seeded_in_training():
    x = Tensor(np.ones((100,), dtype=np.float32))
    drop = nn.Dropout(0.5, generator=0)
    a = drop(x).data
    assert set(np.unique(a)) == {0.0, 2.0}
    np.testing.assert_array_equal(a, nn.Dropout(0.5, generator=0)(x).data)
    drop.eval()
    assert drop(x) is x
    with pytest.raises(ValueError, match="p"):
        nn.Dropout(1.0)


def test_layer_argument_errors_name_the_argument():
    with pytest.raises(ValueError, match="out_channels"):
        nn.Conv2d(3, 0, 3)
    with pytest.raises(ValueError, match="num_features"):
        nn.BatchNorm2d(-1)
    with pytest.raises(ValueError, match="time first"):
        nn.LIF()(Tensor(np.ones(3, dtype=np.float32)))
    with pytest.raises(ValueError, match="shape"):
        nn.BatchNorm2d(3)(Tensor(np.ones((2, 3), dtype=np.float32)))
    with pytest.raises(TypeError, match="alpha"):  # a string is the wrong kind of value, not a wrong number
        nn.TDBatchNorm(3, alpha="1")


# ---- broadcast over time --------------------------------------------------------------------------


def test_broadcast_time_forward_is_a_view_and_backward_sums_over_time():
    x = np.random.default_rng(0).standard_normal((2, 3))
    y = nn.broadcast_time(Tensor(x), 4)
    assert y.shape == (4, 2, 3) and np.shares_memory(y.data, x)
    assert gradcheck(lambda t: nn.broadcast_time(t, 3) * Tensor(np.arange(18.0).reshape(3, 2, 3)), x)
    with pytest.raises(ValueError, match="time_steps"):
        nn.broadcast_time(Tensor(x), 0)


def test_a_conv_declared_spike_input_saves_spikes_compactly(monkeypatch):
    from tinyspike import functional as conv_module  # layers call F.conv2d
    from tinyspike.autograd import no_grad

    x = Tensor(np.random.default_rng(0).standard_normal((2, 1, 3, 4, 4)).astype(np.float32))
    seen = []
    original = conv_module.conv2d
    monkeypatch.setattr(conv_module, "conv2d", lambda *a, **k: seen.append(k["spike_input"]) or original(*a, **k))
    declared = nn.Conv2d(3, 2, 3, padding=1, spike_input=True)
    y = declared(nn.LIF()(x))
    assert y.grad_fn.ctx.saved_tensors[0].dtype == np.bool_  # the spikes, 1 byte each
    nn.Conv2d(3, 2, 3, padding=1)(nn.LIF()(x))  # not declared: saved as float
    with no_grad():
        declared(nn.LIF()(x))  # nothing saved: no copy, no check
    assert seen == [True, False, False]
    with pytest.raises(ValueError, match="spike_input=True but x holds values other than 0 and 1"):
        declared(x)
