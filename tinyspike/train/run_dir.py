"""The run folder: config, metrics, checkpoints and plots of one training run.

    runs/<timestamp>-<dataset>-<model>/
        config.json      the resolved TrainConfig
        metrics.jsonl    one JSON object per finished epoch
        last.npz         the state after the latest finished epoch (what --resume continues)
        best.npz         the state after the epoch with the best test accuracy so far
        curves.png       loss and accuracy per epoch (written at the end)

Every file is written atomically (``tinyspike.atomic``: a temporary file in the same folder, put on
disk, then renamed over the target), so an interrupted run never leaves half a checkpoint:
``last.npz`` is always a complete, earlier state.

A checkpoint is an ``.npz`` written by ``tinyspike.nn.save_checkpoint``: the model's arrays under
``model/``, the optimizer's under ``optimizer/``, the schedule's under ``schedule/``, and one JSON
string ``trainer`` with the epoch, the best accuracy, the random generators' states and the
config. ``allow_pickle=False`` throughout.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tinyspike import atomic
from tinyspike.checks import integer, is_integer, kind_of, real, show
from tinyspike.nn import read_checkpoint, save_checkpoint
from tinyspike.train.config import TrainConfig
from tinyspike.train.finite import first_non_finite

CHECKPOINT_FORMAT = "tinyspike-trainer-checkpoint"
CHECKPOINT_VERSION = 1


class RunDirError(ValueError):
    """The output folder cannot be used (exists with a run in it, not writable, a file in it cannot
    be written or does not belong to the run, ...)."""


#: The files of a run folder; an atomic write of ``name`` goes through ``.<name>.<random>.tmp``.
RUN_FILES = ("config.json", "metrics.jsonl", "last.npz", "best.npz", "curves.png")


def stale_temporaries(folder: Path) -> list[Path]:
    """The temporary files that interrupted writes (a killed process, a full disk) left in ``folder``."""
    prefixes = tuple(f".{name}." for name in RUN_FILES)
    found = []
    for entry in Path(folder).iterdir():
        name = entry.name
        if entry.is_file() and ((name.startswith(prefixes) and name.endswith(".tmp"))
                                or name.startswith(".write-test-")):
            found.append(entry)
    return sorted(found)


def remove_stale_temporaries(folder: Path) -> list[str]:
    """Delete ``stale_temporaries(folder)``; returns their names. Only one process may use a run
    folder at a time, so a temporary file found at start or resume belongs to a dead write."""
    removed = []
    for entry in stale_temporaries(folder):
        try:
            entry.unlink()
            removed.append(entry.name)
        except FileNotFoundError:
            pass
    return removed


@contextmanager
def reported_write(path: Path, consequence: str = ""):
    """Turn an ``OSError`` of writing ``path`` (a full disk, a lost mount) into a RunDirError that
    names the file, the reason and ``consequence`` (what is still safe on disk)."""
    try:
        yield
    except OSError as err:
        reason = err.strerror or str(err) or type(err).__name__
        raise RunDirError(f"could not write {str(path)!r}: {reason}" + (f"; {consequence}" if consequence else "")) from err


def default_run_name(dataset: str, model: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{dataset}-{model}"


def check_writable(folder: Path) -> None:
    """Create ``folder`` (and parents) and prove a file can be written there, or raise RunDirError."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise RunDirError(f"cannot write to output folder {str(folder)!r}: {reason}") from None


