"""Each example of examples/ in --small mode, in a subprocess, writing only under its --out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinyspike.train.run_dir import RunDir

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run_example(name, out: Path, *flags):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(EXAMPLES / name), "--small", "--out", str(out), *flags],
                          cwd=out.parent, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]  # nothing written beside --out
    return done.stdout


@pytest.fixture
def out(tmp_path):
    return tmp_path / "out"


def one_epoch_record(run_dir):
    (record,) = RunDir(run_dir).read_metrics()
    assert record["epoch"] == 1 and 0.0 <= record["test_acc"] <= 1.0 and record["train_loss"] > 0
    return record


def test_train_cifar10_uses_the_table_ii_recipe(out):
    run_example("train_cifar10.py", out)
    config = json.loads((out / "run" / "config.json").read_text())
    assert (config["recipe"], config["optimizer"], config["lr"], config["momentum"], config["weight_decay"],
            config["schedule"], config["milestones"], config["gamma"], config["augment"]) == \
        ("depth-study", "sgd", 0.1, 0.9, 0.0, "multistep", [40, 60, 80], 0.2, "crop")
    one_epoch_record(out / "run")


def test_train_cifar10_dvs_trains_on_event_frames(out):
    run_example("train_cifar10_dvs.py", out)
    config = json.loads((out / "run" / "config.json").read_text())
    assert config["dataset"] == "digits-dvs" and config["model_options"]["in_channels"] == 2
    one_epoch_record(out / "run")


def test_depth_study_writes_a_run_per_family_and_depth(out):
    run_example("depth_study.py", out)
    summary = json.loads((out / "depth-study.json").read_text())
    assert [r["model"] for r in summary["runs"]] == ["plainnet8", "plainnet14", "ms_resnet8", "ms_resnet14"]
    for run in summary["runs"]:
        assert run["final_test_acc"] == one_epoch_record(out / run["model"])["test_acc"]
    assert (out / "depth-study.png").stat().st_size > 10_000


def test_custom_neuron_passes_gradcheck_and_trains_in_an_ms_block(out):
    run_example("custom_neuron.py", out)
    result = json.loads((out / "custom_neuron.json").read_text())
    assert result["gradcheck_passed"] is True and result["negative_control_caught"] is True
    assert result["soft_reset_layers"] == 6  # two per block, three blocks
    assert all(0 < loss < 10 for loss in result["losses"]) and len(result["losses"]) == 5


def test_energy_reports_the_paper_constants(out):
    run_example("energy.py", out)
    energy = json.loads((out / "energy.json").read_text())
    assert energy["source"]["model"] == "ms_resnet8" and energy["source"]["checkpoint"].endswith("best.npz")
    assert energy["flops"] > 0 and energy["syops"] >= 0
    # E(ANN) = FLOPs x 4.6 pJ (REFERENCE §8), to float rounding
    assert energy["energy_ann_J"] == pytest.approx(energy["flops"] * 4.6e-12, rel=1e-9)


def test_analyses_writes_every_figure_for_one_checkpoint(out):
    run_example("analyses.py", out)
    done = json.loads((out / "analyses.json").read_text())["analyses"]
    assert set(done) == {"grad-norms", "ssim", "firing", "raster", "landscape", "init-study"}
    for name, status in done.items():
        assert status == "written", name
        assert (out / f"{name}.png").stat().st_size > 1000, name  # NAME.png and NAME.json: the CLI name exactly
        assert json.loads((out / f"{name}.json").read_text()), name
