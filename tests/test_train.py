"""The Trainer: exact resume, the NaN stop, the run folder, configs and recipes.

The runs here are tiny (8x8 digits, an MS-ResNet-8 of widths 4/8/8, T = 2) so that each takes a
second or two; they still exercise every piece of state a resume must restore: momentum buffers,
a per-iteration cosine schedule, dropout's generator and the augmentation of the data loader.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tinyspike import backend
from tinyspike.autograd import is_grad_enabled
from tinyspike.functional.loss import cross_entropy
from tinyspike.train import (
    RECIPES, ConfigError, NonFiniteLossError, RunDir, Trainer, build_parts, read_trainer_checkpoint,
    resolve_config, train,
)

TINY = dict(
    dataset="digits", dataset_options={"size": 8}, model="ms_resnet8",
    model_options={"widths": [4, 8, 8], "dropout": 0.2}, T=2, epochs=2, batch_size=64, lr=0.05,
    augment="crop-flip", seed=3,
)
# what may differ between two runs that computed the same thing
TIMING = {"images_per_s", "epoch_time_s", "train_time_s", "eval_time_s"}


def _same_numbers(records_a, records_b):
    assert len(records_a) == len(records_b)
    for a, b in zip(records_a, records_b):
        assert {k: v for k, v in a.items() if k not in TIMING} == {k: v for k, v in b.items() if k not in TIMING}


def _assert_same_state(path_a, path_b):
    a, b = read_trainer_checkpoint(path_a), read_trainer_checkpoint(path_b)
    for group in ("model", "optimizer", "schedule"):
        assert a[group].keys() == b[group].keys(), group
        for key in a[group]:
            np.testing.assert_array_equal(np.asarray(a[group][key]), np.asarray(b[group][key]), err_msg=f"{group}/{key}")
    assert a["meta"]["rng"] == b["meta"]["rng"]
    return a, b


def test_resume_after_interrupt_matches_uninterrupted_run(tmp_path):
    full = train(dict(TINY), out=tmp_path / "full")
    assert len(full.history) == 2

    def stop_after_first_epoch(line):
        if line.startswith("epoch 1/"):
            raise KeyboardInterrupt  # as Ctrl-C between epochs

    with pytest.raises(KeyboardInterrupt):
        train(dict(TINY), out=tmp_path / "cut", log=stop_after_first_epoch)
    cut = RunDir(tmp_path / "cut")
    first = read_trainer_checkpoint(cut.last_path)
    assert first["meta"]["epoch"] == 1 and len(cut.read_metrics()) == 1

    backend.seed(12345)  # scramble the global generator: the checkpoint must restore it
    resumed = train(resume=tmp_path / "cut")
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    a, _ = _assert_same_state(tmp_path / "full" / "last.npz", cut.last_path)
    _same_numbers(RunDir(tmp_path / "full").read_metrics(), cut.read_metrics())
    _same_numbers(full.history, resumed.history)
    # and the second epoch did change the weights (the comparison is not trivially true)
    moved = [k for k in a["model"] if not np.array_equal(a["model"][k], first["model"][k])]
    assert len(moved) > 5


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    config = resolve_config({**TINY, "epochs": 3})
    parts = build_parts(config, prefetch=0)
    per_epoch = len(parts.train_loader)
    calls = {"train": 0}

    def loss_fn(logits, y):
        loss = cross_entropy(logits, y)
        if is_grad_enabled():
            calls["train"] += 1
            if calls["train"] == per_epoch + 3:  # the 3rd batch of epoch 2
                loss = loss * float("nan")
        return loss

    snapshots = []
    run = RunDir.create(tmp_path / "run", config.to_dict())
    trainer = Trainer(
        parts.model, parts.optimizer, parts.train_loader, parts.eval_loader, epochs=3, time_steps=config.T,
        schedule=parts.schedule, schedule_per=config.schedule_per, loss_fn=loss_fn, run_dir=run,
        config=config.to_dict(), log=lambda line: snapshots.append(parts.model.to_numpy_state()),
    )
    with pytest.raises(NonFiniteLossError) as info:
        trainer.fit()
    message = str(info.value)
    assert "loss became nan at epoch 2, batch 3/" in message
    assert "last good checkpoint" in message and str(run.last_path) in message
    kept = read_trainer_checkpoint(run.last_path)
    assert kept["meta"]["epoch"] == 1
    assert len(snapshots) == 1  # one finished epoch
    for key, value in snapshots[0].items():
        np.testing.assert_array_equal(kept["model"][key], value)
    # two optimizer steps of epoch 2 ran before the NaN: the model moved on, the file did not
    assert any(not np.array_equal(parts.model.to_numpy_state()[k], v) for k, v in snapshots[0].items())
    assert [r["epoch"] for r in run.read_metrics()] == [1]
    assert not [p.name for p in run.path.iterdir() if p.name.startswith(".")]


def test_run_folder_contents(tmp_path):
    result = train({**TINY, "epochs": 1, "model_options": {"widths": [4, 8, 8], "dropout": 0.0}}, out=tmp_path / "run")
    run = RunDir(result.run_dir)
    names = sorted(p.name for p in run.path.iterdir())
    assert names == ["best.npz", "config.json", "curves.png", "last.npz", "metrics.jsonl"]
    assert run.plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads(run.config_path.read_text())
    assert config["model"] == "ms_resnet8" and config["model_options"] == {"widths": [4, 8, 8], "dropout": 0.0}
    (record,) = run.read_metrics()
    for key in ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "images_per_s", "epoch_time_s",
                "firing_rate", "firing_rates", "train_firing_rate", "best_test_acc"):
        assert key in record, key
    assert record["epoch"] == 1 and 0 <= record["test_acc"] <= 1 and record["images_per_s"] > 0
    lifs = record["firing_rates"]
    assert "head_lif" in lifs and "stages.0.0.lif1" in lifs and all(0 <= v <= 1 for v in lifs.values())
    assert record["lr"] == pytest.approx(0.05)
    meta = read_trainer_checkpoint(run.best_path)["meta"]
    assert meta["epoch"] == 1 and meta["best_acc"] == record["test_acc"] and meta["config"] == config


def test_best_checkpoint_follows_best_accuracy(tmp_path):
    result = train({**TINY, "epochs": 3}, out=tmp_path / "run")
    run = RunDir(result.run_dir)
    accs = [r["test_acc"] for r in run.read_metrics()]
    best_epoch = int(np.argmax(accs)) + 1  # the first of equal bests
    meta = read_trainer_checkpoint(run.best_path)["meta"]
    assert meta["epoch"] == best_epoch == result.best_epoch and meta["best_acc"] == max(accs)


def test_out_folder_with_a_run_is_refused(tmp_path):
    RunDir.create(tmp_path / "run", resolve_config(TINY).to_dict())
    with pytest.raises(ValueError, match="already holds a run; continue it with --resume"):
        train({**TINY, "epochs": 1}, out=tmp_path / "run")


def test_resume_of_a_finished_run_trains_nothing_and_can_extend(tmp_path):
    train({**TINY, "epochs": 1}, out=tmp_path / "run")
    again = train(resume=tmp_path / "run")
    assert [r["epoch"] for r in again.history] == [1]
    longer = train(resume=tmp_path / "run", epochs=2)
    assert [r["epoch"] for r in longer.history] == [1, 2]
    with pytest.raises(ConfigError, match="less than"):
        train(resume=tmp_path / "run", epochs=1)


# ------------------------------------------------------------------------------ configs


def test_defaults_recipes_and_overrides():
    digits = resolve_config({})
    assert (digits.dataset, digits.model, digits.recipe) == ("digits", "ms_resnet8", None)
    cifar = resolve_config({"dataset": "cifar10"})
    assert cifar.recipe == "depth-study" and cifar.model == "ms_resnet20" and cifar.T == 6
    assert (cifar.lr, cifar.momentum, cifar.batch_size, cifar.weight_decay, cifar.epochs) == (0.1, 0.9, 100, 0.0, 100)
    assert (cifar.schedule, cifar.milestones, cifar.gamma, cifar.augment) == ("multistep", [40, 60, 80], 0.2, "crop")
    alt = resolve_config({"dataset": "cifar10", "recipe": "alternative", "epochs": 3})
    assert (alt.schedule, alt.weight_decay, alt.augment, alt.epochs) == ("cosine", 1e-4, "alternative", 3)
    assert resolve_config({"model": "ms_resnet14"}).model_options == {}  # default widths belong to the default model
    merged = resolve_config({"model_options": {"dropout": 0.1}})
    assert merged.model_options == {"widths": [8, 16, 32], "dropout": 0.1}
    assert set(RECIPES) >= {"depth-study", "alternative", "recommended", "dvs"}


@pytest.mark.parametrize("recipe", [None, "depth-study"])
def test_an_explicit_model_gets_its_standard_widths_even_when_it_is_the_default(recipe):
    # Only `tinyspike train` with no --model keeps the digits default's narrow widths 8/16/32;
    # `--model ms_resnet8` must build the same 16/32/64 network as every other depth-8 model.
    for model in ("ms_resnet8", "vanilla_resnet8"):
        assert resolve_config({"model": model, "recipe": recipe}).model_options == {}, model
    assert resolve_config({"recipe": recipe}).model_options == {"widths": [8, 16, 32]}
    named = resolve_config({"model": "ms_resnet8", "model_options": {"dropout": 0.1}})
    assert named.model_options == {"dropout": 0.1}


@pytest.mark.parametrize("settings, message", [
    ({"dataset": "mnist"}, r"dataset must be one of \['digits', .*\], got 'mnist'"),
    ({"recipe": "fast"}, r"recipe must be one of \['depth-study', .*\], got 'fast'"),
    ({"optimizer": "rmsprop"}, r"optimizer must be one of \['sgd', 'adam', 'adamw'\], got 'rmsprop'"),
    ({"schedule": "linear"}, r"schedule must be one of \['cosine', 'multistep', 'constant'\], got 'linear'"),
    ({"T": 0}, r"TrainConfig: T must be an int in \[1, 1000\], got 0"),
    ({"T": 1_000_000}, r"TrainConfig: T must be an int in \[1, 1000\], got 1000000"),
    ({"lr": -1.0}, "TrainConfig: lr must be a finite real number > 0.0, got -1.0"),
    ({"epochs": 0}, "TrainConfig: epochs must be an int >= 1, got 0"),
    ({"epochs": 3, "warmup_epochs": 3}, r"warmup_epochs must be an int in \[0, epochs\) = \[0, 3\), got 3"),
])
def test_bad_settings_are_named(settings, message):
    with pytest.raises(ValueError, match=message):
        resolve_config(settings)


def test_incompatible_model_and_data_is_refused():
    with pytest.raises(ConfigError, match="2-channel input but dataset 'digits' gives 3-channel images"):
        build_parts(resolve_config({**TINY, "model": "ms_resnet20_dvs", "model_options": {}}))


# ------------------------------------------------------------------------------ NaN weights and data


def _tiny_trainer(tmp_path, epochs=2, **overrides):
    config = resolve_config({**TINY, "epochs": epochs, **overrides})
    parts = build_parts(config, prefetch=0)
    run = RunDir.create(tmp_path / "run", config.to_dict())
    trainer = Trainer(parts.model, parts.optimizer, parts.train_loader, parts.eval_loader, epochs=epochs,
                      time_steps=config.T, schedule=parts.schedule, schedule_per=config.schedule_per, run_dir=run,
                      config=config.to_dict())
    return trainer, parts, run


def test_nan_weight_stops_training_naming_the_parameter(tmp_path):
    """A LIF turns NaN into "no spike", so the loss stays finite: the weights themselves are checked."""
    trainer, parts, run = _tiny_trainer(tmp_path)
    per_epoch = len(parts.train_loader)
    step, calls = parts.optimizer.step, {"n": 0}

    def poisoned_step():
        step()
        calls["n"] += 1
        if calls["n"] == per_epoch + 2:  # the 2nd step of epoch 2
            weight = dict(parts.model.named_parameters())["stages.1.0.conv2.weight"]
            weight.data[0, 0, 0, 0] = np.nan

    parts.optimizer.step = poisoned_step
    with pytest.raises(RuntimeError) as info:
        trainer.fit()
    message = str(info.value)
    assert "parameter 'stages.1.0.conv2.weight'" in message and "epoch 2, batch 2/" in message, message
    assert str(run.last_path) in message and "(epoch 1) is kept" in message
    assert read_trainer_checkpoint(run.last_path)["meta"]["epoch"] == 1


def test_nan_running_statistic_is_named(tmp_path):
    trainer, parts, run = _tiny_trainer(tmp_path, epochs=1)
    name, buffer = next((n, b) for n, b in parts.model.named_buffers() if "running_var" in n)
    buffer[...] = np.inf
    with pytest.raises(RuntimeError, match=f"buffer \\(running statistic\\) '{name}' .* before epoch 1"):
        trainer.fit()


def test_nan_bn_alpha_does_not_train_silently(tmp_path):
    # refused at build time, naming the option, before any run folder is written
    with pytest.raises(ValueError, match="bn_alpha must be a finite real number > 0.0, got nan"):
        train({**TINY, "epochs": 1, "model_options": {"widths": [4, 8, 8], "bn_alpha": float("nan")}},
              out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


class _PoisonedLoader:
    """The loader's batches, the ``bad``-th one with a NaN pixel."""

    def __init__(self, loader, bad):
        self.loader, self.bad, self.dataset = loader, bad, loader.dataset

    def __len__(self):
        return len(self.loader)

    def set_epoch(self, epoch):
        self.loader.set_epoch(epoch)

    def __iter__(self):
        for b, (x, y) in enumerate(self.loader):
            if b == self.bad:
                x = x.copy()
                x.reshape(-1)[7] = np.nan
            yield x, y


