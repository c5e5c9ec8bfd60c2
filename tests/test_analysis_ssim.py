"""SSIM of firing-rate maps (tinyspike.analysis.ssim): the NumPy SSIM against scikit-image and SciPy,
the maps against hooks on the LIF layers, and the run's outputs."""

import json

import numpy as np
import pytest
from skimage.metrics import structural_similarity
from scipy import ndimage

from tinyspike import models
from tinyspike.analysis import ssim as S
from tinyspike.analysis.source import AnalysisSource

TINY = dict(widths=(4, 8, 8), time_steps=2, seed=0)


def _skimage(a, b, full=False):
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=1.0, full=full)


def _pairs():
    rng = np.random.default_rng(0)
    noise = rng.random((24, 24))
    yield noise, rng.random((24, 24))                                   # unrelated
    yield noise, np.clip(noise + 0.1 * rng.standard_normal((24, 24)), 0, 1)  # related
    y, x = np.mgrid[0:16, 0:20] / 20.0
    yield np.sin(6 * x) ** 2 * y, np.cos(4 * y) ** 2 * x                 # smooth structure
    checker = ((np.indices((16, 16)).sum(0) % 2) * 1.0)
    yield checker, np.roll(checker, 1, axis=0)                          # anti-correlated
    yield np.zeros((12, 12)), rng.random((12, 12)) * 0.3                # a silent map


@pytest.mark.parametrize("index", range(5))
def test_ssim_equals_scikit_image(index):
    a, b = list(_pairs())[index]
    # both sum the same products in float64; orders differ slightly: 1e-12 absolute
    assert S.ssim(a, b, crop_border=True) == pytest.approx(_skimage(a, b), abs=1e-12)
    assert S.ssim(a, b) == pytest.approx(_skimage(a, b, full=True)[1].mean(), abs=1e-12)


def test_identical_maps_give_exactly_one():
    for a, _ in _pairs():
        assert S.ssim(a, a) == 1.0 and S.ssim(a, a, crop_border=True) == 1.0


@pytest.mark.parametrize("shape", [(4, 4), (8, 8), (3, 9), (32, 32)])
def test_gaussian_filter_equals_scipy_reflect_even_below_the_window(shape):
    image = np.random.default_rng(1).random(shape)
    expected = ndimage.gaussian_filter(image, sigma=1.5, mode="reflect", truncate=3.5)
    np.testing.assert_allclose(S.gaussian_filter(image), expected, rtol=0, atol=1e-14)


def test_ssim_refuses_bad_maps():
    with pytest.raises(ValueError, match="same shape"):
        S.ssim(np.zeros((8, 8)), np.zeros((8, 9)))
    with pytest.raises(ValueError, match="crop_border"):
        S.ssim(np.zeros((8, 8)), np.zeros((8, 8)), crop_border=True)
    with pytest.raises(ValueError, match="data_range"):
        S.ssim(np.zeros((8, 8)), np.zeros((8, 8)), data_range=0.0)


def _lif_outputs(model, names, images):
    """Mean over T, B, C of each named LIF's output, read with a hook (independent of the analysis)."""
    modules, seen = dict(model.named_modules()), {}

    def recorder(name):
        def hook(module, inputs, output):
            seen[name] = output.numpy().astype(np.float64).mean(axis=(0, 1, 2))  # returns None: output kept

        return hook

    handles = [modules[n].register_forward_hook(recorder(n)) for n in names]
    model.eval()
    model(images)
    for h in handles:
        h.remove()
    return [seen[n] for n in names]


