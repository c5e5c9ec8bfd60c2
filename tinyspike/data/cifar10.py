"""CIFAR-10, read from its *binary* version (REFERENCE §9), never from the pickled one.

A batch file is ``N`` records of 3,073 bytes: one label byte (0-9) then 3,072 pixel bytes, the
1,024 red, 1,024 green and 1,024 blue values of a 32×32 image in row-major order. So a whole file
is one ``np.fromfile`` and a reshape to ``[N, 3073]``; column 0 is the label and the rest reshapes
straight to ``[N, 3, 32, 32]`` (channel-first, what the networks take).

``CIFAR10`` reads whatever ``data_batch_*.bin`` files a folder has (a partial set works: the test
data in ``shared/data`` has only ``data_batch_1.bin``) or ``test_batch.bin``, and can hold out a
fixed, class-stratified validation part of the training batches for when there is no test batch.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from tinyspike import atomic, checks
from tinyspike.data.dataset import ArrayDataset, check_path, read_text_lines, stratified_split
from tinyspike.data.download import default_cache_dir, download_url, safe_extract

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
ARCHIVE_NAME = "cifar-10-binary.tar.gz"
ARCHIVE_SIZE = 170_052_171
ARCHIVE_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
BATCHES_DIR = "cifar-10-batches-bin"

#: Per-channel mean and std of the training set, on the 0-1 scale (REFERENCE §9).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)

#: Class names, index = label; used when a folder has no ``batches.meta.txt``.
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

RECORD_BYTES = 1 + 3 * 32 * 32
_TRAIN_FILE = re.compile(r"data_batch_(\d+)\.bin")
_ARCHIVE_MEMBERS = (
    {f"data_batch_{i}.bin" for i in range(1, 6)}
    | {"test_batch.bin", "batches.meta.txt", "readme.html"}
)


def read_cifar10_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one binary batch file: ``(images uint8 [N, 3, 32, 32], labels int64 [N])``.

    Raises ``ValueError`` naming the file if it is empty, its size is not a whole number of
    3,073-byte records, or a label byte is above 9.
    """
    path = Path(path)
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD_BYTES:
        raise ValueError(
            f"{path}: size {raw.size} bytes is not a positive multiple of the {RECORD_BYTES}-byte "
            "CIFAR-10 record (1 label byte + 3072 pixel bytes); truncated or not a CIFAR-10 binary batch"
        )
    records = raw.reshape(-1, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise ValueError(
            f"{path}: record {bad} has label {labels[bad]}, but CIFAR-10 labels are 0-9 (corrupt file?)"
        )
    # Copy so the images are contiguous (the view skips the label byte of every record).
    images = np.ascontiguousarray(records[:, 1:]).reshape(-1, 3, 32, 32)
    return images, labels


def write_cifar10_batch(path: str | os.PathLike, images: np.ndarray, labels: np.ndarray) -> Path:
    """Write ``images`` (uint8 ``[N, 3, 32, 32]``) and ``labels`` (ints 0-9) as a binary batch.

    The file is written to a temporary name and renamed, so a reader never sees half of it.
    """
    path = Path(path)
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        got = images.dtype if isinstance(images, np.ndarray) else type(images).__name__
        raise TypeError(f"images must be a uint8 numpy array, got {got}")
    if images.ndim != 4 or images.shape[1:] != (3, 32, 32) or images.shape[0] == 0:
        raise ValueError(f"images must be [N>0, 3, 32, 32], got shape {images.shape}")
    labels = np.asarray(labels)
    if labels.shape != (images.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be {images.shape[0]} integers (one per image), got {labels.dtype} {labels.shape}"
        )
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"labels must lie in 0-9, got range [{labels.min()}, {labels.max()}]")
    records = np.empty((images.shape[0], RECORD_BYTES), dtype=np.uint8)
    records[:, 0] = labels
    records[:, 1:] = images.reshape(images.shape[0], -1)
    # A unique temporary name (mkstemp), so two writers of the same path cannot clobber each other.
    return atomic.write_bytes(path, records.tobytes())