class RunDir:
    """Paths and IO of one run folder."""

    def __init__(self, path):
        self.path = Path(path)
        self.removed_temporaries: list[str] = []  # stale temporary files deleted when opened

    # ---- paths -----------------------------------------------------------------------------
    config_path = property(lambda self: self.path / "config.json")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    last_path = property(lambda self: self.path / "last.npz")
    best_path = property(lambda self: self.path / "best.npz")
    plot_path = property(lambda self: self.path / "curves.png")

    @classmethod
    def create(cls, path, config_dict: dict) -> "RunDir":
        """A new run folder at ``path`` (created; must not already hold a run)."""
        run = cls(path)
        if run.config_path.exists() or run.last_path.exists():
            raise RunDirError(
                f"output folder {str(run.path)!r} already holds a run; continue it with "
                f"--resume {run.path} or choose another --out"
            )
        check_writable(run.path)
        run.removed_temporaries = remove_stale_temporaries(run.path)
        with reported_write(run.config_path):
            run.write_config(config_dict)
        if run.metrics_path.exists():
            run.metrics_path.unlink()
        return run

    @classmethod
    def open(cls, path) -> "RunDir":
        """An existing run folder (for --resume)."""
        run = cls(path)
        if not run.path.exists():
            raise RunDirError(f"run folder {str(run.path)!r} does not exist")
        if not run.path.is_dir():
            raise RunDirError(f"run folder {str(run.path)!r} is not a folder")
        if not run.last_path.is_file():
            raise RunDirError(f"run folder {str(run.path)!r} has no last.npz checkpoint to resume from")
        check_writable(run.path)
        run.removed_temporaries = remove_stale_temporaries(run.path)
        return run

    # ---- config and metrics ------------------------------------------------------------------
    def write_config(self, config_dict: dict) -> None:
        atomic.write_text(self.config_path, json.dumps(config_dict, indent=2, sort_keys=True) + "\n")

    def read_config(self) -> dict:
        """``config.json`` as a dict; a missing, unreadable or non-object file is a RunDirError naming it."""
        path = self.config_path
        if not path.is_file():
            raise RunDirError(f"run folder {str(self.path)!r} has no config.json")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RunDirError(f"{str(path)!r} is not a readable JSON file ({type(err).__name__}: {err})") from None
        if not isinstance(data, dict):
            raise RunDirError(f"{str(path)!r} must hold a JSON object (the run's settings), got {kind_of(data)}")
        return data

    def write_metrics(self, records: list) -> None:
        text = "".join(json.dumps(_jsonable(r), sort_keys=False) + "\n" for r in records)
        atomic.write_text(self.metrics_path, text)

    def read_metrics(self) -> list:
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]


def _jsonable(value):
    """JSON-safe copy: NumPy scalars to Python numbers, NaN/inf to null."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---------------------------------------------------------------------------------- checkpoints


def _split_state(state: dict) -> tuple[dict, dict]:
    """A flat state dict into (arrays for the npz, JSON-able rest)."""
    arrays, rest = {}, {}
    for key, value in state.items():
        if hasattr(value, "shape") and hasattr(value, "dtype") and not isinstance(value, np.generic):
            arrays[key] = value
        elif isinstance(value, np.generic):
            rest[key] = {"__numpy_scalar__": value.dtype.str, "value": value.item()}
        else:
            rest[key] = value
    return arrays, rest


def _join_state(arrays: dict, rest: dict) -> dict:
    state = {}
    for key, value in rest.items():
        if isinstance(value, dict) and "__numpy_scalar__" in value:
            value = np.dtype(value["__numpy_scalar__"]).type(value["value"])
        state[key] = value
    for key, value in arrays.items():
        state[key] = np.asarray(value) if not isinstance(value, np.ndarray) else value
    return state


def save_trainer_checkpoint(path, model, *, optimizer_state: dict, schedule_state: dict | None, meta: dict) -> None:
    """Write a full training state (see the module docstring) atomically to ``path``."""
    opt_arrays, opt_rest = _split_state(optimizer_state)
    sched_arrays, sched_rest = _split_state(schedule_state or {})
    meta = dict(meta)
    meta.update(format=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION,
                optimizer_scalars=opt_rest, schedule_scalars=sched_rest)
    extras = {"trainer": json.dumps(_jsonable(meta))}
    if opt_arrays:
        extras["optimizer"] = opt_arrays
    if sched_arrays:
        extras["schedule"] = sched_arrays
    save_checkpoint(path, model, **extras)


def read_trainer_checkpoint(path) -> dict:
    """``{"model": {...}, "optimizer": {...}, "schedule": {...}, "meta": {...}}`` from ``path``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    raw = read_checkpoint(path)
    if "trainer" not in raw or not isinstance(raw["trainer"], str):
        raise ValueError(f"{str(path)!r} is a model checkpoint without training state (no 'trainer' entry); "
                         "it was not written by tinyspike train")
    try:
        meta = json.loads(raw["trainer"])
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(path)!r}: its 'trainer' entry is not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{str(path)!r}: its 'trainer' entry must be a JSON object, got {kind_of(meta)}")
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{str(path)!r} is not a tinyspike training checkpoint (format {meta.get('format')!r})")
    if not is_integer(meta.get("version", 0)):
        raise ValueError(f"{str(path)!r}: its checkpoint version must be an int, got {show(meta.get('version'))}")
    if meta.get("version", 0) > CHECKPOINT_VERSION:
        raise ValueError(f"{str(path)!r} was written by a newer tinyspike (checkpoint version {meta['version']})")

    _check_meta(path, meta)
    _check_finite_arrays(path, raw)

    def group(name):
        value = raw.get(name, {})
        return value if isinstance(value, dict) else {}

    return {
        "model": raw["model"],
        "optimizer": _join_state(group("optimizer"), meta.pop("optimizer_scalars", {})),
        "schedule": _join_state(group("schedule"), meta.pop("schedule_scalars", {})),
        "meta": meta,
    }


