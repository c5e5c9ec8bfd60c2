"""The depth-study runner (Table II): one run folder per family x depth, skip, resume, summary."""

from __future__ import annotations

import json

import pytest

from tinyspike.analysis import depth_study
from tinyspike.analysis.depth_study import PAPER_TABLE_II, StudyError, run_depth_study
from tinyspike.train import Trainer, read_trainer_checkpoint
from tinyspike.train.run_dir import RunDir

# tiny runs: 8x8 digits, widths 4/8/8, T = 2, one epoch, the digits defaults (no recipe)
TINY = dict(dataset="digits", epochs=1, recipe="none", T=2, batch_size=64, model_options={"widths": [4, 8, 8]},
            dataset_options={"size": 8})
DEPTHS, FAMILIES = [8, 14], ["plain", "ms"]


def no_training(*args, **kwargs):
    raise AssertionError("train() was called")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    summary = run_depth_study(out, depths=DEPTHS, families=FAMILIES, **TINY)
    return out, summary


def test_one_run_folder_per_family_and_depth(study):
    out, summary = study
    names = {"plainnet8", "plainnet14", "ms_resnet8", "ms_resnet14"}
    assert summary["actions"] == {name: "trained" for name in names}
    assert {p.name for p in out.iterdir() if p.is_dir()} == names
    for name in names:
        meta = read_trainer_checkpoint(out / name / "last.npz")["meta"]
        assert meta["epoch"] == 1
        assert meta["config"]["model"] == name
        assert meta["config"]["T"] == 2 and meta["config"]["model_options"] == {"widths": [4, 8, 8]}
    assert (out / "depth-study.png").stat().st_size > 0


def test_summary_equals_the_metrics_of_the_run_folders(study):
    out, summary = study
    on_disk = json.loads((out / "depth-study.json").read_text())
    assert on_disk == {k: v for k, v in summary.items() if k != "actions"}
    for run in summary["runs"]:
        records = RunDir(out / run["model"]).read_metrics()
        assert run["final_test_acc"] == records[-1]["test_acc"]  # the same float, through JSON: exact
        assert summary["final_test_acc"][run["family"]][str(run["depth"])] == records[-1]["test_acc"]
        assert run["epochs_done"] == 1 and run["finished"]
    assert summary["paper_test_acc_percent"] == {}  # not CIFAR-10: no paper values drawn


def test_rerun_skips_finished_runs(study, monkeypatch):
    out, summary = study
    monkeypatch.setattr(depth_study, "train", no_training)
    again = run_depth_study(out, depths=DEPTHS, families=FAMILIES, **TINY)
    assert set(again["actions"].values()) == {"skipped"}
    assert again["final_test_acc"] == summary["final_test_acc"]


