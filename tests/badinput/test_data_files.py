"""Corrupt data files: every damaged file the loaders read fails with a ValueError naming it.

For each format a valid file is written with the project's own writers, then damaged in one way
the format can detect: cut at a random byte, a byte flipped where a checksum or a range check
sees it, emptied, a record size that does not divide the length, a header without a body, a
garbage header, coordinates or labels out of range, timestamps that go backwards (the formats
promise order), text that is not UTF-8. Corruptions a format cannot see (a flipped pixel byte of
a CIFAR-10 image, a flipped polarity bit of an event) are not generated: no reader could refuse
them. Each damaged file is read both by its reader and through the dataset that uses it, and
``assert_clear`` checks the error is a ValueError (or a subclass) whose message holds the file's
name.

The one format with another promise is the frame cache: a damaged ``.npz`` entry is never an
error, it is rebuilt from the source files (``tinyspike.data.cache``), so its test checks that
the frames come out right and that a warning names the file.
"""

from __future__ import annotations

import io
import logging
import struct
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from bad_input import assert_clear
from hypothesis import given, settings, strategies as st

from tinyspike.data import cifar10
from tinyspike.data.aedat import MAGIC, read_aedat2, split_header, write_aedat2
from tinyspike.data.cache import cached_frames
from tinyspike.data.cifar10 import CIFAR10, RECORD_BYTES, read_cifar10_batch, write_cifar10_batch
from tinyspike.data.cifar10_dvs import CIFAR10DVS
from tinyspike.data.cifar10_dvs import CLASSES as DVS_CLASSES
from tinyspike.data.download import safe_extract
from tinyspike.data.events import make_events
from tinyspike.data.nmnist import NMNIST, read_label_list, read_nmnist, write_nmnist

FAST = settings(deadline=None, max_examples=40)

# Bytes that can never appear in UTF-8: a lone continuation byte (0x80-0xBF, and the text around
# it is ASCII, so no lead byte precedes it), or 0xF8-0xFF, which no UTF-8 sequence uses.
NOT_UTF8 = st.sampled_from(list(range(0x80, 0xC0)) + list(range(0xF8, 0x100)))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("corrupt")


def _fresh(work: Path) -> Path:
    """A new empty folder per generated case (hypothesis reuses the module's fixture)."""
    return Path(tempfile.mkdtemp(dir=work))


def _flip(data: bytes, offset: int, mask: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= mask
    return bytes(out)


# ------------------------------------------------------------------------------ CIFAR-10 batches

N_RECORDS = 3


def _cifar_batch_bytes() -> bytes:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N_RECORDS, 3, 32, 32), dtype=np.uint8)
    buffer = Path(tempfile.mkdtemp()) / "b.bin"
    write_cifar10_batch(buffer, images, np.array([0, 5, 9]))
    return buffer.read_bytes()


CIFAR_BATCH = _cifar_batch_bytes()
META = "\n".join(cifar10.CLASSES) + "\n"


@st.composite
def corrupt_cifar_batch(draw):
    kind = draw(st.sampled_from(["truncate", "extend", "empty", "label"]))
    if kind == "truncate":  # a cut at a record boundary is a valid, shorter batch: not generated
        cut = draw(st.integers(1, len(CIFAR_BATCH) - 1).filter(lambda k: k % RECORD_BYTES))
        return kind, CIFAR_BATCH[:cut]
    if kind == "extend":
        return kind, CIFAR_BATCH + draw(st.binary(min_size=1, max_size=RECORD_BYTES - 1))
    if kind == "empty":
        return kind, b""
    record, label = draw(st.integers(0, N_RECORDS - 1)), draw(st.integers(10, 255))
    data = bytearray(CIFAR_BATCH)
    data[record * RECORD_BYTES] = label
    return kind, bytes(data)


@FAST
@given(case=corrupt_cifar_batch(), through_dataset=st.booleans())
def test_corrupt_cifar10_batch(work, case, through_dataset):
    kind, data = case
    folder = _fresh(work)
    path = folder / "data_batch_1.bin"
    path.write_bytes(data)
    (folder / "batches.meta.txt").write_text(META)
    call = (lambda: CIFAR10(folder)) if through_dataset else (lambda: read_cifar10_batch(path))
    assert_clear(f"CIFAR-10 batch {kind}", call, [path.name], kind)


