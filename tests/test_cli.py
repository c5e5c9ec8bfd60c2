"""The ``tinyspike`` command: one-line errors, a tiny train, eval's energy against a hand
computation, info's self-test."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tinyspike import cli
from tinyspike.train import train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TINY_ARGS = ["--dataset", "digits", "--data-opt", "size=8", "--model", "ms_resnet8", "--model-opt", "widths=[4,8,8]",
             "--T", "2", "--epochs", "1", "--batch-size", "64", "--no-progress"]


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, fragment, command="train"):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"tinyspike {command}: error: "), lines[0]
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("argv, fragment", [
    (["--dataset", "mnist"], "dataset must be one of ['digits', 'digits-dvs', 'cifar10', 'cifar10-dvs', 'nmnist'], got 'mnist'"),
    (["--model", "resnet50"], "unknown model 'resnet50'"),
    (["--model", "ms_resnet21"], "CIFAR depth must be 6n + 2"),
    (["--optimizer", "rmsprop"], "optimizer must be one of ['sgd', 'adam', 'adamw'], got 'rmsprop'"),
    (["--recipe", "fast"], "recipe must be one of ['depth-study', 'alternative', 'recommended', 'dvs'], got 'fast'"),
    (["--backend", "jax"], "backend must be one of ['numpy', 'cupy'], got 'jax'"),
    (["--model", "ms_resnet20_dvs"], "takes 2-channel input but dataset 'digits' gives 3-channel images"),
    (["--dataset", "cifar10", "--data-dir", "/nonexistent/cifar"], "does not exist"),
    (["--dataset", "nmnist"], "needs --data-dir"),
    (["--dataset", "nmnist", "--data-dir", "/nonexistent/nmnist"], "does not exist"),
    (["--model-opt", "widths"], "--model-opt takes KEY=VALUE"),
    (["--model-opt", "depth=3"], "unknown option(s) ['depth']"),
])
def test_user_errors_are_one_line(capsys, tmp_path, argv, fragment):
    code, out, err = run_cli(capsys, "train", *argv, "--epochs", "1", "--out", str(tmp_path / "run"), "--no-progress")
    assert_one_line_error(code, err, fragment)


@pytest.mark.parametrize("argv, fragment", [
    (["--lr", "abc"], "argument --lr: expected a number, got 'abc'"),
    (["--epochs", "0"], "argument --epochs: expected a positive integer, got '0'"),
    (["--colour", "red"], "unrecognized arguments: --colour red"),
])
def test_usage_errors_are_one_line(capsys, argv, fragment):
    code, out, err = run_cli(capsys, "train", *argv)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("tinyspike") and ": error: " in err and fragment in err


def test_unwritable_output_folder(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, out, err = run_cli(capsys, "train", *TINY_ARGS, "--out", str(blocker / "run"))
    assert_one_line_error(code, err, "cannot write to output folder")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_output_folder(capsys, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, out, err = run_cli(capsys, "train", *TINY_ARGS, "--out", str(locked / "run"))
    finally:
        locked.chmod(0o700)
    assert_one_line_error(code, err, "cannot write to output folder")


def test_missing_cifar_test_batch_data_folder_is_named(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run_cli(capsys, "train", "--dataset", "cifar10", "--data-dir", str(empty), "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, "looked for data_batch_1.bin")


def test_nan_loss_is_one_line(capsys, monkeypatch, tmp_path):
    import tinyspike.train as train_module

    def diverge(*args, **kwargs):
        raise train_module.NonFiniteLossError("loss became nan at epoch 2, batch 1/3; stopped; the last good checkpoint x (epoch 1) is kept")

    monkeypatch.setattr(train_module, "train", diverge)
    code, out, err = run_cli(capsys, "train", *TINY_ARGS, "--out", str(tmp_path / "run"))
    assert_one_line_error(code, err, "loss became nan at epoch 2")


def test_resume_refuses_changed_settings(capsys, tmp_path):
    code, out, err = run_cli(capsys, "train", "--resume", str(tmp_path), "--lr", "0.5")
    assert_one_line_error(code, err, "--lr cannot be changed")
    code, out, err = run_cli(capsys, "train", "--resume", str(tmp_path / "nothing"))
    assert_one_line_error(code, err, "does not exist")


def test_tiny_train_and_resume_through_the_cli(capsys, tmp_path):
    code, out, err = run_cli(capsys, "train", *TINY_ARGS, "--out", str(tmp_path / "run"), "--seed", "1")
    assert code == 0, err
    assert "epoch 1/1 | train loss" in out
    assert "final test accuracy:" in out and str(tmp_path / "run") in out
    code, out, err = run_cli(capsys, "train", "--resume", str(tmp_path / "run"), "--epochs", "2", "--no-progress")
    assert code == 0, err
    assert "resumed after epoch 1 of 2" in out and "epoch 2/2 | train loss" in out


# ------------------------------------------------------------------------------ eval


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    train(dict(dataset="digits", dataset_options={"size": 8}, model="ms_resnet8", model_options={"widths": [4, 8, 8]},
               T=2, epochs=1, batch_size=64, lr=0.05, seed=0), out=out)
    return out / "last.npz"


def test_eval_energy_equals_hand_computation(capsys, tiny_checkpoint):
    code, out, err = run_cli(capsys, "eval", str(tiny_checkpoint), "--json")
    assert code == 0, err
    result = json.loads(out)
    T = 2
    rates = result["firing_rates"]  # measured on the LIF outputs, apart from the conv hooks
    # residual-path convs of MS-ResNet-8, widths 4/8/8, on 8x8 input: (MACs, the LIF feeding it)
    convs = [
        (4 * 4 * 9 * 8 * 8, "stages.0.0.lif1"), (4 * 4 * 9 * 8 * 8, "stages.0.0.lif2"),  # stage 1, 8x8
        (8 * 4 * 9 * 4 * 4, "stages.1.0.lif1"), (8 * 8 * 9 * 4 * 4, "stages.1.0.lif2"),  # stage 2, 4x4
        (8 * 8 * 9 * 2 * 2, "stages.2.0.lif1"), (8 * 8 * 9 * 2 * 2, "stages.2.0.lif2"),  # stage 3, 2x2
    ]
    flops = sum(m for m, _ in convs)
    syops = sum(m * T * rates[lif] for m, lif in convs)
    energy = result["energy"]
    assert energy["flops"] == flops == 36_864
    assert energy["syops"] == pytest.approx(syops, rel=1e-9)
    assert energy["energy_snn_J"] == pytest.approx(syops * 0.9e-12, rel=1e-9)
    assert energy["energy_ann_J"] == pytest.approx(flops * 4.6e-12, rel=1e-12)
    assert energy["ratio_ann_over_snn"] == pytest.approx(flops * 4.6 / (syops * 0.9), rel=1e-9)
    roles = [(l["name"], l["role"]) for l in energy["layers"] if l["role"] in ("stem", "shortcut")]
    assert roles == [("stem.convs.0", "stem"), ("stages.1.0.shortcut.0", "shortcut"), ("stages.2.0.shortcut.0", "shortcut")]
    assert result["images"] == 360 and 0 <= result["accuracy"] <= 1
    assert 0 < result["mean_firing_rate"] < 1


def test_eval_prints_tables(capsys, tiny_checkpoint):
    code, out, err = run_cli(capsys, "eval", str(tiny_checkpoint.parent))
    assert code == 0, err
    assert "test accuracy:" in out and "firing rates" in out and "stages.0.0.lif1" in out
    assert "E(ANN) = FLOPs x 4.6 pJ" in out and "E(ANN) / E(SNN)" in out and "(not counted)" in out


def test_eval_errors_are_one_line(capsys, tmp_path):
    code, out, err = run_cli(capsys, "eval", str(tmp_path / "missing.npz"))
    assert_one_line_error(code, err, "does not exist", command="eval")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    code, out, err = run_cli(capsys, "eval", str(bad))
    assert_one_line_error(code, err, "not a readable .npz", command="eval")


def test_info_runs_the_self_test(capsys):
    code, out, err = run_cli(capsys, "info")
    assert code == 0, out + err
    assert "numpy" in out and "numba" in out and "BLAS" in out and "backend: numpy" in out
    assert "self-test: ok" in out and "[FAIL]" not in out


def test_no_command_prints_help(capsys):
    code, out, err = run_cli(capsys)
    assert code == 2 and "train" in out and "eval" in out and "info" in out


@pytest.mark.slow
def test_default_train_reaches_95_percent(capsys, tmp_path, monkeypatch):
    """The README's promise: `tinyspike train` with no arguments, >= 95% on the digits."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "train", "--no-progress")
    assert code == 0, err
    line = next(l for l in out.splitlines() if l.startswith("final test accuracy:"))
    accuracy = float(line.split(":")[1].split("%")[0])
    assert accuracy >= 95.0, line


