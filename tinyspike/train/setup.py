"""From a ``TrainConfig`` to the objects of a run: data, loaders, model, optimizer, schedule.

``train(config, out=..., resume=...)`` is what ``tinyspike train`` calls; ``build_parts`` is the
same construction without the loop, for ``tinyspike eval``, notebooks and tests.

Checks made here, before any expensive work, each with a one-line message: unknown dataset,
model, optimizer or schedule; a model whose input channels differ from the data's (a 2-channel
DVS model on RGB images); a missing data folder; an output folder that cannot be written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tinyspike import atomic, backend, distributed, models, optim
from tinyspike.data import transforms
from tinyspike.data.loader import DataLoader
from tinyspike.data.registry import DATASETS, build_dataset, build_splits, cifar10_has_test_batch
from tinyspike.nn import Conv2d
from tinyspike.train.config import TrainConfig, resolve_config
from tinyspike.train.run_dir import (
    RUN_FILES, RunDir, RunDirError, check_writable, checkpoint_epoch, default_run_name,
    read_trainer_checkpoint,
)
from tinyspike.train.trainer import Trainer


class ConfigError(ValueError):
    """A combination of settings that cannot work (the message says which and why)."""


@dataclass
class RunParts:
    config: TrainConfig
    train_set: object
    eval_set: object
    eval_note: str
    model: object
    optimizer: object
    schedule: object
    train_loader: object
    eval_loader: object


# ---------------------------------------------------------------------------------- pieces


def check_model_name(name: str) -> None:
    """Raise ConfigError unless ``name`` is a model the registry can build (without building it)."""
    try:
        models.registry.check_model_name(str(name))
    except ValueError as err:
        raise ConfigError(str(err)) from None


def first_conv(model):
    """The first Conv2d registered in ``model`` (its stem), or None."""
    for _, module in model.named_modules():
        if isinstance(module, Conv2d):
            return module
    return None


def build_model(config: TrainConfig, num_classes: int):
    check_model_name(config.model)
    backend.seed(config.seed)  # the weights depend on the seed alone
    try:
        return models.build(config.model, num_classes=num_classes, time_steps=config.T, **config.model_options)
    except TypeError as err:
        raise ConfigError(f"model {config.model!r} does not take these options {config.model_options}: {err}") from None


def check_compatible(config: TrainConfig, model, dataset) -> None:
    """Raise ConfigError when the model cannot take the dataset's samples."""
    conv = first_conv(model)
    if conv is None:
        return
    want = int(conv.weight.shape[1])
    channels, height, width = dataset.frame_shape
    if want != channels:
        kind = DATASETS[config.dataset].kind
        what = "event frames (ON/OFF)" if kind == "events" else "images"
        hint = ""
        if kind == "static" and want == 2:
            hint = "; DVS models need an event dataset (digits-dvs, cifar10-dvs, nmnist)"
        elif kind == "events" and want != 2:
            hint = "; pick a DVS model for event data (ms_resnet20_dvs) or add --model-opt in_channels=2"
        raise ConfigError(
            f"model {config.model!r} takes {want}-channel input but dataset {config.dataset!r} gives "
            f"{channels}-channel {what}{hint}"
        )


def make_transforms(config: TrainConfig, dataset):
    """(train transform, eval transform) for static uint8 images; (None, None) for events."""
    if dataset.time_steps is not None:
        if config.augment != "none":
            raise ConfigError(f"augment {config.augment!r} applies to static images, not to {config.dataset!r} events")
        return None, None
    _, h, w = dataset.frame_shape
    normalize = transforms.Normalize(dataset.mean, dataset.std)
    pad = max(1, min(h, w) // 8)  # 4 at 32x32, as the paper's RandomCrop(32, padding=4)
    steps = {
        "none": [],
        "crop": [transforms.RandomCrop((h, w), pad)],
        "crop-flip": [transforms.RandomCrop((h, w), pad), transforms.RandomHorizontalFlip()],
        "alternative": [transforms.RandomCrop((h, w), pad), transforms.RandomRotation(15),
                        transforms.RandomHorizontalFlip()],
    }[config.augment]
    return transforms.Compose(steps + [normalize]), transforms.Compose([normalize])


def build_optimizer(config: TrainConfig, model):
    params = list(model.parameters())
    if config.optimizer == "sgd":
        return optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                         nesterov=config.nesterov)
    if config.optimizer == "adam":
        return optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def build_schedule(config: TrainConfig, optimizer, steps_per_epoch: int):
    per = steps_per_epoch if config.schedule_per == "iteration" else 1
    if config.schedule == "constant":
        return None
    if config.schedule == "multistep":
        return optim.MultiStepLR(optimizer, config.milestones, gamma=config.gamma, steps_per_epoch=per)
    return optim.CosineLR(optimizer, total_epochs=config.epochs, warmup_epochs=config.warmup_epochs, steps_per_epoch=per)