def test_ms_stream_maps_are_the_lif1_outputs_and_the_head_lif():
    model = models.build("ms_resnet14", **TINY)
    images = np.random.default_rng(2).standard_normal((3, 3, 16, 16)).astype(np.float32)
    maps = S.firing_rate_maps(model, [images])
    blocks = [n for n, _ in model.named_modules() if n.count(".") == 2 and n.startswith("stages")]
    expected = _lif_outputs(model, [f"{b}.lif1" for b in blocks] + ["head_lif"], images)
    assert maps.names == blocks + ["head"]
    for got, want in zip(maps.maps, expected):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    lif2 = S.firing_rate_maps(model, [images], position="lif2")
    for got, want in zip(lif2.maps, _lif_outputs(model, [f"{b}.lif2" for b in blocks], images)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_vanilla_stream_maps_are_the_stem_and_block_output_spikes():
    model = models.build("vanilla_resnet8", **TINY)
    images = np.random.default_rng(3).standard_normal((2, 3, 16, 16)).astype(np.float32)
    maps = S.firing_rate_maps(model, [images])
    names = ["stem.lif", "stages.0.0.lif2", "stages.1.0.lif2", "stages.2.0.lif2"]
    for got, want in zip(maps.maps, _lif_outputs(model, names, images)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    result = S.consecutive_ssim(maps)
    assert result.values[1:] == [None, None]  # 16×16 → 8×8 → 4×4: stage changes skipped
    assert result.values[0] == pytest.approx(S.ssim(np.array(maps.maps[0]), np.array(maps.maps[1])), abs=0)


def test_run_ssim_writes_outputs_and_ms_at_init_is_self_similar(tmp_path):
    source = AnalysisSource.from_model("ms_resnet14", "digits", model_opts={"widths": [4, 8, 8]}, time_steps=2)
    result = S.run_ssim(source, tmp_path, batch_size=8, compare=["vanilla_resnet14"])
    assert json.loads((tmp_path / "ssim.json").read_text()) == result
    assert (tmp_path / "ssim.png").read_bytes()[:4] == b"\x89PNG"
    ms, vanilla = result["results"]
    assert ms["pairs"][0] == "stages.0.0 -> stages.0.1"
    # γ₂ = 0: every same-shape MS block is the identity at init, so its stream map repeats exactly
    same_shape = [v for v, p in zip(ms["values"], ms["pairs"]) if v is not None and not p.endswith(".0")]
    assert same_shape and all(v == 1.0 for v in same_shape)
    assert any(v is not None and v < 0.999 for v in vanilla["values"])
    with pytest.raises(ValueError, match="batch_size"):
        S.run_ssim(source, tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="position"):
        S.run_ssim(source, tmp_path, position="soma")


def test_model_without_blocks_is_refused():
    with pytest.raises(ValueError, match="model has no residual blocks"):
        S.firing_rate_maps(models.build("ms_resnet8", **TINY).stem, [np.zeros((1, 3, 8, 8), np.float32)])


def _deep_result(blocks_per_stage: int, model: str = "m") -> S.SSIMResult:
    """The pairs of a 3-stage CIFAR network (blocks_per_stage blocks per stage, then the head),
    None at the two stage changes, as consecutive_ssim gives them."""
    names = [f"stages.{s}.{b}" for s in range(3) for b in range(blocks_per_stage)] + ["head"]
    sizes = [[32 >> s, 32 >> s] for s in range(3) for _ in range(blocks_per_stage)] + [[8, 8]]
    pairs = [f"{a} -> {b}" for a, b in zip(names, names[1:])]
    rng = np.random.default_rng(1)
    values = [None if sizes[i] != sizes[i + 1] else float(rng.uniform(0.8, 1.0)) for i in range(len(pairs))]
    return S.SSIMResult(model=model, position="stream", pairs=pairs, values=values, sizes=sizes)


@pytest.mark.parametrize("blocks_per_stage", [3, 9, 18])  # depths 20, 56, 110
def test_radar_labels_about_a_dozen_spokes_and_marks_the_stage_changes(blocks_per_stage):
    result = _deep_result(blocks_per_stage)
    figure = S.plot_ssim([result], "a title")
    figure.canvas.draw()
    ax = figure.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    measured = [i for i, v in enumerate(result.values) if v is not None]
    changes = [i for i, v in enumerate(result.values) if v is None]
    assert len(labels) == len(result.pairs)  # every pair keeps its spoke, stage changes included
    named = [i for i, text in enumerate(labels) if text]
    assert named[0] == measured[0] and set(named) <= set(measured)
    assert min(len(measured), 12) <= len(named) <= 16, len(named)
    # each stage change is a dashed spoke, named once in the legend
    angles = np.linspace(0, 2 * np.pi, len(result.pairs), endpoint=False)
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert sorted(float(line.get_xdata()[0]) for line in dashed) == pytest.approx(angles[changes], abs=1e-12)
    assert any("stage change" in text.get_text() for text in ax.get_legend().get_texts())
    # the outer ring is 1.0 and carries no radial label (its value is in the title)
    assert ax.get_ylim()[1] == 1.0
    assert max(ax.get_yticks()) < 1.0 - 1e-9
    # the outline breaks at the stage changes: one line per stage, none crossing a changed spoke
    outlines = [line for line in ax.lines if line.get_linestyle() == "-"]
    assert len(outlines) == 3
    for line in outlines:
        inside = set(np.round(line.get_xdata(), 12))
        assert not inside & set(np.round(angles[changes], 12))


def test_radar_title_is_wrapped_inside_the_figure():
    title = "firing-pattern similarity - ms_resnet56 [zero_init_residual=false] on cifar10 (checkpoint " + \
            "/a/very/long/absolute/path/to/a/run/folder/of/some/study/best.npz)"
    figure = S.plot_ssim([_deep_result(9), _deep_result(9, "other")], title)
    figure.canvas.draw()
    box = figure._suptitle.get_window_extent()
    width = figure.get_figwidth() * figure.dpi
    assert box.x0 >= 0 and box.x1 <= width, (box, width)