@pytest.mark.parametrize("split", ["train", "eval"])
def test_nan_in_a_data_batch_names_the_dataset(tmp_path, split):
    trainer, parts, run = _tiny_trainer(tmp_path, epochs=1)
    if split == "train":
        trainer.train_loader = _PoisonedLoader(parts.train_loader, 2)
        expected = "the training data (.*digits.*) holds NaN or infinite input values in epoch 1, batch 3/"
    else:
        trainer.eval_loader = _PoisonedLoader(parts.eval_loader, 0)
        expected = "the evaluation data (.*digits.*) holds NaN or infinite input values in batch 1/"
    with pytest.raises(RuntimeError, match=expected):
        trainer.fit()
    assert not run.last_path.exists()


def test_finiteness_check_is_exact(tmp_path):
    from tinyspike.train.finite import first_non_finite

    big = np.full(4, 3e38, np.float32)  # finite, but its float32 sum overflows to inf
    assert first_non_finite([("a", big), ("b", np.zeros(2, np.float32)), ("i", np.arange(3))]) is None
    assert first_non_finite([("a", big), ("b", np.array([1, np.inf, -np.inf], np.float32))]) == "b"


# ------------------------------------------------------------------------------ checkpoints and run folders


def _rewrite_meta(path, change):
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["trainer"]))
    change(meta)
    arrays["trainer"] = np.asarray(json.dumps(meta))
    np.savez(path, **arrays)


