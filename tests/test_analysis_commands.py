"""``AnalysisSource`` and the ``tinyspike analyze`` command: what is loaded, what is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tinyspike import backend, cli
from tinyspike.analysis import commands
from tinyspike.analysis.source import AnalysisSource, SourceError
from tinyspike.autograd import no_grad
from tinyspike.train import read_trainer_checkpoint, train

TINY = {"dataset": "digits", "model": "ms_resnet8", "model_options": {"widths": [4, 8, 8]},
        "dataset_options": {"size": 8}, "T": 2, "epochs": 1, "batch_size": 64}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    train(TINY, out=out)
    return out


def run_cli(capsys, *argv):
    code = cli.main(["analyze", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, fragment):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinyspike analyze: error: "), err
    assert fragment in lines[0], lines[0]


# ---------------------------------------------------------------------------------- the source


def test_source_from_checkpoint_holds_the_trained_weights_in_eval_mode(run_dir):
    source = AnalysisSource.from_checkpoint(run_dir)  # the run folder: its best.npz
    saved = read_trainer_checkpoint(run_dir / "best.npz")["model"]
    state = source.model.state_dict()
    assert set(state) == set(saved)
    for key, value in saved.items():
        assert np.array_equal(backend.to_numpy(state[key]), value), key
    assert not source.model.training
    assert (source.model_name, source.dataset_name, source.time_steps, source.epoch) == ("ms_resnet8", "digits", 2, 1)
    assert source.title("SSIM") == f"SSIM - ms_resnet8 [widths=[4, 8, 8]] on digits (checkpoint {run_dir / 'best.npz'})"
    assert source.legend_label() == "ms_resnet8 [widths=[4, 8, 8]] (trained, epoch 1)"


def test_source_batches_give_the_accuracy_tinyspike_eval_reports(run_dir):
    # an independent path: the CLI's evaluate_checkpoint builds its own loader and model
    expected = cli.evaluate_checkpoint(run_dir / "best.npz")
    source = AnalysisSource.from_checkpoint(run_dir / "best.npz")
    correct = seen = 0
    with no_grad():
        for images, labels in source.batches("test", batch_size=50):
            assert images.shape[1:] == (3, 8, 8) and images.dtype == np.float32
            logits = source.model(images, time_steps=source.time_steps)
            correct += int((backend.to_numpy(logits.data).argmax(axis=1) == backend.to_numpy(labels)).sum())
            seen += len(labels)
    assert (correct, seen) == (expected["correct"], expected["images"]) == (expected["correct"], 360)


def test_batches_limit_and_splits():
    source = AnalysisSource.from_model("ms_resnet8", "digits", model_opts={"widths": [4, 8, 8]},
                                       data_opts={"size": 8}, time_steps=2)
    assert len(list(source.batches("test", batch_size=100))) == 4  # 360 test images
    assert len(list(source.batches("train", batch_size=100, limit=2))) == 2
    assert sum(len(y) for _, y in source.batches("train", batch_size=500)) == 1437
    with pytest.raises(ValueError, match="split must be one of"):
        source.batches("val")


def test_model_options_are_named_in_the_title_the_legend_and_the_json():
    # A zero_init_residual=false run is another network than the default one: every figure and
    # JSON must tell them apart. The standard architecture carries no option at all.
    def source(**options):
        return AnalysisSource.from_model("ms_resnet8", "digits", model_opts={"widths": [4, 8, 8], **options},
                                         data_opts={"size": 8}, time_steps=2)

    default, contrast = source(), source(zero_init_residual=False)
    assert contrast.title("x") == "x - ms_resnet8 [widths=[4, 8, 8], zero_init_residual=false] on digits (untrained, seed 0)"
    assert contrast.legend_label() == "ms_resnet8 [widths=[4, 8, 8], zero_init_residual=false] (untrained)"
    assert default.describe()["model_options"] == {"widths": [4, 8, 8]}
    assert contrast.describe()["model_options"] == {"widths": [4, 8, 8], "zero_init_residual": False}
    standard = AnalysisSource.from_model("ms_resnet8", "digits", data_opts={"size": 8}, time_steps=2)
    assert standard.model_options() == {} and standard.title("x") == "x - ms_resnet8 on digits (untrained, seed 0)"


def test_untrained_source_is_seeded():
    def weights(seed):
        source = AnalysisSource.from_model("ms_resnet8", "digits", model_opts={"widths": [4, 8, 8]}, seed=seed)
        assert source.checkpoint is None and not source.model.training
        assert source.title("x") == f"x - ms_resnet8 [widths=[4, 8, 8]] on digits (untrained, seed {seed})"
        return {k: backend.to_numpy(v) for k, v in source.model.state_dict().items()}

    a, b, c = weights(3), weights(3), weights(4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_a_checkpoint_of_another_model_is_refused_naming_the_file(run_dir):
    with pytest.raises(SourceError, match=r"checkpoint '.*best\.npz' holds a 'ms_resnet8' model, not 'plainnet8'"):
        AnalysisSource.from_checkpoint(run_dir, expect_model="plainnet8")


# ---------------------------------------------------------------------------------- the command


def fake_analysis(calls):
    def run_fake(source, out_dir, *, batches=1, scale=1.0):
        calls.append((source, batches, scale))
        (out_dir / "grad-norms.json").write_text(json.dumps({"batches": batches}))
        return {"batches": batches}

    return run_fake


def test_analyze_runs_the_analysis_on_the_checkpoint_with_its_options(run_dir, tmp_path, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(commands, "load_run_function", lambda name: fake_analysis(calls))
    code, out, err = run_cli(capsys, "grad-norms", str(run_dir / "last.npz"), "--out", str(tmp_path),
                             "--opt", "batches=3", "--opt", "scale=0.5")
    assert code == 0, err
    (source, batches, scale), = calls
    assert (batches, scale) == (3, 0.5)  # JSON-parsed: an int and a float
    assert source.checkpoint == run_dir / "last.npz" and source.model_name == "ms_resnet8"
    assert str(tmp_path / "grad-norms.json") in out


@pytest.mark.parametrize("argv, fragment", [
    (["grad-norms", "--out", "{out}"], "grad-norms needs a CHECKPOINT, or --model and --dataset"),
    (["grad-norms", "{ckpt}", "--dataset", "digits", "--out", "{out}"], "--dataset does not apply to a checkpoint"),
    (["grad-norms", "{ckpt}", "--model", "plainnet8", "--out", "{out}"], "holds a 'ms_resnet8' model, not 'plainnet8'"),
    (["grad-norms", "{ckpt}", "--depths", "8", "--out", "{out}"], "--depths does not apply to grad-norms"),
    (["grad-norms", "{ckpt}", "--opt", "bins=3", "--out", "{out}"],
     "analysis 'grad-norms' has no option(s) ['bins']; it takes: batches, scale"),
    (["grad-norms", "{ckpt}", "--opt", "batches", "--out", "{out}"], "--opt takes KEY=VALUE, got 'batches'"),
    (["nothing", "--out", "{out}"], "unknown analysis 'nothing'; choose one of: depth-study, alternatives"),
    (["grad-norms", "{out}/missing.npz", "--out", "{out}"], "missing.npz' does not exist"),
    (["depth-study", "--depths", "8,10", "--out", "{out}"], "CIFAR depth must be 6n + 2"),
    (["depth-study", "--depths", "8,x", "--out", "{out}"], "--depths takes a comma-separated list of integers"),
    (["depth-study", "--out", "{out}"], "depth-study needs --depths"),
    (["depth-study", "{ckpt}", "--depths", "8", "--out", "{out}"], "it takes no CHECKPOINT"),
    (["depth-study", "--depths", "8", "--families", "ms,resnet", "--out", "{out}"], "families must be one of"),
    (["alternatives", "--depths", "8", "--recipe", "fast", "--out", "{out}"], "unknown --recipe 'fast'"),
])
def test_analyze_errors_are_one_line(run_dir, tmp_path, capsys, monkeypatch, argv, fragment):
    real = commands.load_run_function
    monkeypatch.setattr(commands, "load_run_function", lambda name: fake_analysis([]) if name == "grad-norms" else real(name))
    argv = [a.format(out=tmp_path, ckpt=run_dir / "best.npz") for a in argv]
    code, out, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, fragment)


def test_an_analysis_whose_module_is_missing_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(commands.ANALYSES, "ssim", commands.Analysis("tinyspike.analysis.no_such_module", "run_ssim", "x"))
    code, out, err = run_cli(capsys, "ssim", "--model", "ms_resnet8", "--dataset", "digits", "--out", str(tmp_path))
    assert_one_line_error(code, err, "analysis 'ssim' is not available in this version of tinyspike "
                                     "(tinyspike.analysis.no_such_module is not installed)")


def test_every_analysis_of_the_issue_has_an_entry():
    assert set(commands.ANALYSES) == {"depth-study", "grad-norms", "ssim", "firing", "raster", "landscape",
                                      "init-study", "alternatives"}


def test_depth_study_from_the_command_line_prints_the_table(tmp_path, capsys):
    code, out, err = run_cli(capsys, "depth-study", "--depths", "8", "--families", "ms", "--epochs", "1",
                             "--recipe", "none", "--T", "2", "--batch-size", "64", "--model-opt", "widths=[4,8,8]",
                             "--data-opt", "size=8", "--no-progress", "--out", str(tmp_path))
    assert code == 0, err
    summary = json.loads((tmp_path / "depth-study.json").read_text())
    acc = summary["final_test_acc"]["ms"]["8"]
    assert 0.0 <= acc <= 1.0
    assert f"ms       8: {100 * acc:.2f}%" in out
    assert (tmp_path / "ms_resnet8" / "last.npz").is_file()


def test_every_analysis_writes_files_named_by_its_command_name():
    """The one table of names: each run function's module writes ``<out>/<NAME>.png/.json`` under
    the very name ``tinyspike analyze`` knows it by (a module constant), none under another."""
    import importlib

    from tinyspike.analysis.depth_study import STUDIES

    written_names = set(STUDIES)
    for entry in commands.ANALYSES.values():
        module = importlib.import_module(entry.module)
        written_names |= {getattr(module, c) for c in ("NAME", "FIRING", "RASTER") if hasattr(module, c)}
    assert written_names == set(commands.ANALYSES)