@pytest.mark.skipif(not (SHARED / "nmnist").is_dir(), reason="shared/data/nmnist not present")
def test_nmnist_data_loads_through_the_registry(tmp_path, monkeypatch):
    from tinyspike.data.registry import build_splits

    monkeypatch.setenv("TINYSPIKE_CACHE", str(tmp_path / "cache"))
    train_set, test_set, note = build_splits("nmnist", SHARED / "nmnist", 4)
    assert len(train_set) == 1000 and len(test_set) == 100 and note == ""
    assert train_set.sample_shape[:2] == (4, 2) and train_set.time_steps == 4
    assert np.bincount(train_set.labels, minlength=10).min() > 50


def _fake_cifar10_dvs(root: Path) -> Path:
    """One training (index 0) and one test (index 900) recording per class, random events."""
    from tinyspike.data.aedat import write_aedat2
    from tinyspike.data.cifar10_dvs import CLASSES
    from tinyspike.data.events import make_events

    rng = np.random.default_rng(0)
    for label, cls in enumerate(CLASSES):
        for index in (0, 900):
            n = 400
            t = np.sort(rng.integers(0, 100_000, n))
            x, y = rng.integers(0, 128, n), rng.integers(0, 128, n)
            p = rng.integers(0, 2, n)
            write_aedat2(root / cls / f"cifar10_{cls}_{index}.aedat", make_events(t, x, y, p, sensor_size=(128, 128)))
    return root