def test_a_folder_of_another_study_is_refused_before_training(study, monkeypatch):
    out, _ = study
    monkeypatch.setattr(depth_study, "train", no_training)
    with pytest.raises(StudyError, match=r"holds a run with other settings \(T 2 there, 3 asked\)"):
        run_depth_study(out, depths=DEPTHS, families=FAMILIES, **{**TINY, "T": 3})


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path, monkeypatch):
    settings = dict(TINY, epochs=2)
    reference = run_depth_study(tmp_path / "whole", depths=[8], families=["ms"], **settings)

    real_run_epoch = Trainer.run_epoch

    def stop_in_epoch_2(self):
        if self.epoch == 1:
            raise KeyboardInterrupt  # Ctrl-C during epoch 2
        return real_run_epoch(self)

    monkeypatch.setattr(Trainer, "run_epoch", stop_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run_depth_study(tmp_path / "cut", depths=[8], families=["ms"], **settings)
    assert read_trainer_checkpoint(tmp_path / "cut" / "ms_resnet8" / "last.npz")["meta"]["epoch"] == 1
    monkeypatch.setattr(Trainer, "run_epoch", real_run_epoch)

    resumed = run_depth_study(tmp_path / "cut", depths=[8], families=["ms"], **settings)
    assert resumed["actions"] == {"ms_resnet8": "resumed"}
    # exact resume on the CPU: the stopped-and-continued run ends where the uninterrupted one does
    whole = RunDir(tmp_path / "whole" / "ms_resnet8").read_metrics()
    cut = RunDir(tmp_path / "cut" / "ms_resnet8").read_metrics()
    keys = ("train_loss", "train_acc", "test_loss", "test_acc")
    assert [[r[k] for k in keys] for r in cut] == [[r[k] for k in keys] for r in whole]
    assert resumed["final_test_acc"] == reference["final_test_acc"]


def test_a_run_killed_before_its_first_epoch_starts_again(tmp_path):
    folder = tmp_path / "ms_resnet8"
    folder.mkdir()
    (folder / "config.json").write_text("{}")  # what a SIGKILL in epoch 1 leaves behind
    summary = run_depth_study(tmp_path, depths=[8], families=["ms"], **TINY)
    assert summary["actions"] == {"ms_resnet8": "trained"}
    assert read_trainer_checkpoint(folder / "last.npz")["meta"]["epoch"] == 1


@pytest.mark.parametrize("depths, fragment", [
    ([8, 10], "CIFAR depth must be 6n + 2 with n >= 1 (8, 14, 20, 26, 32, 38, 44, 56, 110, 482, ...), got 10"),
    ([2], "got 2"),
])
def test_a_depth_that_is_not_6n_plus_2_is_refused(tmp_path, monkeypatch, depths, fragment):
    monkeypatch.setattr(depth_study, "train", no_training)
    with pytest.raises(StudyError) as info:
        run_depth_study(tmp_path, depths=depths, families=["ms"], **TINY)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_cifar10_summary_carries_exactly_the_paper_values_and_draws_them_dashed(tmp_path):
    summary = depth_study.build_summary(tmp_path, "depth-study", "cifar10", ["plain", "vanilla", "wolif", "ms"],
                                        [8, 14, 20, 32, 44, 56], 100, "depth-study")
    assert summary["paper_test_acc_percent"] == {
        "ms": {"8": 82.0, "14": 87.4, "20": 88.4, "32": 89.7, "44": 90.0, "56": 90.4},
        "vanilla": {"20": 86.7, "56": 72.4},
        "plain": {"14": 85.2},
    }
    assert all(v is None for row in summary["final_test_acc"].values() for v in row.values())  # nothing trained
    fig = depth_study.plot_depth_study(summary, "t")
    dashed = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
              for line in fig.axes[0].lines if line.get_linestyle() == "--"}
    assert dashed == {
        "MS-ResNet (SR-A) (paper, Table II)": ([8, 14, 20, 32, 44, 56], [82.0, 87.4, 88.4, 89.7, 90.0, 90.4]),
        "vanilla spiking ResNet (paper, Table II)": ([20, 56], [86.7, 72.4]),
        "PlainNet (paper, Table II)": ([14], [85.2]),
    }
    assert PAPER_TABLE_II["ms"][56] == 90.4


def test_alternatives_default_to_the_five_block_types_and_the_alternative_recipe(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(depth_study, "train_one", lambda folder, config, progress, log: seen.append(config) or "trained")
    depth_study.run_alternatives(tmp_path, dataset="digits", depths=[8], epochs=1)
    assert [c.model for c in seen] == ["ms_resnet8", "srb_resnet8", "src_resnet8", "vanilla_resnet8", "wolif_resnet8"]
    assert {c.recipe for c in seen} == {"alternative"}
    assert {c.augment for c in seen} == {"alternative"} and {c.weight_decay for c in seen} == {1e-4}


def test_every_depth_8_family_on_digits_gets_the_same_standard_widths():
    # The digits default model is ms_resnet8 with narrow widths 8/16/32; a study names its models
    # explicitly, so MS-ResNet-8 must be built like the other depth-8 networks (16/32/64), or the
    # study compares a 4x smaller MS network with the rest.
    configs = depth_study.run_configs("digits", ["plain", "vanilla", "wolif", "ms"], [8], 3, None, {})
    assert {config.model: config.model_options for config in configs.values()} == {
        "plainnet8": {}, "vanilla_resnet8": {}, "wolif_resnet8": {}, "ms_resnet8": {}}


def test_study_title_fits_names_the_folder_and_counts_epochs_in_the_singular(tmp_path, monkeypatch):
    written = {}
    monkeypatch.setattr(depth_study, "write_figure", lambda path, figure: written.setdefault("figure", figure))
    folder = tmp_path / "a-long-folder-name-for-this-study"
    folder.mkdir()
    depth_study.write_summary(folder, "alternatives", "digits", ["ms", "srb", "src", "vanilla", "wolif"], [8], 1,
                              "alternative")
    figure = written["figure"]
    figure.canvas.draw()
    title = figure._suptitle.get_text()
    assert "1 epoch" in title and "1 epochs" not in title
    assert "a-long-folder-name-for-this-study/" in title and str(tmp_path) not in title
    assert figure.axes[0].get_ylabel() == "test accuracy after 1 epoch (%)"
    box, width = figure._suptitle.get_window_extent(), figure.get_figwidth() * figure.dpi
    assert box.x0 >= 0 and box.x1 <= width, (box, width)