def build_datasets(config: TrainConfig):
    return build_splits(
        config.dataset, config.data_dir, config.T, val_fraction=config.val_fraction, seed=0,
        **config.dataset_options,
    )


def build_eval_set(config: TrainConfig):
    """Only the evaluation split (for ``tinyspike eval``), built as the training run built it."""
    opts = dict(config.dataset_options)
    if config.dataset == "cifar10" and not opts.get("download") and not cifar10_has_test_batch(config.data_dir):
        ds = build_dataset("cifar10", "val", config.data_dir, config.T, val_fraction=config.val_fraction, seed=0, **opts)
        return ds, f"held-out {config.val_fraction:.0%} of the training batches (no test_batch.bin)"
    return build_dataset(config.dataset, "test", config.data_dir, config.T, **opts), ""


def build_parts(config: TrainConfig, *, prefetch: int = 2, rank: int = 0, world_size: int = 1) -> RunParts:
    """Every object of a run, built (and checked) from ``config``; with ``rank``/``world_size`` the
    loaders read this rank's shards (``config.batch_size`` is the global batch)."""
    config.validate()
    backend.use(config.backend)
    check_model_name(config.model)
    train_set, eval_set, note = build_datasets(config)
    model = build_model(config, train_set.num_classes)
    check_compatible(config, model, train_set)
    train_tf, eval_tf = make_transforms(config, train_set)
    train_loader = DataLoader(train_set, config.batch_size, shuffle=True, seed=config.seed, transform=train_tf,
                              prefetch=prefetch, rank=rank, world_size=world_size)
    eval_loader = DataLoader(eval_set, config.eval_batch_size or max(config.batch_size, 100), shuffle=False,
                             seed=config.seed, transform=eval_tf, prefetch=prefetch, rank=rank, world_size=world_size)
    optimizer = build_optimizer(config, model)
    schedule = build_schedule(config, optimizer, len(train_loader))
    return RunParts(config, train_set, eval_set, note, model, optimizer, schedule, train_loader, eval_loader)


# ---------------------------------------------------------------------------------- a run


@dataclass
class TrainResult:
    run_dir: Path
    history: list
    final_test_acc: float | None
    best_test_acc: float | None
    best_epoch: int | None
    wall_time_s: float


def _resolve_out(out, config: TrainConfig) -> Path:
    if out is None:
        base = Path("runs")
        path = base / default_run_name(config.dataset, config.model)
        n = 2
        while path.exists():
            path = base / f"{default_run_name(config.dataset, config.model)}-{n}"
            n += 1
        return path
    return Path(out)


# keys that a resume may change (--epochs, --data-dir, --backend); all others define the run
RESUMABLE_CHANGES = ("epochs", "data_dir", "backend")


def check_same_run(run: RunDir, checkpoint_config: TrainConfig) -> None:
    """Refuse to resume when ``last.npz`` was written by another run than the folder's ``config.json``
    (a copied-in checkpoint would otherwise be resumed as that run, and config.json rewritten)."""
    try:
        folder_config = TrainConfig.from_dict(run.read_config()).to_dict()
    except (TypeError, ValueError) as err:
        raise RunDirError(f"{str(run.config_path)!r}: {err}") from None
    saved = checkpoint_config.to_dict()
    differ = [k for k in saved if k not in RESUMABLE_CHANGES and saved[k] != folder_config.get(k)]
    if differ:
        shown = "; ".join(f"{k} {saved[k]!r} in last.npz but {folder_config.get(k)!r} in config.json" for k in differ)
        raise RunDirError(f"cannot resume: {str(run.last_path)!r} was written by another run than "
                          f"{str(run.config_path)!r} describes ({shown})")