@st.composite
def corrupt_meta(draw):
    names = list(cifar10.CLASSES)
    kind = draw(st.sampled_from(["not utf-8", "missing name", "extra name", "duplicate", "empty"]))
    if kind == "not utf-8":
        data = META.encode()
        at = draw(st.integers(0, len(data)))
        return kind, data[:at] + bytes([draw(NOT_UTF8)]) + data[at:]
    if kind == "missing name":
        del names[draw(st.integers(0, 9))]
    elif kind == "extra name":
        names.insert(draw(st.integers(0, 10)), "unicorn")
    elif kind == "duplicate":
        i, j = draw(st.lists(st.integers(0, 9), min_size=2, max_size=2, unique=True))
        names[i] = names[j]
    else:
        names = []
    return kind, "\n".join(names).encode()


@settings(deadline=None, max_examples=30)
@given(case=corrupt_meta())
def test_corrupt_cifar10_class_names(work, case):
    kind, data = case
    folder = _fresh(work)
    (folder / "data_batch_1.bin").write_bytes(CIFAR_BATCH)
    (folder / "batches.meta.txt").write_bytes(data)
    assert_clear(f"batches.meta.txt {kind}", lambda: CIFAR10(folder), ["batches.meta.txt"], kind)


# ------------------------------------------------------------------------------ AEDAT 2.0

N_EVENTS = 20


def _aedat_bytes() -> tuple[bytes, int, np.ndarray]:
    rng = np.random.default_rng(1)
    t = np.sort(rng.integers(1000, 10**6, N_EVENTS))
    events = make_events(t, rng.integers(0, 128, N_EVENTS), rng.integers(0, 128, N_EVENTS),
                         rng.integers(0, 2, N_EVENTS))
    path = Path(tempfile.mkdtemp()) / "r.aedat"
    write_aedat2(path, events)
    data = path.read_bytes()
    return data, split_header(data, path)[1], t


AEDAT, AEDAT_BODY, AEDAT_T = _aedat_bytes()


