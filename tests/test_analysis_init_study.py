"""The initialisation study (Fig. 5): every run starts with the γ₁/γ₂ of its grid point, the table
is rebuilt from the run folders, finished runs are not trained again, an interrupted run resumes
to the uninterrupted result, and bad options fail clearly. Tiny runs: MS-ResNet-8 at widths
4/8/8, T = 2, 8×8 digits, 2 training batches per epoch, 1 evaluation batch.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from badinput.bad_input import assert_clear
from tinyspike.analysis import init_study
from tinyspike.analysis.init_study import InitStudyError, block_gammas, run_init_study
from tinyspike.analysis.source import AnalysisSource
from tinyspike.nn import read_checkpoint
from tinyspike.train.trainer import Trainer

TINY = dict(train_batches=2, eval_batches=1, progress=False)
GAMMAS1, GAMMAS2 = (0.0, 1.0), (0.0, 0.25)


@pytest.fixture(scope="module")
def source():
    return AnalysisSource.from_model("ms_resnet8", "digits", model_opts={"widths": [4, 8, 8]},
                                     data_opts={"size": 8}, time_steps=2, seed=0)


@pytest.fixture
def count_epochs(monkeypatch):
    """Count (and optionally stop) Trainer.run_epoch calls: the only place training happens."""
    calls = {"n": 0, "stop_at": None}
    real = Trainer.run_epoch

    def counted(self):
        if calls["stop_at"] is not None and calls["n"] == calls["stop_at"]:
            raise KeyboardInterrupt("stopped by the test")
        calls["n"] += 1
        return real(self)

    monkeypatch.setattr(Trainer, "run_epoch", counted)
    return calls


@pytest.fixture(scope="module")
def study(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    result = run_init_study(source, out, gammas1=GAMMAS1, gammas2=GAMMAS2, depth_model="ms_resnet14", **TINY)
    return out, result


def test_each_run_starts_with_its_grid_gammas(study):
    out, result = study
    for g1 in GAMMAS1:
        for g2 in GAMMAS2:
            folder = out / "init-study" / "grid" / init_study.point_folder_name(g1, g2)
            state = read_checkpoint(folder / "init.npz")["model"]
            blocks = [k for k in state if k.endswith(".bn1.weight")]
            assert len(blocks) == 3  # one block per stage of MS-ResNet-8
            assert block_gammas(state) == {"bn1": [g1], "bn2": [g2]}  # exact: set by assignment
            assert np.all(state["stem.bn.weight"] == np.float32(0.5))  # the stem keeps its tdBN init
            trained = read_checkpoint(folder / "last.npz")["model"]
            assert not np.array_equal(trained["fc.weight"], state["fc.weight"])  # it did train
    zero, standard = result["depth_runs"]["zero_gamma2"], result["depth_runs"]["standard"]
    assert (zero["gamma1"], zero["gamma2"]) == (0.5, 0.0)  # α·V_th = 0.5, and the paper's zero γ₂
    assert (standard["gamma1"], standard["gamma2"]) == (0.5, 0.5)  # the standard tdBN init
    depth_state = read_checkpoint(out / "init-study" / "depth" / "standard" / "init.npz")["model"]
    assert sum(k.endswith(".bn2.weight") for k in depth_state) == 6  # ms_resnet14: 2 blocks per stage
    assert len(zero["iteration_losses"]) == 2 and all(np.isfinite(zero["iteration_losses"]))


def test_table_is_rebuilt_from_the_run_folders_without_training(study, source, count_epochs):
    out, result = study
    for i, g1 in enumerate(GAMMAS1):
        for j, g2 in enumerate(GAMMAS2):
            folder = out / "init-study" / "grid" / init_study.point_folder_name(g1, g2)
            metrics = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
            assert len(metrics) == 1 and result["accuracy"][i][j] == metrics[0]["test_acc"]
    (out / "init-study.json").unlink()
    (out / "init-study.png").unlink()
    again = run_init_study(source, out, gammas1=GAMMAS1, gammas2=GAMMAS2, depth_model="ms_resnet14", **TINY)
    assert count_epochs["n"] == 0  # every run was finished: nothing trained
    assert again["accuracy"] == result["accuracy"] and again["depth_runs"] == result["depth_runs"]
    assert (out / "init-study.png").stat().st_size > 10_000
    # a sub-grid reads the same folders
    part = run_init_study(source, out, gammas1=(1.0,), gammas2=(0.25,), **TINY)
    assert count_epochs["n"] == 0 and part["accuracy"] == [[result["accuracy"][1][1]]]


def test_a_folder_of_other_settings_is_refused(study, source, count_epochs):
    out, _ = study
    with pytest.raises(InitStudyError, match="g1_0.0_g2_0.0"):
        run_init_study(source, out, gammas1=(0.0,), gammas2=(0.0,), lr=0.05, **TINY)
    assert count_epochs["n"] == 0


def test_an_interrupted_run_resumes_to_the_uninterrupted_result(source, tmp_path, count_epochs):
    options = dict(gammas1=(0.5,), gammas2=(0.0, 0.5), epochs=2, **TINY)
    whole = run_init_study(source, tmp_path / "whole", **options)
    assert count_epochs["n"] == 4
    count_epochs.update(n=0, stop_at=3)  # stop in the 2nd run after its first epoch
    with pytest.raises(KeyboardInterrupt):
        run_init_study(source, tmp_path / "cut", **options)
    count_epochs.update(n=0, stop_at=None)
    resumed = run_init_study(source, tmp_path / "cut", **options)
    assert count_epochs["n"] == 1  # only the 2nd run's 2nd epoch
    # resume is exact on the CPU backend: the same weights, so the same accuracies and losses
    assert resumed["accuracy"] == whole["accuracy"]
    for a, b in zip(resumed["runs"], whole["runs"]):
        assert a["train_loss"] == b["train_loss"] and a["iteration_losses"] == b["iteration_losses"]


# ---- bad input -----------------------------------------------------------------------------------

BAD_GAMMA = st.sampled_from([float("nan"), float("inf"), -float("inf"), np.float64("nan"), "0.5", None, True, [0.5]])


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(["gammas1", "gammas2"]), bad=BAD_GAMMA, where=st.integers(0, 2))
def test_bad_gamma_is_refused(source, tmp_path_factory, name, bad, where):
    values = [0.0, 0.5]
    values.insert(where, bad)
    assert_clear(f"run_init_study {name}",
                 lambda: run_init_study(source, tmp_path_factory.mktemp("b"), **{name: values}), [name], bad)


@pytest.mark.parametrize("name,value,word", [
    ("gammas1", (), "empty grid"), ("gammas2", [], "empty grid"), ("gammas1", (0.5, 0.5), "repeat"),
    ("gammas2", 0.5, "tuple or list"), ("epochs", 0, "epochs"), ("depth_model", "ms_resnet9", "6n + 2"),
    ("depth_model", 56, "depth_model"), ("train_batches", 0, "train_batches"), ("lr", float("nan"), "lr"),
    ("schedule", "step", "schedule"), ("progress", "yes", "progress"),
])
def test_bad_options_are_refused(source, tmp_path, name, value, word, count_epochs):
    message = assert_clear(f"run_init_study {name}", lambda: run_init_study(source, tmp_path, **{name: value}),
                           [name], value)
    assert word in message and count_epochs["n"] == 0