@pytest.mark.parametrize("change, key", [
    (lambda m: m.pop("epoch"), "'epoch'"),
    (lambda m: m.update(config="abegr"), "'config'"),
    (lambda m: m.update(epoch=1.5), "'epoch'"),
    (lambda m: m["config"].update(lr=float("inf")), "lr"),
])
def test_damaged_checkpoint_metadata_names_file_and_key(tmp_path, change, key):
    train({**TINY, "epochs": 1}, out=tmp_path / "run")
    last = tmp_path / "run" / "last.npz"
    _rewrite_meta(last, change)
    with pytest.raises((TypeError, ValueError)) as info:
        train(resume=tmp_path / "run")
    assert str(last) in str(info.value) and key in str(info.value), str(info.value)


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path):
    train({**TINY, "epochs": 1}, out=tmp_path / "a")
    train({**TINY, "epochs": 1, "model_options": {"widths": [4, 4, 8]}}, out=tmp_path / "b")
    (tmp_path / "b" / "last.npz").replace(tmp_path / "a" / "last.npz")
    config_before = (tmp_path / "a" / "config.json").read_text()
    with pytest.raises(ValueError) as info:
        train(resume=tmp_path / "a")
    message = str(info.value)
    assert str(tmp_path / "a" / "last.npz") in message and str(tmp_path / "a" / "config.json") in message
    assert "model_options" in message and "[4, 4, 8]" in message and "[4, 8, 8]" in message, message
    assert (tmp_path / "a" / "config.json").read_text() == config_before


