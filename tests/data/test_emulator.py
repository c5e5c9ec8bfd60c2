"""The event-camera emulator: events at edges only, thresholds, polarity, seeds, files, DigitsDVS."""

import dataclasses

import numpy as np
import pytest

from tinyspike.data import emulator
from tinyspike.data.aedat import read_aedat2
from tinyspike.data.cifar10_dvs import CIFAR10DVS
from tinyspike.data.emulator import (
    DigitsDVS, EmulatorConfig, emulate, make_cifar10_dvs_folder, saccade_offsets, write_recordings,
)
from tinyspike.data.events import EVENT_DTYPE, to_frames

# Short recordings keep the tests fast: 40 steps of 2 ms.
SHORT = EmulatorConfig(sensor_size=(24, 24), duration_us=80_000, step_us=2_000, amplitude=2.0)


def _square(size=24, lo=8, hi=16, value=200):
    img = np.zeros((1, size, size), np.uint8)
    img[0, lo:hi, lo:hi] = value
    return img


def test_uniform_image_gives_no_events():
    for value in (0, 90, 255):
        assert len(emulate(np.full((1, 24, 24), value, np.uint8), SHORT)[0]) == 0


def test_events_only_near_edges():
    ev = emulate(_square(), SHORT)[0]
    assert len(ev) > 100 and ev.dtype == EVENT_DTYPE
    x, y = ev["x"].astype(int), ev["y"].astype(int)
    # Distance to the square's border (pixels 8..15); motion is at most 2 px, plus one for
    # bilinear sampling.
    dx = np.maximum(np.maximum(8 - x, x - 15), 0)
    dy = np.maximum(np.maximum(8 - y, y - 15), 0)
    outside = np.maximum(dx, dy)
    inside = np.minimum(np.minimum(x - 8, 15 - x), np.minimum(y - 8, 15 - y))
    assert outside.max() <= 3, "events far outside the square"
    assert inside.max() <= 2, "events deep inside the uniform square"


def test_polarity_follows_the_motion():
    # Moving right only: the bright square's right edge brightens pixels (ON), its left edge
    # darkens them (OFF).
    cfg = EmulatorConfig(sensor_size=(24, 24), duration_us=60_000, step_us=2_000, amplitude=3.0,
                         saccades=((0, 0), (1, 0)))
    ev = emulate(_square(), cfg)[0]
    on, off = ev[ev["p"] == 1], ev[ev["p"] == 0]
    assert len(on) > 20 and len(off) > 20
    assert on["x"].min() >= 14 and off["x"].max() <= 10
    assert on["y"].min() >= 8 and on["y"].max() <= 15  # horizontal edges do not fire


def test_lower_threshold_gives_more_events():
    img = _square()
    counts = [len(emulate(img, dataclasses.replace(SHORT, threshold=c))[0])
              for c in (0.4, 0.2, 0.1)]
    assert counts[0] < counts[1] < counts[2]


def test_stream_properties_and_refractory_period():
    cfg = dataclasses.replace(SHORT, refractory_us=6_000, threshold=0.05)
    ev = emulate(_square(), cfg)[0]
    assert np.all(np.diff(ev["t"]) >= 0)
    assert ev["t"].min() >= cfg.step_us and ev["t"].max() <= cfg.duration_us
    assert ev["x"].max() < 24 and ev["y"].max() < 24
    pixel = ev["y"].astype(np.int64) * 24 + ev["x"]
    order = np.lexsort((ev["t"], pixel))
    same = pixel[order][1:] == pixel[order][:-1]
    gaps = np.diff(ev["t"][order])[same]
    assert gaps.min() >= 6_000


def test_log_intensity_is_the_log_to_one_ulp():
    """The shared log (see the emulator's docstring) is the natural log, within 1 ulp of NumPy's.

    The kernel and the reference may not use np.log and Numba's log side by side: they differ in
    the last bit for some inputs on some CPUs, which flips threshold decisions. Both call
    ``log_intensity``; this checks that it is still the log.
    """
    v = np.random.default_rng(0).uniform(0.1, 1.1, 100_000)
    np.testing.assert_array_max_ulp(emulator.log_intensity(v), np.log(v), maxulp=1)
    assert emulator.log_intensity(np.e) == pytest.approx(1.0, rel=1e-15)


