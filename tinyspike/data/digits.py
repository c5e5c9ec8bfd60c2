"""The built-in offline dataset: 1,797 handwritten digits, 8×8 pixels, 17 grey levels (0-16).

It is the UCI "Optical Recognition of Handwritten Digits" set (Alpaydin & Kaynak, 1998), the copy
scikit-learn ships; see ``DIGITS_LICENSE.txt`` beside this file. It lives inside the package
(``digits.npz``, about 45 kB) so that lessons, examples and tests can train a real network with no
download. ``Digits`` upsamples the images to the CIFAR size (32×32, 3 channels by default) so the
CIFAR networks take them unchanged.

``digits.npz`` was made by ``build_digits_npz`` from ``sklearn/datasets/data/digits.csv.gz``, read
out of a scikit-learn wheel (``pip download --no-deps scikit-learn``); scikit-learn is not a
dependency.
"""

from __future__ import annotations

import gzip
import importlib.resources
import io
import os
from pathlib import Path

import zlib

import numpy as np

from tinyspike import checks
from tinyspike.data.dataset import ArrayDataset, stratified_split

N_IMAGES = 1797
TEST_FRACTION = 0.2  # ceil(0.2 · 1797) = 360 test, 1437 train (scikit-learn's usual 80/20)
CLASSES = tuple(str(d) for d in range(10))


