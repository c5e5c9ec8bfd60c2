"""The frame cache: keys that change with every parameter, atomic writes, verified loads."""

import os
import zipfile

import numpy as np
import pytest

from tinyspike.data import cache as cache_mod
from tinyspike.data.cache import (
    FrameCache, cache_key, cached_arrays, canonical_params, compact_counts, file_fingerprints,
)

PARAMS = {
    "dataset": "cifar10_dvs",
    "split": "train",
    "T": 10,
    "split_by": "number",
    "sensor_size": [128, 128],
    "size": [64, 64],
    "dtype": "<u2",
    "orientation": "sensor",
    "files": [["airplane/cifar10_airplane_0.aedat", 1234, 1700000000000000000]],
}

CHANGES = {
    "dataset": "nmnist",
    "split": "test",
    "T": 8,
    "split_by": "time",
    "sensor_size": [34, 34],
    "size": [48, 48],
    "dtype": "<f4",
    "orientation": "spikingjelly",
    "files": [["airplane/cifar10_airplane_0.aedat", 1235, 1700000000000000000]],
}


def test_key_changes_when_any_parameter_changes():
    base = cache_key(PARAMS)
    assert len(base) == 64 and int(base, 16) >= 0
    assert set(CHANGES) == set(PARAMS)
    keys = {base}
    for name, value in CHANGES.items():
        keys.add(cache_key({**PARAMS, name: value}))
    keys.add(cache_key({**PARAMS, "files": PARAMS["files"] + [["x.aedat", 1, 1]]}))
    keys.add(cache_key({**PARAMS, "extra": None}))  # a new parameter is a new key too
    assert len(keys) == len(CHANGES) + 3


def test_key_ignores_dict_order_but_not_list_order():
    reordered = dict(reversed(list(PARAMS.items())))
    assert cache_key(reordered) == cache_key(PARAMS)
    assert cache_key({**PARAMS, "sensor_size": [34, 128]}) != cache_key({**PARAMS, "sensor_size": [128, 34]})


def test_key_includes_the_format_version(monkeypatch):
    before = cache_key(PARAMS)
    monkeypatch.setattr(cache_mod, "FORMAT_VERSION", cache_mod.FORMAT_VERSION + 1)
    assert cache_key(PARAMS) != before
    assert '"format_version":' in canonical_params(PARAMS)


def test_only_plain_json_parameters(tmp_path):
    with pytest.raises(TypeError, match=r"params\.root must be None, bool, int, float, str"):
        cache_key({"root": tmp_path})
    with pytest.raises(TypeError, match="ndarray"):
        cache_key({"T": np.array(3)})
    with pytest.raises(ValueError, match="finite"):
        cache_key({"C": float("nan")})


def test_fingerprints_see_size_mtime_and_content(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"12345")
    os.utime(f, ns=(1_000_000_000, 1_000_000_000))
    fp = file_fingerprints([f], tmp_path)
    assert fp == [["a.bin", 5, 1_000_000_000]]
    os.utime(f, ns=(2_000_000_000, 2_000_000_000))
    assert file_fingerprints([f], tmp_path) != fp
    by_content = file_fingerprints([f], tmp_path, content=True)
    f.write_bytes(b"12346")  # same size, other content
    os.utime(f, ns=(2_000_000_000, 2_000_000_000))
    assert file_fingerprints([f], tmp_path, content=True) != by_content


def test_save_load_round_trip_is_atomic_and_verified(tmp_path):
    store = FrameCache(tmp_path)
    frames = np.arange(24, dtype=np.uint16).reshape(2, 3, 4)
    path = store.save(PARAMS, {"frames": frames, "labels": np.array([1, 2])})
    assert path.parent == tmp_path and path.name.startswith("cifar10_dvs-") and path.suffix == ".npz"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    got = store.load(PARAMS)
    assert set(got) == {"frames", "labels"}
    np.testing.assert_array_equal(got["frames"], frames)
    assert got["frames"].dtype == np.uint16
    assert store.load({**PARAMS, "T": 8}) is None
    # The file is a plain zip of .npy members: loadable with allow_pickle=False.
    with np.load(path, allow_pickle=False) as npz:
        assert "__params__" in npz.files
    with pytest.raises(TypeError, match="non-object"):
        store.save(PARAMS, {"frames": np.array([None, 1], dtype=object)})


