"""N-MNIST: MNIST digits recorded by an ATIS event camera that made three saccades in front of
each printed digit (Orchard et al., 2015). 34x34 pixels, about 300 ms and 4,000 events a sample.

File format (``.bin``; the ``.bs2`` files in ``shared/data/nmnist`` have the same bytes): 5 bytes
per event, no header (REFERENCE.md §9)::

    byte 0: x    byte 1: y    byte 2: p << 7 | t[22:16]    byte 3: t[15:8]    byte 4: t[7:0]

so t is a 23-bit microsecond count (up to 8.4 s) and p is 1 for ON, 0 for OFF.

Two folder layouts are read:

- the official one, after unzipping ``Train.zip``/``Test.zip``: ``Train/<digit>/<id>.bin`` and
  ``Test/<digit>/<id>.bin``; the label is the folder name.
- a flat one (the samples in ``shared/data/nmnist``): ``<id>.bs2`` or ``<id>.bin`` files plus a
  label list per split, ``sample_id class`` per line, ``#`` comments (``train1K.txt``,
  ``test100.txt``). For ``split="train"`` the one ``train*.txt`` in the folder is used, for
  ``"test"`` the one ``test*.txt``; or name it with ``labels_file=``.

A file with no events (zero bytes) is a valid N-MNIST file and ``read_nmnist`` returns an empty
array for it; the ``NMNIST`` dataset refuses it (a ``ValueError`` naming the file), because a
sample without events is all-zero frames, nothing to learn from and most often a failed copy.

There is no download here: the dataset's hosting has moved several times and is not a plain URL
with a checksum. Fetch ``Train.zip``/``Test.zip`` by hand and point ``root`` at the unzipped folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinyspike import atomic, checks
from tinyspike.data.cache import cached_frames, file_fingerprints
from tinyspike.data.dataset import ArrayDataset, check_path, read_text_lines
from tinyspike.data.events import EVENT_DTYPE, SPLIT_BY, check_events, check_frame_args, check_frame_dtype, output_size

NMNIST_SIZE = (34, 34)  # (H, W)
CLASSES = tuple(str(d) for d in range(10))
SPLITS = ("train", "test")
_MAX_T = 2**23  # 23 timestamp bits
_SUFFIXES = (".bin", ".bs2")
ON_DECREASE = ("error", "keep")


def decode_nmnist(data: bytes, *, source="<bytes>", on_decrease: str = "error") -> np.ndarray:
    """Decode N-MNIST bytes into an ``EVENT_DTYPE`` array (see ``read_nmnist``)."""
    checks.choice("decode_nmnist", "on_decrease", on_decrease, ON_DECREASE)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"decode_nmnist: data must be bytes, got {checks.kind_of(data)}")
    if len(data) % 5:
        raise ValueError(
            f"{source}: {len(data)} bytes is not a whole number of 5-byte N-MNIST events "
            f"({len(data) % 5} bytes left over): truncated or not an N-MNIST file"
        )
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 5)
    events = np.empty(raw.shape[0], dtype=EVENT_DTYPE)
    events["x"] = raw[:, 0]
    events["y"] = raw[:, 1]
    events["p"] = raw[:, 2] >> 7
    events["t"] = (
        (raw[:, 2].astype(np.int64) & 0x7F) << 16 | raw[:, 3].astype(np.int64) << 8 | raw[:, 4]
    )
    check_events(events, NMNIST_SIZE, source=source)
    if on_decrease == "error" and events.size > 1:
        step = np.diff(events["t"])
        if step.min() < 0:
            i = int(np.argmax(step < 0)) + 1
            raise ValueError(
                f"{source}: timestamps decrease at event {i} ({events['t'][i - 1]} -> "
                f"{events['t'][i]} µs); pass on_decrease='keep' to accept it"
            )
    return events


def read_nmnist(path, *, on_decrease: str = "error") -> np.ndarray:
    """Read one N-MNIST ``.bin``/``.bs2`` file into an ``EVENT_DTYPE`` array.

    Raises ValueError naming the file if its length is not a multiple of 5, an event lies
    outside the 34x34 sensor, or (unless ``on_decrease="keep"``) time goes backwards. An empty
    file gives an empty array (the ``NMNIST`` dataset refuses such a sample).
    """
    path = check_path("read_nmnist", "path", path)
    return decode_nmnist(path.read_bytes(), source=path, on_decrease=on_decrease)


def encode_nmnist(events) -> bytes:
    """The bytes of an N-MNIST file holding ``events`` (x, y < 34, 0 <= t < 2**23)."""
    check_events(events, NMNIST_SIZE)
    t = events["t"]
    if t.size and (t.min() < 0 or t.max() >= _MAX_T):
        raise ValueError(
            f"event times must lie in [0, 2**23) µs to fit N-MNIST's 23 bits, got [{t.min()}, {t.max()}]"
        )
    raw = np.empty((events.size, 5), dtype=np.uint8)
    raw[:, 0] = events["x"]
    raw[:, 1] = events["y"]
    raw[:, 2] = (events["p"] << 7) | (t >> 16)
    raw[:, 3] = (t >> 8) & 0xFF
    raw[:, 4] = t & 0xFF
    return raw.tobytes()


def write_nmnist(path, events) -> Path:
    """Write ``events`` as an N-MNIST file (atomically: temporary file, then rename)."""
    return atomic.write_bytes(path, encode_nmnist(events))


def read_label_list(path) -> dict[int, int]:
    """``{sample_id: class}`` from a ``sample_id class`` text file (``#`` starts a comment).

    Raises ``ValueError`` naming the file (and the line) if it is not UTF-8 text, a line is not
    two non-negative integers, a class is above 9, a sample is listed twice, or nothing is listed.
    """
    path = check_path("read_label_list", "path", path)
    labels = {}
    lines = read_text_lines(path, "'sample_id class' lines (two integers per line, class 0-9)")
    for n, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not all(p.isascii() and p.isdigit() for p in parts):
            raise ValueError(f"{path}, line {n}: expected 'sample_id class', got {line!r}")
        sample, cls = int(parts[0]), int(parts[1])
        if cls > 9:
            raise ValueError(f"{path}, line {n}: class must be 0-9, got {cls}")
        if sample in labels:
            raise ValueError(f"{path}, line {n}: sample {sample} listed twice")
        labels[sample] = cls
    if not labels:
        raise ValueError(f"{path}: no 'sample_id class' lines found")
    return labels


def _official_layout(root: Path, split: str) -> tuple[list[Path], list[int]]:
    folder = root / split.capitalize()
    paths, labels = [], []
    for digit in range(10):
        sub = folder / str(digit)
        if not sub.is_dir():
            continue
        found = sorted((p for p in sub.iterdir() if p.suffix in _SUFFIXES), key=_numeric_stem)
        paths += found
        labels += [digit] * len(found)
    if not paths:
        raise FileNotFoundError(f"N-MNIST {split}: no <digit>/<id>.bin files under {folder}")
    return paths, labels


def _numeric_stem(path: Path):
    return (0, int(path.stem), "") if path.stem.isdigit() else (1, 0, path.stem)


def _flat_layout(root: Path, split: str, labels_file) -> tuple[list[Path], list[int], Path]:
    if labels_file is None:
        candidates = sorted(p for p in root.glob(f"{split}*.txt") if p.is_file())
        if len(candidates) != 1:
            raise FileNotFoundError(
                f"N-MNIST {split}: expected {root}/{split.capitalize()}/<digit>/*.bin, or exactly "
                f"one label list {split}*.txt in {root}, found {[c.name for c in candidates]}; "
                "pass labels_file="
            )
        labels_file = candidates[0]
    labels_file = Path(labels_file)
    listed = read_label_list(labels_file)
    paths, labels, missing = [], [], []
    for sample in sorted(listed):
        for suffix in _SUFFIXES:
            p = root / f"{sample}{suffix}"
            if p.is_file():
                paths.append(p)
                labels.append(listed[sample])
                break
        else:
            missing.append(sample)
    if missing:
        raise FileNotFoundError(
            f"{labels_file}: {len(missing)} listed samples have no .bin/.bs2 file in {root} "
            f"(first: {missing[:5]})"
        )
    return paths, labels, labels_file


def find_samples(root, split: str = "train", labels_file=None) -> tuple[list[Path], np.ndarray, str]:
    """``(paths, labels int64, layout note)`` of one split, in either layout (module docstring)."""
    checks.choice("find_samples", "split", split, SPLITS)
    root = check_path("find_samples", "root", root)
    if labels_file is not None:
        labels_file = check_path("find_samples", "labels_file", labels_file)
    if not root.is_dir():
        raise FileNotFoundError(f"N-MNIST root {root} is not a folder")
    if labels_file is None and (root / split.capitalize()).is_dir():
        paths, labels = _official_layout(root, split)
        note = f"{root / split.capitalize()}/<digit>/"
    else:
        paths, labels, used = _flat_layout(root, split, labels_file)
        note = f"{root}, labels from {used.name}"
    return paths, np.asarray(labels, dtype=np.int64), note


class NMNIST(ArrayDataset):
    """N-MNIST as event frames ``[N, T, 2, H, W]`` (channel 0 = OFF, 1 = ON) with digit labels.

    Args:
        root: a folder in either layout of the module docstring.
        split: ``"train"`` or ``"test"``.
        T: number of frames per sample.
        split_by: ``"number"`` (equal event counts, the last frame takes the remainder) or
            ``"time"`` (equal time windows); see ``tinyspike.data.events``.
        size: bin the 34x34 pixels down to ``size`` (int or ``(H, W)``); None keeps 34x34.
        dtype: frame dtype, float32 by default (counts are exact).
        labels_file: the label list for the flat layout, if not found automatically.
        cache_dir: where frames are cached (default ``default_cache_dir()/"frames"``).
        use_cache: False rebuilds every time and writes nothing.
        on_decrease: passed to ``read_nmnist``.
        progress: a progress bar while building frames.

    Every sample file is checked as it is read (``read_nmnist``), and one with no events is
    refused: each error is a ``ValueError`` naming the file.
    """

    def __init__(
        self,
        root,
        split: str = "train",
        T: int = 10,
        split_by: str = "number",
        *,
        size=None,
        dtype=np.float32,
        labels_file=None,
        cache_dir=None,
        use_cache: bool = True,
        on_decrease: str = "error",
        progress: bool = False,
    ):
        checks.integer("NMNIST", "T", T, low=1)
        checks.choice("NMNIST", "split_by", split_by, SPLIT_BY)
        check_frame_args(T, split_by)
        out_size = output_size(NMNIST_SIZE, size)
        dtype = check_frame_dtype("NMNIST", dtype)
        checks.choice("NMNIST", "on_decrease", on_decrease, ON_DECREASE)
        use_cache = checks.boolean("NMNIST", "use_cache", use_cache)
        progress = checks.boolean("NMNIST", "progress", progress)
        if cache_dir is not None:
            cache_dir = check_path("NMNIST", "cache_dir", cache_dir)
        paths, labels, note = find_samples(root, split, labels_file)
        root = Path(root)
        params = {
            "dataset": "nmnist",
            "split": split,
            "T": int(T),
            "split_by": split_by,
            "sensor_size": list(NMNIST_SIZE),
            "size": list(out_size),
            "dtype": dtype.str,
            "on_decrease": on_decrease,
            "files": file_fingerprints(paths, root),
            "labels": labels.tolist(),
        }

        def read(path):
            return read_nmnist(path, on_decrease=on_decrease)

        frames = cached_frames(
            params, paths, read, T, NMNIST_SIZE, split_by, size=size, dtype=dtype,
            cache_dir=cache_dir, use_cache=use_cache, progress=progress,
            desc=f"N-MNIST {split} -> frames",
        )
        H, W = frames.shape[-2:]
        super().__init__(
            frames, labels, CLASSES, time_steps=int(T),
            description=(
                f"N-MNIST {split} ({len(labels)} samples from {note}), "
                f"T={T} frames split by {split_by}, {H}x{W}"
            ),
        )
        self.split = split
        self.files = tuple(paths)
        self.root = root
