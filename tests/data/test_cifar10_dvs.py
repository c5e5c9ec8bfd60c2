"""CIFAR10-DVS on a fake folder of AEDAT files: split, frames, conventions, zips, cache.

Each convention's frames are checked against an independent implementation on real DVS128
recordings in tests/data/test_dvs_conventions.py; here the folders hold random events.
"""

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tinyspike.data import cifar10_dvs
from tinyspike.data.aedat import read_aedat2, write_aedat2
from tinyspike.data.cifar10_dvs import (
    CIFAR10DVS, CLASSES, DOWNLOADS, FIGSHARE_URL, allowed_member, find_recordings,
)
from tinyspike.data.download import safe_extract
from tinyspike.data.events import make_events, to_frames

INDICES = (0, 7, 900)  # two training recordings and one test recording per class


def _recording(rng, n=None):
    n = int(rng.integers(50, 400)) if n is None else n
    return make_events(np.sort(rng.integers(0, 1_200_000, n)), rng.integers(0, 128, n),
                       rng.integers(0, 128, n), rng.integers(0, 2, n))


def _as_plif2020(ev):
    """The default convention's mapping, written out: x' = 127 - x, y' = y, p' = 1 - p."""
    return make_events(ev["t"], 127 - ev["x"].astype(np.int64), ev["y"], 1 - ev["p"].astype(np.int64))


def _fake_folder(root: Path, seed=0, indices=INDICES):
    rng = np.random.default_rng(seed)
    streams = {}
    for cls in CLASSES:
        for i in indices:
            path = root / cls / f"cifar10_{cls}_{i}.aedat"
            streams[path] = _recording(rng)
            write_aedat2(path, streams[path])
    return streams


def test_train_and_test_splits_on_a_fake_folder(tmp_path):
    streams = _fake_folder(tmp_path / "c10dvs")
    (tmp_path / "c10dvs" / "airplane" / "notes.txt").write_text("ignored")
    train = CIFAR10DVS(tmp_path / "c10dvs", "train", T=5, cache_dir=tmp_path / "cache", progress=False)
    test = CIFAR10DVS(tmp_path / "c10dvs", "test", T=5, cache_dir=tmp_path / "cache", progress=False)
    assert len(train) == 20 and len(test) == 10
    assert train.labels.tolist() == [c for c in range(10) for _ in range(2)]
    assert test.labels.tolist() == list(range(10))
    assert train.indices.tolist() == [0, 7] * 10 and test.indices.tolist() == [900] * 10
    assert "numeric split: recordings 0-899 of each class" in train.description
    assert "numeric split: recordings 900-999 of each class" in test.description
    assert "convention plif2020" in train.description and "channel 0 = OFF, 1 = ON" in train.description
    assert train.channel_names == ("OFF", "ON")
    assert train.sample_shape == (5, 2, 128, 128) and train.inputs.dtype == np.uint16
    assert train.classes == CLASSES and train.time_steps == 5
    for path, frames in zip(test.files, test.inputs):
        np.testing.assert_array_equal(frames, to_frames(_as_plif2020(streams[path]), 5, (128, 128)))
        assert frames.sum() == len(streams[path])
    everything = CIFAR10DVS(tmp_path / "c10dvs", "all", T=5, use_cache=False, progress=False)
    assert len(everything) == 30


def test_downsampling_and_dtype(tmp_path):
    streams = _fake_folder(tmp_path, indices=(950,))
    ds = CIFAR10DVS(tmp_path, "test", T=4, size=48, dtype=np.float32, use_cache=False, progress=False)
    assert ds.sample_shape == (4, 2, 48, 48) and ds.inputs.dtype == np.float32
    assert "48x48" in ds.description
    for path, frames in zip(ds.files, ds.inputs):
        np.testing.assert_array_equal(frames, to_frames(_as_plif2020(streams[path]), 4, (128, 128), size=48))


def test_conventions_relate_by_transposes_flips_and_polarity_swaps(tmp_path):
    _fake_folder(tmp_path, indices=(950,))  # 950 is a test recording in the numeric and sorted splits

    def frames(convention):
        return CIFAR10DVS(tmp_path, "test", T=3, convention=convention, use_cache=False, progress=False).inputs

    raw, plif, sj = frames("tinyspike"), frames("plif2020"), frames("spikingjelly")
    # plif[t, c, y, X] = raw[t, 1 - c, y, 127 - X]: x mirrored, channels swapped
    np.testing.assert_array_equal(plif, raw[:, :, ::-1, :, ::-1])
    # sj[t, c, Y, X] = raw[t, 1 - c, 127 - X, 127 - Y]
    np.testing.assert_array_equal(sj, raw[:, :, ::-1].transpose(0, 1, 2, 4, 3)[:, :, :, ::-1, ::-1])
    with pytest.raises(ValueError, match="convention"):
        CIFAR10DVS(tmp_path, "test", T=3, convention="upright")
    with pytest.raises(TypeError, match="orientation"):
        CIFAR10DVS(tmp_path, "test", T=3, orientation="spikingjelly")  # one knob: the convention


def test_missing_classes_are_named(tmp_path):
    _fake_folder(tmp_path, indices=(3,))
    for cls in ("cat", "ship"):
        for f in (tmp_path / cls).iterdir():
            f.unlink()
    with pytest.raises(FileNotFoundError, match=r"\['cat', 'ship'\]"):
        find_recordings(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="test"):  # index 3 is in no test split
        CIFAR10DVS(tmp_path, "test", T=2)


