"""The model zoo: parameter counts (REFERENCE.md §5), block behaviour at init, direct encoding,
training on a fixed batch, state-dict round trips, and the deep networks (slow)."""

import resource
import time

import numpy as np
import pytest

from tinyspike import models, nn, optim
from tinyspike.autograd import Tensor
from tinyspike.functional.loss import cross_entropy

# REFERENCE.md §5, "Parameter counts (conv + BN γ/β + FC, no running stats)"
PARAMETER_TABLE = {
    "ms_resnet20": 272_474,
    "ms_resnet32": 466_906,
    "ms_resnet44": 661_338,
    "ms_resnet56": 855_770,
    "ms_resnet110": 1_730_714,
    "ms_resnet482": 7_758_106,
    "ms_resnet20_dvs": 272_618,
    "ms_resnet18_imagenet": 11_693_736,
    "ms_resnet34_imagenet": 21_801_896,
    "ms_resnet104_imagenet": 77_350_504,
}
FAMILIES = ["ms_resnet", "vanilla_resnet", "wolif_resnet", "srb_resnet", "src_resnet", "plainnet"]


def images(shape, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


# ---- parameter counts and names -------------------------------------------------------------------


@pytest.mark.parametrize("name", PARAMETER_TABLE)
def test_parameter_count_matches_the_reference_table(name):
    assert models.build(name).num_parameters() == PARAMETER_TABLE[name]


@pytest.mark.parametrize("depth", [8, 14, 20, 32, 44, 56, 110, 482])
def test_every_family_builds_at_every_depth_with_the_expected_count(depth):
    n = (depth - 2) // 6
    ms = models.build(f"ms_resnet{depth}").num_parameters()
    # the blocks differ only in where BN sits and whether there are shortcuts:
    # SR-B's first BN normalises the block input (16 / 32 channels instead of 32 / 64 in the
    # two downsampling blocks); PlainNet has no projection shortcuts (16→32, 32→64 conv + BN).
    expected = {
        "ms_resnet": ms,
        "vanilla_resnet": ms,
        "wolif_resnet": ms,
        "src_resnet": ms,
        "srb_resnet": ms - 2 * (32 - 16) - 2 * (64 - 32),
        "plainnet": ms - (16 * 32 + 2 * 32) - (32 * 64 + 2 * 64),
    }
    for family in FAMILIES:
        model = models.build(f"{family}{depth}")
        assert sum(len(stage) for stage in model.stages) == 3 * n
        assert model.num_parameters() == expected[family], family


def test_state_dict_key_names_follow_the_attribute_paths():
    keys = list(models.build("ms_resnet20").state_dict())
    assert keys[:3] == ["stem.convs.0.weight", "stem.bn.weight", "stem.bn.bias"]
    assert "stages.1.0.shortcut.0.weight" in keys and "stages.1.0.shortcut.1.running_var" in keys
    parameters = [k for k in keys if not k.endswith(("running_mean", "running_var"))]
    assert parameters[-2:] == ["fc.weight", "fc.bias"]
    deep = models.build("ms_resnet104_imagenet", num_classes=10)
    names = dict(deep.named_parameters())
    assert "stages.0.0.shortcut.1.weight" in names  # AvgPool → Conv1×1 → BN
    assert names["stem.convs.0.bias"].shape == (64,)
    assert isinstance(deep.dropout, nn.Dropout) and deep.dropout.p == 0.2


def test_list_models_and_build_errors():
    names = models.list_models()
    for family in FAMILIES:
        assert f"{family}<depth>" in names
    for fixed in ("ms_resnet18_imagenet", "ms_resnet34_imagenet", "ms_resnet104_imagenet", "ms_resnet20_dvs"):
        assert fixed in names
    with pytest.raises(ValueError, match="unknown model"):
        models.build("resnet20")
    with pytest.raises(ValueError, match=r"6n \+ 2"):
        models.build("ms_resnet18")
    with pytest.raises(TypeError, match="colour"):
        models.build("ms_resnet20", colour="red")
    with pytest.raises(ValueError, match=r"dropout must be a finite real number in \[0.0, 1.0\)"):  # the option, not the Dropout layer
        models.build("ms_resnet8", dropout=-0.1)
    assert models.build("ms_resnet18_imagenet", num_classes=5).fc.out_features == 5


def test_build_is_seeded():
    a = models.build("ms_resnet8", seed=1).to_numpy_state()
    b = models.build("ms_resnet8", seed=1).to_numpy_state()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# ---- blocks -----------------------------------------------------------------------------------------


def test_ms_block_with_zero_gamma2_is_the_identity_or_its_projection_at_init():
    config = models.BlockConfig(generator=0)
    x = images((2, 3, 16, 8, 8))
    for mode in ("train", "eval"):
        block = models.MSBlock(16, 16, 1, config)
        getattr(block, mode)()
        np.testing.assert_array_equal(block.bn2.weight.data, 0)
        np.testing.assert_array_equal(block(x).data, x.data)
        down = models.MSBlock(16, 32, 2, config)
        getattr(down, mode)()
        np.testing.assert_allclose(down(x).data, down.shortcut(x).data, rtol=0, atol=0)
    assert not np.all(models.MSBlock(16, 16, 1, models.BlockConfig(zero_init=False)).bn2.weight.data == 0)
    assert np.all(models.SRBBlock(16, 16, 1, config).bn2.weight.data == 0.5)  # "auto": not zeroed, see blocks


def test_block_orders_per_reference_section_4():
    # Run each block on input that is all above threshold and check structural facts.
    x = images((2, 2, 8, 6, 6)) * 3.0
    config = models.BlockConfig(generator=0, zero_init=False)
    vanilla = models.VanillaBlock(8, 8, 1, config)(x).data
    assert set(np.unique(vanilla)) <= {0.0, 1.0}  # LIF after the add: spikes out
    plain = models.PlainPair(8, 16, 2, config)(x).data
    assert set(np.unique(plain)) <= {0.0, 1.0} and plain.shape == (2, 2, 16, 3, 3)
    for block_class in (models.MSBlock, models.WOLIFBlock, models.SRBBlock, models.SRCBlock):
        out = block_class(8, 8, 1, config)(x).data
        assert len(np.unique(out)) > 2, block_class.__name__  # real-valued stream
    src = models.SRCBlock(8, 8, 1, config)
    np.testing.assert_array_equal(np.unique(np.round(src(x).data - x.data, 5)), [0.0, 1.0])  # x + spikes


def test_which_convs_see_spikes_per_reference_section_4():
    # REFERENCE §4: in MS and SR-B both convs receive spikes; in vanilla, W/O LIF and SR-C the first
    # conv receives the (real or spike) stream itself, the second receives spikes.
    x = images((2, 2, 8, 6, 6)) * 3.0
    config = models.BlockConfig(generator=0, zero_init=False)
    expected = {
        models.MSBlock: (True, True), models.SRBBlock: (True, True), models.SRCBlock: (False, True),
        models.WOLIFBlock: (False, True), models.VanillaBlock: (False, True), models.PlainPair: (False, True),
    }
    for block_class, (first, second) in expected.items():
        block = block_class(8, 8, 1, config)
        seen = {}
        for name in ("conv1", "conv2"):
            getattr(block, name).register_forward_hook(
                lambda m, inputs, out, name=name: seen.__setitem__(name, bool(np.isin(inputs[0].data, (0.0, 1.0)).all()))
            )
        block(x)
        assert (seen["conv1"], seen["conv2"]) == (first, second), block_class.__name__


# ---- networks ---------------------------------------------------------------------------------------


def test_stem_computed_once_equals_stem_on_T_copies():
    """Direct encoding: forward, gradients and running statistics equal those of T copies."""
    x = images((3, 3, 8, 8), seed=4)
    results = []
    for input_ in (x, Tensor(np.broadcast_to(x.data, (4,) + x.shape).copy())):
        model = models.build("ms_resnet8", widths=(4, 8, 8), seed=0, time_steps=4)
        logits = model(input_)
        (logits * Tensor(np.arange(30, dtype=np.float32).reshape(3, 10))).sum().backward()
        grads = {name: p.grad.copy() for name, p in model.named_parameters()}
        results.append((logits.data, grads, model.stem.bn.running_mean.copy(), model.stem.bn.running_var.copy()))
    (l1, g1, m1, v1), (l2, g2, m2, v2) = results
    np.testing.assert_allclose(l1, l2, rtol=1e-5, atol=1e-6)
    for name in g1:
        np.testing.assert_allclose(g1[name], g2[name], rtol=1e-4, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(m1, m2, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(v1, v2, rtol=1e-6)


def test_forward_shapes_time_steps_and_input_errors():
    model = models.build("ms_resnet8", widths=(4, 8, 8), seed=0, time_steps=3)
    assert model(images((2, 3, 8, 8))).shape == (2, 10)
    assert model(images((2, 3, 8, 8)), time_steps=1).shape == (2, 10)
    assert model(images((5, 2, 3, 8, 8))).shape == (2, 10)
    with pytest.raises(ValueError, match="time_steps"):
        model(images((5, 2, 3, 8, 8)), time_steps=4)
    with pytest.raises(ValueError, match="channels"):
        model(images((2, 1, 8, 8)))
    with pytest.raises(ValueError, match="shape"):
        model(images((2, 8, 8)))


def test_dvs_model_strides_and_per_step_frames():
    shapes = {}
    model = models.build("ms_resnet20_dvs", widths=(4, 8, 8), seed=0)
    model.stages[0].register_forward_hook(lambda m, i, o: shapes.update(stage1=o.shape))  # returns None
    frames = Tensor(np.random.default_rng(0).poisson(0.3, (2, 1, 2, 32, 32)).astype(np.float32))
    assert model(frames).shape == (1, 10)
    assert shapes["stage1"] == (2, 1, 4, 8, 8)  # /2 stem, /2 first stage: 128 → 32 at full size
    pooled = models.build("ms_resnet20_dvs", stem_stride=1, first_stage_stride=1)
    assert pooled.num_parameters() == 272_474 - 144  # 2 input channels, no stage-1 projection
    assert models.build("ms_resnet20_dvs", first_stage_stride=1, stem_stride=1).stem.convs[0].stride == (1, 1)


@pytest.mark.parametrize("family", FAMILIES)
def test_twenty_sgd_steps_halve_the_loss_on_a_fixed_batch(family):
    model = models.build(f"{family}8", widths=(8, 16, 32), seed=0, time_steps=2)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((8, 3, 8, 8)).astype(np.float32))
    y = rng.integers(0, 10, 8)
    opt = optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] <= 0.5 * losses[0], (family, losses)


def test_state_dict_round_trip_through_a_file_gives_identical_outputs(tmp_path):
    model = models.build("ms_resnet8", widths=(4, 8, 8), seed=0, dropout=0.1)
    x = images((2, 3, 8, 8))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):  # move weights and running statistics away from their initial values
        opt.zero_grad()
        cross_entropy(model(x), np.array([1, 2])).backward()
        opt.step()
    nn.save_checkpoint(tmp_path / "ms.npz", model, optimizer=opt.state_dict(), epoch=2)
    copy = models.build("ms_resnet8", widths=(4, 8, 8), seed=99, dropout=0.1)
    extras = nn.load_checkpoint(tmp_path / "ms.npz", copy)
    model.eval()
    copy.eval()
    np.testing.assert_array_equal(model(x).data, copy(x).data)
    assert extras["epoch"] == 2 and "param0.momentum_buffer" in extras["optimizer"]

    state = dict(model.to_numpy_state())
    state.pop("stages.0.0.bn2.weight")
    with pytest.raises(KeyError, match="stages.0.0.bn2.weight"):
        copy.load_state_dict(state)
    state = dict(model.to_numpy_state())
    state["fc.weight"] = state["fc.weight"][:, :-1]
    with pytest.raises(ValueError, match="fc.weight"):
        copy.load_state_dict(state)


