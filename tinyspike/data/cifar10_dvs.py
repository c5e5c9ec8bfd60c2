"""CIFAR10-DVS (Li et al., 2017): 10,000 CIFAR-10 images moved on a monitor in front of a DVS128.

10 classes x 1,000 recordings, ``<class>/cifar10_<class>_<i>.aedat`` (i = 0..999), AEDAT 2.0
with DVS128 addresses (``tinyspike.data.aedat``), 128x128 pixels, about 1.2 s each.

Download (REFERENCE.md §9): one zip per class from figshare article 4724671 ("CIFAR10-DVS
New"), ``https://ndownloader.figshare.com/files/<id>``, each checked against its MD5 before it is
unpacked. Each zip must hold only ``<class>/`` and ``<class>/cifar10_<class>_<i>.aedat``
members (``allowed_member``): anything else (another folder, ``..``, an absolute path, a link)
stops the extraction before a byte is written.

Split: the dataset has none. The one MS-ResNet used (from the PLIF code, spikingjelly) takes,
per class, recordings 0-899 for training and 900-999 for testing: 9,000 / 1,000. ``description``
says which split is active.

Orientation: the files are decoded with the stated bit layout (``"sensor"``). spikingjelly's
loader, and hence the frames MS-ResNet trained on, transpose and flip the image and swap the
polarity (``x' = 127 - y``, ``y' = 127 - x``, ``p' = 1 - p``): ``orientation="spikingjelly"``
does the same, for comparisons with models trained there.

Memory: frames are ``[N, T, 2, 128, 128]``; the training split at T=10 is 2.9e9 counts, 5.9 GB
as uint16 (the default here; the DataLoader converts batches to float32) or 11.8 GB as float32.
``size=64`` or ``48`` bins pixels down first (1.5 GB / 0.8 GB as uint16).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from tinyspike.data.aedat import DVS128_SIZE, read_aedat2
from tinyspike.data.cache import cached_frames, file_fingerprints
from tinyspike.data.dataset import ArrayDataset
from tinyspike.data.download import default_cache_dir, download_url, safe_extract
from tinyspike.data.events import check_frame_args, output_size

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
RECORDINGS_PER_CLASS = 1000
FIGSHARE_URL = "https://ndownloader.figshare.com/files/{}"

#: class -> (figshare file id, MD5 of the zip)
DOWNLOADS = {
    "airplane": (7712788, "0afd5c4bf9ae06af762a77b180354fdd"),
    "automobile": (7712791, "8438dfeba3bc970c94962d995b1b9bdd"),
    "bird": (7712794, "a9c207c91c55b9dc2002dc21c684d785"),
    "cat": (7712812, "52c63c677c2b15fa5146a8daf4d56687"),
    "deer": (7712815, "b6bf21f6c04d21ba4e23fc3e36c8a4a3"),
    "dog": (7712818, "f379ebdf6703d16e0a690782e62639c3"),
    "frog": (7712842, "cad6ed91214b1c7388a5f6ee56d08803"),
    "horse": (7712851, "e7cbbf77bec584ffbf913f00e682782a"),
    "ship": (7712836, "41c7bd7d6b251be82557c6cce9a7d5c9"),
    "truck": (7712839, "89f3922fd147d9aeff89e76a2b0b70a7"),
}

SPLITS = ("train", "test", "all")
#: PLIF/MS-ResNet split: recording index < 900 -> train, >= 900 -> test (per class).
PLIF_TRAIN_PER_CLASS = 900
ORIENTATIONS = ("sensor", "spikingjelly")


def _recording_re(cls: str) -> re.Pattern:
    # Indices as written by the dataset (no sign, no leading zeros, so ``_1`` and ``_01`` cannot
    # both count as recording 1; at most 4 digits); the range is checked apart.
    return re.compile(rf"cifar10_{re.escape(cls)}_(0|[1-9]\d{{0,3}})\.aedat")


def allowed_member(cls: str):
    """The member-name check for ``safe_extract`` of class ``cls``'s zip.

    Accepts the folder ``<cls>/`` and files ``<cls>/cifar10_<cls>_<i>.aedat`` with i in 0..999,
    nothing else (paths are compared exactly, so ``<cls>/../x`` or ``<cls>/sub/...`` fail).
    """
    if cls not in DOWNLOADS:
        raise ValueError(f"class must be one of {CLASSES}, got {cls!r}")
    pattern = _recording_re(cls)

    def allowed(name: str) -> bool:
        if name in (cls, cls + "/"):
            return True
        folder, _, file = name.partition("/")
        m = pattern.fullmatch(file)
        return folder == cls and m is not None and int(m.group(1)) < RECORDINGS_PER_CLASS

    return allowed


def download_cifar10_dvs(root, classes=CLASSES, *, progress: bool = True) -> Path:
    """Download, check and unpack the per-class zips into ``root/<class>/``; returns ``root``.

    Zips go to ``root/downloads/<class>.zip`` and are kept (a second call re-checks their MD5
    and downloads nothing). 10 zips, about 7 GB in all.
    """
    root = Path(root)
    for cls in classes:
        if cls not in DOWNLOADS:
            raise ValueError(f"class must be one of {CLASSES}, got {cls!r}")
        file_id, md5 = DOWNLOADS[cls]
        archive = download_url(
            FIGSHARE_URL.format(file_id), root / "downloads" / f"{cls}.zip", md5, progress=progress
        )
        safe_extract(archive, root, allowed_member(cls))
    return root


def find_recordings(root, split: str = "train") -> tuple[list[Path], np.ndarray, np.ndarray]:
    """``(paths, labels int64, indices)`` of a split's recordings under ``root/<class>/``.

    Ordered by class, then recording index. Raises FileNotFoundError if a class folder is missing
    or has no recording in the split (a partial download), naming what is missing.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    paths, labels, indices, missing = [], [], [], []
    for label, cls in enumerate(CLASSES):
        folder = root / cls
        pattern = _recording_re(cls)
        found = []
        if folder.is_dir():
            for p in folder.iterdir():
                m = pattern.fullmatch(p.name)
                if m and int(m.group(1)) < RECORDINGS_PER_CLASS and p.is_file():
                    i = int(m.group(1))
                    if split == "all" or (split == "train") == (i < PLIF_TRAIN_PER_CLASS):
                        found.append((i, p))
        if not found:
            missing.append(cls)
            continue
        found.sort()
        paths += [p for _, p in found]
        indices += [i for i, _ in found]
        labels += [label] * len(found)
    if missing:
        raise FileNotFoundError(
            f"CIFAR10-DVS {split}: no cifar10_<class>_<i>.aedat recordings in the split for "
            f"{missing} under {root}/<class>/; download with CIFAR10DVS(root, download=True)"
        )
    return paths, np.asarray(labels, dtype=np.int64), np.asarray(indices, dtype=np.int64)