def test_kernel_equals_numpy_reference():
    """Bit-exact: both paths take the same logs (``log_intensity``), the rest is exact IEEE maths."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 12, 12), dtype=np.uint8)
    varied = dataclasses.replace(SHORT, threshold_sigma=0.1, refractory_us=5_000, noise_rate_hz=20.0)
    for cfg in (SHORT, varied):
        fast = emulate(images, cfg, rng=4)
        slow = emulate(images, cfg, rng=4, reference=True, chunk=2)
        assert len(fast) == 3 and sum(len(e) for e in fast) > 100
        for a, b in zip(fast, slow):
            np.testing.assert_array_equal(a, b)


def test_same_seed_same_events_and_seeds_matter():
    cfg = dataclasses.replace(SHORT, threshold_sigma=0.05, noise_rate_hz=10.0)
    img = np.concatenate([_square(), _square(lo=4, hi=12)])
    a, b, c = emulate(img, cfg, rng=7), emulate(img, cfg, rng=7), emulate(img, cfg, rng=8)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(len(x) != len(z) or not np.array_equal(x, z) for x, z in zip(a, c))
    # The result does not depend on the chunking.
    for x, y in zip(a, emulate(img, cfg, rng=7, chunk=1, workers=2)):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(TypeError, match="seed"):
        emulate(img, cfg, rng=None)


def test_noise_rate():
    cfg = dataclasses.replace(SHORT, noise_rate_hz=50.0)
    ev = emulate(np.full((2, 24, 24), 128, np.uint8), cfg, rng=0)
    expected = 50.0 * 0.08 * 24 * 24  # rate * duration * pixels = 2304 per image
    for e in ev:
        assert abs(len(e) - expected) < 5 * np.sqrt(expected)
        assert np.all(np.diff(e["t"]) >= 0) and 0.4 < e["p"].mean() < 0.6


def test_saccade_path():
    off = saccade_offsets(EmulatorConfig(duration_us=300_000, step_us=1_000, amplitude=2.0))
    assert off.shape == (301, 2)
    np.testing.assert_allclose(off[[0, 100, 200, 300]], [[0, 0], [1, 2], [2, 0], [0, 0]])


def test_color_and_float_images():
    rgb = np.zeros((1, 3, 24, 24), np.uint8)
    rgb[0, :, 8:16, 8:16] = 200
    grey = rgb[:, 0]
    # Luma weights sum to 1 only up to rounding, so events may differ where a change sits
    # exactly at a threshold; the counts agree closely.
    n_rgb, n_grey = len(emulate(rgb, SHORT)[0]), len(emulate(grey, SHORT)[0])
    assert abs(n_rgb - n_grey) <= 0.03 * n_grey
    np.testing.assert_array_equal(emulate(grey / 255.0, SHORT)[0], emulate(grey, SHORT)[0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        emulate(grey * 1.0, SHORT)
    with pytest.raises(TypeError, match="uint8"):
        emulate(grey.astype(np.int32), SHORT)
    with pytest.raises(ValueError, match="channels"):
        emulate(np.zeros((1, 2, 8, 8), np.uint8), SHORT)


def test_config_validation():
    with pytest.raises(ValueError, match="sensor_size"):
        EmulatorConfig(sensor_size=34)
    with pytest.raises(ValueError, match="threshold"):
        EmulatorConfig(threshold=0)
    with pytest.raises(ValueError, match="duration_us"):
        EmulatorConfig(duration_us=500, step_us=1000)
    with pytest.raises(ValueError, match="saccades"):
        EmulatorConfig(saccades=((0, 0),))
    with pytest.raises(ValueError, match="noise_rate_hz"):
        EmulatorConfig(noise_rate_hz=-1.0)


def test_recordings_written_as_aedat_read_back(tmp_path):
    streams = emulate(np.concatenate([_square(), _square(lo=3, hi=9)]), SHORT)
    paths = write_recordings(streams, tmp_path, ["a.aedat", "b.aedat"])
    for path, ev in zip(paths, streams):
        back = read_aedat2(path)
        # The raw DVS128 bit is 0 for ON (jAER), so the file holds the emulator's p flipped.
        np.testing.assert_array_equal(back["p"], 1 - ev["p"])
        for column in "txy":
            np.testing.assert_array_equal(back[column], ev[column])


def test_cifar10_dvs_folder_arguments_are_checked(tmp_path):
    images = np.zeros((2, 8, 8), np.uint8)
    with pytest.raises(ValueError, match="labels must lie in 0-9"):
        make_cifar10_dvs_folder(images, [0, 10], tmp_path, config=SHORT)
    with pytest.raises(ValueError, match="recording numbers in 0-999"):
        make_cifar10_dvs_folder(images, [0, 1], tmp_path, config=SHORT, indices=[0, 1000])
    assert not list(tmp_path.iterdir())


def test_emulated_cifar10_dvs_folder_loads(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 3, 32, 32), dtype=np.uint8)
    labels = np.repeat(np.arange(10), 2)
    cfg = EmulatorConfig(sensor_size=(128, 128), duration_us=40_000, step_us=4_000, amplitude=3.0)
    make_cifar10_dvs_folder(images, labels, tmp_path / "c10", config=cfg,
                            indices=[0, 900] * 10)
    assert (tmp_path / "c10" / "frog" / "cifar10_frog_900.aedat").is_file()
    train = CIFAR10DVS(tmp_path / "c10", "train", T=4, size=64, use_cache=False, progress=False)
    assert len(train) == 10 and train.labels.tolist() == list(range(10))
    assert train.inputs.sum() > 0 and train.sample_shape == (4, 2, 64, 64)


def test_digits_dvs(tmp_path, monkeypatch):
    cfg = EmulatorConfig(sensor_size=(16, 16), duration_us=60_000, step_us=3_000, amplitude=1.5)
    ds = DigitsDVS("test", T=4, config=cfg, cache_dir=tmp_path)
    assert len(ds) == 360 and ds.sample_shape == (4, 2, 16, 16) and ds.time_steps == 4
    assert ds.inputs.dtype == np.float32 and ds.num_classes == 10
    assert "DigitsDVS test" in ds.description
    per_sample = ds.inputs.reshape(len(ds), -1).sum(1)
    assert per_sample.min() > 0
    # Frames equal the events the emulator gives for the same digits and seed.
    from tinyspike.data.digits import Digits

    digits = Digits("test", size=16, channels=1, interpolation="bilinear")
    ev = emulate(digits.inputs[:2], cfg, rng=0)
    for i in range(2):
        np.testing.assert_array_equal(ds.inputs[i], to_frames(ev[i], 4, (16, 16)))

    def no_emulation(*args, **kwargs):
        raise AssertionError("emulated although cached")

    monkeypatch.setattr(emulator, "emulate", no_emulation)
    again = DigitsDVS("test", T=4, config=cfg, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.inputs, ds.inputs)
    with pytest.raises(AssertionError, match="emulated"):  # another seed, another entry
        DigitsDVS("test", T=4, config=cfg, seed=1, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="square"):
        DigitsDVS("test", config=EmulatorConfig(sensor_size=(16, 20)))