def test_failed_build_writes_nothing(tmp_path):
    def build():
        raise ValueError("corrupt file x.aedat")

    with pytest.raises(ValueError, match="corrupt"):
        cached_arrays(PARAMS, build, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_build_runs_once_then_the_cache_answers(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"frames": np.ones((2, 2), np.uint8)}

    a = cached_arrays(PARAMS, build, cache_dir=tmp_path)
    b = cached_arrays(PARAMS, build, cache_dir=tmp_path)
    assert len(calls) == 1
    np.testing.assert_array_equal(a["frames"], b["frames"])
    cached_arrays(PARAMS, build, cache_dir=tmp_path, use_cache=False)
    assert len(calls) == 2 and len(list(tmp_path.iterdir())) == 1


def test_damaged_or_foreign_files_are_rebuilt(tmp_path, caplog):
    store = FrameCache(tmp_path)
    path = store.save(PARAMS, {"frames": np.zeros(3, np.uint8)})
    path.write_bytes(path.read_bytes()[:20])  # truncated
    assert store.load(PARAMS) is None
    # A file under this key holding other parameters (a hash collision, a hand-copied file).
    other = FrameCache(tmp_path).save({**PARAMS, "T": 3}, {"frames": np.zeros(3, np.uint8)})
    os.replace(other, path)
    assert store.load(PARAMS) is None
    rebuilt = store.get_or_build(PARAMS, lambda: {"frames": np.full(3, 7, np.uint8)})
    assert rebuilt["frames"].tolist() == [7, 7, 7] and store.load(PARAMS)["frames"].tolist() == [7, 7, 7]
    assert "rebuilt" in caplog.text


def test_uncompressed_cache(tmp_path):
    store = FrameCache(tmp_path, compress=False)
    path = store.save(PARAMS, {"frames": np.zeros(1000, np.uint8)})
    with zipfile.ZipFile(path) as zf:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
    assert store.load(PARAMS)["frames"].shape == (1000,)


def test_default_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYSPIKE_CACHE", str(tmp_path))
    assert FrameCache().dir == tmp_path / "frames"


def test_compact_counts():
    assert compact_counts(np.array([0.0, 255.0], np.float32)).dtype == np.uint8
    assert compact_counts(np.array([0, 256])).dtype == np.uint16
    assert compact_counts(np.array([70000.0])).dtype == np.uint32
    assert compact_counts(np.zeros(0)).dtype == np.uint8
    np.testing.assert_array_equal(compact_counts(np.array([3.0, 9.0])), [3, 9])
    with pytest.raises(ValueError, match="non-negative integers"):
        compact_counts(np.array([1.5]))
    with pytest.raises(ValueError, match="non-negative integers"):
        compact_counts(np.array([-1]))


def _flip_in(data: bytes, anchor: bytes, offset: int, mask: int) -> bytes:
    at = data.index(anchor) + offset
    return data[:at] + bytes([data[at] ^ mask]) + data[at + 1 :]


# One flipped byte, and what NumPy/zipfile then raise (measured by flipping every byte of a
# stored entry): a broken Python literal in a member's .npy header, read before any checksum,
# and the zip's "encrypted" flag. Each must read as a damaged entry, to be rebuilt.
BROKEN_ENTRIES = {
    "tokenize.TokenError": (b"{'descr': '|u1'", 0, 1),  # '{' -> 'z': an unclosed bracket
    "SyntaxError": (b"{'descr': '|u1'", 11, 80),
    "TypeError": (b"{'descr': '|u1'", 16, 66),
    "RuntimeError (encrypted flag)": (b"PK\x01\x02", 8, 1),  # central directory: general-purpose flags
}


@pytest.mark.parametrize("what", sorted(BROKEN_ENTRIES))
def test_a_flipped_byte_that_breaks_the_header_is_rebuilt(tmp_path, caplog, what):
    store = FrameCache(tmp_path, compress=False)
    # Large enough that zipfile hands NumPy the header before it has read (and checked the CRC
    # of) the whole member, as for real frames.
    path = store.save(PARAMS, {"frames": np.zeros((5, 3, 2, 34, 34), np.uint8)})
    path.write_bytes(_flip_in(path.read_bytes(), *BROKEN_ENTRIES[what]))
    assert store.load(PARAMS) is None
    assert "unreadable" in caplog.text and "rebuilt" in caplog.text
