"""The datasets ``tinyspike train`` knows by name, built from one call.

``build_dataset(name, split, data_dir=None, time_steps=None, **options)`` returns an
``ArrayDataset``; ``build_splits`` returns the (train, evaluation) pair a training run uses and
takes care of the one awkward case: a CIFAR-10 folder with training batches only (the sample in
``shared/data``) is split into a training part and a held-out validation part, disjoint, from a
fixed seed.

=============  ========  ===========  ====================================================
name           kind      data_dir     what
=============  ========  ===========  ====================================================
digits         static    (built in)   UCI 8x8 digits, upsampled (``size``, ``channels``)
digits-dvs     events    (built in)   the digits through the DVS emulator, T frames (``size``)
cifar10        static    required*    CIFAR-10 binary batches (* or the download cache)
cifar10-dvs    events    required*    CIFAR10-DVS AEDAT recordings, T frames (``convention``)
nmnist         events    required     N-MNIST ``.bin``/``.bs2`` samples, T frames
=============  ========  ===========  ====================================================

Options not understood by a dataset raise a ``ValueError`` naming them (a typo never passes
silently).
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path

from tinyspike import checks


@dataclass(frozen=True)
class DatasetInfo:
    """What the trainer and the CLI need to know about a dataset before loading it."""

    name: str
    kind: str  # "static" (images, repeated over T) or "events" (one frame per time step)
    channels: int  # input channels as built by default
    needs_data_dir: bool
    default_time_steps: int
    summary: str


DATASETS = {
    "digits": DatasetInfo("digits", "static", 3, False, 4, "built-in UCI handwritten digits (1,437 train / 360 test)"),
    "digits-dvs": DatasetInfo("digits-dvs", "events", 2, False, 8, "built-in digits through the DVS emulator (events)"),
    "cifar10": DatasetInfo("cifar10", "static", 3, True, 6, "CIFAR-10, binary version (data_batch_*.bin, test_batch.bin)"),
    "cifar10-dvs": DatasetInfo("cifar10-dvs", "events", 2, True, 10, "CIFAR10-DVS recordings (AEDAT 2.0), 9:1 split of the convention (default plif2020)"),
    "nmnist": DatasetInfo("nmnist", "events", 2, True, 10, "N-MNIST event recordings (.bin/.bs2 + label lists)"),
}


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name]


def _call(cls, *args, options: dict, what: str, **fixed):
    """``cls(*args, **fixed, **options)``, with unknown option names reported by name."""
    params = inspect.signature(cls).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(k for k in options if k not in params)
        if unknown:
            allowed = sorted(k for k, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL and k not in fixed)
            raise ValueError(f"{what}: unknown option(s) {unknown}; it takes {allowed}")
    return cls(*args, **fixed, **options)


def _data_dir(name: str, data_dir, required: bool, create: bool = False) -> Path | None:
    """``data_dir`` as an existing folder; ``create=True`` (a download was asked for) makes it,
    parents included, where it does not exist yet."""
    if data_dir is None:
        if required:
            raise FileNotFoundError(f"dataset {name!r} needs --data-dir (the folder holding its files)")
        return None
    if not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(f"build_dataset: data_dir must be a path (str or os.PathLike), got "
                        f"{checks.kind_of(data_dir)} {checks.show(data_dir)}")
    path = Path(data_dir).expanduser()
    if not path.exists() and create:
        path.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        raise FileNotFoundError(f"data folder {str(path)!r} for dataset {name!r} does not exist")
    if not path.is_dir():
        raise FileNotFoundError(f"data path {str(path)!r} for dataset {name!r} is not a folder")
    return path


def _time_steps(name: str, time_steps) -> int:
    if time_steps is None:
        return DATASETS[name].default_time_steps
    return checks.integer("build_dataset", "time_steps (T)", time_steps, low=1)


def _download_asked(options: dict) -> bool:
    """The ``download`` option as a bool (False when absent); ``"yes"`` or 1 are refused."""
    return "download" in options and checks.boolean("build_dataset", "download", options["download"])


def build_dataset(name: str, split: str = "train", data_dir=None, time_steps=None, **options):
    """One split of dataset ``name`` as an ``ArrayDataset``.

    ``split`` is ``"train"`` or ``"test"`` (and ``"val"`` for CIFAR-10 with ``val_fraction``).
    ``time_steps`` is the number of frames of event datasets (ignored by static ones, whose
    images are repeated over T by the network). ``options`` go to the dataset's constructor
    (e.g. ``size=16, channels=1`` for digits, ``size=64`` for the DVS sets).
    """
    info = dataset_info(name)
    checks.choice("build_dataset", "split", split, ("train", "test", "val"))
    if name == "digits":
        from tinyspike.data.digits import Digits

        if split == "val":
            raise ValueError("digits has 'train' and 'test' splits only")
        return _call(Digits, split, options=options, what="digits")
    if name == "digits-dvs":
        from tinyspike.data.emulator import DigitsDVS

        if split == "val":
            raise ValueError("digits-dvs has 'train' and 'test' splits only")
        options = dict(options)
        if "size" in options:  # a JSON-able shortcut for EmulatorConfig(sensor_size=(size, size))
            from tinyspike.data.emulator import EmulatorConfig

            size = options.pop("size")
            if "config" in options:
                raise ValueError("digits-dvs: give either size or config, not both")
            checks.integer("digits-dvs", "size", size, low=8)
            options["config"] = EmulatorConfig(sensor_size=(size, size))
        return _call(DigitsDVS, split, options=options, what="digits-dvs", T=_time_steps(name, time_steps))
    if name == "cifar10":
        from tinyspike.data.cifar10 import CIFAR10

        root = _data_dir(name, data_dir, required=False, create=_download_asked(options))
        return _call(CIFAR10, root, split, options=options, what="cifar10")
    if name == "cifar10-dvs":
        from tinyspike.data.cifar10_dvs import CIFAR10DVS

        root = _data_dir(name, data_dir, required=False, create=_download_asked(options))
        if split == "val":
            raise ValueError("cifar10-dvs has 'train' and 'test' splits only (those of its convention)")
        return _call(CIFAR10DVS, root, split, options=options, what="cifar10-dvs", T=_time_steps(name, time_steps))
    if name == "nmnist":
        from tinyspike.data.nmnist import NMNIST

        root = _data_dir(name, data_dir, required=info.needs_data_dir)
        if split == "val":
            raise ValueError("nmnist has 'train' and 'test' splits only")
        return _call(NMNIST, root, split, options=options, what="nmnist", T=_time_steps(name, time_steps))
    raise AssertionError(name)  # pragma: no cover - dataset_info checked the name


def cifar10_has_test_batch(data_dir) -> bool:
    """True when the CIFAR-10 folder (or the download cache) holds ``test_batch.bin``."""
    from tinyspike.data.cifar10 import find_batches_dir
    from tinyspike.data.download import default_cache_dir

    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(f"build_dataset: data_dir must be a path (str or os.PathLike), got "
                        f"{checks.kind_of(data_dir)} {checks.show(data_dir)}")
    root = Path(data_dir).expanduser() if data_dir is not None else default_cache_dir() / "cifar10"
    folder = find_batches_dir(root) if root.is_dir() else None
    return folder is not None and (folder / "test_batch.bin").is_file()


def build_splits(name: str, data_dir=None, time_steps=None, *, val_fraction: float = 0.1, seed: int = 0, **options):
    """``(train, evaluation, note)`` for a training run on dataset ``name``.

    The evaluation set is the test split, except for a CIFAR-10 folder without
    ``test_batch.bin``: then ``val_fraction`` of the training batches (class-stratified, chosen by
    ``seed``) is held out and used for evaluation, and ``note`` says so.
    """
    dataset_info(name)
    val_fraction = checks.real("build_splits", "val_fraction", val_fraction, 0.0, 1.0, low_open=True, high_open=True)
    if name == "cifar10" and not _download_asked(options) and not cifar10_has_test_batch(data_dir):
        _data_dir(name, data_dir, required=False)  # a clear message for a folder that does not exist
        train = build_dataset(name, "train", data_dir, time_steps, val_fraction=val_fraction, seed=seed, **options)
        held = build_dataset(name, "val", data_dir, time_steps, val_fraction=val_fraction, seed=seed, **options)
        note = (f"no test_batch.bin: evaluating on a held-out {val_fraction:.0%} of the training batches "
                f"({len(held)} images, seed {seed})")
        return train, held, note
    train = build_dataset(name, "train", data_dir, time_steps, **options)
    test = build_dataset(name, "test", data_dir, time_steps, **options)
    return train, test, ""
