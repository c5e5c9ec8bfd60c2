"""The Trainer: exact resume, the NaN stop, the run folder, configs and recipes.

The runs here are tiny (8x8 digits, an MS-ResNet-8 of widths 4/8/8, T = 2) so that each takes a
second or two; they still exercise every piece of state a resume must restore: momentum buffers,
a per-iteration cosine schedule, dropout's generator and the augmentation of the data loader.
"""

from __future__ import annotations

import json

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


@pytest.mark.parametrize("settings, message", [
    ({"dataset": "mnist"}, "unknown dataset 'mnist'"),
    ({"recipe": "fast"}, "unknown recipe 'fast'"),
    ({"optimizer": "rmsprop"}, "unknown optimizer 'rmsprop'"),
    ({"schedule": "linear"}, "unknown schedule 'linear'"),
    ({"T": 0}, "T must be a positive int"),
    ({"lr": -1.0}, "lr must be a positive number"),
    ({"epochs": 0}, "epochs must be a positive int"),
    ({"epochs": 3, "warmup_epochs": 3}, r"warmup_epochs must be an int in \[0, epochs\)"),
])
def test_bad_settings_are_named(settings, message):
    with pytest.raises(ValueError, match=message):
        resolve_config(settings)


def test_incompatible_model_and_data_is_refused():
    with pytest.raises(ConfigError, match="2-channel input but dataset 'digits' gives 3-channel images"):
        build_parts(resolve_config({**TINY, "model": "ms_resnet20_dvs", "model_options": {}}))
