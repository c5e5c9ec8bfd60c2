"""What an analysis looks at: one model (trained or fresh) and the dataset it belongs to.

Every analysis of ``tinyspike analyze`` takes an ``AnalysisSource``: the model, its name, the
dataset's name, the checkpoint it came from (None for a freshly initialised model), T, and a
``batches()`` iterator over real samples of that dataset, normalised exactly as training and
``tinyspike eval`` normalise them::

    source = AnalysisSource.from_checkpoint("runs/x/best.npz")          # a trained model
    source = AnalysisSource.from_model("ms_resnet20", "digits", seed=0)  # an untrained one
    for images, labels in source.batches("test", batch_size=32, limit=2):
        logits = source.model(images, time_steps=source.time_steps)

Both constructors go through the training code's own pieces (``resolve_config``, ``build_model``,
``build_eval_set``, ``make_transforms``), so an analysed model is built, seeded and fed the same
way as the model that was trained, and a checkpoint is rebuilt from the config stored inside it
(no run folder needed).

Batches are on the active backend: NumPy arrays on the CPU (CuPy arrays with ``--backend cupy``).
Static images are ``[B, C, H, W]`` (the model repeats them over T); event frames are
``[T, B, C, H, W]``. Labels are int64 ``[B]``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tinyspike import checks
from tinyspike.data.loader import DataLoader
from tinyspike.data.registry import build_dataset, cifar10_has_test_batch
from tinyspike.train import (
    TrainConfig, build_eval_set, build_model, check_compatible, read_trainer_checkpoint, resolve_config,
)
from tinyspike.train.setup import make_transforms


class SourceError(ValueError):
    """A checkpoint or model/dataset pair that cannot be analysed (the message says why)."""


def find_checkpoint(path) -> Path:
    """``path`` itself if it is a file; for a run folder, its ``best.npz`` (else ``last.npz``)."""
    path = Path(checks.path("AnalysisSource", "checkpoint", path))
    if path.is_dir():
        for name in ("best.npz", "last.npz"):
            if (path / name).is_file():
                return path / name
        raise SourceError(f"{str(path)!r} holds no best.npz or last.npz checkpoint")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    return path


def _options(where: str, name: str, value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{where}: {name} must be a dict of options or None, got {checks.kind_of(value)} "
                        f"{checks.show(value)}")
    return dict(value)


def _data_dir(where: str, value):
    return None if value is None else checks.path(where, "data_dir", value)


@dataclass
class AnalysisSource:
    """A model to analyse and the dataset its samples come from (see the module docstring).

    ``config`` is the resolved ``TrainConfig`` the model was built from (the checkpoint's own for
    a trained model): it says how samples are loaded and normalised. ``seed`` is the seed the
    weights were initialised from.
    """

    model: object
    model_name: str
    dataset_name: str
    checkpoint: Path | None
    time_steps: int
    config: object = None
    seed: int = 0
    epoch: int | None = None
    _datasets: dict = field(default_factory=dict, repr=False)

    # ---- constructors ---------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path, data_dir=None, data_opts=None, expect_model: str | None = None) -> "AnalysisSource":
        """The trained model in ``path`` (a ``best.npz``/``last.npz`` of ``tinyspike train``, or
        its run folder), rebuilt from the config stored in the checkpoint and its weights loaded.

        ``data_dir`` says where the dataset lives now (default: as in the run); ``data_opts``
        override the run's dataset options. ``expect_model``: refuse (one line, naming the file) a
        checkpoint that holds another model than this name.
        """
        where = "AnalysisSource.from_checkpoint"
        data_dir = _data_dir(where, data_dir)
        data_opts = _options(where, "data_opts", data_opts)
        if expect_model is not None and not isinstance(expect_model, str):
            raise TypeError(f"{where}: expect_model must be a model name (str) or None, got "
                            f"{checks.kind_of(expect_model)} {checks.show(expect_model)}")
        path = find_checkpoint(path)
        ckpt = read_trainer_checkpoint(path)
        meta = ckpt["meta"]
        try:
            config = TrainConfig.from_dict(dict(meta["config"]))
        except (TypeError, ValueError) as err:
            raise SourceError(f"checkpoint {str(path)!r} holds an unusable config: {err}") from None
        if expect_model is not None and expect_model.lower() != str(config.model).lower():
            raise SourceError(f"checkpoint {str(path)!r} holds a {config.model!r} model, not {expect_model!r}; "
                              "leave out --model or pick the checkpoint of that model")
        if data_dir is not None:
            config.data_dir = data_dir
        config.dataset_options = {**config.dataset_options, **data_opts}
        config.validate()
        source = cls._build(config, checkpoint=path, epoch=meta.get("epoch"))
        try:
            source.model.load_state_dict(ckpt["model"])
        except (KeyError, ValueError, TypeError) as err:
            message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
            raise SourceError(f"checkpoint {str(path)!r} does not fit the {config.model!r} model its config "
                              f"describes: {message}") from None
        source.model.eval()
        return source

    @classmethod
    def from_model(cls, model_name: str, dataset: str, data_dir=None, model_opts=None, data_opts=None,
                   seed: int = 0, time_steps: int | None = None) -> "AnalysisSource":
        """A freshly initialised ``model_name`` (weights from ``seed``) for ``dataset``, with the
        dataset's default settings (``tinyspike train --dataset D --model M`` would build the same
        model); ``model_opts``/``data_opts`` add to them, ``time_steps`` overrides T."""
        where = "AnalysisSource.from_model"
        if not isinstance(model_name, str) or not model_name:
            raise TypeError(f"{where}: model_name must be a model name (str), got {checks.kind_of(model_name)} "
                            f"{checks.show(model_name)}")
        if not isinstance(dataset, str):
            raise TypeError(f"{where}: dataset must be a dataset name (str), got {checks.kind_of(dataset)} "
                            f"{checks.show(dataset)}")
        seed = checks.integer(where, "seed", seed, low=0)
        if time_steps is not None:
            time_steps = checks.integer(where, "time_steps", time_steps, low=1)
        explicit = {
            "dataset": dataset, "model": model_name, "data_dir": _data_dir(where, data_dir), "seed": seed,
            "T": time_steps, "model_options": _options(where, "model_opts", model_opts),
            "dataset_options": _options(where, "data_opts", data_opts),
        }
        config = resolve_config(explicit)
        source = cls._build(config, checkpoint=None, epoch=None)
        source.model.eval()
        return source

    @classmethod
    def _build(cls, config, checkpoint, epoch) -> "AnalysisSource":
        """The model of ``config`` (seeded by ``config.seed``) checked against its dataset."""
        source = cls(model=None, model_name=str(config.model).lower(), dataset_name=config.dataset,
                     checkpoint=checkpoint, time_steps=int(config.T), config=config, seed=int(config.seed),
                     epoch=epoch)
        test_set = source.dataset("test")  # loads the data once: num_classes and channels come from it
        model = build_model(config, test_set.num_classes)
        check_compatible(config, model, test_set)
        source.model = model
        return source

    # ---- data -----------------------------------------------------------------------------
    def dataset(self, split: str = "test"):
        """The ``split`` ("train" or "test") of the source's dataset, built as the run built it
        (cached). For a CIFAR-10 folder without ``test_batch.bin`` "test" is the held-out part of
        the training batches that the run evaluated on, and "train" the rest."""
        split = checks.choice("AnalysisSource.dataset", "split", split, ("train", "test"))
        if split not in self._datasets:
            config = self.config
            if split == "test":
                self._datasets[split] = build_eval_set(config)[0]
            else:
                opts = dict(config.dataset_options)
                if (config.dataset == "cifar10" and not opts.get("download")
                        and not cifar10_has_test_batch(config.data_dir)):
                    opts.update(val_fraction=config.val_fraction, seed=0)
                self._datasets[split] = build_dataset(config.dataset, "train", config.data_dir, config.T, **opts)
        return self._datasets[split]

    def batches(self, split: str = "test", batch_size: int = 32, limit: int | None = None) -> Iterator[tuple]:
        """``(images, labels)`` batches of ``split`` in dataset order (no shuffling, no augmentation,
        normalised as for evaluation); ``limit`` = at most that many batches."""
        where = "AnalysisSource.batches"
        batch_size = checks.integer(where, "batch_size", batch_size, low=1)
        limit = checks.optional_integer(where, "limit", limit, low=1)
        data = self.dataset(split)
        _, eval_transform = make_transforms(self.config, data)
        loader = DataLoader(data, batch_size, shuffle=False, seed=0, transform=eval_transform, prefetch=0)
        return self._take(loader, limit)

    @staticmethod
    def _take(loader, limit):
        for i, batch in enumerate(loader):
            if limit is not None and i >= limit:
                return
            yield batch

    # ---- labels ---------------------------------------------------------------------------
    def model_options(self) -> dict:
        """The model options the model was built with, beyond its name's standard architecture
        (``{"zero_init_residual": False}``, the digits default's ``{"widths": [8, 16, 32]}``); {} for
        the standard one. Two runs that differ only here are different networks, so every title
        and JSON names them."""
        given = getattr(self.config, "model_options", None) or {}
        return {key: _plain(given[key]) for key in sorted(given)}

    def model_label(self) -> str:
        """The model's name with its options: ``"ms_resnet56 [zero_init_residual=false]"``."""
        options = self.model_options()
        if not options:
            return self.model_name
        # written as --model-opt takes them (JSON values), so a reader can rebuild the model
        return f"{self.model_name} [{', '.join(f'{k}={json.dumps(v)}' for k, v in options.items())}]"

    def origin(self) -> str:
        """``"checkpoint runs/x/best.npz"`` or ``"untrained, seed 0"``."""
        if self.checkpoint is None:
            return f"untrained, seed {self.seed}"
        return f"checkpoint {self.checkpoint}"

    def legend_label(self) -> str:
        """A short label for one model among several in a figure: the model (with its non-default
        options) and its state, ``"ms_resnet56 (untrained)"`` or ``"ms_resnet56 (trained, epoch 2)"``."""
        state = "untrained" if self.checkpoint is None else (
            "trained" if self.epoch is None else f"trained, epoch {self.epoch}")
        return f"{self.model_label()} ({state})"

    def title(self, what: str) -> str:
        """A figure title naming the analysis, the model (and its non-default options), the dataset
        and where the weights came from."""
        return f"{what} - {self.model_label()} on {self.dataset_name} ({self.origin()})"

    def describe(self) -> dict:
        """JSON-safe facts about the source, stored in every analysis' JSON."""
        return {
            "model": self.model_name,
            "model_options": self.model_options(),
            "dataset": self.dataset_name,
            "checkpoint": None if self.checkpoint is None else str(self.checkpoint),
            "epoch": self.epoch,
            "seed": self.seed,
            "time_steps": self.time_steps,
        }


def _plain(value):
    """Tuples as lists (so (16, 32, 64) and [16, 32, 64] compare equal and print alike)."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value