def repair_best_checkpoint(run: RunDir, meta: dict, log) -> None:
    """Make ``best.npz`` hold the epoch ``last.npz`` records as the best.

    After a failed write (a full disk) ``last.npz`` may record epoch k as the best while ``best.npz``
    is missing or older; when k is the epoch of ``last.npz`` itself, ``best.npz`` is rebuilt from it.
    """
    best_epoch = meta.get("best_epoch")
    if best_epoch is None or checkpoint_epoch(run.best_path) == best_epoch:
        return
    if best_epoch == meta["epoch"]:
        atomic.copy_file(run.last_path, run.best_path)
        log(f"note: rebuilt {run.best_path} (epoch {best_epoch}) from {run.last_path}")
        return
    found = "missing" if not run.best_path.exists() else f"holds epoch {checkpoint_epoch(run.best_path)!r}"
    raise RunDirError(f"cannot resume: {str(run.last_path)!r} records epoch {best_epoch} as the best, but "
                      f"{str(run.best_path)!r} is {found}; restore that file, or move it away with last.npz "
                      "to start again")


def remove_unfinished_run(run: RunDir, created_folder: bool) -> bool:
    """After a new run failed before its first epoch finished, remove what it wrote (config.json,
    metrics, plot) and the folder itself if the run created it, so that ``--out`` can take the same
    folder again. Returns True when the folder is gone or empty of run files."""
    for name in RUN_FILES:
        try:
            (run.path / name).unlink()
        except FileNotFoundError:
            pass
        except OSError:
            return False
    if created_folder:
        try:
            run.path.rmdir()
        except OSError:
            pass  # something else is in it: leave it
    return True


def train(
    config: TrainConfig | dict | None = None,
    *,
    out=None,
    resume=None,
    epochs: int | None = None,
    data_dir=None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    prefetch: int = 2,
    comm=None,
) -> TrainResult:
    """Run (or resume) a training run and return its result.

    New run: ``config`` (a TrainConfig, or a dict of explicit settings for ``resolve_config``),
    written to ``out`` (default ``runs/<timestamp>-<dataset>-<model>``).
    Resume: ``resume`` is a run folder; its saved config is used, ``epochs`` may raise the total,
    ``data_dir`` may point to where the data now lives.
    Data parallel: ``comm`` (``tinyspike.distributed.init()``) of W ranks, each calling ``train``
    with the same arguments; ``batch_size`` is the global batch. Only rank 0 logs and writes the
    run folder; a failure on any rank during the setup stops every rank (``agree_on_failure``).
    """
    comm = distributed.SingleProcess() if comm is None else comm
    if comm.size > 1:
        return _train_on_ranks(comm, config, out=out, resume=resume, epochs=epochs, data_dir=data_dir,
                               progress=progress, log=log, prefetch=prefetch)
    return _train(comm, config, out=out, resume=resume, epochs=epochs, data_dir=data_dir, progress=progress,
                  log=log, prefetch=prefetch)


def _train_on_ranks(comm, config, *, out, **kwargs) -> TrainResult:
    """``_train`` on W ranks: rank 0 picks the run folder (its timestamped default) for everyone."""
    if kwargs.get("resume") is None and out is None and comm.is_root:
        try:
            config_obj = resolve_config(config) if config is None or isinstance(config, dict) else config
            out = str(_resolve_out(None, config_obj))
        except Exception:
            pass  # the same error is raised (and agreed on) by the setup that follows
    out = distributed.gather_objects(None if out is None else str(out), comm)[0]
    return _train(comm, config, out=out, **kwargs)


def _train(comm, config, *, out, resume, epochs, data_dir, progress, log, prefetch) -> TrainResult:
    log = (log if comm.is_root else None) or (lambda line: None)
    t0 = time.perf_counter()
    created = False
    run = None
    failure = None
    try:
        if comm.size > 1 and resume is not None:
            run = RunDir(resume)  # opened (and its stale temporaries removed) by rank 0 below
        config, run, created, out_path = _prepare(comm, config, out, resume, epochs, data_dir, run)
        parts = build_parts(config, prefetch=prefetch, rank=comm.rank, world_size=comm.size)
    except Exception as err:
        failure = err
        if comm.is_root and resume is None and created:
            try:
                out_path.rmdir()  # leave no empty run folder behind a failed start
            except OSError:
                pass
    if comm.size > 1:
        distributed.agree_on_failure(failure, comm, "to set up the run")
    elif failure is not None:
        raise failure
    if not comm.is_root:
        run = RunDir(out_path if resume is None else resume)
    elif run is None:
        run = RunDir.create(out_path, config.to_dict())
    return _fit(comm, config, parts, run, resume, created, t0, progress, log)