# ---- every parameter trains from the first steps: no family is dead at initialisation ------------

# One model per family of the zoo, small (widths 4-8, T = 2) so that a step takes milliseconds.
# Depth 14 puts an identity-shortcut block in every stage: the block a zero γ₂ kills in vanilla.
ZOO = {
    "ms_resnet14": dict(widths=(4, 8, 8)),
    "vanilla_resnet14": dict(widths=(4, 8, 8)),
    "plainnet14": dict(widths=(4, 8, 8)),
    "srb_resnet14": dict(widths=(4, 8, 8)),
    "src_resnet14": dict(widths=(4, 8, 8)),
    "wolif_resnet14": dict(widths=(4, 8, 8)),
    "ms_resnet20_dvs": dict(widths=(4, 8, 8)),
    "ms_resnet18_imagenet": dict(widths=(4, 8, 8, 8), num_classes=10),
    "ms_resnet104_imagenet": dict(widths=(4, 4, 4, 4), num_classes=10),
}
# Where "auto" zeroes bn2's γ (a linear add, no LIF after it), the branch's interior gets its
# first gradient at step two, once the first step has moved γ₂ off 0; everywhere else every
# parameter gets a gradient at once.
ZERO_GAMMA_FAMILIES = ("ms_resnet", "wolif_resnet")


