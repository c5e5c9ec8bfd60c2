"""Batch augmentation: each transform against a plain reference or an exact identity."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinyspike.data import transforms as T

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def batch(b=8, c=3, h=32, w=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (b, c, h, w), dtype=np.uint8)


def rng(seed=0):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------- crop


def test_crop_full_size_without_padding_is_identity():
    x = batch()
    np.testing.assert_array_equal(T.random_crop(x, 32, 0, rng()), x)


@settings(max_examples=30, deadline=None)
@given(
    h=st.integers(4, 12), w=st.integers(4, 12), pad=st.integers(0, 4),
    dh=st.integers(0, 3), dw=st.integers(0, 3), seed=st.integers(0, 2**31),
)
def test_crop_equals_window_of_zero_padded_image(h, w, pad, dh, dw, seed):
    x = batch(5, 2, h, w, seed)
    size = (h - dh, w - dw)
    out = T.random_crop(x, size, pad, rng(seed))
    assert out.shape == (5, 2) + size and out.dtype == np.uint8
    # Reference: pad explicitly and cut the window at the same offsets the generator gave.
    g = rng(seed)
    top = g.integers(0, h + 2 * pad - size[0] + 1, size=5)
    left = g.integers(0, w + 2 * pad - size[1] + 1, size=5)
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    flip = np.array([True, False, True, True, False])
    flipped = T.crop(x, size, top - pad, left - pad, flip)
    for b in range(5):
        ref = padded[b, :, top[b] : top[b] + size[0], left[b] : left[b] + size[1]]
        np.testing.assert_array_equal(out[b], ref)
        np.testing.assert_array_equal(flipped[b], ref[..., ::-1] if flip[b] else ref)


def test_crop_offsets_cover_the_whole_range():
    # Padding 4: the window's top is one of 9 places, so the image's top-left corner lands at
    # window row 4 - top in [-4, 4]; it is visible for rows 0..4 and cropped away otherwise.
    x = np.zeros((2000, 1, 8, 8), np.uint8)
    x[:, :, 0, 0] = 255
    out = T.random_crop(x, 8, 4, rng(1))
    visible = (out == 255).any(axis=(1, 2, 3))
    rows = {int(np.argwhere(o[0] == 255)[0][0]) for o in out[visible]}
    cols = {int(np.argwhere(o[0] == 255)[0][1]) for o in out[visible]}
    assert rows == cols == set(range(5))
    # P(visible) = P(top >= 4) * P(left >= 4) = (5/9)^2
    assert abs(visible.mean() - 25 / 81) < 0.04


def test_crop_window_outside_the_image_is_all_padding():
    x = batch(4, 1, 6, 6) | 1  # no zero pixels in the image itself
    out = T.crop(x, 4, top=[-10, 0, 0, 3], left=[0, 7, -9, -2], flip=[False, True, False, True])
    assert not out[:3].any()
    # The last window overlaps rows 3..5 and columns 0..1 of the image (then is mirrored).
    np.testing.assert_array_equal(out[3, :, :3, :2], x[3, :, 3:, :2][..., ::-1])
    assert not out[3, :, 3:].any() and not out[3, :, :, 2:].any()


def test_crop_too_large_is_an_error():
    with pytest.raises(ValueError, match="larger than the padded image"):
        T.random_crop(batch(), 41, 4, rng())


# ----------------------------------------------------------------------------- flip


def test_flip_twice_is_identity_and_p_extremes():
    x = batch()
    mask = np.array([1, 0, 1, 1, 0, 0, 1, 0], bool)
    once = T.horizontal_flip(x, mask)
    np.testing.assert_array_equal(once[mask], x[mask][..., ::-1])
    np.testing.assert_array_equal(once[~mask], x[~mask])
    np.testing.assert_array_equal(T.horizontal_flip(once, mask), x)
    np.testing.assert_array_equal(T.random_horizontal_flip(x, rng(), p=1.0), x[..., ::-1])
    np.testing.assert_array_equal(T.random_horizontal_flip(x, rng(), p=0.0), x)


def test_flip_rate_is_about_p():
    x = batch(4000, 1, 1, 2)
    x[:, 0, 0] = [0, 255]
    out = T.random_horizontal_flip(x, rng(2), p=0.3)
    rate = (out[:, 0, 0, 0] == 255).mean()
    assert 0.27 < rate < 0.33


def test_fused_crop_flip_equals_the_two_steps():
    x = batch(64)
    fused = T.Compose([T.RandomCrop(32, 4), T.RandomHorizontalFlip(0.5)])
    assert isinstance(fused.steps[0], T.RandomCropFlip)
    g = rng(5)
    reference = T.random_horizontal_flip(T.random_crop(x, 32, 4, g), g, 0.5)
    np.testing.assert_array_equal(fused(x, rng(5)), reference)


# ----------------------------------------------------------------------------- rotation


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_rotation_by_zero_is_identity(interpolation):
    x = batch()
    np.testing.assert_array_equal(T.rotate(x, 0.0, interpolation), x)
    np.testing.assert_array_equal(T.random_rotation(x, 0, rng(), interpolation), x)


@pytest.mark.parametrize("size", [31, 32])
def test_rotation_by_90_is_rot90(size):
    x = batch(3, 3, size, size)
    np.testing.assert_array_equal(T.rotate(x, 90.0), np.rot90(x, 1, axes=(2, 3)))
    np.testing.assert_array_equal(T.rotate(x, -90.0), np.rot90(x, -1, axes=(2, 3)))
    np.testing.assert_array_equal(T.rotate(x, 180.0, "bilinear"), x[:, :, ::-1, ::-1])


def test_rotation_per_image_angles_and_fill():
    x = batch(2, 1, 9, 9)
    out = T.rotate(x, np.array([0.0, 45.0]), fill=7)
    np.testing.assert_array_equal(out[0], x[0])
    assert out[1, 0, 0, 0] == 7  # a corner rotated by 45° comes from outside the image
    assert out[1, 0, 4, 4] == x[1, 0, 4, 4]  # the centre stays


def test_bilinear_rotation_keeps_a_constant_interior():
    x = np.full((4, 3, 32, 32), 200, np.uint8)
    out = T.random_rotation(x, 15, rng(3), "bilinear")
    assert np.all(out[:, :, 8:24, 8:24] == 200)


def test_random_rotation_same_seed_same_output_and_range():
    x = batch(16)
    a = T.random_rotation(x, 15, rng(7))
    np.testing.assert_array_equal(a, T.random_rotation(x, 15, rng(7)))
    assert not np.array_equal(a, T.random_rotation(x, 15, rng(8)))
    assert a.shape == x.shape and a.dtype == np.uint8


# ----------------------------------------------------------------------------- normalize


def test_normalize_matches_formula():
    x = batch()
    out = T.normalize(x, MEAN, STD)
    assert out.dtype == np.float32 and out.shape == x.shape
    ref = (x / 255.0 - np.array(MEAN)[:, None, None]) / np.array(STD)[:, None, None]
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_normalize_rejects_wrong_input():
    with pytest.raises(TypeError, match="uint8"):
        T.normalize(batch().astype(np.float32), MEAN, STD)
    with pytest.raises(ValueError, match="one value per channel"):
        T.normalize(batch(), MEAN[:2], STD[:2])
    with pytest.raises(ValueError, match=r"std\[1\] must be a finite real number > 0"):
        T.normalize(batch(), MEAN, (0.2, 0.0, 0.2))
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        T.normalize(batch()[0], MEAN, STD)


def test_transforms_reject_a_seed_instead_of_a_generator():
    with pytest.raises(TypeError, match="Generator"):
        T.random_crop(batch(), 32, 4, 0)


# ----------------------------------------------------------------------------- pipelines


def test_presets():
    x = batch(32)
    none = T.preset("none", MEAN, STD)
    np.testing.assert_array_equal(none(x, rng()), T.normalize(x, MEAN, STD))
    for name in ("depth_study", "alternative"):
        p = T.preset(name, MEAN, STD)
        a, b = p(x, rng(1)), p(x, rng(1))
        assert a.dtype == np.float32 and a.shape == x.shape
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, none(x, rng()))
    kinds = [type(s).__name__ for s in T.preset("alternative", MEAN, STD).steps]
    assert kinds == ["RandomCrop", "RandomRotation", "RandomHorizontalFlip", "Normalize"]
    with pytest.raises(ValueError, match="preset: name must be one of"):
        T.preset("autoaugment", MEAN, STD)
