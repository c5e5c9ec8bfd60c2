"""Training: the ``Trainer`` loop, run folders with atomic checkpoints, exact resume, recipes.

    from tinyspike.train import train
    result = train({"dataset": "digits", "epochs": 5}, out="runs/demo", progress=True, log=print)
    result.final_test_acc

or, by hand, ``Trainer(model, optimizer, train_loader, eval_loader, epochs=..., ...).fit()``.
"""

from tinyspike.train.config import (
    DATASET_DEFAULTS, DEFAULT_MODEL, RECIPE_SUMMARIES, RECIPES, TrainConfig, resolve_config,
)
from tinyspike.train.run_dir import RunDir, RunDirError, read_trainer_checkpoint
from tinyspike.train.setup import (
    ConfigError, RunParts, TrainResult, build_eval_set, build_model, build_parts, check_compatible, train,
)
from tinyspike.train.finite import NonFiniteError
from tinyspike.train.trainer import NonFiniteLossError, Trainer, format_record

__all__ = [
    "Trainer", "NonFiniteError", "NonFiniteLossError", "TrainConfig", "resolve_config", "RECIPES", "RECIPE_SUMMARIES",
    "DATASET_DEFAULTS", "DEFAULT_MODEL", "RunDir", "RunDirError", "read_trainer_checkpoint", "ConfigError",
    "RunParts", "TrainResult", "build_parts", "build_model", "build_eval_set", "check_compatible", "train",
    "format_record",
]