def build_digits_npz(csv_gz: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Convert scikit-learn's ``digits.csv.gz`` (64 pixel columns then the label) to ``out``.

    A file that is not a gzip-compressed table of integers raises a ``ValueError`` naming it.
    """
    try:
        with gzip.open(csv_gz, "rt", encoding="ascii") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except (gzip.BadGzipFile, EOFError, zlib.error, ValueError) as err:
        raise ValueError(
            f"{csv_gz}: not a gzip-compressed CSV table of integers ({type(err).__name__}: {err})"
        ) from None
    if table.shape != (N_IMAGES, 65):
        raise ValueError(f"{csv_gz}: not the 1797×65 digits table (got shape {table.shape})")
    if table.min() < 0 or table[:, :64].max() > 16 or table[:, 64].max() > 9:
        raise ValueError(
            f"{csv_gz}: values out of range (pixels must be 0-16, labels 0-9; got pixels up to "
            f"{table[:, :64].max()}, labels up to {table[:, 64].max()}, minimum {table.min()})"
        )
    images = table[:, :64].reshape(-1, 8, 8).astype(np.uint8)
    labels = table[:, 64].astype(np.uint8)
    np.savez_compressed(out, images=images, labels=labels)
    return Path(out)


def load_digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """The stored arrays: ``images`` uint8 ``[1797, 8, 8]`` (0-16) and ``labels`` int64 ``[1797]``."""
    data = importlib.resources.files("tinyspike.data").joinpath("digits.npz").read_bytes()
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        images, labels = npz["images"], npz["labels"].astype(np.int64)
    if images.shape != (N_IMAGES, 8, 8) or labels.shape != (N_IMAGES,):
        raise ValueError(f"tinyspike/data/digits.npz is damaged: shapes {images.shape}, {labels.shape}")
    return images, labels


def upsample(images: np.ndarray, size: int, interpolation: str = "nearest") -> np.ndarray:
    """Resize ``[N, h, w]`` float images to ``[N, size, size]`` (pixel centres aligned, as
    PIL/OpenCV/``align_corners=False``). ``"nearest"`` with ``size`` a multiple of 8 repeats each
    pixel ``size/8`` times, which undoes the 4×4 block counting the data was made with."""
    size = checks.integer("upsample", "size", size, low=1)
    checks.choice("upsample", "interpolation", interpolation, ("nearest", "bilinear"))
    if not isinstance(images, np.ndarray) or images.ndim != 3:
        got = images.shape if isinstance(images, np.ndarray) else checks.kind_of(images)
        raise ValueError(f"upsample: images must be a [N, h, w] numpy array, got {got}")
    n, h, w = images.shape

    def coords(out_len, in_len):
        return (np.arange(out_len) + 0.5) * (in_len / out_len) - 0.5

    if interpolation == "nearest":
        ys = np.floor((np.arange(size) + 0.5) * h / size).astype(np.int64)
        xs = np.floor((np.arange(size) + 0.5) * w / size).astype(np.int64)
        return images[:, ys[:, None], xs[None, :]]
    if interpolation == "bilinear":
        def taps(out_len, in_len):
            c = np.clip(coords(out_len, in_len), 0, in_len - 1)
            lo = np.floor(c).astype(np.int64)
            hi = np.minimum(lo + 1, in_len - 1)
            return lo, hi, c - lo

        y0, y1, wy = taps(size, h)
        x0, x1, wx = taps(size, w)
        rows = images[:, y0, :] * (1 - wy)[:, None] + images[:, y1, :] * wy[:, None]
        return rows[:, :, x0] * (1 - wx) + rows[:, :, x1] * wx
    raise ValueError(f"interpolation must be 'nearest' or 'bilinear', got {interpolation!r}")


class Digits(ArrayDataset):
    """The UCI digits as uint8 images ``[N, channels, size, size]`` (0-255), labels 0-9.

    Args:
        split: ``"train"`` (1,437 images), ``"test"`` (360) or ``"all"`` (1,797).
        size: output height and width (>= 8); 32 matches the CIFAR networks.
        channels: 1 (grey) or 3 (the grey image repeated, so RGB networks accept it).
        interpolation: ``"nearest"`` (default; sharp 4×4 blocks at size 32) or ``"bilinear"``.
        test_fraction, seed: the class-stratified split; the same pair always gives the same split.

    ``mean`` and ``std`` are measured on the training split at this size, for ``Normalize``.
    """

    def __init__(
        self,
        split: str = "train",
        *,
        size: int = 32,
        channels: int = 3,
        interpolation: str = "nearest",
        test_fraction: float = TEST_FRACTION,
        seed: int = 0,
    ):
        checks.choice("Digits", "split", split, ("train", "test", "all"))
        size = checks.integer("Digits", "size", size, low=8)
        channels = checks.integer("Digits", "channels", channels, 1, 3)
        if channels == 2:
            raise ValueError("Digits: channels must be 1 (grey) or 3 (RGB), got 2")
        checks.choice("Digits", "interpolation", interpolation, ("nearest", "bilinear"))
        test_fraction = checks.real("Digits", "test_fraction", test_fraction, 0.0, 1.0, low_open=True, high_open=True)
        seed = checks.integer("Digits", "seed", seed, low=0)
        raw, labels = load_digits_raw()
        train_idx, test_idx = stratified_split(labels, test_fraction, seed)
        idx = {"train": train_idx, "test": test_idx, "all": np.arange(len(labels))}[split]

        # 0-16 grey levels -> 0-255 (16 -> 255 exactly); resize in float, round once at the end.
        grey = upsample(raw[idx].astype(np.float32) * np.float32(255.0 / 16.0), int(size), interpolation)
        grey = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
        images = np.ascontiguousarray(np.broadcast_to(grey[:, None], (len(idx), channels, size, size)))

        # Normalisation constants from the training images only (the test split must not leak in).
        train_grey = upsample(raw[train_idx].astype(np.float32) * np.float32(255.0 / 16.0), int(size), interpolation)
        train_grey = np.clip(np.rint(train_grey), 0, 255) / 255.0
        mean, std = float(train_grey.mean()), float(train_grey.std())

        super().__init__(
            images, labels[idx], CLASSES,
            description=(
                f"UCI digits {split} ({len(idx)} images, 8x8 -> {size}x{size} {interpolation}, "
                f"{channels} channel{'s' if channels > 1 else ''}, seed={seed})"
            ),
            mean=(mean,) * channels, std=(std,) * channels,
        )
        self.split = split
        self.indices = idx