def _prepare(comm, config, out, resume, epochs, data_dir, run):
    """(config, run folder or None, created?, out path): the checks of a new run or a resume."""
    created, out_path = False, None
    if resume is not None:
        if comm.is_root:
            run = RunDir.open(resume)
        ckpt_meta = read_trainer_checkpoint(run.last_path)["meta"]
        ckpt_meta = read_trainer_checkpoint(run.last_path)["meta"]
        config = TrainConfig.from_dict(ckpt_meta["config"])
        check_same_run(run, config)
        if epochs is not None:
            if epochs < int(ckpt_meta["epoch"]):
                raise ConfigError(f"--epochs {epochs} is less than the {ckpt_meta['epoch']} epochs the run has done")
            config.epochs = epochs
        if data_dir is not None:
            config.data_dir = str(data_dir)
        config.validate()
        return config, run, created, out_path
    if config is None or isinstance(config, dict):
        config = resolve_config(config or {})
    config.validate()
    out_path = _resolve_out(out, config)
    # fail on an unwritable or occupied folder before loading any data
    if (out_path / "config.json").exists() or (out_path / "last.npz").exists():
        raise RunDirError(
            f"output folder {str(out_path)!r} already holds a run; continue it with "
            f"--resume {out_path} or choose another --out"
        )
    if comm.is_root:  # only rank 0 writes: the folder is created (and checked) there
        created = not out_path.exists()
        check_writable(out_path)
    return config, None, created, out_path


def _fit(comm, config, parts, run, resume, created, t0, progress, log) -> TrainResult:
    log(f"run folder: {run.path}")
    log(f"data: {parts.train_set.description}")
    log(f"eval: {parts.eval_set.description}" + (f" [{parts.eval_note}]" if parts.eval_note else ""))
    log(f"model: {config.model} ({parts.model.num_parameters():,} parameters), T={config.T}, backend {backend.name()}")
    trainer = Trainer(
        parts.model, parts.optimizer, parts.train_loader, parts.eval_loader,
        epochs=config.epochs, time_steps=config.T, schedule=parts.schedule, schedule_per=config.schedule_per,
        label_smoothing=config.label_smoothing, grad_clip=config.grad_clip, run_dir=run,
        config=config.to_dict(), progress=progress, log=log, comm=comm,
    )
    if comm.size > 1:
        log(f"data parallel: {comm.size} ranks ({comm.name}), {config.batch_size // comm.size} samples each "
            f"of the global batch of {config.batch_size}")
    if run.removed_temporaries:
        log(f"note: removed {len(run.removed_temporaries)} temporary file(s) of interrupted writes: "
            + ", ".join(run.removed_temporaries))
    if resume is not None:
        meta = trainer.load(run.last_path)
        if config.epochs != meta.get("epochs"):
            trainer.config = config.to_dict()
        failure = None
        if comm.is_root:
            try:
                if config.epochs != meta.get("epochs"):
                    run.write_config(trainer.config)
                repair_best_checkpoint(run, meta, log)
                run.write_metrics(trainer.history)  # metrics.jsonl may lag behind last.npz after a failed write
            except Exception as err:
                failure = err
        distributed.agree_on_failure(failure, comm, "to prepare the resumed run folder")
        saved_world = int(meta.get("world_size", 1))
        if saved_world != comm.size:
            log(f"note: the run was saved on {saved_world} rank(s) and continues on {comm.size}: the shards "
                "(and random draws of ranks beyond the saved ones) differ from an uninterrupted run")
        log(f"resumed after epoch {trainer.epoch} of {config.epochs}")
    try:
        history = trainer.fit()
    except BaseException as stop:
        removed = (comm.is_root and resume is None and not run.last_path.exists()
                   and remove_unfinished_run(run, created))
        if isinstance(stop, KeyboardInterrupt):  # SIGINT, or SIGTERM turned into one by the CLI
            # the caller can say what to resume (nothing, when no epoch finished)
            raise type(stop)(*(() if removed else (str(run.path),))) from None
        raise
    last = history[-1] if history else {}
    return TrainResult(run.path, history, last.get("test_acc"), trainer.best_acc, trainer.best_epoch,
                       time.perf_counter() - t0)
