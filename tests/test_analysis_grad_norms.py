"""Block-input gradient norms (tinyspike.analysis.grad_norms): equal to an independent split of the
network by hand, exact in a hand-derivable case, per-sample norms equal single-sample runs."""

import json

import numpy as np
import pytest

from tinyspike import backend, functional as F, models
from tinyspike.analysis import grad_norms as G
from tinyspike.analysis.source import AnalysisSource
from tinyspike.autograd import Tensor

TINY = dict(widths=(4, 8, 8), time_steps=2, seed=0)


def _batch(b=4, size=8, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((b, 3, size, size)).astype(dtype), rng.integers(0, 10, b)


def _by_hand(model, images, labels):
    """‖∂L/∂x_l‖ by running stem, each block and the head explicitly, retaining each stream tensor."""
    model.train()
    x = model.stem(Tensor(images), model.time_steps)
    kept = []
    for stage in model.stages:
        for block in stage:
            kept.append(x.retain_grad())
            x = block(x)
    kept.append(x.retain_grad())
    loss = F.cross_entropy(model.head(x), labels)
    loss.backward()
    model.zero_grad()
    return [float(np.sqrt((t.grad.astype(np.float64) ** 2).sum())) for t in kept]


@pytest.mark.parametrize("name", ["ms_resnet14", "vanilla_resnet14", "plainnet14", "srb_resnet8", "src_resnet8",
                                  "wolif_resnet8"])
def test_norms_equal_the_retained_grads_of_a_network_split_by_hand(name):
    with backend.default_dtype_as(np.float64):
        model = models.build(name, **TINY)
    images, labels = _batch()
    result = G.block_gradient_norms(model, [(images, labels)])
    expected = _by_hand(model, images, labels)
    assert len(result.norms) == len(expected) == len(result.positions)
    # the same float64 operations in the same order: equal to rounding (relative 1e-10)
    np.testing.assert_allclose(result.norms, expected, rtol=1e-10)
    np.testing.assert_allclose(result.ratios, np.array(expected[:-1]) / np.array(expected[1:]), rtol=1e-10)
    assert all(n > 0 for n in result.norms)


def test_ms_blocks_at_init_are_exact_isometries_inside_a_stage():
    """γ₂ = 0 makes each same-shape MS block the identity forward, and the branch's backward
    (through BN₂ with γ = 0) exactly 0: ∂L/∂x_l = ∂L/∂x_(l+1), ratio exactly 1."""
    with backend.default_dtype_as(np.float64):
        model = models.build("ms_resnet20", **TINY)
        tdbn = models.build("ms_resnet20", zero_init_residual=False, **TINY)
    images, labels = _batch()
    result = G.block_gradient_norms(model, [(images, labels)])
    assert result.stage_changes == [3, 6]
    inside = result.within_stage_ratios()
    assert len(inside) == 7 and all(r == 1.0 for r in inside)
    # without the zero-init the same blocks are not isometries (the test can fail)
    other = G.block_gradient_norms(tdbn, [(images, labels)])
    assert all(abs(r - 1.0) > 1e-6 for r in other.within_stage_ratios())


def test_per_sample_norm_is_the_single_sample_gradient_without_batch_statistics():
    with backend.default_dtype_as(np.float64):
        model = models.build("vanilla_resnet8", **TINY)
    images, labels = _batch(b=3)
    batch = G.block_gradient_norms(model, [(images, labels)], batch_statistics=False)
    singles = [G.block_gradient_norms(model, [(images[b:b + 1], labels[b:b + 1])], batch_statistics=False).norms
               for b in range(3)]
    np.testing.assert_allclose(batch.per_sample_norms, np.mean(singles, axis=0), rtol=1e-10)


def test_measuring_leaves_the_model_unchanged():
    model = models.build("ms_resnet8", dropout=0.5, **TINY)
    model.eval()
    before = {k: np.array(v, copy=True) for k, v in model.state_dict().items()}
    first = G.block_gradient_norms(model, [_batch(dtype=np.float32)])
    second = G.block_gradient_norms(model, [_batch(dtype=np.float32)])
    assert first.norms == second.norms  # dropout off: deterministic
    assert not model.training and all(not m.training for m in model.modules())
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())  # running stats restored
    assert all(p.grad is None for p in model.parameters())


def test_batches_are_averaged():
    model = models.build("ms_resnet8", **TINY)
    a, b = _batch(seed=1, dtype=np.float32), _batch(seed=2, dtype=np.float32)
    both = G.block_gradient_norms(model, [a, b])
    one, two = G.block_gradient_norms(model, [a]), G.block_gradient_norms(model, [b])
    np.testing.assert_allclose(both.norms, (np.array(one.norms) + np.array(two.norms)) / 2, rtol=1e-12)
    assert both.batches == 2


def test_deep_model_runs_every_block():
    model = models.build("ms_resnet110", widths=(2, 2, 2), time_steps=1, seed=0)
    result = G.block_gradient_norms(model, [_batch(b=1, size=8, dtype=np.float32)])
    assert len(result.norms) == 55 and len(result.ratios) == 54 and result.stage_changes == [18, 36]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="model has no residual blocks"):
        G.block_gradient_norms(models.build("ms_resnet8", **TINY).fc, [_batch()])
    source = AnalysisSource.from_model("ms_resnet8", "digits", model_opts={"widths": [4, 8, 8]}, time_steps=2)
    with pytest.raises(ValueError, match="batch_size must be"):
        G.run_grad_norms(source, "/tmp/unused", batch_size=0)
    with pytest.raises(ValueError, match="batches must be"):
        G.run_grad_norms(source, "/tmp/unused", batches=0)
    with pytest.raises(ValueError, match=r"compare\[0\]"):
        G.run_grad_norms(source, "/tmp/unused", compare=["resnet_nope"])
    with pytest.raises(TypeError, match="compare must be"):
        G.run_grad_norms(source, "/tmp/unused", compare="vanilla_resnet8")


def test_run_writes_png_and_json_for_the_source_and_its_comparison(tmp_path):
    source = AnalysisSource.from_model("ms_resnet8", "digits", model_opts={"widths": [4, 8, 8]}, time_steps=2)
    result = G.run_grad_norms(source, tmp_path, batch_size=4, compare=["vanilla_resnet8"])
    assert (tmp_path / "grad-norms.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stored = json.loads((tmp_path / "grad-norms.json").read_text())
    assert stored == result
    # both models are untrained here, and both share the source's options: the labels say so
    assert [r["model"] for r in stored["results"]] == ["ms_resnet8 [widths=[4, 8, 8]] (untrained)",
                                                       "vanilla_resnet8 [widths=[4, 8, 8]] (untrained)"]
    assert stored["source"]["model_options"] == {"widths": [4, 8, 8]}
    subtitle = G.batch_words(G.GradNormResult(**stored["results"][0]))
    assert subtitle == "1 batch of 4 images, T = 2"  # read from the [T, B, C, H, W] shape
    images, labels = next(iter(source.batches("test", batch_size=4, limit=1)))
    direct = G.block_gradient_norms(source.model, [(images, labels)], source.time_steps)
    np.testing.assert_allclose(stored["results"][0]["norms"], direct.norms, rtol=1e-12)
    assert stored["results"][1]["norms"] != stored["results"][0]["norms"]
