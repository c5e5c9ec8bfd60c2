"""Energy by the paper's method (REFERENCE §8): formulas, the paper's checks, and the hook-based
counter against hand computations on networks whose spikes are known in advance."""

from __future__ import annotations

import numpy as np
import pytest

from tinyspike import backend
from tinyspike.analysis.energy import (
    E_AC, E_MAC, EnergyCounter, conv_macs, energy_ann, energy_snn, format_count, measure_energy, syops,
)


def resnet34_imagenet_flops() -> int:
    """Residual-path conv MACs of MS-ResNet-34 (stage maps 56/28/14/7), by the formula."""
    total, c_in = 0, 64
    for blocks, width, size in zip((3, 4, 6, 3), (64, 128, 256, 512), (56, 28, 14, 7)):
        for b in range(blocks):
            total += conv_macs(c_in if b == 0 else width, width, 3, size)  # conv1 (carries the stride)
            total += conv_macs(width, width, 3, size)  # conv2
        c_in = width
    return total


def resnet20_cifar_flops(size=32) -> int:
    total, c_in = 0, 16
    for width, s in zip((16, 32, 64), (size, size // 2, size // 4)):
        for b in range(3):
            total += conv_macs(c_in if b == 0 else width, width, 3, s) + conv_macs(width, width, 3, s)
        c_in = width
    return total


def test_conv_macs_formula():
    assert conv_macs(16, 32, 3, 16) == 32 * 16 * 9 * 256
    assert conv_macs(16, 32, (3, 1), (4, 5)) == 32 * 16 * 3 * 1 * 20
    assert conv_macs(8, 8, 3, 4, groups=8) == 8 * 1 * 9 * 16
    with pytest.raises(ValueError, match="groups"):
        conv_macs(6, 8, 3, 4, groups=4)
    with pytest.raises(ValueError, match="c_in"):
        conv_macs(0, 8, 3, 4)


def test_reference_section8_checks():
    # ImageNet MS-ResNet-34: 3.53 G FLOPs, E(ANN) = 16.22 mJ
    flops = resnet34_imagenet_flops()
    assert flops == 3_525_967_872
    assert format_count(flops) == "3.53 G"
    assert round(energy_ann(flops) * 1e3, 2) == 16.22
    # the paper's arithmetic, from the rounded 3.53 G: T = 6, r = 0.225 -> 4.77 G SyOPs, 4.29 mJ, x3.78
    paper_syops = syops(3.53e9, 6, 0.225)
    assert round(paper_syops / 1e9, 2) == 4.77
    assert round(energy_snn(paper_syops) * 1e3, 2) == 4.29
    # the paper's x3.78 is the ratio of its two rounded energies
    assert round(round(energy_ann(flops) * 1e3, 2) / round(energy_snn(paper_syops) * 1e3, 2), 2) == 3.78
    # unrounded, the ratio is E_MAC / (E_AC * T * r) whatever the FLOPs
    assert energy_ann(flops) / energy_snn(syops(flops, 6, 0.225)) == pytest.approx(4.6 / (0.9 * 6 * 0.225))
    # CIFAR10-DVS MS-ResNet-20: 40.11 M FLOPs per frame, E(ANN) = 184.5 uJ
    dvs = resnet20_cifar_flops(32)
    assert dvs == 40_108_032
    assert format_count(dvs) == "40.11 M"
    assert round(energy_ann(dvs) * 1e6, 1) == 184.5


def test_syops_rejects_bad_rates():
    with pytest.raises(ValueError, match="firing_rate"):
        syops(100, 4, 1.5)
    with pytest.raises(ValueError, match="time_steps"):
        syops(100, 0, 0.5)


# ------------------------------------------------------------------------ hooks on real layers

nn = pytest.importorskip("tinyspike.nn")


class KnownSpikes(nn.Module):
    """stem (1x1 identity conv) -> LIF -> two convs on the spikes, plus a shortcut projection.

    With the input constant over time and each value 0 or 1, the identity stem passes it to the
    LIF unchanged: u = 1 > V_th fires at every step (and after the reset u = 1 again), u = 0 never
    does. So the spikes equal the input, and the firing rate is the fraction of ones.
    """

    def __init__(self, c=3):
        super().__init__()
        self.stem = nn.Conv2d(c, c, 1)
        self.stem.weight.data[...] = backend.to_device(np.eye(c, dtype=np.float32).reshape(c, c, 1, 1))
        self.lif = nn.LIF()
        self.conv_a = nn.Conv2d(c, 5, 3, padding=1)
        self.conv_b = nn.Conv2d(c, 4, 3, stride=2, padding=1)
        self.shortcut = nn.Conv2d(c, 5, 1)

    def forward(self, x, time_steps=None):
        s = self.lif(self.stem(x))
        return self.conv_a(s), self.conv_b(s), self.shortcut(x)


def _pattern(rng, t, b, c, h, w, p):
    frame = (rng.random((1, b, c, h, w)) < p).astype(np.float32)
    return np.repeat(frame, t, axis=0)


def test_counter_equals_hand_computation():
    rng = np.random.default_rng(1)
    T, B, C, H, W = 4, 2, 3, 6, 6
    x = _pattern(rng, T, B, C, H, W, 0.3)
    model = KnownSpikes(C)
    with EnergyCounter(model) as counter:
        model(backend.to_device(x))
        report = counter.report(T, images=B)
    r = x.sum(dtype=np.float64) / x.size  # the spikes equal the input
    roles = {l.name: l.role for l in report.layers}
    assert roles == {"stem": "stem", "conv_a": "spike", "conv_b": "spike", "shortcut": "shortcut"}
    macs_a = 5 * 3 * 9 * 6 * 6
    macs_b = 4 * 3 * 9 * 3 * 3
    by_name = {l.name: l for l in report.layers}
    assert by_name["conv_a"].macs == macs_a and by_name["conv_b"].macs == macs_b
    assert by_name["conv_a"].input_rate == pytest.approx(r, abs=0, rel=1e-12)
    assert report.flops == macs_a + macs_b  # stem and shortcut not counted
    hand_syops = (macs_a + macs_b) * T * r
    assert report.syops == pytest.approx(hand_syops, rel=1e-12)
    assert report.energy_snn == pytest.approx(hand_syops * 0.9e-12, rel=1e-12)
    assert report.energy_ann == pytest.approx((macs_a + macs_b) * 4.6e-12, rel=1e-12)
    assert report.ratio == pytest.approx(4.6 / (0.9 * T * r), rel=1e-9)
    assert report.input_rate == pytest.approx(r, rel=1e-12)
    assert "E(ANN) / E(SNN)" in report.table()
    d = report.to_dict()
    assert d["flops"] == macs_a + macs_b and d["E_MAC_J"] == E_MAC and d["E_AC_J"] == E_AC


def test_rates_are_averaged_over_batches_by_element():
    rng = np.random.default_rng(2)
    T, C = 2, 3
    x1 = _pattern(rng, T, 2, C, 4, 4, 0.1)
    x2 = _pattern(rng, T, 6, C, 4, 4, 0.7)
    model = KnownSpikes(C)
    report = measure_energy(model, [backend.to_device(x1), (backend.to_device(x2), None)], time_steps=T)
    expected = (x1.sum() + x2.sum()) / (x1.size + x2.size)
    conv_a = next(l for l in report.layers if l.name == "conv_a")
    assert conv_a.input_rate == pytest.approx(expected, rel=1e-12)
    assert report.images == 8


def test_real_valued_input_is_not_spike_driven():
    class Real(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(2, 2, 1)
            self.conv = nn.Conv2d(2, 3, 3, padding=1)

        def forward(self, x, time_steps=None):
            return self.conv(self.stem(x))

    model = Real()
    x = backend.to_device(np.random.default_rng(0).standard_normal((2, 1, 2, 4, 4)).astype(np.float32))
    with EnergyCounter(model) as counter:
        model(x)
        report = counter.report(2)
    layer = report.layers[1]
    assert layer.role == "non-spike" and layer.input_rate is None and layer.syops == 0
    assert layer.mac_ops == 3 * 2 * 9 * 16 * 2
    assert report.energy_snn == pytest.approx(layer.mac_ops * E_MAC)


models = pytest.importorskip("tinyspike.models")


def test_dvs_resnet20_counts_40_11_M_per_frame():
    backend.seed(0)
    model = models.build("ms_resnet20_dvs", num_classes=10)
    frames = backend.to_device((np.random.default_rng(0).random((1, 1, 2, 128, 128)) < 0.05).astype(np.float32))
    report = measure_energy(model, [frames], time_steps=1)
    assert report.flops == 40_108_032
    assert round(report.energy_ann * 1e6, 1) == 184.5
    roles = [l.role for l in report.layers]
    assert roles.count("stem") == 1 and roles.count("shortcut") == 3 and roles.count("spike") == 18  # stride 2 in all three stages


def test_imagenet_resnet34_counts_3_53_G():
    backend.seed(0)
    model = models.build("ms_resnet34_imagenet", num_classes=1000)
    image = backend.to_device(np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32))
    report = measure_energy(model, [image], time_steps=1)
    assert report.flops == 3_525_967_872