def reorient(events, orientation: str) -> np.ndarray:
    """Events as decoded (``"sensor"``) or transposed/flipped as spikingjelly does them."""
    if orientation == "sensor":
        return events
    if orientation != "spikingjelly":
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    out = events.copy()
    out["x"] = 127 - events["y"]
    out["y"] = 127 - events["x"]
    out["p"] = 1 - events["p"]
    return out


class CIFAR10DVS(ArrayDataset):
    """CIFAR10-DVS as event frames ``[N, T, 2, H, W]`` by event count, with class labels.

    Args:
        root: folder with ``<class>/cifar10_<class>_<i>.aedat``; default
            ``default_cache_dir()/"cifar10_dvs"``.
        split: ``"train"`` (recordings 0-899 of each class), ``"test"`` (900-999) or ``"all"``.
        T: frames per sample (MS-ResNet: 10).
        split_by: ``"number"`` (default, REFERENCE.md §9) or ``"time"``.
        size: None (128x128), or an int / ``(H, W)`` to bin down to (64, 48, ...).
        dtype: frame dtype, uint16 by default (half of float32's memory, exact counts).
        orientation: ``"sensor"`` (the bit layout as stated) or ``"spikingjelly"``.
        download: fetch the zips if recordings are missing.
        cache_dir, use_cache: the frame cache (``tinyspike.data.cache``).
        special, on_decrease: passed to ``read_aedat2`` for every file.
        progress: progress bars for download and frame building.
    """

    def __init__(
        self,
        root=None,
        split: str = "train",
        T: int = 10,
        split_by: str = "number",
        *,
        size=None,
        dtype=np.uint16,
        orientation: str = "sensor",
        download: bool = False,
        cache_dir=None,
        use_cache: bool = True,
        special: str = "error",
        on_decrease: str = "error",
        progress: bool = True,
    ):
        check_frame_args(T, split_by)
        out_size = output_size(DVS128_SIZE, size)
        dtype = np.dtype(dtype)
        if orientation not in ORIENTATIONS:
            raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
        root = Path(root) if root is not None else default_cache_dir() / "cifar10_dvs"
        try:
            paths, labels, indices = find_recordings(root, split)
        except FileNotFoundError:
            if not download:
                raise
            download_cifar10_dvs(root, progress=progress)
            paths, labels, indices = find_recordings(root, split)

        params = {
            "dataset": "cifar10_dvs",
            "split": split,
            "T": int(T),
            "split_by": split_by,
            "sensor_size": list(DVS128_SIZE),
            "size": list(out_size),
            "dtype": dtype.str,
            "orientation": orientation,
            "special": special,
            "on_decrease": on_decrease,
            "files": file_fingerprints(paths, root),
        }

        def read(path):
            return reorient(read_aedat2(path, special=special, on_decrease=on_decrease), orientation)

        frames = cached_frames(
            params, paths, read, T, DVS128_SIZE, split_by, size=size, dtype=dtype,
            cache_dir=cache_dir, use_cache=use_cache, progress=progress,
            desc=f"CIFAR10-DVS {split} -> frames",
        )
        split_note = {
            "train": "PLIF split: recordings 0-899 of each class",
            "test": "PLIF split: recordings 900-999 of each class",
            "all": "all recordings",
        }[split]
        H, W = out_size
        super().__init__(
            frames, labels, CLASSES, time_steps=int(T),
            description=(
                f"CIFAR10-DVS {split} ({len(labels)} recordings, {split_note}), "
                f"T={T} frames split by {split_by}, {H}x{W}, orientation {orientation}"
            ),
        )
        self.split = split
        self.files = tuple(paths)
        self.indices = indices
        self.root = root
