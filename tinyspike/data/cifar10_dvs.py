"""CIFAR10-DVS (Li et al., 2017): 10,000 CIFAR-10 images moved on a monitor in front of a DVS128.

10 classes x 1,000 recordings, ``<class>/cifar10_<class>_<i>.aedat`` (i = 0..999), AEDAT 2.0
with DVS128 addresses (``tinyspike.data.aedat``), 128x128 pixels, about 1.2 s each.

Download (REFERENCE.md §9): one zip per class from figshare article 4724671 ("CIFAR10-DVS
New"), ``https://ndownloader.figshare.com/files/<id>``, each checked against its MD5 before it is
unpacked. Each zip must hold only ``<class>/`` and ``<class>/cifar10_<class>_<i>.aedat``
members (``allowed_member``): anything else (another folder, ``..``, an absolute path, a link)
stops the extraction before a byte is written.

Conventions. The dataset comes with no split, no orientation and no frame rule, so each published
pipeline chose its own, and models trained on one see different inputs under another (mirrored or
transposed images, swapped ON/OFF channels, other test recordings). ``CONVENTIONS`` names each
pipeline as a whole: an orientation, a split and the rule ``split_by="time"`` means.

- ``plif2020`` (the default): orientation ``jaer``, split ``numeric``, time rule
  ``time_spikingjelly``. SpikingJelly of Sep 2020 (commit 73f94ab, the version the PLIF code of
  Fang et al. 2021 pins, called with ``split_ratio=0.9``, ``normalization=None``); MS-ResNet's DVS
  results build on the PLIF code (REFERENCE.md §9).
- ``spikingjelly``: orientation ``spikingjelly``, split ``sorted``, time rule
  ``time_spikingjelly``. SpikingJelly since Mar 2021: ``CIFAR10DVS`` then
  ``split_to_train_test_set(0.9, dataset, 10)``, as its documentation advises.
- ``spikingjelly_tebn``: orientation ``spikingjelly``, split ``tebn``, time rule
  ``time_spikingjelly``. SpikingJelly's ``CIFAR10DVSTEBNSplit`` (the split of the TEBN paper, as
  SpikingJelly describes it).
- ``tinyspike``: orientation ``sensor``, split ``numeric``, time rule ``time``. tinyspike before
  named conventions: raw bits, so channel 0 = ON.

Orientations, from the decoded address bits ``(x, y, p)`` (``p`` = raw bit 0, which jAER's
DVS128 extractor reads as 0 = ON, 1 = OFF):

- ``sensor``: as decoded. Frame channel 0 = ON, channel 1 = OFF.
- ``jaer``: ``x' = 127 - x``, ``y' = y``, ``p' = 1 - p``: what jAER's extractor makes of the
  address (it mirrors x and flips the polarity bit) and what SpikingJelly's 2020 ``read_bin``
  returned. Channel 0 = OFF, channel 1 = ON.
- ``spikingjelly``: ``x' = 127 - y``, ``y' = 127 - x``, ``p' = 1 - p`` (transposed and both axes
  mirrored): SpikingJelly's loader since March 2021. Channel 0 = OFF, channel 1 = ON.

Splits, per class (``split_of``):

- ``numeric``: recordings 0-899 train, 900-999 test (9,000 / 1,000).
- ``sorted``: the 1,000 file names sorted *as strings* (``..._9.aedat`` < ``..._90.aedat`` <
  ``..._900.aedat``), the first 900 train and the last 100 test. That is what
  ``split_to_train_test_set(0.9, ...)`` does on SpikingJelly's folder dataset, whose files come in
  string order; its test set is recordings 91-99 and 909-999. The split is fixed by the name, so a
  partial download keeps each recording in its split (SpikingJelly's would shift: it takes the
  last 10% of whatever files are present).
- ``tebn``: recordings 0-99 test, 100-999 train.

Frames by event count (``split_by="number"``, MS-ResNet's and PLIF's choice) are the same rule in
every convention; only the time rule differs (``tinyspike.data.events``). SpikingJelly 2020 could
also normalise frames; the PLIF runs used ``normalization=None``, raw counts, as here.

Memory: frames are ``[N, T, 2, 128, 128]``; the training split at T=10 is 2.9e9 counts, 5.9 GB
as uint16 (the default here; the DataLoader converts batches to float32) or 11.8 GB as float32.
``size=64`` or ``48`` bins pixels down first (1.5 GB / 0.8 GB as uint16).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from tinyspike import checks
from tinyspike.data.aedat import DVS128_SIZE, ON_DECREASE, SPECIAL, read_aedat2
from tinyspike.data.cache import cached_frames, file_fingerprints
from tinyspike.data.dataset import ArrayDataset, check_path
from tinyspike.data.download import default_cache_dir, download_url, safe_extract
from tinyspike.data.events import check_frame_dtype, output_size

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
#: orientation -> (what it does, frame channel names (channel 0, channel 1))
ORIENTATIONS = {
    "sensor": ("x, y, p as decoded (p = raw bit 0, jAER: 0 = ON)", ("ON", "OFF")),
    "jaer": ("x' = 127 - x, y' = y, p' = 1 - p (jAER's DVS128 extractor)", ("OFF", "ON")),
    "spikingjelly": ("x' = 127 - y, y' = 127 - x, p' = 1 - p (SpikingJelly since 2021)", ("OFF", "ON")),
}
#: split rule -> what each split holds, per class
SPLIT_RULES = {
    "numeric": {"train": "recordings 0-899", "test": "recordings 900-999"},
    "sorted": {"train": "the first 900 names in string order",
               "test": "the last 100 names in string order: recordings 91-99, 909-999"},
    "tebn": {"train": "recordings 100-999", "test": "recordings 0-99"},
}
TRAIN_PER_CLASS = 900  # numeric and sorted: 900 train, 100 test per class
TEBN_TEST_PER_CLASS = 100


@dataclasses.dataclass(frozen=True)
class Convention:
    """One published way of turning CIFAR10-DVS files into frames (see the module docstring)."""

    name: str
    orientation: str  # a key of ORIENTATIONS
    split: str  # a key of SPLIT_RULES
    time_rule: str  # the events.SPLIT_BY rule that split_by="time" stands for
    used_by: str

    @property
    def channels(self) -> tuple[str, str]:
        """What frame channels 0 and 1 hold: ``("OFF", "ON")`` or ``("ON", "OFF")``."""
        return ORIENTATIONS[self.orientation][1]

    def as_params(self) -> dict:
        """Every field, for the frame cache key (a changed definition must not reuse old frames)."""
        return dataclasses.asdict(self)


CONVENTIONS = {
    c.name: c
    for c in (
        Convention("plif2020", "jaer", "numeric", "time_spikingjelly",
                   "SpikingJelly of Sep 2020 (commit 73f94ab), as pinned by the PLIF code; MS-ResNet"),
        Convention("spikingjelly", "spikingjelly", "sorted", "time_spikingjelly",
                   "SpikingJelly since Mar 2021 with split_to_train_test_set(0.9, dataset, 10)"),
        Convention("spikingjelly_tebn", "spikingjelly", "tebn", "time_spikingjelly",
                   "SpikingJelly's CIFAR10DVSTEBNSplit"),
        Convention("tinyspike", "sensor", "numeric", "time",
                   "tinyspike before named conventions (raw polarity bit: channel 0 = ON)"),
    )
}
DEFAULT_CONVENTION = "plif2020"


def get_convention(convention, where: str = "CIFAR10DVS") -> Convention:
    """A ``Convention`` from its name (or the object itself, if it is one of ``CONVENTIONS``)."""
    if isinstance(convention, Convention) and CONVENTIONS.get(convention.name) == convention:
        return convention
    return CONVENTIONS[checks.choice(where, "convention", convention, CONVENTIONS)]


def _recording_re(cls: str) -> re.Pattern:
    # Indices as written by the dataset (no sign, no leading zeros, so ``_1`` and ``_01`` cannot
    # both count as recording 1; at most 4 digits); the range is checked apart.
    return re.compile(rf"cifar10_{re.escape(cls)}_(0|[1-9]\d{{0,3}})\.aedat")


# Rank of each recording index among the 1,000 names of a class sorted as strings. Within a class
# the names differ only in the index, and "." sorts before every digit, so "..._9.aedat" <
# "..._90.aedat" < "..._900.aedat" < "..._901.aedat" < ... < "..._91.aedat".
_STRING_ORDER = sorted(range(RECORDINGS_PER_CLASS), key=lambda i: f"cifar10_x_{i}.aedat")
_STRING_RANK = np.empty(RECORDINGS_PER_CLASS, dtype=np.int64)
_STRING_RANK[_STRING_ORDER] = np.arange(RECORDINGS_PER_CLASS)


def split_of(index: int, rule: str = "numeric") -> str:
    """``"train"`` or ``"test"``: where split ``rule`` puts recording ``index`` (0..999) of a class."""
    checks.choice("split_of", "rule", rule, SPLIT_RULES)
    index = checks.integer("split_of", "index", index, 0, RECORDINGS_PER_CLASS - 1)
    if rule == "numeric":
        return "train" if index < TRAIN_PER_CLASS else "test"
    if rule == "sorted":
        return "train" if _STRING_RANK[index] < TRAIN_PER_CLASS else "test"
    return "test" if index < TEBN_TEST_PER_CLASS else "train"


def allowed_member(cls: str):
    """The member-name check for ``safe_extract`` of class ``cls``'s zip.

    Accepts the folder ``<cls>/`` and files ``<cls>/cifar10_<cls>_<i>.aedat`` with i in 0..999,
    nothing else (paths are compared exactly, so ``<cls>/../x`` or ``<cls>/sub/...`` fail).
    """
    checks.choice("allowed_member", "class", cls, CLASSES)
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


def find_recordings(root, split: str = "train", rule: str = "numeric") -> tuple[list[Path], np.ndarray, np.ndarray]:
    """``(paths, labels int64, indices)`` of a split's recordings under ``root/<class>/``.

    ``rule`` is the split rule (``SPLIT_RULES``; ``split_of``). Ordered by class, then recording
    index. Raises FileNotFoundError if a class folder is missing or has no recording in the split
    (a partial download), naming what is missing.
    """
    checks.choice("find_recordings", "split", split, SPLITS)
    checks.choice("find_recordings", "rule", rule, SPLIT_RULES)
    root = check_path("find_recordings", "root", root)
    paths, labels, indices, missing = [], [], [], []
    for label, cls in enumerate(CLASSES):
        found = [(i, p) for i, p in _class_recordings(root / cls, cls)
                 if split == "all" or split_of(i, rule) == split]
        if not found:
            missing.append(cls)
            continue
        found.sort()
        paths += [p for _, p in found]
        indices += [i for i, _ in found]
        labels += [label] * len(found)
    if missing:
        raise FileNotFoundError(
            f"CIFAR10-DVS {split} ({rule} split): no cifar10_<class>_<i>.aedat recordings in the split "
            f"for {missing} under {root}/<class>/; download with CIFAR10DVS(root, download=True)"
        )
    return paths, np.asarray(labels, dtype=np.int64), np.asarray(indices, dtype=np.int64)


def _class_recordings(folder: Path, cls: str) -> list[tuple[int, Path]]:
    """``(index, path)`` of every well-named recording file in one class folder."""
    if not folder.is_dir():
        return []
    pattern = _recording_re(cls)
    out = []
    for p in folder.iterdir():
        m = pattern.fullmatch(p.name)
        if m and int(m.group(1)) < RECORDINGS_PER_CLASS and p.is_file():
            out.append((int(m.group(1)), p))
    return out


def reorient(events, orientation: str) -> np.ndarray:
    """Events as decoded (``"sensor"``) or mapped as ``ORIENTATIONS`` says; a new array."""
    checks.choice("reorient", "orientation", orientation, ORIENTATIONS)
    if orientation == "sensor":
        return events
    out = events.copy()
    if orientation == "jaer":
        out["x"] = 127 - events["x"]
    else:  # spikingjelly: transpose and mirror both axes
        out["x"] = 127 - events["y"]
        out["y"] = 127 - events["x"]
    out["p"] = 1 - events["p"]  # raw bit 0 (jAER's ON) becomes p' = 1
    return out


class CIFAR10DVS(ArrayDataset):
    """CIFAR10-DVS as event frames ``[N, T, 2, H, W]`` with class labels, by a named convention.

    Args:
        root: folder with ``<class>/cifar10_<class>_<i>.aedat``; default
            ``default_cache_dir()/"cifar10_dvs"``.
        split: ``"train"``, ``"test"`` or ``"all"``; which recordings that is depends on the
            convention's split rule (``SPLIT_RULES``).
        T: frames per sample (MS-ResNet: 10).
        split_by: ``"number"`` (default, REFERENCE.md §9) or ``"time"`` (the convention's time
            rule: ``"time_spikingjelly"`` or tinyspike's exact ``"time"``).
        convention: a name in ``CONVENTIONS`` (default ``"plif2020"``): orientation, split and time
            rule together. ``channel_names`` says which frame channel is ON.
        size: None (128x128), or an int / ``(H, W)`` to bin down to (64, 48, ...).
        dtype: frame dtype, uint16 by default (half of float32's memory, exact counts).
        download: fetch the zips if recordings are missing.
        cache_dir, use_cache: the frame cache (``tinyspike.data.cache``); the key holds the
            convention's every field, so frames of one convention are never served for another.
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
        convention: str = DEFAULT_CONVENTION,
        size=None,
        dtype=np.uint16,
        download: bool = False,
        cache_dir=None,
        use_cache: bool = True,
        special: str = "error",
        on_decrease: str = "error",
        progress: bool = True,
    ):
        where = "CIFAR10DVS"
        checks.choice(where, "split", split, SPLITS)
        T = checks.integer(where, "T", T, low=1)
        # "time" means the convention's time rule: one name for every convention.
        checks.choice(where, "split_by", split_by, ("number", "time"))
        conv = get_convention(convention, where)
        out_size = output_size(DVS128_SIZE, size)
        dtype = check_frame_dtype(where, dtype)
        download = checks.boolean(where, "download", download)
        use_cache = checks.boolean(where, "use_cache", use_cache)
        progress = checks.boolean(where, "progress", progress)
        checks.choice(where, "special", special, SPECIAL)
        checks.choice(where, "on_decrease", on_decrease, ON_DECREASE)
        root = check_path(where, "root", root) if root is not None else default_cache_dir() / "cifar10_dvs"
        if cache_dir is not None:
            cache_dir = check_path(where, "cache_dir", cache_dir)
        rule = conv.time_rule if split_by == "time" else "number"
        try:
            paths, labels, indices = find_recordings(root, split, conv.split)
        except FileNotFoundError:
            if not download:
                raise
            download_cifar10_dvs(root, progress=progress)
            paths, labels, indices = find_recordings(root, split, conv.split)

        params = {
            "dataset": "cifar10_dvs",
            "split": split,
            "T": int(T),
            "split_by": rule,
            "convention": conv.as_params(),
            "sensor_size": list(DVS128_SIZE),
            "size": list(out_size),
            "dtype": dtype.str,
            "special": special,
            "on_decrease": on_decrease,
            "files": file_fingerprints(paths, root),
        }

        def read(path):
            return reorient(read_aedat2(path, special=special, on_decrease=on_decrease), conv.orientation)

        frames = cached_frames(
            params, paths, read, T, DVS128_SIZE, rule, size=size, dtype=dtype,
            cache_dir=cache_dir, use_cache=use_cache, progress=progress,
            desc=f"CIFAR10-DVS {split} -> frames",
        )
        split_note = ("all recordings" if split == "all"
                      else f"{conv.split} split: {SPLIT_RULES[conv.split][split]} of each class")
        H, W = out_size
        off_on = f"channel 0 = {conv.channels[0]}, 1 = {conv.channels[1]}"
        super().__init__(
            frames, labels, CLASSES, time_steps=int(T),
            description=(
                f"CIFAR10-DVS {split} ({len(labels)} recordings, {split_note}), convention {conv.name}: "
                f"T={T} frames split by {rule}, {H}x{W}, orientation {conv.orientation}, {off_on}"
            ),
        )
        self.split = split
        self.convention = conv
        self.channel_names = conv.channels
        self.files = tuple(paths)
        self.indices = indices
        self.root = root