def test_cifar10_dvs_end_to_end_on_small_recordings(capsys, tmp_path, monkeypatch):
    """Event frames through the DVS model: train one epoch, then eval (real AEDAT bytes, tiny net)."""
    monkeypatch.setenv("TINYSPIKE_CACHE", str(tmp_path / "cache"))
    root = _fake_cifar10_dvs(tmp_path / "dvs")
    code, out, err = run_cli(
        capsys, "train", "--dataset", "cifar10-dvs", "--data-dir", str(root), "--T", "2", "--epochs", "1",
        "--batch-size", "5", "--data-opt", "size=16", "--data-opt", "progress=false",
        "--model-opt", "widths=[4,4,8]", "--model-opt", "stem_stride=1", "--out", str(tmp_path / "run"), "--no-progress",
    )
    assert code == 0, err
    assert "CIFAR10-DVS train" in out and "model: ms_resnet20_dvs" in out and "final test accuracy" in out
    code, out, err = run_cli(capsys, "eval", str(tmp_path / "run"), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["images"] == 10 and result["time_steps"] == 2
    roles = {l["name"]: l["role"] for l in result["energy"]["layers"]}
    assert roles["stem.convs.0"] == "stem" and roles["stages.0.0.shortcut.0"] == "shortcut"


# ------------------------------------------------------------------------------ signals, memory, NaN


def test_sigterm_stops_with_one_line_and_a_consistent_checkpoint(capsys, tmp_path, monkeypatch):
    import signal

    import tinyspike.train.trainer as trainer_module

    run_epoch = trainer_module.Trainer.run_epoch

    def run_epoch_then_sigterm(self):
        record = run_epoch(self)
        if self.epoch == 1:
            # as `kill PID` or a scheduler's time limit; raise_signal delivers it to this (main)
            # thread before it returns, where os.kill may land on a helper thread and run the
            # handler later, in the middle of epoch 2
            signal.raise_signal(signal.SIGTERM)
        return record

    monkeypatch.setattr(trainer_module.Trainer, "run_epoch", run_epoch_then_sigterm)
    before = signal.getsignal(signal.SIGTERM)
    args = [a if a != "1" else "3" for a in TINY_ARGS]  # --epochs 3
    code, out, err = run_cli(capsys, "train", *args, "--out", str(tmp_path / "run"))
    assert code == 128 + signal.SIGTERM, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "terminated (SIGTERM)" in lines[0] and f"--resume {tmp_path / 'run'}" in lines[0], err
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is the CLI's only while training
    from tinyspike.train import read_trainer_checkpoint

    assert read_trainer_checkpoint(tmp_path / "run" / "last.npz")["meta"]["epoch"] == 1
    assert not [p.name for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]


def test_huge_T_is_refused_up_front(capsys, tmp_path):
    code, out, err = run_cli(capsys, "train", *TINY_ARGS, "--T", "1000000", "--out", str(tmp_path / "run"))
    assert_one_line_error(code, err, "T must be an int in [1, 1000], got 1000000")
    assert not (tmp_path / "run").exists()


def test_out_of_memory_is_one_line_naming_the_options(capsys, tmp_path, monkeypatch):
    import tinyspike.train.trainer as trainer_module

    def allocate(self, epoch):
        raise MemoryError("Unable to allocate 7.63 GiB for an array with shape (1000, 64, 8, 8, 8) and data type float32")

    monkeypatch.setattr(trainer_module.Trainer, "train_one_epoch", allocate)
    code, out, err = run_cli(capsys, "train", *TINY_ARGS, "--out", str(tmp_path / "run"))
    assert_one_line_error(code, err, "out of memory (Unable to allocate 7.63 GiB")
    assert "--T (now 2)" in err and "--batch-size (now 64)" in err
    # nothing was trained: the folder is gone and the same --out can be used again
    assert not (tmp_path / "run").exists()


def test_nan_checkpoint_is_refused_by_eval_and_resume(capsys, tmp_path):
    code, out, err = run_cli(capsys, "train", *TINY_ARGS, "--out", str(tmp_path / "run"))
    assert code == 0, err
    last = tmp_path / "run" / "last.npz"
    with np.load(last) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["model/stages.0.0.bn1.weight"] = arrays["model/stages.0.0.bn1.weight"] * np.float32(np.nan)
    np.savez(last, **arrays)
    (tmp_path / "run" / "best.npz").unlink()
    code, out, err = run_cli(capsys, "eval", str(last))
    assert_one_line_error(code, err, "model/stages.0.0.bn1.weight holds NaN or infinite values", command="eval")
    assert str(last) in err
    code, out, err = run_cli(capsys, "train", "--resume", str(tmp_path / "run"), "--epochs", "2", "--no-progress")
    assert_one_line_error(code, err, "model/stages.0.0.bn1.weight holds NaN or infinite values")


def test_nan_bn_alpha_is_an_error_not_a_chance_level_run(capsys, tmp_path):
    code, out, err = run_cli(capsys, "train", *TINY_ARGS, "--model-opt", "bn_alpha=NaN", "--out", str(tmp_path / "run"))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "bn_alpha" in err or "NaN" in err, err