def read_class_names(path: str | os.PathLike) -> tuple[str, ...]:
    """Class names from ``batches.meta.txt``: 10 distinct names, one per line, in UTF-8.

    Blank lines are ignored. Raises ``ValueError`` naming the file if it is not UTF-8 text or
    does not hold exactly 10 distinct names.
    """
    path = check_path("read_class_names", "path", path)
    expected = "10 CIFAR-10 class names, one per line"
    names = tuple(line.strip() for line in read_text_lines(path, expected) if line.strip())
    if len(names) != 10:
        raise ValueError(f"{path}: expected {expected}, found {len(names)}: {checks.show(names, 120)}")
    if len(set(names)) != 10:
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"{path}: the 10 class names must be distinct, but {twice} appear twice")
    return names


def _has_batches(folder: Path) -> bool:
    return folder.is_dir() and (
        any(_TRAIN_FILE.fullmatch(p.name) for p in folder.iterdir()) or (folder / "test_batch.bin").is_file()
    )


def find_batches_dir(root: str | os.PathLike) -> Path | None:
    """The folder holding the batch files: ``root`` itself, ``root/cifar-10-batches-bin``, or
    (for partial copies such as ``cifar-10-batches-bin-subset``) the one ``root/cifar-10-batches-bin*``
    that holds batch files. None if there is none."""
    root = Path(root)
    if _has_batches(root):
        return root
    if _has_batches(root / BATCHES_DIR):
        return root / BATCHES_DIR
    if root.is_dir():
        candidates = sorted(p for p in root.glob(BATCHES_DIR + "*") if _has_batches(p))
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            raise ValueError(
                f"{root} holds several CIFAR-10 batch folders ({[c.name for c in candidates]}); "
                "pass the one to use as root"
            )
    return None


def archive_member_allowed(name: str) -> bool:
    """Whether ``name`` is a member the official archive has (``safe_extract`` refuses others)."""
    parts = name.rstrip("/").split("/")
    return parts[0] == BATCHES_DIR and (len(parts) == 1 or (len(parts) == 2 and parts[1] in _ARCHIVE_MEMBERS))


def download_cifar10(root: str | os.PathLike, progress: bool = True) -> Path:
    """Download and check the binary archive into ``root`` and extract it; return the batches dir.

    ``root`` is created (parents included) if it does not exist. Without network access a
    ``DownloadError`` says which file could not be fetched from where, and how to install it by
    hand: the archive at ``root/cifar-10-binary.tar.gz``, or its extracted folder at
    ``root/cifar-10-batches-bin/``.
    """
    root = check_path("download_cifar10", "root", root)
    progress = checks.boolean("download_cifar10", "progress", progress)
    hint = (f" Or extract the archive yourself so that {root / BATCHES_DIR} holds data_batch_1.bin ... "
            "data_batch_5.bin and test_batch.bin.")
    archive = download_url(URL, root / ARCHIVE_NAME, ARCHIVE_MD5, ARCHIVE_SIZE, progress=progress, hint=hint)
    safe_extract(archive, root, archive_member_allowed)
    return root / BATCHES_DIR


SPLITS = ("train", "val", "test")


