"""Per-LIF firing rates and spike rasters (tinyspike.analysis.firing_plots) against hand counts
read by hooks, FiringRateMonitor, and the outputs of run_firing / run_raster."""

import json

import numpy as np
import pytest

from tinyspike import models
from tinyspike.analysis import firing_plots as P
from tinyspike.analysis.firing import FiringRateMonitor
from tinyspike.analysis.source import AnalysisSource
from tinyspike.autograd import no_grad

TINY = dict(widths=(4, 8, 8), time_steps=2, seed=0)


def _images(b=3, seed=0):
    return np.random.default_rng(seed).standard_normal((b, 3, 16, 16)).astype(np.float32)


def _record_outputs(model, names):
    modules, seen = dict(model.named_modules()), {}

    def recorder(name):
        def hook(module, inputs, output):
            seen.setdefault(name, []).append(output.numpy().copy())  # returns None: output kept

        return hook

    return seen, [modules[n].register_forward_hook(recorder(n)) for n in names]


def test_rates_equal_a_hand_count_and_the_monitor():
    model = models.build("ms_resnet14", **TINY).eval()
    batches = [_images(seed=1), _images(b=2, seed=2)]
    result = P.layer_firing_rates(model, batches)
    seen, handles = _record_outputs(model, result.names)
    with FiringRateMonitor(model) as monitor, no_grad():
        for x in batches:
            model(x)
    for h in handles:
        h.remove()
    hand = [sum(o.sum() for o in seen[n]) / sum(o.size for o in seen[n]) for n in result.names]
    assert result.rates == pytest.approx(hand, abs=1e-12)
    assert result.rates == pytest.approx(list(monitor.rates().values()), abs=0)
    assert result.mean_rate == pytest.approx(monitor.mean_rate(), abs=0)
    assert result.samples == 5
    assert result.roles[:2] == ["lif1", "lif2"] and result.roles[-1] == "head"
    # stage changes are blocks stages.1.0 and stages.2.0 (stride 2); their first LIF is marked
    assert [result.names[i] for i in result.stage_changes] == ["stages.1.0.lif1", "stages.2.0.lif1"]


def test_roles_of_a_vanilla_network():
    model = models.build("vanilla_resnet8", **TINY)
    result = P.layer_firing_rates(model, [_images()], batch_statistics=True)
    assert result.roles == ["stem", "lif1", "lif2", "lif1", "lif2", "lif1", "lif2"]
    assert result.stage_changes == [3, 5]
    assert model.training  # left in the mode it was in


def test_raster_spikes_are_the_lif_outputs_at_the_chosen_neurons():
    model = models.build("ms_resnet14", **TINY).eval()
    image = _images(b=1, seed=4)
    raster = P.spike_raster(model, image, neurons=30, seed=7)
    names = [n for n, _ in model.named_modules() if n.endswith("lif1") or n.endswith("lif2") or n == "head_lif"]
    assert raster.layers == [names[0], names[len(names) // 2], names[-1]]
    seen, handles = _record_outputs(model, raster.layers)
    with no_grad():
        model(image)
    for h in handles:
        h.remove()
    rng = np.random.default_rng(7)
    for name, picked, spikes in zip(raster.layers, raster.neurons, raster.spikes):
        out = seen[name][0][:, 0].reshape(2, -1)
        assert picked == sorted(rng.choice(out.shape[1], size=30, replace=False).tolist())
        assert np.array_equal(np.asarray(spikes), out[:, picked])
    everything = P.spike_raster(model, image, layers=["head_lif"], neurons=10_000)
    assert len(everything.neurons[0]) == 8 * 4 * 4  # capped at the layer's size


def test_bad_input_is_named():
    model = models.build("ms_resnet8", **TINY)
    with pytest.raises(ValueError, match="neurons must be"):
        P.spike_raster(model, _images(b=1), neurons=0)
    with pytest.raises(ValueError, match="layers names no LIF layer"):
        P.spike_raster(model, _images(b=1), layers=["stages.9.lif1"])
    with pytest.raises(ValueError, match="model has no LIF layers"):
        P.layer_firing_rates(model.fc, [_images()])
    source = AnalysisSource.from_model("ms_resnet8", "digits", model_opts={"widths": [4, 8, 8]}, time_steps=2)
    with pytest.raises(ValueError, match="batch_size must be"):
        P.run_firing(source, "/tmp/unused", batch_size=0)
    with pytest.raises(ValueError, match="neurons must be"):
        P.run_raster(source, "/tmp/unused", neurons=0)
    with pytest.raises(ValueError, match="sample must be"):
        P.run_raster(source, "/tmp/unused", sample=10 ** 6)


def test_run_firing_and_run_raster_write_their_outputs(tmp_path):
    source = AnalysisSource.from_model("ms_resnet8", "digits", model_opts={"widths": [4, 8, 8]}, time_steps=2)
    firing = P.run_firing(source, tmp_path, batch_size=8, batches=2)
    assert json.loads((tmp_path / "firing.json").read_text()) == firing
    assert firing["options"]["batch_statistics"] is True  # untrained: "auto" uses batch statistics
    data = list(source.batches("test", batch_size=8, limit=2))
    direct = P.layer_firing_rates(source.model, data, source.time_steps, batch_statistics=True)
    assert firing["result"]["rates"] == pytest.approx(direct.rates, abs=0)
    raster = P.run_raster(source, tmp_path, neurons=20, sample=9)
    image = data[1][0][1:2]  # test sample 9 = the second batch's second image
    direct = P.spike_raster(source.model, image, neurons=20, time_steps=2, batch_statistics=True)
    assert raster["result"]["spikes"] == direct.spikes
    for name in ("firing.png", "raster.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_raster_keeps_the_top_neurons_visible_and_counts_in_the_title():
    # neuron 99 (the top row) spikes at every step: nothing may cover it, and the axis ends at 99.5
    spikes = np.zeros((4, 100), dtype=int)
    spikes[:, 99] = 1
    spikes[0, 0] = 1
    result = P.RasterResult(model="m", layers=["a", "b"], neurons=[list(range(100))] * 2,
                            spikes=[spikes.tolist(), spikes[:, :50].tolist()], shapes=[[4, 5, 5], [2, 5, 5]], sample=0)
    figure = P.plot_raster(result, "t")
    for ax, n, total in zip(figure.axes, (100, 50), (5, 1)):
        assert ax.get_legend() is None
        assert ax.get_ylim() == (-0.5, n - 0.5)
        assert f"{total} spike{'s' if total != 1 else ''}," in ax.get_title()