def zoo_batch(name, rng):
    if name.endswith("_dvs"):  # event frames [T, B, 2, H, W], counts
        return Tensor(rng.poisson(0.5, (2, 4, 2, 32, 32)).astype(np.float32))
    size = 32 if name.endswith("_imagenet") else 16  # ImageNet nets halve the size five times
    return Tensor(rng.standard_normal((4, 3, size, size)).astype(np.float32))


@pytest.mark.parametrize("name", ZOO)
def test_every_parameter_gets_a_gradient_and_changes_within_two_sgd_steps(name):
    """REFERENCE.md §2: zero-γ₂ only where no LIF follows the add. A vanilla block with γ₂ = 0 feeds
    its last LIF the shortcut's spikes exactly (u ∈ {0, 1}, the surrogate's edges), so nothing
    before it ever receives a gradient; this test fails for any family built dead like that."""
    model = models.build(name, seed=0, time_steps=2, **ZOO[name])
    rng = np.random.default_rng(0)
    x, y = zoo_batch(name, rng), rng.integers(0, 10, 4)
    params = dict(model.named_parameters())
    before = {key: p.data.copy() for key, p in params.items()}
    opt = optim.SGD(model.parameters(), lr=0.1)
    with_gradient = []
    for _ in range(2):
        opt.zero_grad()
        cross_entropy(model(x), y).backward()
        with_gradient.append({key for key, p in params.items() if p.grad is not None and np.any(p.grad != 0)})
        opt.step()
    if not name.startswith(ZERO_GAMMA_FAMILIES):
        assert sorted(set(params) - with_gradient[0]) == [], "no gradient at the first step"
    assert sorted(set(params) - (with_gradient[0] | with_gradient[1])) == [], "no gradient in two steps"
    unchanged = [key for key, p in params.items() if np.array_equal(p.data, before[key])]
    assert unchanged == []


