"""CIFAR-10 binary batches: byte layout, round trips, corrupt files, splits, the real subset."""

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinyspike.data import cifar10
from tinyspike.data.cifar10 import CIFAR10, read_cifar10_batch, write_cifar10_batch

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
SUBSET = SHARED / "cifar10" / "cifar-10-batches-bin-subset"
needs_subset = pytest.mark.skipif(
    not (SUBSET / "data_batch_1.bin").is_file(), reason=f"real CIFAR-10 subset not found at {SUBSET}"
)


def _random_batch(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_write_read_round_trip(tmp_path_factory, n, seed):
    images, labels = _random_batch(n, seed)
    path = tmp_path_factory.mktemp("rt") / "data_batch_1.bin"
    write_cifar10_batch(path, images, labels)
    assert path.stat().st_size == n * 3073
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    got_images, got_labels = read_cifar10_batch(path)
    assert got_images.dtype == np.uint8 and got_labels.dtype == np.int64
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_byte_layout_matches_the_format(tmp_path):
    """Built by hand from the spec: label byte, then 1024 R, 1024 G, 1024 B, each row-major."""
    rng = np.random.default_rng(1)
    records = []
    planes = rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
    for k, label in enumerate([7, 2]):
        records.append(bytes([label]) + planes[k, 0].tobytes() + planes[k, 1].tobytes() + planes[k, 2].tobytes())
    path = tmp_path / "hand.bin"
    path.write_bytes(b"".join(records))
    images, labels = read_cifar10_batch(path)
    assert labels.tolist() == [7, 2]
    # pixel (c, y, x) of record k sits at byte 1 + c*1024 + y*32 + x
    raw = path.read_bytes()
    assert images[1, 2, 5, 9] == raw[3073 + 1 + 2 * 1024 + 5 * 32 + 9]
    np.testing.assert_array_equal(images, planes)


@pytest.mark.parametrize("size", [3072, 3074, 3073 * 2 - 1])
def test_wrong_size_names_the_file(tmp_path, size):
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(bytes(size))
    with pytest.raises(ValueError, match="data_batch_1.bin.*3073"):
        read_cifar10_batch(path)


def test_empty_file_is_an_error(tmp_path):
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.bin"):
        read_cifar10_batch(path)


def test_label_out_of_range_names_the_file(tmp_path):
    images, labels = _random_batch(3, 0)
    path = write_cifar10_batch(tmp_path / "b.bin", images, labels)
    raw = bytearray(path.read_bytes())
    raw[3073 * 2] = 10  # label byte of record 2
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"b\.bin: record 2 has label 10"):
        read_cifar10_batch(path)


def test_write_rejects_bad_arguments(tmp_path):
    images, labels = _random_batch(2, 0)
    with pytest.raises(TypeError, match="uint8"):
        write_cifar10_batch(tmp_path / "x.bin", images.astype(np.float32), labels)
    with pytest.raises(ValueError, match=r"\[N>0, 3, 32, 32\]"):
        write_cifar10_batch(tmp_path / "x.bin", images[:, :, :16], labels)
    with pytest.raises(ValueError, match="0-9"):
        write_cifar10_batch(tmp_path / "x.bin", images, np.array([0, 10]))
    assert not (tmp_path / "x.bin").exists()


