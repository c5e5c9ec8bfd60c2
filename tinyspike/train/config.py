"""What a training run is: one ``TrainConfig``, built from defaults, a recipe and explicit choices.

Precedence, lowest first: the dataset's defaults (``DATASET_DEFAULTS``), then a recipe (the
paper's Table II/VI settings, ``RECIPES``), then whatever the caller sets explicitly. The resolved
config is written to the run folder (``config.json``) and into every checkpoint, so a run can be
rebuilt, resumed and evaluated from its folder alone.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from tinyspike.checks import (
    boolean, choice, integer, integers, kind_of, optional_integer, real, show,
)
from tinyspike.data.cifar10_dvs import DEFAULT_CONVENTION
from tinyspike.data.registry import DATASETS

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "multistep", "constant")
AUGMENTS = ("none", "crop", "crop-flip", "alternative")
BACKENDS = ("numpy", "cupy")

#: The small default network: an MS-ResNet-8 (one block per stage) at reduced width on 16x16
#: digits, T = 4; it reaches >= 95% test accuracy on the built-in digits in about a minute on
#: two CPU cores.
DEFAULT_MODEL = "ms_resnet8"


@dataclass
class TrainConfig:
    """Everything that defines a training run (``to_dict``/``from_dict`` round-trip through JSON).

    ``T`` is the number of time steps: for static images the network repeats the image T times;
    for event datasets it is the number of frames per sample. ``schedule_per`` steps the LR
    schedule once per ``"epoch"`` or once per ``"iteration"`` (smoother cosine on short runs).
    ``val_fraction`` is the held-out part of CIFAR-10's training batches used for evaluation when
    the folder has no test batch.
    """

    dataset: str = "digits"
    data_dir: str | None = None
    dataset_options: dict = field(default_factory=dict)
    model: str = DEFAULT_MODEL
    model_options: dict = field(default_factory=dict)
    T: int = 4
    epochs: int = 10
    batch_size: int = 32
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    optimizer: str = "sgd"
    schedule: str = "cosine"
    schedule_per: str = "iteration"
    milestones: list = field(default_factory=lambda: [40, 60, 80])
    gamma: float = 0.2
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    grad_clip: float | None = None
    augment: str = "none"
    val_fraction: float = 0.1
    recipe: str | None = None
    backend: str = "numpy"
    seed: int = 0
    eval_batch_size: int | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        if not isinstance(data, dict):
            raise TypeError(f"TrainConfig.from_dict: config must be a dict (a JSON object), got {kind_of(data)} "
                            f"{show(data)}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"TrainConfig.from_dict: config has unknown key(s) {unknown}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def validate(self) -> "TrainConfig":
        """Check every value that can be checked without loading data or building the model."""
        where = "TrainConfig"
        choice(where, "dataset", self.dataset, tuple(DATASETS))
        choice(where, "optimizer", self.optimizer, OPTIMIZERS)
        choice(where, "schedule", self.schedule, SCHEDULES)
        choice(where, "schedule_per", self.schedule_per, ("epoch", "iteration"))
        choice(where, "augment", self.augment, AUGMENTS)
        choice(where, "backend", self.backend, BACKENDS)
        if self.recipe is not None:
            choice(where, "recipe", self.recipe, tuple(RECIPES))
        if not isinstance(self.model, str) or not self.model:
            raise TypeError(f"{where}: model must be a model name (str), got {kind_of(self.model)} {show(self.model)}")
        for key in ("model_options", "dataset_options"):
            if not isinstance(getattr(self, key), dict):
                raise TypeError(f"{where}: {key} must be a dict, got {kind_of(getattr(self, key))}")
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise TypeError(f"{where}: data_dir must be a folder path (str) or None, got {kind_of(self.data_dir)}")
        kind = DATASETS[self.dataset].kind
        if self.data_dir is not None and self.dataset in BUILT_IN_DATASETS:
            raise ValueError(f"{where}: data_dir (--data-dir) is not used by the built-in dataset "
                             f"{self.dataset!r}, got {show(self.data_dir)}; leave it out")
        if kind == "events" and self.augment != "none":
            raise ValueError(f"{where}: augment {self.augment!r} applies to static images, not to the "
                             f"{self.dataset!r} event frames; use augment 'none'")
        # T: the memory of a training step grows linearly with it (every LIF layer keeps T frames)
        integer(where, "T", self.T, 1, MAX_TIME_STEPS)
        integer(where, "epochs", self.epochs, 1)
        integer(where, "batch_size", self.batch_size, 1)
        optional_integer(where, "eval_batch_size", self.eval_batch_size, 1)
        integer(where, "seed", self.seed, 0)
        real(where, "lr", self.lr, 0.0, low_open=True)
        real(where, "weight_decay", self.weight_decay, 0.0)
        real(where, "momentum", self.momentum, 0.0, 1.0, high_open=True)
        boolean(where, "nesterov", self.nesterov)
        real(where, "gamma", self.gamma, 0.0, 1.0, low_open=True)
        real(where, "label_smoothing", self.label_smoothing, 0.0, 1.0, high_open=True)
        real(where, "val_fraction", self.val_fraction, 0.0, 1.0, low_open=True, high_open=True)
        integer(where, "warmup_epochs", self.warmup_epochs, 0)
        if self.warmup_epochs > 0 and self.warmup_epochs >= self.epochs:
            raise ValueError(f"{where}: warmup_epochs must be an int in [0, epochs) = [0, {self.epochs}), "
                             f"got {self.warmup_epochs}")
        if self.grad_clip is not None:
            real(where, "grad_clip", self.grad_clip, 0.0, low_open=True)
        if not isinstance(self.milestones, (list, tuple)):
            raise TypeError(f"{where}: milestones must be a list of epoch numbers, got {kind_of(self.milestones)}")
        integers(where, "milestones", self.milestones, low=1)
        if list(self.milestones) != sorted(set(self.milestones)):
            raise ValueError(f"{where}: milestones must be increasing epoch numbers, got {show(self.milestones)}")
        if self.nesterov and self.optimizer != "sgd":
            raise ValueError(f"{where}: nesterov applies to the sgd optimizer only, got optimizer {self.optimizer!r}")
        return self


#: T above this is refused up front: MS-ResNets use T <= 10 (DVS work rarely more than a few
#: dozen frames), and every LIF layer of a training step keeps all T frames in memory.
MAX_TIME_STEPS = 1000

#: Datasets that ship with tinyspike and read no data folder.
BUILT_IN_DATASETS = ("digits", "digits-dvs")


#: Per-dataset defaults (what ``tinyspike train --dataset X`` does with nothing else given).
DATASET_DEFAULTS: dict[str, dict] = {
    "digits": dict(
        model=DEFAULT_MODEL, model_options={"widths": [8, 16, 32]}, dataset_options={"size": 16},
        T=4, epochs=12, batch_size=32, lr=0.1, weight_decay=1e-4, schedule="cosine", schedule_per="iteration",
        augment="none",
    ),
    "digits-dvs": dict(
        model="ms_resnet20_dvs", model_options={}, dataset_options={},
        T=8, epochs=10, batch_size=20, lr=0.1, weight_decay=1e-4, schedule="cosine", schedule_per="iteration",
        augment="none",
    ),
    "cifar10": dict(recipe="depth-study", model="ms_resnet20", T=6),
    # The convention is written into every run's config.json, so that a run keeps the frames it
    # was trained on even if the library's default convention changes.
    "cifar10-dvs": dict(recipe="dvs", model="ms_resnet20_dvs", T=10,
                        dataset_options={"convention": DEFAULT_CONVENTION}),
    "nmnist": dict(
        model="ms_resnet20_dvs", model_options={}, dataset_options={},
        T=10, epochs=10, batch_size=20, lr=0.1, weight_decay=1e-4, schedule="cosine", schedule_per="iteration",
        augment="none",
    ),
}

#: The paper's recipes (REFERENCE §7; Tables II and VI), plus tinyspike's choice for CIFAR10-DVS.
RECIPES: dict[str, dict] = {
    # Table II, the CIFAR-10 depth study.
    "depth-study": dict(
        optimizer="sgd", lr=0.1, momentum=0.9, batch_size=100, weight_decay=0.0, epochs=100,
        schedule="multistep", schedule_per="epoch", milestones=[40, 60, 80], gamma=0.2, augment="crop", T=6,
    ),
    # Table VI, the alternative structures (cosine, rotation and flip).
    "alternative": dict(
        optimizer="sgd", lr=0.1, momentum=0.9, batch_size=100, weight_decay=1e-4, epochs=100,
        schedule="cosine", schedule_per="epoch", augment="alternative", T=6,
    ),
    # The authors' later advice for CIFAR-10: Table II's schedule with weight decay 1e-4 and flips.
    "recommended": dict(
        optimizer="sgd", lr=0.1, momentum=0.9, batch_size=100, weight_decay=1e-4, epochs=100,
        schedule="multistep", schedule_per="epoch", milestones=[40, 60, 80], gamma=0.2, augment="crop-flip", T=6,
    ),
    # CIFAR10-DVS: REFERENCE gives no recipe; tinyspike uses the CIFAR-10 optimizer with cosine
    # decay over 100 epochs, T = 10 frames split by event count, no augmentation.
    "dvs": dict(
        optimizer="sgd", lr=0.1, momentum=0.9, batch_size=50, weight_decay=1e-4, epochs=100,
        schedule="cosine", schedule_per="epoch", augment="none", T=10,
    ),
}

RECIPE_SUMMARIES = {
    "depth-study": "Table II: SGD 0.1, momentum 0.9, batch 100, wd 0, 100 epochs, MultiStep [40,60,80]x0.2, crop",
    "alternative": "Table VI: SGD 0.1, momentum 0.9, batch 100, wd 1e-4, cosine 100 epochs, crop+rotate15+flip",
    "recommended": "authors' advice: Table II schedule with wd 1e-4 and crop+flip",
    "dvs": "tinyspike's CIFAR10-DVS choice: SGD 0.1, momentum 0.9, batch 50, wd 1e-4, cosine 100 epochs, T=10",
}


#: What kind of data each recipe was written for (REFERENCE §7): the CIFAR-10 recipes augment
#: static images; the DVS recipe is for event frames.
RECIPE_KINDS = {"depth-study": "static", "alternative": "static", "recommended": "static", "dvs": "events"}
_KIND_WORDS = {"static": "static images", "events": "event frames"}


def resolve_config(explicit: dict | None = None) -> TrainConfig:
    """Dataset defaults, then the recipe, then ``explicit`` (keys of ``TrainConfig``; None = unset).

    Settings that would be silently ignored are refused: ``momentum`` with Adam/AdamW (they have
    none), a recipe written for the other kind of data (``dvs`` on images, a CIFAR-10 recipe on
    events), and (in ``validate``) a ``data_dir`` for a built-in dataset.
    """
    where = "resolve_config"
    if explicit is not None and not isinstance(explicit, dict):
        raise TypeError(f"{where}: explicit must be a dict of settings, got {kind_of(explicit)}")
    explicit = {k: v for k, v in (explicit or {}).items() if v is not None}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(explicit) - known)
    if unknown:
        raise ValueError(f"{where}: unknown config key(s) {unknown}")
    dataset = choice(where, "dataset", explicit.get("dataset", TrainConfig.dataset), tuple(DATASET_DEFAULTS))
    values: dict = {"dataset": dataset}
    base = dict(DATASET_DEFAULTS[dataset])
    recipe = explicit.get("recipe", base.pop("recipe", None))
    base.pop("recipe", None)
    values.update(base)
    if recipe is not None:
        choice(where, "recipe", recipe, tuple(RECIPES))
        kind = DATASETS[dataset].kind
        if RECIPE_KINDS[recipe] != kind:
            data = _KIND_WORDS[kind]
            raise ValueError(f"{where}: recipe {recipe!r} is written for {_KIND_WORDS[RECIPE_KINDS[recipe]]}, but dataset "
                             f"{dataset!r} gives {data}; choose one of "
                             f"{[r for r, k in RECIPE_KINDS.items() if k == kind]} or no recipe")
        values.update(RECIPES[recipe])
        values["recipe"] = recipe
    if "model" in explicit:
        # The dataset's model options (digits: narrow widths 8/16/32) shape the small default run
        # only. A model named explicitly gets its standard architecture, even when it is the
        # default model, so that `--model ms_resnet8` is as wide as every other depth-8 model.
        values["model_options"] = {}
    explicit = dict(explicit)
    for key in ("model_options", "dataset_options"):
        # explicit options add to (and override) the defaults rather than replacing them all
        if key in explicit:
            if not isinstance(explicit[key], dict):
                raise TypeError(f"{where}: {key} must be a dict, got {kind_of(explicit[key])}")
            values[key] = {**values.get(key, {}), **explicit.pop(key)}
    values.update(explicit)
    optimizer = values.get("optimizer", TrainConfig.optimizer)
    if "momentum" in explicit and optimizer != "sgd":
        raise ValueError(f"{where}: momentum (--momentum) applies to the sgd optimizer only; optimizer "
                         f"{optimizer!r} has no momentum setting, got momentum {show(explicit['momentum'])}")
    return TrainConfig(**values).validate()