class CIFAR10(ArrayDataset):
    """CIFAR-10 images ``uint8 [N, 3, 32, 32]`` and labels, in memory.

    Args:
        root: the batches folder, or a folder containing ``cifar-10-batches-bin`` (or one
            ``cifar-10-batches-bin*`` copy). Default: ``default_cache_dir() / "cifar10"``.
        split: ``"train"`` (all ``data_batch_*.bin`` present, minus the validation part if
            ``val_fraction`` > 0), ``"val"`` (that held-out part) or ``"test"`` (``test_batch.bin``).
        train: torchvision-style alternative to ``split``: True = "train", False = "test".
        val_fraction: part of the training batches held out, class-stratified, for ``"val"``.
            Use the same ``val_fraction`` and ``seed`` for the train and val datasets: they are then
            disjoint and together cover the training batches.
        seed: chooses which images are held out (the split depends on nothing else).
        download: fetch and extract the official archive into ``root`` (created if missing) if
            no batch file is found; see ``download_cifar10``.
        progress: show a progress bar while downloading.

    Every file is checked as it is read: a batch whose size is not a whole number of records or
    with a label above 9, or a ``batches.meta.txt`` that is not 10 distinct UTF-8 names, raises a
    ``ValueError`` naming the file.

    Attributes beyond ``ArrayDataset``'s: ``files`` (the batch files read), ``indices`` (which
    records of their concatenation this split holds).
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        split: str | None = None,
        *,
        train: bool | None = None,
        val_fraction: float = 0.0,
        seed: int = 0,
        download: bool = False,
        progress: bool = True,
    ):
        split = _resolve_split(split, train)
        val_fraction = checks.real("CIFAR10", "val_fraction", val_fraction, 0.0, 1.0, high_open=True)
        seed = checks.integer("CIFAR10", "seed", seed, low=0)
        download = checks.boolean("CIFAR10", "download", download)
        progress = checks.boolean("CIFAR10", "progress", progress)
        if split == "val" and val_fraction == 0:
            raise ValueError("CIFAR10: split='val' needs val_fraction > 0 (the part of the training batches to hold out)")
        if split == "test" and val_fraction:
            raise ValueError("CIFAR10: val_fraction applies to the training batches; leave it 0 for split='test'")
        root = check_path("CIFAR10", "root", root) if root is not None else default_cache_dir() / "cifar10"

        folder = find_batches_dir(root)
        if folder is None and download:
            download_cifar10(root, progress=progress)
            folder = find_batches_dir(root)
        files = _batch_files(folder, split) if folder is not None else []
        if not files:
            raise FileNotFoundError(_missing_message(root, folder, split))

        parts = [read_cifar10_batch(f) for f in files]
        images = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        labels = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
        indices = np.arange(len(labels))
        if val_fraction:
            keep, held = stratified_split(labels, val_fraction, seed)
            indices = held if split == "val" else keep
            images, labels = images[indices], labels[indices]

        meta = folder / "batches.meta.txt"
        classes = read_class_names(meta) if meta.is_file() else CLASSES
        names = "+".join(f.name for f in files)
        held_note = f", val_fraction={val_fraction} seed={seed}" if val_fraction else ""
        super().__init__(
            images, labels, classes,
            description=f"CIFAR-10 {split} ({len(labels)} images from {names}{held_note})",
            mean=MEAN, std=STD,
        )
        self.split = split
        self.files = tuple(files)
        self.indices = indices


def _resolve_split(split, train) -> str:
    if split is not None:
        checks.choice("CIFAR10", "split", split, SPLITS)
    if train is not None:
        train = checks.boolean("CIFAR10", "train", train)
        from_train = "train" if train else "test"
        if split is not None and split != from_train:
            raise ValueError(f"CIFAR10: split={split!r} contradicts train={train}; give one of them")
        split = from_train
    return "train" if split is None else split


def _batch_files(folder: Path, split: str) -> list[Path]:
    if split == "test":
        test = folder / "test_batch.bin"
        return [test] if test.is_file() else []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _TRAIN_FILE.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


def _missing_message(root: Path, folder: Path | None, split: str) -> str:
    wanted = "test_batch.bin" if split == "test" else "data_batch_1.bin ... data_batch_5.bin (any of them)"
    where = f"{folder}" if folder is not None else f"{root}, {root / BATCHES_DIR} or {root / BATCHES_DIR}*"
    msg = f"CIFAR-10 {split} split: looked for {wanted} in {where} and found none."
    if split == "test" and folder is not None:
        msg += (
            " This folder has training batches only: hold out part of them with"
            " split='val', val_fraction=0.1."
        )
    msg += (
        f" Download the binary version with CIFAR10(root, download=True) (fetches {URL},"
        f" {ARCHIVE_SIZE:,} bytes, MD5 {ARCHIVE_MD5}), or point root at an extracted {BATCHES_DIR} folder."
    )
    return msg