def _write_folder(folder, batches):
    """batches: {file name: (images, labels)}; writes them plus batches.meta.txt."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (images, labels) in batches.items():
        write_cifar10_batch(folder / name, images, labels)
    (folder / "batches.meta.txt").write_text("\n".join(cifar10.CLASSES) + "\n\n")
    return folder


def test_partial_set_is_read_in_numeric_order(tmp_path):
    b1, b3 = _random_batch(4, 1), _random_batch(5, 3)
    folder = _write_folder(tmp_path / "cifar-10-batches-bin", {"data_batch_3.bin": b3, "data_batch_1.bin": b1})
    ds = CIFAR10(tmp_path)  # the parent folder works too
    assert [f.name for f in ds.files] == ["data_batch_1.bin", "data_batch_3.bin"]
    np.testing.assert_array_equal(ds.inputs, np.concatenate([b1[0], b3[0]]))
    np.testing.assert_array_equal(ds.labels, np.concatenate([b1[1], b3[1]]))
    assert ds.classes == cifar10.CLASSES and ds.num_classes == 10
    assert ds.sample_shape == (3, 32, 32) and ds.time_steps is None
    assert ds.mean == cifar10.MEAN and ds.std == cifar10.STD
    assert "train" in ds.description and "data_batch_3.bin" in ds.description
    assert CIFAR10(folder).files == ds.files


def test_test_split(tmp_path):
    test = _random_batch(6, 9)
    _write_folder(tmp_path, {"data_batch_1.bin": _random_batch(3, 1), "test_batch.bin": test})
    for ds in (CIFAR10(tmp_path, split="test"), CIFAR10(tmp_path, train=False)):
        np.testing.assert_array_equal(ds.inputs, test[0])
    with pytest.raises(ValueError, match="contradicts"):
        CIFAR10(tmp_path, split="train", train=False)


def test_missing_files_say_what_was_looked_for(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data_batch_1\.bin.*download=True"):
        CIFAR10(tmp_path / "nothing")
    _write_folder(tmp_path / "only_train", {"data_batch_1.bin": _random_batch(3, 1)})
    with pytest.raises(FileNotFoundError, match=r"test_batch\.bin.*val_fraction"):
        CIFAR10(tmp_path / "only_train", split="test")


def test_bad_split_arguments(tmp_path):
    _write_folder(tmp_path, {"data_batch_1.bin": _random_batch(20, 1)})
    with pytest.raises(ValueError, match="split must be"):
        CIFAR10(tmp_path, split="validation")
    with pytest.raises(ValueError, match="val_fraction > 0"):
        CIFAR10(tmp_path, split="val")
    with pytest.raises(ValueError, match="val_fraction must be"):
        CIFAR10(tmp_path, split="val", val_fraction=1.5)


def test_val_split_is_stratified_disjoint_and_seeded(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), [30, 10, 20, 40, 10, 10, 20, 30, 20, 10])
    images = rng.integers(0, 256, (len(labels), 3, 32, 32), dtype=np.uint8)
    _write_folder(tmp_path, {"data_batch_1.bin": (images, labels)})
    train = CIFAR10(tmp_path, split="train", val_fraction=0.1, seed=3)
    val = CIFAR10(tmp_path, split="val", val_fraction=0.1, seed=3)
    assert len(val) == 20 and len(train) == 180
    assert np.intersect1d(train.indices, val.indices).size == 0
    assert np.array_equal(np.union1d(train.indices, val.indices), np.arange(200))
    np.testing.assert_array_equal(val.class_counts(), [3, 1, 2, 4, 1, 1, 2, 3, 2, 1])
    np.testing.assert_array_equal(val.inputs, images[val.indices])
    again = CIFAR10(tmp_path, split="val", val_fraction=0.1, seed=3)
    other = CIFAR10(tmp_path, split="val", val_fraction=0.1, seed=4)
    assert np.array_equal(again.indices, val.indices)
    assert not np.array_equal(other.indices, val.indices)


def _fake_release(tmp_path, extra=()):
    """A tar.gz laid out as the official archive, with two tiny batches."""
    buf = tmp_path / "src" / cifar10.ARCHIVE_NAME
    buf.parent.mkdir()
    with tarfile.open(buf, "w:gz") as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for name, seed in (("data_batch_1.bin", 1), ("test_batch.bin", 2)):
            images, labels = _random_batch(4, seed)
            rec = np.concatenate([labels[:, None].astype(np.uint8), images.reshape(4, -1)], axis=1)
            add(f"cifar-10-batches-bin/{name}", rec.tobytes())
        add("cifar-10-batches-bin/batches.meta.txt", ("\n".join(cifar10.CLASSES) + "\n").encode())
        for name, data in extra:
            add(name, data)
    return buf


def _point_at(monkeypatch, archive):
    data = archive.read_bytes()
    monkeypatch.setattr(cifar10, "URL", archive.as_uri())
    monkeypatch.setattr(cifar10, "ARCHIVE_MD5", hashlib.md5(data).hexdigest())
    monkeypatch.setattr(cifar10, "ARCHIVE_SIZE", len(data))


def test_download_extracts_and_loads(tmp_path, monkeypatch):
    _point_at(monkeypatch, _fake_release(tmp_path))
    root = tmp_path / "cache"
    ds = CIFAR10(root, split="test", download=True, progress=False)
    assert len(ds) == 4 and (root / "cifar-10-batches-bin" / "data_batch_1.bin").is_file()
    np.testing.assert_array_equal(ds.inputs, _random_batch(4, 2)[0])


def test_download_refuses_unexpected_member(tmp_path, monkeypatch):
    _point_at(monkeypatch, _fake_release(tmp_path, extra=[("cifar-10-batches-bin/run.sh", b"rm -rf ~")]))
    root = tmp_path / "cache"
    with pytest.raises(ValueError, match="run.sh"):
        CIFAR10(root, download=True, progress=False)
    assert not (root / "cifar-10-batches-bin").exists()


@needs_subset
def test_real_subset():
    ds = CIFAR10(SUBSET)
    assert len(ds) == 10_000 and ds.inputs.shape == (10_000, 3, 32, 32)
    assert ds.inputs.dtype == np.uint8 and ds.labels.dtype == np.int64
    counts = ds.class_counts()
    assert counts.sum() == 10_000 and counts.min() > 900 and counts.max() < 1100
    assert ds.classes == cifar10.CLASSES
    # Channel means near the published CIFAR-10 ones: catches a wrong plane order or reshape.
    means = ds.inputs.mean(axis=(0, 2, 3)) / 255
    np.testing.assert_allclose(means, cifar10.MEAN, atol=0.01)
    # Neighbouring pixels of natural images are strongly correlated (a wrong reshape destroys it).
    x = ds.inputs[:500].astype(np.float64)
    corr = np.corrcoef(x[..., :, :-1].ravel(), x[..., :, 1:].ravel())[0, 1]
    assert corr > 0.8


@needs_subset
def test_real_subset_from_parent_and_val_split():
    val = CIFAR10(SUBSET.parent, split="val", val_fraction=0.1, seed=0)
    train = CIFAR10(SUBSET.parent, split="train", val_fraction=0.1, seed=0)
    assert len(val) == 1000 and len(train) == 9000
    assert np.all(np.abs(val.class_counts() - CIFAR10(SUBSET).class_counts() / 10) <= 1)


def test_class_names_file_that_is_not_utf8_names_the_file(tmp_path):
    _write_folder(tmp_path, {"data_batch_1.bin": _random_batch(20, 1)})
    names = "\n".join(cifar10.CLASSES).replace("deer", "d\xe9er")  # saved as Latin-1
    (tmp_path / "batches.meta.txt").write_bytes(names.encode("latin-1"))
    with pytest.raises(ValueError, match=r"batches\.meta\.txt: not UTF-8 text .*10 CIFAR-10 class names"):
        CIFAR10(tmp_path)
    with pytest.raises(ValueError, match=r"batches\.meta\.txt: not UTF-8 text"):
        cifar10.read_class_names(tmp_path / "batches.meta.txt")


def test_class_names_must_be_ten_distinct_names(tmp_path):
    path = tmp_path / "batches.meta.txt"
    path.write_text("\n".join(cifar10.CLASSES[:9] + ("cat",)) + "\n\n")
    with pytest.raises(ValueError, match=r"batches\.meta\.txt: the 10 class names must be distinct.*'cat'"):
        cifar10.read_class_names(path)
    path.write_text("\n".join(cifar10.CLASSES[:9]))
    with pytest.raises(ValueError, match=r"batches\.meta\.txt: expected 10 CIFAR-10 class names.*found 9"):
        cifar10.read_class_names(path)
    path.write_text("\n".join(cifar10.CLASSES) + "\n\n")
    assert cifar10.read_class_names(path) == cifar10.CLASSES


def test_registry_download_creates_the_missing_data_folder(tmp_path, monkeypatch):
    # `--data-opt download=true --data-dir NEW` used to stop at "data folder ... does not exist".
    from tinyspike.data.registry import build_splits

    _point_at(monkeypatch, _fake_release(tmp_path))
    root = tmp_path / "new" / "deeper" / "cifar"
    train, test, note = build_splits("cifar10", root, download=True, progress=False)
    assert (root / "cifar-10-batches-bin" / "test_batch.bin").is_file()
    assert len(test) == 4 and note == ""
    np.testing.assert_array_equal(test.inputs, _random_batch(4, 2)[0])


def test_offline_download_says_what_to_fetch_and_where_to_put_it(tmp_path, monkeypatch, capsys):
    import socket
    import urllib.error
    import urllib.request

    from tinyspike import cli
    from tinyspike.data.download import DownloadError

    def offline(*args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    root = tmp_path / "fresh" / "cifar"
    with pytest.raises(DownloadError) as info:
        CIFAR10(root, download=True, progress=False)
    message = str(info.value)
    for part in ("could not download cifar-10-binary.tar.gz", cifar10.URL, "Name or service not known",
                 str(root / "cifar-10-binary.tar.gz"), cifar10.ARCHIVE_MD5,
                 str(root / "cifar-10-batches-bin"), "data_batch_1.bin"):
        assert part in message, part
    assert sorted(p.name for p in root.iterdir()) == []  # the folder is made, no temporary file is left
    # The command line reports it as one line, exit status 2.
    code = cli.main(["train", "--dataset", "cifar10", "--data-dir", str(tmp_path / "other"),
                     "--data-opt", "download=true", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == cli.EXIT_USER_ERROR and len(err.splitlines()) == 1
    assert "could not download cifar-10-binary.tar.gz" in err and str(tmp_path / "other") in err
