"""The built-in UCI digits: stored data, split, upsampling."""

import importlib.resources
import io

import numpy as np
import pytest

from tinyspike.data.digits import N_IMAGES, Digits, build_digits_npz, load_digits_raw, upsample


def test_stored_arrays():
    images, labels = load_digits_raw()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert images.min() == 0 and images.max() == 16
    assert labels.dtype == np.int64 and set(labels.tolist()) == set(range(10))
    # The known first sample of the set (a "0") and per-class counts of the UCI test part.
    assert labels[0] == 0 and images[0, 0].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_packaged_files_and_no_pickle():
    folder = importlib.resources.files("tinyspike.data")
    assert "CC BY 4.0" in folder.joinpath("DIGITS_LICENSE.txt").read_text()
    with np.load(io.BytesIO(folder.joinpath("digits.npz").read_bytes()), allow_pickle=False) as npz:
        assert sorted(npz.files) == ["images", "labels"]


def test_split_sizes_classes_and_no_overlap():
    train, test = Digits("train"), Digits("test")
    assert (len(train), len(test)) == (1437, 360)
    assert len(Digits("all")) == 1797
    assert np.intersect1d(train.indices, test.indices).size == 0
    assert np.array_equal(np.union1d(train.indices, test.indices), np.arange(1797))
    assert np.all(train.class_counts() > 0) and np.all(test.class_counts() > 0)
    # Stratified: every class has 20% of its images in test, to within one.
    _, labels = load_digits_raw()
    assert np.all(np.abs(test.class_counts() - 0.2 * np.bincount(labels)) <= 1)
    np.testing.assert_array_equal(test.labels, labels[test.indices])


def test_split_is_fixed_by_the_seed():
    assert np.array_equal(Digits("test").indices, Digits("test").indices)
    assert not np.array_equal(Digits("test", seed=1).indices, Digits("test").indices)


def test_images_are_upsampled_grey_levels():
    raw, _ = load_digits_raw()
    ds = Digits("test")
    assert ds.inputs.shape == (360, 3, 32, 32) and ds.inputs.dtype == np.uint8
    assert ds.sample_shape == (3, 32, 32) and ds.num_classes == 10 and ds.time_steps is None
    # nearest at 4x = each 8x8 pixel repeated in a 4x4 block, 16 -> 255, channels identical
    expected = np.round(raw[ds.indices].repeat(4, 1).repeat(4, 2) * (255 / 16)).astype(np.uint8)
    for c in range(3):
        np.testing.assert_array_equal(ds.inputs[:, c], expected)
    grey = Digits("test", channels=1, size=16)
    assert grey.inputs.shape == (360, 1, 16, 16) and len(grey.mean) == 1


def test_bilinear_and_statistics():
    near, lin = Digits("train"), Digits("train", interpolation="bilinear")
    assert lin.inputs.shape == near.inputs.shape
    assert not np.array_equal(lin.inputs, near.inputs)
    # Both resample the same images: the means agree closely.
    assert abs(lin.inputs.mean() - near.inputs.mean()) < 2
    assert near.mean[0] == pytest.approx(near.inputs.mean() / 255, rel=1e-6)
    # mean/std come from the training split, whatever split is asked for
    assert Digits("test").mean == near.mean


def test_upsample_bilinear_of_a_ramp_is_monotone():
    ramp = np.arange(8, dtype=np.float32)[None, None, :].repeat(8, 1)
    out = upsample(ramp, 32, "bilinear")
    assert out.shape == (1, 32, 32) and np.all(np.diff(out[0, 0]) >= 0)
    assert out[0, 0, 0] == 0 and out[0, 0, -1] == 7


@pytest.mark.parametrize("kwargs", [{"split": "val"}, {"size": 4}, {"channels": 2}, {"interpolation": "cubic"}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        Digits(**kwargs)


def _digits_csv_gz(path, table):
    import gzip

    with gzip.open(path, "wt") as f:
        np.savetxt(f, table, fmt="%d", delimiter=",")
    return path


def test_build_digits_npz_round_trip_and_errors_name_the_file(tmp_path):
    images, labels = load_digits_raw()
    table = np.concatenate([images.reshape(N_IMAGES, 64), labels[:, None]], axis=1)
    out = build_digits_npz(_digits_csv_gz(tmp_path / "digits.csv.gz", table), tmp_path / "d.npz")
    with np.load(out, allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["images"], images)
        np.testing.assert_array_equal(npz["labels"], labels)
    bad = table.copy()
    bad[5, 64] = 10
    src = _digits_csv_gz(tmp_path / "bad.csv.gz", bad)
    with pytest.raises(ValueError, match=r"bad\.csv\.gz: values out of range"):
        build_digits_npz(src, tmp_path / "x.npz")
    src = _digits_csv_gz(tmp_path / "short.csv.gz", table[:-1])
    with pytest.raises(ValueError, match=r"short\.csv\.gz: not the 1797"):
        build_digits_npz(src, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()
