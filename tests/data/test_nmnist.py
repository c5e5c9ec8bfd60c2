"""N-MNIST: the 5-byte event layout, the 1,100 real samples, both folder layouts, the dataset."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinyspike.data import nmnist
from tinyspike.data.events import make_events, to_frames
from tinyspike.data.nmnist import NMNIST, find_samples, read_label_list, read_nmnist, write_nmnist

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
NMNIST_DIR = SHARED / "nmnist"
needs_nmnist = pytest.mark.skipif(
    not (NMNIST_DIR / "train1K.txt").is_file(), reason=f"real N-MNIST samples not found at {NMNIST_DIR}"
)


def test_byte_layout(tmp_path):
    # The first event of shared/data/nmnist/1.bs2: x=18, y=16, ON, t = 3 * 256 + 125 µs.
    path = tmp_path / "one.bin"
    path.write_bytes(bytes([18, 16, 128, 3, 125, 33, 0, 0x7F, 0xFF, 0xFF]))
    ev = read_nmnist(path)
    assert ev.tolist() == [(893, 18, 16, 1), (2**23 - 1, 33, 0, 0)]
    write_nmnist(tmp_path / "again.bin", ev)
    assert (tmp_path / "again.bin").read_bytes() == path.read_bytes()


@settings(max_examples=40, deadline=None)
@given(t=st.lists(st.integers(0, 2**23 - 1), max_size=60).map(sorted), data=st.data())
def test_write_read_round_trip(tmp_path_factory, t, data):
    n = len(t)
    coords = st.lists(st.integers(0, 33), min_size=n, max_size=n)
    x, y = data.draw(coords), data.draw(coords)
    p = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    ev = make_events(np.asarray(t, np.int64), np.asarray(x, np.int64), np.asarray(y, np.int64),
                     np.asarray(p, bool))
    path = tmp_path_factory.mktemp("rt") / "s.bin"
    write_nmnist(path, ev)
    assert path.stat().st_size == 5 * n
    np.testing.assert_array_equal(read_nmnist(path), ev)


def test_corrupt_files_raise_naming_the_file(tmp_path):
    bad = tmp_path / "cut.bin"
    bad.write_bytes(bytes([1, 2, 3, 4, 5, 6, 7]))
    with pytest.raises(ValueError, match=r"cut\.bin.*not a whole number of 5-byte"):
        read_nmnist(bad)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(bytes([34, 0, 0, 0, 1]))
    with pytest.raises(ValueError, match=r"outside\.bin.*outside the 34x34 sensor"):
        read_nmnist(outside)
    back = tmp_path / "back.bin"
    back.write_bytes(bytes([0, 0, 0, 0, 9, 0, 0, 0, 0, 3]))
    with pytest.raises(ValueError, match=r"back\.bin.*timestamps decrease"):
        read_nmnist(back)
    assert read_nmnist(back, on_decrease="keep")["t"].tolist() == [9, 3]
    with pytest.raises(ValueError, match=r"2\*\*23"):
        write_nmnist(tmp_path / "w.bin", make_events([2**23], [0], [0], [0]))


@needs_nmnist
def test_all_real_samples_decode_within_the_sensor():
    paths = sorted(NMNIST_DIR.glob("*.bs2"))
    assert len(paths) == 1100
    total = 0
    for path in paths:
        ev = read_nmnist(path)  # checks 34x34 and non-decreasing time itself
        assert len(ev) > 500 and ev["t"].max() < 400_000  # ~300 ms, three saccades
        total += len(ev)
    assert total == 4_518_827


@needs_nmnist
def test_real_label_lists():
    train = read_label_list(NMNIST_DIR / "train1K.txt")
    test = read_label_list(NMNIST_DIR / "test100.txt")
    assert sorted(train) == list(range(1, 1001)) and sorted(test) == list(range(60001, 60101))
    assert train[1] == 5 and train[2] == 0 and test[60001] == 7 and test[60100] == 9


def test_label_list_errors(tmp_path):
    f = tmp_path / "train.txt"
    f.write_text("#sample #class\n1 5\n1 3\n")
    with pytest.raises(ValueError, match=r"train\.txt, line 3: sample 1 listed twice"):
        read_label_list(f)
    f.write_text("1 12\n")
    with pytest.raises(ValueError, match="class must be 0-9"):
        read_label_list(f)
    f.write_text("1\n")
    with pytest.raises(ValueError, match="expected 'sample_id class'"):
        read_label_list(f)
    f.write_text("1 \u00b2\n")  # '²'.isdigit() is True but int('²') fails
    with pytest.raises(ValueError, match=r"train\.txt, line 1: expected 'sample_id class'"):
        read_label_list(f)


@needs_nmnist
def test_dataset_on_the_real_samples(tmp_path, monkeypatch):
    ds = NMNIST(NMNIST_DIR, "test", T=8, cache_dir=tmp_path)
    assert len(ds) == 100 and ds.time_steps == 8 and ds.sample_shape == (8, 2, 34, 34)
    assert ds.inputs.dtype == np.float32 and ds.labels.dtype == np.int64
    assert "N-MNIST test" in ds.description and "test100.txt" in ds.description
    labels = read_label_list(NMNIST_DIR / "test100.txt")
    assert ds.labels.tolist() == [labels[60001 + i] for i in range(100)]
    for i in (0, 57, 99):
        ev = read_nmnist(NMNIST_DIR / f"{60001 + i}.bs2")
        np.testing.assert_array_equal(ds.inputs[i], to_frames(ev, 8, (34, 34)))

    # The second construction comes from the cache: no file is parsed.
    def no_parse(*args, **kwargs):
        raise AssertionError("parsed although cached")

    monkeypatch.setattr(nmnist, "read_nmnist", no_parse)
    again = NMNIST(NMNIST_DIR, "test", T=8, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.inputs, ds.inputs)
    assert again.inputs.dtype == np.float32
    with pytest.raises(AssertionError, match="parsed"):  # another T is another cache entry
        NMNIST(NMNIST_DIR, "test", T=4, cache_dir=tmp_path)


def _official_tree(root, per_digit=2, seed=0):
    rng = np.random.default_rng(seed)
    streams = {}
    for split in ("Train", "Test"):
        for d in range(10):
            for k in range(per_digit):
                n = int(rng.integers(20, 60))
                ev = make_events(np.sort(rng.integers(0, 300_000, n)), rng.integers(0, 34, n),
                                 rng.integers(0, 34, n), rng.integers(0, 2, n))
                path = root / split / str(d) / f"{k * 10 + d:05d}.bin"
                write_nmnist(path, ev)
                streams[path] = ev
    return streams


def test_official_folder_layout(tmp_path):
    streams = _official_tree(tmp_path / "N-MNIST")
    ds = NMNIST(tmp_path / "N-MNIST", "train", T=3, split_by="time", size=17,
                cache_dir=tmp_path / "cache")
    assert len(ds) == 20 and ds.sample_shape == (3, 2, 17, 17)
    assert ds.labels.tolist() == [d for d in range(10) for _ in range(2)]
    for path, frames in zip(ds.files, ds.inputs):
        expect = to_frames(streams[path], 3, (34, 34), "time", size=17)
        np.testing.assert_array_equal(frames, expect)
    paths, labels, _ = find_samples(tmp_path / "N-MNIST", "test")
    assert len(paths) == 20 and all(p.parent.parent.name == "Test" for p in paths)


def test_nothing_is_cached_when_a_file_is_corrupt(tmp_path):
    _official_tree(tmp_path / "data", per_digit=1)
    (tmp_path / "data" / "Train" / "4" / "00004.bin").write_bytes(b"\x00" * 7)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=r"00004\.bin"):
        NMNIST(tmp_path / "data", "train", T=2, cache_dir=cache)
    assert not cache.exists() or not any(cache.iterdir())


def test_missing_files_are_reported(tmp_path):
    (tmp_path / "train1K.txt").write_text("1 5\n2 0\n")
    write_nmnist(tmp_path / "1.bs2", make_events([0], [0], [0], [0]))
    with pytest.raises(FileNotFoundError, match=r"1 listed samples have no .bin/.bs2 file.*\[2\]"):
        NMNIST(tmp_path, "train", T=2, use_cache=False)
    with pytest.raises(FileNotFoundError, match=r"test\*\.txt"):
        NMNIST(tmp_path, "test", T=2, use_cache=False)
    with pytest.raises(ValueError, match="split"):
        NMNIST(tmp_path, "val", T=2)


def test_label_list_that_is_not_utf8_names_the_file(tmp_path):
    # A label list saved in Latin-1 (the comment has an "é"): Python alone raises a
    # UnicodeDecodeError naming neither the file nor what it should hold.
    path = tmp_path / "train1K.txt"
    path.write_bytes("# échantillon classe\n1 5\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"train1K\.txt: not UTF-8 text \(byte 0xe9 at offset 2.*'sample_id class'"):
        read_label_list(path)
    write_nmnist(tmp_path / "1.bin", make_events([0], [0], [0], [0]))
    with pytest.raises(ValueError, match=r"train1K\.txt: not UTF-8 text"):
        NMNIST(tmp_path, "train", T=2, use_cache=False)


def test_label_list_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes("1 5\n2 0\n".encode("utf-8-sig"))
    assert read_label_list(path) == {1: 5, 2: 0}


def test_a_sample_without_events_is_refused_naming_the_file(tmp_path):
    # The reader accepts a zero-length file (a valid, empty recording) ...
    (tmp_path / "train.txt").write_text("1 5\n2 0\n")
    write_nmnist(tmp_path / "1.bin", make_events([0, 5], [1, 2], [3, 4], [0, 1]))
    (tmp_path / "2.bin").write_bytes(b"")
    assert read_nmnist(tmp_path / "2.bin").size == 0
    # ... the dataset does not: all-zero frames with a label are nothing to learn from.
    for use_cache in (False, True):
        with pytest.raises(ValueError, match=r"2\.bin: the recording holds no events"):
            NMNIST(tmp_path, "train", T=2, use_cache=use_cache, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
