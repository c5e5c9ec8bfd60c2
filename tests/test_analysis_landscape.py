"""The loss landscape (Fig. 4, Li et al. 2018): filter-normalised directions, the centre of the
grid is the model's own loss, the weights come back exactly, an interrupted scan resumes to the
same grid, and bad options fail clearly. Tiny model: MS-ResNet-8 at widths 4/8/8, T = 2, 8×8 digits.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from badinput.bad_input import assert_clear
from tinyspike import models
from tinyspike.analysis import landscape
from tinyspike.analysis.landscape import (
    evaluate_loss, landscape_directions, loss_landscape, plot_landscape, run_landscape,
)
from tinyspike.analysis.source import AnalysisSource
from tinyspike.autograd import no_grad
from tinyspike.functional.loss import cross_entropy


@pytest.fixture(scope="module")
def source():
    return AnalysisSource.from_model("ms_resnet8", "digits", model_opts={"widths": [4, 8, 8]},
                                     data_opts={"size": 8}, time_steps=2, seed=0)


def perturb_model(model, seed=3):
    """Make every parameter (BN γ/β included) non-trivial, so that a direction left at the trained
    value or a restore that misses one would show."""
    rng = np.random.default_rng(seed)
    for _, p in model.named_parameters():
        p.data[...] = p.data + rng.normal(0, 0.1, p.shape).astype(p.dtype)


def test_directions_are_filter_normalised_and_zero_on_bn_and_biases():
    model = models.build("ms_resnet8", widths=(4, 8, 8), time_steps=2, seed=0)
    perturb_model(model)
    delta, eta = landscape_directions(model, seed=5)
    filter_weights = 0
    for name, p in model.named_parameters():
        w = np.asarray(p.data, dtype=np.float64)
        for d in (delta[name], eta[name]):
            assert d.shape == w.shape and d.dtype == p.dtype
            if w.ndim >= 2:
                axes = tuple(range(1, w.ndim))
                # norms of float32 directions vs float64 weights: rtol 1e-5 covers the cast
                np.testing.assert_allclose(np.sqrt((d.astype(np.float64) ** 2).sum(axis=axes)),
                                           np.sqrt((w ** 2).sum(axis=axes)), rtol=1e-5)
            else:  # BN γ/β, the stem conv's and the FC's bias: left out
                assert not np.any(d), name
        filter_weights += w.ndim >= 2
    assert filter_weights >= 9  # stem, 3 blocks × 2 convs, 2 shortcut convs, fc
    assert not np.array_equal(delta["fc.weight"], eta["fc.weight"])  # two different directions
    again, _ = landscape_directions(model, seed=5)
    assert all(np.array_equal(again[k], delta[k]) for k in delta)  # the seed fixes them


def test_centre_is_the_models_own_loss_and_weights_are_restored_exactly(source):
    model = source.model
    perturb_model(model)
    batches = list(source.batches("train", batch_size=16, limit=2))
    before = {k: np.array(v, copy=True) for k, v in model.state_dict().items()}
    result = loss_landscape(model, batches, time_steps=2, grid=3, span=0.5, seed=0)
    # the independent loss: the same model, eval mode, plain cross-entropy over the same 32 images
    model.eval()
    with no_grad():
        losses = [float(cross_entropy(model(x, time_steps=2), y).item()) * len(y) for x, y in batches]
    expected = sum(losses) / sum(len(y) for _, y in batches)
    # the centre puts θ* + 0·δ + 0·η = θ* back exactly, so the same float32 forward: rtol 1e-6
    assert result.centre_loss() == pytest.approx(expected, rel=1e-6)
    assert result.complete and result.loss.shape == (3, 3)
    assert np.ptp(result.loss) > 0  # a step of span 0.5 along the directions changes the loss
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)  # bit for bit, buffers included


def test_a_perturbed_point_is_the_loss_of_the_moved_weights(source):
    model = source.model
    batches = list(source.batches("train", batch_size=16, limit=1))
    result = loss_landscape(model, batches, time_steps=2, grid=2, span=0.75, seed=2)
    delta, eta = landscape_directions(model, seed=2)
    params = dict(model.named_parameters())
    saved = {k: p.data.copy() for k, p in params.items()}
    for name, p in params.items():  # corner (α, β) = (-0.75, 0.75), moved by hand
        p.data[...] = saved[name] + np.float32(-0.75) * delta[name] + np.float32(0.75) * eta[name]
    model.eval()
    by_hand, _ = evaluate_loss(model, batches, time_steps=2)
    for name, p in params.items():
        p.data[...] = saved[name]
    assert result.loss[0, 1] == pytest.approx(by_hand, rel=1e-6)  # same float32 arithmetic


class Interrupt(Exception):
    pass


def test_interrupted_scan_resumes_to_the_same_grid(source, tmp_path, monkeypatch):
    options = dict(grid=3, span=1.0, batches=1, batch_size=16, seed=0, progress=False)
    whole = run_landscape(source, tmp_path / "whole", **options)

    real = landscape.evaluate_loss
    calls = []

    def failing_after_four(*args, **kwargs):
        if len(calls) == 4:
            raise Interrupt("stopped")
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(landscape, "evaluate_loss", failing_after_four)
    with pytest.raises(Interrupt):
        run_landscape(source, tmp_path / "cut", **options)
    partial = json.loads((tmp_path / "cut" / "landscape.json").read_text())
    assert partial["points_done"] == 4 and not partial["complete"]

    calls.clear()
    monkeypatch.setattr(landscape, "evaluate_loss", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    resumed = run_landscape(source, tmp_path / "cut", **options)
    assert len(calls) == 9 - 4  # only the missing points
    assert resumed["loss"] == whole["loss"] and resumed["accuracy"] == whole["accuracy"]  # deterministic: exact
    assert (tmp_path / "cut" / "landscape.png").stat().st_size > 10_000

    calls.clear()
    again = run_landscape(source, tmp_path / "cut", **options)  # finished: nothing recomputed
    assert len(calls) == 0 and again["loss"] == whole["loss"]
    run_landscape(source, tmp_path / "cut", **{**options, "seed": 1})  # other directions: a new scan
    assert len(calls) == 9


def test_json_and_plot_describe_the_scan(source, tmp_path):
    result = run_landscape(source, tmp_path, grid=3, span=0.5, batches=1, batch_size=8, progress=False)
    assert result["alphas"] == [-0.5, 0.0, 0.5] and result["betas"] == [-0.5, 0.0, 0.5]
    assert result["centre_loss"] == result["loss"][1][1]
    assert result["min_loss"] <= result["centre_loss"] <= result["max_loss"]
    assert "ms_resnet8 [widths=[4, 8, 8]] on digits" in result["title"] and "untrained, seed 0" in result["title"]
    stored = json.loads((tmp_path / "landscape.json").read_text())
    assert stored["loss"] == result["loss"] and stored["complete"]
    fig = plot_landscape(landscape.LandscapeResult(np.array(result["alphas"]), np.array(result["betas"]),
                                                   np.array(result["loss"]), np.array(result["accuracy"])), "t")
    contour, surface = fig.axes[0], [ax for ax in fig.axes if ax.name == "3d"][0]
    assert contour.get_xlabel().startswith("α") and "nats" in surface.get_zlabel()
    assert len(fig.axes) == 3  # contour, surface, colour bar


# ---- bad input -----------------------------------------------------------------------------------

NOT_INTS = st.sampled_from(["3", 3.0, None, True, [3], float("nan"), object()])
NOT_POSITIVE_REALS = st.one_of(
    st.sampled_from([float("nan"), float("inf"), -float("inf"), np.float32("nan"), "1.0", None, True, [1.0]]),
    st.floats(max_value=0.0, allow_nan=False),
)


@settings(max_examples=25, deadline=None)
@given(grid=st.one_of(st.integers(max_value=1), NOT_INTS))
def test_bad_grid_is_refused(source, tmp_path_factory, grid):
    message = assert_clear("run_landscape grid", lambda: run_landscape(source, tmp_path_factory.mktemp("g"), grid=grid),
                           ["grid"], grid)
    if isinstance(grid, int) and not isinstance(grid, bool):
        assert "grid must be an int >= 2" in message


@settings(max_examples=25, deadline=None)
@given(span=NOT_POSITIVE_REALS)
def test_bad_span_is_refused(source, tmp_path_factory, span):
    assert_clear("run_landscape span", lambda: run_landscape(source, tmp_path_factory.mktemp("s"), span=span),
                 ["span"], span)


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(["batches", "batch_size", "seed"]), value=st.one_of(st.integers(max_value=-1), NOT_INTS))
def test_bad_counts_are_refused(source, tmp_path_factory, name, value):
    assert_clear(f"run_landscape {name}",
                 lambda: run_landscape(source, tmp_path_factory.mktemp("c"), **{name: value}), [name], value)


def test_bad_split_is_refused(source, tmp_path):
    assert_clear("run_landscape split", lambda: run_landscape(source, tmp_path, split="validation"), ["split"])
    assert math.isnan(landscape.LandscapeResult(np.array([-1.0, 1.0]), np.array([-1.0, 1.0]),
                                                np.zeros((2, 2)), np.zeros((2, 2))).centre_loss())