def _set_word(data: bytes, record: int, word: int, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(">I", out, AEDAT_BODY + 8 * record + 4 * word, value)
    return bytes(out)


@st.composite
def corrupt_aedat(draw):
    kind = draw(st.sampled_from(
        ["truncate body", "cut header line", "header only", "empty", "garbage header", "AEDAT 3",
         "special address", "time goes back"]))
    if kind == "truncate body":
        return kind, AEDAT[: AEDAT_BODY + draw(st.integers(1, 8 * N_EVENTS - 1).filter(lambda k: k % 8))]
    if kind == "cut header line":  # inside a '#' line: no line end follows
        cut = draw(st.integers(1, AEDAT_BODY - 1).filter(lambda c: AEDAT[c - 1] != ord("\n")))
        return kind, AEDAT[:cut]
    if kind == "header only":  # well-formed, no events: the dataset must refuse it
        cut = draw(st.sampled_from([i + 1 for i in range(AEDAT_BODY) if AEDAT[i] == ord("\n")]))
        return kind, AEDAT[:cut]
    if kind == "empty":
        return kind, b""
    if kind == "garbage header":
        junk = draw(st.binary(min_size=1, max_size=60))
        data = junk + AEDAT[len(junk):]
        return kind, data if not data.startswith(MAGIC) else b"?" + data
    if kind == "AEDAT 3":
        return kind, b"#!AER-DAT3.1\r\n" + AEDAT[AEDAT_BODY:]
    record = draw(st.integers(0, N_EVENTS - 1))
    if kind == "special address":
        address = struct.unpack_from(">I", AEDAT, AEDAT_BODY + 8 * record)[0]
        return kind, _set_word(AEDAT, record, 0, address | 1 << draw(st.integers(15, 31)))
    # Back by less than 2**31 µs: a bigger drop would be a 32-bit counter wrap, which is unwrapped.
    record = max(record, 1)
    previous = int(AEDAT_T[record - 1])
    return kind, _set_word(AEDAT, record, 1, previous - draw(st.integers(1, previous)))


def _aedat_frames(path):
    """What CIFAR10DVS does with each recording (read_aedat2 through the frame builder)."""
    return cached_frames({"dataset": "test"}, [path], read_aedat2, 2, (128, 128), "number", use_cache=False)


@settings(deadline=None, max_examples=50)
@given(case=corrupt_aedat(), through_frames=st.booleans())
def test_corrupt_aedat2(work, case, through_frames):
    kind, data = case
    path = _fresh(work) / "cifar10_cat_7.aedat"
    path.write_bytes(data)
    if kind == "header only":
        assert read_aedat2(path).size == 0  # the reader accepts it, as the docstring says
        through_frames = True
    call = (lambda: _aedat_frames(path)) if through_frames else (lambda: read_aedat2(path))
    assert_clear(f"AEDAT 2.0 {kind}", call, [path.name], kind)


def test_cifar10_dvs_refuses_a_header_only_recording(tmp_path):
    events = make_events([5, 9], [1, 2], [3, 4], [0, 1])
    for cls in DVS_CLASSES:
        write_aedat2(tmp_path / cls / f"cifar10_{cls}_0.aedat", events)
    empty = tmp_path / "dog" / "cifar10_dog_0.aedat"
    empty.write_bytes(AEDAT[:AEDAT_BODY])
    assert_clear("CIFAR10DVS header-only recording",
                 lambda: CIFAR10DVS(tmp_path, "train", T=2, use_cache=False, progress=False),
                 [empty.name], "header only")


# ------------------------------------------------------------------------------ N-MNIST

SAMPLE_IDS = (41237, 41238)


def _nmnist_bytes() -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(2)
    t = np.sort(rng.integers(1, 2**23, N_EVENTS))
    events = make_events(t, rng.integers(0, 34, N_EVENTS), rng.integers(0, 34, N_EVENTS),
                         rng.integers(0, 2, N_EVENTS))
    path = Path(tempfile.mkdtemp()) / "s.bin"
    write_nmnist(path, events)
    return path.read_bytes(), t


NMNIST_BYTES, NMNIST_T = _nmnist_bytes()
LABELS = "# sample class\n41237 3\n41238 7\n"


def _nmnist_folder(work, sample: bytes, suffix: str = ".bin", labels: bytes = LABELS.encode()):
    folder = _fresh(work)
    (folder / f"{SAMPLE_IDS[0]}{suffix}").write_bytes(NMNIST_BYTES)
    (folder / f"{SAMPLE_IDS[1]}{suffix}").write_bytes(sample)
    (folder / "train_list.txt").write_bytes(labels)
    return folder, folder / f"{SAMPLE_IDS[1]}{suffix}"


@st.composite
def corrupt_nmnist(draw):
    kind = draw(st.sampled_from(["truncate", "extend", "empty", "x outside", "y outside", "time goes back"]))
    if kind == "truncate":
        return kind, NMNIST_BYTES[: draw(st.integers(1, len(NMNIST_BYTES) - 1).filter(lambda k: k % 5))]
    if kind == "extend":
        return kind, NMNIST_BYTES + draw(st.binary(min_size=1, max_size=4))
    if kind == "empty":
        return kind, b""
    event = draw(st.integers(0, N_EVENTS - 1))
    data = bytearray(NMNIST_BYTES)
    if kind in ("x outside", "y outside"):
        data[5 * event + (kind == "y outside")] = draw(st.integers(34, 255))
        return kind, bytes(data)
    event = max(event, 1)
    t = int(NMNIST_T[event - 1]) - draw(st.integers(1, int(NMNIST_T[event - 1])))
    data[5 * event + 2] = (data[5 * event + 2] & 0x80) | t >> 16
    data[5 * event + 3], data[5 * event + 4] = (t >> 8) & 0xFF, t & 0xFF
    return kind, bytes(data)


@settings(deadline=None, max_examples=45)
@given(case=corrupt_nmnist(), suffix=st.sampled_from([".bin", ".bs2"]), through_dataset=st.booleans())
def test_corrupt_nmnist_sample(work, case, suffix, through_dataset):
    kind, data = case
    folder, path = _nmnist_folder(work, data, suffix)
    if kind == "empty":
        assert read_nmnist(path).size == 0  # a valid, empty recording for the reader
        through_dataset = True
    call = ((lambda: NMNIST(folder, "train", T=2, use_cache=False)) if through_dataset
            else (lambda: read_nmnist(path)))
    assert_clear(f"N-MNIST sample {kind}", call, [path.name], kind)


@st.composite
def corrupt_label_list(draw):
    kind = draw(st.sampled_from(["not utf-8", "class out of range", "negative", "not an integer",
                                 "column count", "listed twice", "no lines"]))
    lines = LABELS.splitlines()
    row = draw(st.sampled_from([1, 2]))
    sample, cls = lines[row].split()
    if kind == "not utf-8":
        data = LABELS.encode()
        at = draw(st.integers(0, len(data)))
        return kind, data[:at] + bytes([draw(NOT_UTF8)]) + data[at:]
    if kind == "class out of range":
        lines[row] = f"{sample} {draw(st.integers(10, 10**9))}"
    elif kind == "negative":
        lines[row] = draw(st.sampled_from([f"-{sample} {cls}", f"{sample} -{cls}"]))
    elif kind == "not an integer":
        token = draw(st.sampled_from(["3.0", "x", "five", "0x3", "1e1", "٣"]))
        lines[row] = draw(st.sampled_from([f"{sample} {token}", f"{token} {cls}"]))
    elif kind == "column count":
        lines[row] = draw(st.sampled_from([sample, f"{sample} {cls} {cls}"]))
    elif kind == "listed twice":
        lines.append(f"{sample} {cls}")
    else:
        lines = draw(st.sampled_from([[], ["# only a comment"], ["", "   "]]))
    return kind, "\n".join(lines).encode()


@settings(deadline=None, max_examples=35)
@given(case=corrupt_label_list(), through_dataset=st.booleans())
def test_corrupt_label_list(work, case, through_dataset):
    kind, data = case
    folder, _ = _nmnist_folder(work, NMNIST_BYTES, labels=data)
    path = folder / "train_list.txt"
    call = ((lambda: NMNIST(folder, "train", T=2, use_cache=False)) if through_dataset
            else (lambda: read_label_list(path)))
    assert_clear(f"label list {kind}", call, [path.name], kind)


# ------------------------------------------------------------------------------ the frame cache


class _Warnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@settings(deadline=None, max_examples=20)
@given(kind=st.sampled_from(["truncate", "flip", "empty", "garbage"]), data=st.data())
def test_a_damaged_frame_cache_entry_is_rebuilt_not_served(work, kind, data):
    folder, _ = _nmnist_folder(work, NMNIST_BYTES)
    cache = folder / "cache"
    expected = NMNIST(folder, "train", T=3, cache_dir=cache).inputs
    (entry,) = cache.iterdir()
    good = entry.read_bytes()
    # The entry's length varies from run to run (the key holds the files' mtimes), so draw a
    # position independent of it: hypothesis replays the same draws.
    where = data.draw(st.integers(0, 2**20)) % len(good)
    if kind == "truncate":
        damaged = good[:where]
    elif kind == "flip":
        damaged = _flip(good, where, data.draw(st.integers(1, 255)))
    elif kind == "empty":
        damaged = b""
    else:
        damaged = data.draw(st.binary(min_size=1, max_size=200))
    entry.write_bytes(damaged)
    handler = _Warnings()
    log = logging.getLogger("tinyspike.data.cache")
    log.addHandler(handler)
    try:
        got = NMNIST(folder, "train", T=3, cache_dir=cache).inputs
    finally:
        log.removeHandler(handler)
    np.testing.assert_array_equal(got, expected)  # exact: counts
    if kind != "flip":  # a flipped byte may land where zip checks nothing (a timestamp): then served
        assert any(entry.name in m and "rebuilt" in m for m in handler.messages), handler.messages
        with np.load(entry, allow_pickle=False) as npz:  # and the rebuilt entry is whole again
            np.testing.assert_array_equal(npz["frames"], expected)


# ------------------------------------------------------------------------------ archives


def _release_members() -> dict[str, bytes]:
    return {
        "cifar-10-batches-bin/data_batch_1.bin": CIFAR_BATCH,
        "cifar-10-batches-bin/test_batch.bin": CIFAR_BATCH[: 2 * RECORD_BYTES],
        "cifar-10-batches-bin/batches.meta.txt": META.encode(),
    }


def _tar_gz() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, payload in _release_members().items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def _zip() -> tuple[bytes, list[tuple[int, int]]]:
    """The zip's bytes and the (start, end) of each member's stored data, where CRC-32 applies."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, payload in _release_members().items():
            zf.writestr(name, payload)
    data = buffer.getvalue()
    regions = []
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)
            start = info.header_offset + 30 + name_len + extra_len
            regions.append((start, start + info.compress_size))
    return data, regions


TAR_GZ = _tar_gz()
ZIP, ZIP_DATA = _zip()
# Bytes where a flip is invisible, so none is generated there: the gzip header's mtime, xfl and os
# fields (bytes 4-9, unchecked), and the first and last byte of a deflate stream, whose unused
# bits (after a stored block's 3-bit header, after the end-of-block code) nothing decodes.
GZIP_HEADER = 10
GZIP_TRAILER = 8  # CRC-32 and length: checked


@st.composite
def corrupt_archive(draw):
    suffix = draw(st.sampled_from([".tar.gz", ".zip"]))
    good = TAR_GZ if suffix == ".tar.gz" else ZIP
    kind = draw(st.sampled_from(["truncate", "empty", "garbage", "flip"]))
    if kind == "truncate":
        return suffix, kind, good[: draw(st.integers(1, len(good) - 1))]
    if kind == "empty":
        return suffix, kind, b""
    if kind == "garbage":
        return suffix, kind, draw(st.binary(min_size=1, max_size=2000))
    if suffix == ".tar.gz":
        last_deflate_byte = len(good) - GZIP_TRAILER - 1
        offset = draw(st.integers(GZIP_HEADER, len(good) - 1).filter(lambda o: o != last_deflate_byte))
    else:
        start, end = draw(st.sampled_from(ZIP_DATA))
        offset = draw(st.integers(start + 1, end - 2))
    return suffix, kind, _flip(good, offset, draw(st.integers(1, 255)))


@settings(deadline=None, max_examples=50)
@given(case=corrupt_archive())
def test_corrupt_cifar10_archive(work, case):
    suffix, kind, data = case
    folder = _fresh(work)
    archive = folder / f"cifar-10-binary{suffix}"
    archive.write_bytes(data)
    dest = folder / "root"
    assert_clear(f"CIFAR-10 archive {suffix} {kind}",
                 lambda: safe_extract(archive, dest, cifar10.archive_member_allowed), [archive.name], kind)
    assert not dest.exists()  # nothing half-extracted
    assert sorted(p.name for p in folder.iterdir()) == [archive.name]  # no temporary folder left


def test_the_valid_files_behind_the_corruptions_are_accepted(tmp_path):
    """Each generator starts from a file its reader accepts: the errors above are the damage's."""
    assert read_aedat2_ok(tmp_path) and len(read_label_list(_write(tmp_path / "l.txt", LABELS.encode()))) == 2
    assert len(read_cifar10_batch(_write(tmp_path / "b.bin", CIFAR_BATCH))[1]) == N_RECORDS
    assert read_nmnist(_write(tmp_path / "s.bin", NMNIST_BYTES)).size == N_EVENTS
    for suffix, data in ((".tar.gz", TAR_GZ), (".zip", ZIP)):
        files = safe_extract(_write(tmp_path / f"a{suffix}", data), tmp_path / suffix, cifar10.archive_member_allowed)
        assert sorted(p.name for p in files) == ["batches.meta.txt", "data_batch_1.bin", "test_batch.bin"]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def read_aedat2_ok(tmp_path) -> bool:
    events = read_aedat2(_write(tmp_path / "r.aedat", AEDAT))
    return events.size == N_EVENTS and np.array_equal(events["t"], AEDAT_T)