@pytest.fixture
def full_disk(monkeypatch):
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd to tell which file a write goes to")
    return lambda target_name, after=0: _full_disk(monkeypatch, target_name, after)


def _full_disk(monkeypatch, target_name, after=0):
    """Make the (``after``+1)-th atomic write of ``target_name`` (last.npz or best.npz) fail as a
    full disk does: some bytes reach the temporary file, then OSError(ENOSPC)."""
    import errno
    import shutil

    import tinyspike.atomic as atomic_module
    import tinyspike.nn.checkpoint as checkpoint_module

    counts = {"n": 0}

    def fail_now(name):
        if f".{target_name}." not in name:
            return False
        counts["n"] += 1
        return counts["n"] > after

    real_savez, real_copy = np.savez, shutil.copyfileobj

    def savez(handle, **arrays):
        # save_checkpoint writes through an fd from mkstemp: ask the OS which file it is
        if fail_now(os.readlink(f"/proc/self/fd/{handle.fileno()}")):
            handle.write(b"PK\x03\x04 half a zip")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_savez(handle, **arrays)

    def copyfileobj(source, handle, *args, **kwargs):
        # atomic.copy_file copies into the temporary file's handle, as save_checkpoint does
        if fail_now(os.readlink(f"/proc/self/fd/{handle.fileno()}")):
            handle.write(b"PK\x03\x04 half a zip")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_copy(source, handle, *args, **kwargs)

    monkeypatch.setattr(checkpoint_module.np, "savez", savez)
    monkeypatch.setattr(atomic_module.shutil, "copyfileobj", copyfileobj)