def test_auto_zero_init_per_family_follows_reference_section_2():
    """γ₂ = 0 exactly where bn2 is added linearly and no LIF follows; else the tdBN γ₀ = α·V_th."""
    config = models.BlockConfig(generator=0, bn_alpha=2.0, v_th=0.25)  # γ₀ = 0.5 again, from other factors
    zeroed = {models.MSBlock: True, models.WOLIFBlock: True, models.VanillaBlock: False,
              models.SRBBlock: False, models.SRCBlock: False, models.PlainPair: False}
    for block_class, zero in zeroed.items():
        gamma2 = block_class(8, 8, 1, config).bn2.weight.data
        np.testing.assert_array_equal(gamma2, 0.0 if zero else 0.5, err_msg=block_class.__name__)
    forced = models.VanillaBlock(8, 8, 1, models.BlockConfig(generator=0, zero_init=True)).bn2.weight.data
    np.testing.assert_array_equal(forced, 0.0)  # zero_init=True still forces it, for the experiment


# ---- deep networks (slow: run with pytest -m slow) -----------------------------------------------


def peak_rss_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


@pytest.mark.slow
def test_ms_resnet110_trains_a_step_at_B2_T2():
    model = models.build("ms_resnet110", seed=0, time_steps=2)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = images((2, 3, 32, 32))
    start = time.perf_counter()
    loss = cross_entropy(model(x), np.array([3, 7]))
    loss.backward()
    opt.step()
    elapsed = time.perf_counter() - start
    assert np.isfinite(loss.item())
    assert all(p.grad is not None for p in model.parameters())
    print(f"\nMS-ResNet-110 B=2 T=2 step: {elapsed:.2f} s, peak RSS {peak_rss_gib():.2f} GiB")


@pytest.mark.slow
def test_ms_resnet482_forward_and_backward_at_B1_T2():
    model = models.build("ms_resnet482", seed=0, time_steps=2)
    x = images((1, 3, 32, 32))
    start = time.perf_counter()
    loss = cross_entropy(model(x), np.array([3]))
    forward = time.perf_counter() - start
    loss.backward()
    total = time.perf_counter() - start
    assert np.isfinite(loss.item())
    grad_norm = np.sqrt(sum(float((p.grad.astype(np.float64) ** 2).sum()) for p in model.parameters()))
    assert np.isfinite(grad_norm) and grad_norm > 0
    print(f"\nMS-ResNet-482 B=1 T=2: forward {forward:.2f} s, forward+backward {total:.2f} s, "
          f"peak RSS {peak_rss_gib():.2f} GiB")
