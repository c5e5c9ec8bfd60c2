"""The dataset protocol every tinyspike dataset follows, and the split helper they share.

A dataset here is a pair of in-memory NumPy arrays, not a per-sample ``__getitem__`` over files:
CIFAR-10 is 150 MB of uint8 and a CIFAR10-DVS frame cache a few GB at most, and batching with one
fancy-index (``inputs[indices]``) is hundreds of times faster than stacking samples in Python.

Layouts (one sample = ``inputs[i]``):

- static images: ``[N, C, H, W]`` uint8 (0-255); the DataLoader's transform normalises them to
  float32. ``time_steps`` is None.
- event frames: ``[N, T, C, H, W]`` (counts, integer or float32); ``time_steps`` is T. The
  DataLoader turns a batch into the time-first ``[T, B, C, H, W]`` the networks take.

A subclass that cannot hold everything in memory overrides ``get_batch`` (and sets ``inputs`` to
whatever indexable it has); the DataLoader only ever calls ``len(dataset)`` and ``get_batch``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from tinyspike import checks


class ArrayDataset:
    """Samples ``inputs[i]`` with integer class labels ``labels[i]``, held in memory.

    Attributes:
        inputs: NumPy array, first axis = sample.
        labels: int64 array ``[N]`` with values in ``[0, num_classes)``.
        classes: class names, index = label.
        time_steps: None for static images, T for event frames stored ``[N, T, C, H, W]``.
        description: one line naming the dataset and the split (shown by the trainer).
        mean, std: per-channel normalisation constants for static images (None for events).
    """

    def __init__(
        self,
        inputs: np.ndarray,
        labels: np.ndarray,
        classes: Sequence[str],
        *,
        time_steps: int | None = None,
        description: str = "",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ):
        if not isinstance(inputs, np.ndarray):
            raise TypeError(f"inputs must be a numpy array, got {type(inputs).__name__}")
        if not isinstance(labels, np.ndarray) or labels.dtype != np.int64 or labels.ndim != 1:
            got = f"{labels.dtype} {labels.shape}" if isinstance(labels, np.ndarray) else type(labels).__name__
            raise TypeError(f"labels must be a 1-D int64 numpy array, got {got}")
        if len(inputs) != len(labels):
            raise ValueError(f"inputs has {len(inputs)} samples but labels has {len(labels)}")
        classes = tuple(str(c) for c in classes)
        if not classes:
            raise ValueError("classes must name at least one class")
        if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
            raise ValueError(
                f"labels must lie in [0, {len(classes)}), got range [{labels.min()}, {labels.max()}]"
            )
        time_steps = checks.optional_integer("ArrayDataset", "time_steps", time_steps, low=1)
        if time_steps is not None and (inputs.ndim != 5 or inputs.shape[1] != time_steps):
            raise ValueError(
                f"ArrayDataset: event inputs must be [N, T={time_steps}, C, H, W], got shape {inputs.shape}"
            )
        self.inputs = inputs
        self.labels = labels
        self.classes = classes
        self.time_steps = time_steps
        self.description = description or f"{type(self).__name__} ({len(labels)} samples)"
        self.mean = None if mean is None else checks.reals("ArrayDataset", "mean", tuple(mean))
        self.std = None if std is None else checks.reals(
            "ArrayDataset", "std", tuple(std), low=0.0, low_open=True)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample as stored: ``(C, H, W)``, or ``(T, C, H, W)`` for event frames."""
        return tuple(self.inputs.shape[1:])

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of what the network sees at one time step (``C`` = input channels)."""
        return tuple(self.inputs.shape[-3:])

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(inputs[indices], labels[indices])`` as new NumPy arrays, in the order given."""
        indices = np.asarray(indices)
        return self.inputs[indices], self.labels[indices]

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.inputs[i], int(self.labels[i])

    def class_counts(self) -> np.ndarray:
        """Number of samples per class, ``[num_classes]`` int64."""
        return np.bincount(self.labels, minlength=self.num_classes)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.description}, sample_shape={self.sample_shape}>"


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices into ``(keep, held_out)`` with every class held out in proportion.

    ``ceil(fraction * N)`` samples are held out in total (the convention of scikit-learn's
    ``train_test_split``), shared among classes by largest remainder so each class's share is
    within one sample of ``fraction`` of its size. Which samples go is drawn from ``seed`` alone,
    so the split is the same on every machine and run. Both index arrays are sorted.
    """
    labels = np.asarray(labels)
    fraction = checks.real("stratified_split", "fraction", fraction, 0.0, 1.0, low_open=True, high_open=True)
    seed = checks.integer("stratified_split", "seed", seed, low=0)
    n = len(labels)
    n_held = int(np.ceil(fraction * n - 1e-9))
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * (n_held / n)
    take = np.floor(quota).astype(np.int64)
    # Largest remainder; ties go to the lower class index so the result is deterministic.
    order = np.lexsort((np.arange(len(classes)), -(quota - take)))
    take[order[: n_held - take.sum()]] += 1

    rng = np.random.default_rng([int(seed), 0x5EED])
    held = []
    for cls, k in zip(classes, take):
        members = np.flatnonzero(labels == cls)
        held.append(rng.permutation(members)[:k])
    held = np.sort(np.concatenate(held)) if held else np.empty(0, np.int64)
    mask = np.ones(n, dtype=bool)
    mask[held] = False
    return np.flatnonzero(mask), held


def read_text_lines(path: str | os.PathLike, expected: str) -> list[str]:
    """The lines of the UTF-8 text file ``path`` (a leading byte-order mark is dropped).

    ``expected`` says what the file should hold (e.g. ``"'sample_id class' lines"``); a file that
    is not UTF-8 text (a binary file given by mistake, a list saved in another encoding) raises a
    ``ValueError`` naming the file, the first bad byte and what was expected, where Python alone
    would raise a ``UnicodeDecodeError`` that names neither.
    """
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path}: not UTF-8 text (byte {data[err.start]:#04x} at offset {err.start} cannot be "
            f"decoded); expected {expected}"
        ) from None
    return text.splitlines()


def check_path(where: str, name: str, value) -> Path:
    """``value`` as a ``Path``: a ``str`` or ``os.PathLike`` naming a file or folder, not empty.

    ``Path(None)`` or ``Path(3)`` would fail with a message naming neither the function nor the
    argument, and ``Path("")`` silently means the current folder.
    """
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{where}: {name} must be a path (str or os.PathLike), got "
                        f"{checks.kind_of(value)} {checks.show(value)}")
    if isinstance(value, str) and not value.strip():
        raise ValueError(f"{where}: {name} must name a file or folder, got the empty string")
    return Path(value)