def _check_meta(path: Path, meta: dict) -> None:
    """Every entry of a checkpoint's training state that resume and eval rely on, checked up front,
    so that a damaged or hand-edited file fails with its name and the key, not deep inside."""
    where = f"checkpoint {str(path)!r}"
    for key in ("epoch", "config"):
        if key not in meta:
            raise ValueError(f"{where}: its training state has no {key!r} entry (a damaged or foreign file)")
    epoch = integer(where, "'epoch'", meta["epoch"], 0)
    if meta.get("epochs") is not None:
        integer(where, "'epochs'", meta["epochs"], 1)
    if meta.get("best_acc") is not None:
        real(where, "'best_acc'", meta["best_acc"], 0.0, 1.0)
    if meta.get("best_epoch") is not None:
        integer(where, "'best_epoch'", meta["best_epoch"], 1, max(epoch, 1))
    for key, kind in (("history", list), ("rng", dict)):
        if key in meta and not isinstance(meta[key], kind):
            raise TypeError(f"{where}: its {key!r} entry must be a JSON {'array' if kind is list else 'object'}, "
                            f"got {kind_of(meta[key])} {show(meta[key])}")
    if not all(isinstance(record, dict) for record in meta.get("history", [])):
        raise TypeError(f"{where}: every item of its 'history' entry must be a JSON object (one epoch's record)")
    if not isinstance(meta["config"], dict):
        raise TypeError(f"{where}: its 'config' entry must be a JSON object (the run's settings), got "
                        f"{kind_of(meta['config'])} {show(meta['config'])}")
    try:
        TrainConfig.from_dict(meta["config"]).validate()
    except (TypeError, ValueError) as err:
        raise type(err)(f"{where}: its 'config' entry: {err}") from None


def _check_finite_arrays(path: Path, raw: dict) -> None:
    """A NaN or infinity in a checkpoint's model or optimizer arrays: refused, naming the key.

    (A LIF turns a NaN input into "no spike", so a NaN network evaluates to chance accuracy and
    trains on without any NaN loss ever showing.)
    """
    for group in ("model", "optimizer", "schedule"):
        arrays = raw.get(group)
        if not isinstance(arrays, dict):
            continue
        named = [(key, value) for key, value in arrays.items() if isinstance(value, np.ndarray)]
        bad = first_non_finite(named)
        if bad is not None:
            raise ValueError(f"checkpoint {str(path)!r}: {group}/{bad} holds NaN or infinite values (the run "
                             "diverged or the file is damaged); it cannot be evaluated or resumed")


def checkpoint_epoch(path: Path):
    """The epoch recorded in a trainer checkpoint, reading only its small 'trainer' entry (None if the
    file is missing or not a readable trainer checkpoint)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return json.loads(str(data["trainer"][()])).get("epoch")
    except Exception:  # noqa: BLE001 - any damage means "not the checkpoint we want"
        return None