def _temporaries(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_full_disk_while_writing_best_is_named_and_resume_rebuilds_it(tmp_path, monkeypatch, full_disk):
    full_disk("best.npz")
    with pytest.raises(ValueError) as info:
        train({**TINY, "epochs": 2}, out=tmp_path / "run")
    message = str(info.value)
    assert str(tmp_path / "run" / "best.npz") in message and "No space left on device" in message, message
    run = RunDir(tmp_path / "run")
    assert _temporaries(run.path) == [] and not run.best_path.exists()
    assert read_trainer_checkpoint(run.last_path)["meta"]["best_epoch"] == 1
    monkeypatch.undo()  # space again
    notes = []
    resumed = train(resume=run.path, log=notes.append)
    assert any("rebuilt" in n and "best.npz" in n for n in notes), notes
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    assert read_trainer_checkpoint(run.best_path)["meta"]["epoch"] == resumed.best_epoch


def test_full_disk_while_writing_last_keeps_the_previous_epoch(tmp_path, full_disk):
    full_disk("last.npz", after=1)  # epoch 1 is saved, epoch 2's save fails
    with pytest.raises(ValueError, match=r"could not write .*last\.npz.*No space left on device; the previous "
                                         r"last\.npz \(epoch 1\) is kept"):
        train({**TINY, "epochs": 2}, out=tmp_path / "run")
    run = RunDir(tmp_path / "run")
    assert _temporaries(run.path) == []
    assert read_trainer_checkpoint(run.last_path)["meta"]["epoch"] == 1


def test_best_checkpoint_missing_for_an_older_epoch_is_named(tmp_path):
    train({**TINY, "epochs": 2}, out=tmp_path / "run")
    run = RunDir(tmp_path / "run")
    _rewrite_meta(run.last_path, lambda m: m.update(best_epoch=1, epochs=3, config={**m["config"], "epochs": 3}))
    run.write_config({**run.read_config(), "epochs": 3})
    run.best_path.unlink()
    with pytest.raises(ValueError, match=r"records epoch 1 as the best, but .*best\.npz' is missing"):
        train(resume=run.path)


def test_stale_temporary_files_are_removed_at_resume(tmp_path):
    train({**TINY, "epochs": 1}, out=tmp_path / "run")
    run = RunDir(tmp_path / "run")
    stale = [run.path / ".last.npz.abc123.tmp", run.path / ".best.npz.x.tmp", run.path / ".metrics.jsonl.q.tmp"]
    for path in stale:
        path.write_bytes(b"killed mid-write")
    (run.path / "notes.txt").write_text("the user's own file")
    notes = []
    train(resume=run.path, log=notes.append)
    assert _temporaries(run.path) == [] and (run.path / "notes.txt").exists()
    assert any("removed 3 temporary file(s)" in n for n in notes), notes


def test_a_run_that_fails_before_its_first_epoch_leaves_no_folder(tmp_path, monkeypatch):
    import tinyspike.train.trainer as trainer_module

    def fail(self, epoch):
        raise MemoryError("Unable to allocate 9.00 GiB")

    monkeypatch.setattr(trainer_module.Trainer, "train_one_epoch", fail)
    with pytest.raises(MemoryError):
        train({**TINY, "epochs": 1}, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    monkeypatch.undo()
    assert train({**TINY, "epochs": 1}, out=tmp_path / "run").history  # the same --out works


def test_a_cifar10_dvs_run_records_its_convention():
    """config.json names the frame convention, so a run keeps its frames if the default changes."""
    from tinyspike.data.cifar10_dvs import DEFAULT_CONVENTION
    from tinyspike.train.config import resolve_config

    assert resolve_config({"dataset": "cifar10-dvs"}).dataset_options["convention"] == DEFAULT_CONVENTION
    chosen = resolve_config({"dataset": "cifar10-dvs", "dataset_options": {"convention": "spikingjelly"}})
    assert chosen.dataset_options["convention"] == "spikingjelly"