def test_cache_is_used_and_nothing_is_cached_from_a_failed_parse(tmp_path, monkeypatch):
    _fake_folder(tmp_path / "data", indices=(1,))
    cache = tmp_path / "cache"
    first = CIFAR10DVS(tmp_path / "data", T=2, cache_dir=cache, progress=False)

    def no_parse(*args, **kwargs):
        raise AssertionError("parsed although cached")

    with monkeypatch.context() as m:
        m.setattr(cifar10_dvs, "read_aedat2", no_parse)
        again = CIFAR10DVS(tmp_path / "data", T=2, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(again.inputs, first.inputs)
    assert again.inputs.dtype == first.inputs.dtype == np.uint16

    # Re-written file (new size) -> new key -> parsed again; a corrupt one raises, caches nothing.
    bad = tmp_path / "data" / "dog" / "cifar10_dog_1.aedat"
    bad.write_bytes(bad.read_bytes()[:-3])
    before = sorted(cache.iterdir())
    with pytest.raises(ValueError, match=r"cifar10_dog_1\.aedat.*8-byte"):
        CIFAR10DVS(tmp_path / "data", T=2, cache_dir=cache, progress=False)
    assert sorted(cache.iterdir()) == before


def test_download_table_matches_the_reference():
    assert tuple(DOWNLOADS) == CLASSES
    assert DOWNLOADS["airplane"] == (7712788, "0afd5c4bf9ae06af762a77b180354fdd")
    assert DOWNLOADS["truck"] == (7712839, "89f3922fd147d9aeff89e76a2b0b70a7")
    assert len({i for i, _ in DOWNLOADS.values()}) == 10
    assert all(len(m) == 32 for _, m in DOWNLOADS.values())
    assert FIGSHARE_URL.format(7712788) == "https://ndownloader.figshare.com/files/7712788"


def test_member_allow_list():
    ok = allowed_member("airplane")
    assert ok("airplane/") and ok("airplane/cifar10_airplane_0.aedat")
    assert ok("airplane/cifar10_airplane_999.aedat") and ok("airplane")
    for name in (
        "airplane/cifar10_airplane_1000.aedat",  # out of range
        "airplane/cifar10_airplane_01.aedat",  # leading zero: would alias recording 1
        "airplane/cifar10_airplane_00.aedat",
        "airplane/../cifar10_airplane_1.aedat",
        "../airplane/cifar10_airplane_1.aedat",
        "/airplane/cifar10_airplane_1.aedat",
        "airplane/sub/cifar10_airplane_1.aedat",
        "bird/cifar10_bird_1.aedat",  # another class in this class's zip
        "airplane/cifar10_bird_1.aedat",
        "airplane/cifar10_airplane_1.aedat.exe",
        "cifar10_airplane_1.aedat",  # no class folder
        "airplane/evil.sh",
    ):
        assert not ok(name), name
    with pytest.raises(ValueError, match="class"):
        allowed_member("plane")


def test_safe_extract_refuses_a_traversal_member_and_writes_nothing(tmp_path):
    archive = tmp_path / "airplane.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("airplane/cifar10_airplane_0.aedat", b"#!AER-DAT2.0\r\n")
        zf.writestr("airplane/../../evil.aedat", b"x")
    dest = tmp_path / "root"
    with pytest.raises(ValueError, match=r"\.\."):
        safe_extract(archive, dest, allowed_member("airplane"))
    assert not dest.exists() and not (tmp_path / "evil.aedat").exists()


def test_download_checks_and_extracts_each_class_zip(tmp_path, monkeypatch):
    """End to end with the network replaced: zips made here stand in for figshare's."""
    rng = np.random.default_rng(1)
    zips, md5s = {}, {}
    for cls in CLASSES:
        path = tmp_path / "upstream" / f"{cls}.zip"
        path.parent.mkdir(exist_ok=True)
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(f"{cls}/", b"")
            for i in (0, 950):
                src = tmp_path / "tmp.aedat"
                write_aedat2(src, _recording(rng, 30))
                zf.write(src, f"{cls}/cifar10_{cls}_{i}.aedat")
        zips[cls] = path
        md5s[cls] = hashlib.md5(path.read_bytes()).hexdigest()
    fetched = []

    def fake_download(url, dest, md5, expected_size=None, progress=True):
        cls = next(c for c, (fid, _) in DOWNLOADS.items() if url.endswith(f"/{fid}"))
        assert url == FIGSHARE_URL.format(DOWNLOADS[cls][0]) and md5 == DOWNLOADS[cls][1]
        fetched.append(cls)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(zips[cls].read_bytes())
        return dest

    monkeypatch.setattr(cifar10_dvs, "download_url", fake_download)
    root = tmp_path / "root"
    with pytest.raises(FileNotFoundError, match="download=True"):
        CIFAR10DVS(root, "test", T=2)
    ds = CIFAR10DVS(root, "test", T=2, download=True, cache_dir=tmp_path / "cache", progress=False)
    assert fetched == list(CLASSES) and len(ds) == 10
    assert (root / "downloads" / "cat.zip").is_file()
    assert len(read_aedat2(root / "cat" / "cifar10_cat_950.aedat")) == 30


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="split"):
        CIFAR10DVS(tmp_path, "val")
    with pytest.raises(ValueError, match="T must be"):
        CIFAR10DVS(tmp_path, T=0)
    with pytest.raises(ValueError, match="size"):
        CIFAR10DVS(tmp_path, size=129)
