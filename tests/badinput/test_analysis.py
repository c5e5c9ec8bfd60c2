"""Bad options of the analyses: the public ``run_*`` functions, ``AnalysisSource``'s constructors
and the ``tinyspike analyze`` command line. Each bad value must give a TypeError/ValueError that
names the option (a whole word, see ``bad_input.py``), or on the command line exit status 2 and
one line on stderr naming it, before anything is computed or trained.

Every call carries tiny settings besides its one bad value (MS-ResNet-8 at widths 4/8/8, T = 2,
8×8 digits, one batch), so a bad value that slipped through would run the analysis in a fraction
of a second and show up as ``silent``, never hang the suite. The landscape's grid/span/count
options and the init study's γ grids have their own bad-input tests beside their analyses
(tests/test_analysis_landscape.py, tests/test_analysis_init_study.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bad_input import assert_clear  # noqa: E402
from test_cli_train import assert_cli_clear  # noqa: E402  (the CLI harness of tinyspike train)

from tinyspike.analysis import depth_study  # noqa: E402
from tinyspike.analysis.firing_plots import run_firing, run_raster  # noqa: E402
from tinyspike.analysis.grad_norms import run_grad_norms  # noqa: E402
from tinyspike.analysis.init_study import run_init_study  # noqa: E402
from tinyspike.analysis.landscape import run_landscape  # noqa: E402
from tinyspike.analysis.source import AnalysisSource  # noqa: E402
from tinyspike.analysis.ssim import run_ssim  # noqa: E402

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
MODEL_OPTS = {"widths": [4, 8, 8]}
DATA_OPTS = {"size": 8}

# values that are no count (int >= 1 / >= 0): strings of numbers, floats, None, bools, containers
NOT_INTS = st.sampled_from(["3", "1", 2.0, 1.5, float("nan"), float("inf"), None, True, False, [2], (2,), {}, object(),
                            np.float64(2.0)])
NOT_FLAGS = st.sampled_from(["yes", "True", "auto ", 1, 0, 1.0, None, [True], np.int64(1)])
NOT_NAMES = st.sampled_from([3, 1.0, None, True, ["stream"], b"stream", object()])


@pytest.fixture(scope="module")
def source():
    return AnalysisSource.from_model("ms_resnet8", "digits", model_opts=MODEL_OPTS, data_opts=DATA_OPTS,
                                     time_steps=2, seed=0)


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("bad-analysis")


# tiny settings of every one-model analysis; the bad value replaces one of them
RUNS = {
    "run_grad_norms": (run_grad_norms, dict(batch_size=2, batches=1)),
    "run_ssim": (run_ssim, dict(batch_size=2, batches=1)),
    "run_firing": (run_firing, dict(batch_size=2, batches=1)),
    "run_raster": (run_raster, dict(neurons=4, sample=0, seed=0)),
    "run_landscape": (run_landscape, dict(grid=2, batches=1, batch_size=2, progress=False)),
    "run_init_study": (run_init_study, dict(gammas1=(1.0,), gammas2=(0.0,), train_batches=1, eval_batches=1,
                                            batch_size=8, progress=False)),
}
COUNTS = [("run_grad_norms", "batch_size"), ("run_grad_norms", "batches"), ("run_ssim", "batch_size"),
          ("run_ssim", "batches"), ("run_firing", "batch_size"), ("run_firing", "batches"),
          ("run_raster", "neurons"), ("run_init_study", "epochs"), ("run_init_study", "depth_epochs"),
          ("run_init_study", "train_batches"), ("run_init_study", "eval_batches"), ("run_init_study", "batch_size")]
OPTIONAL = ("train_batches", "eval_batches", "batch_size")  # of run_init_study
NON_NEGATIVE = [("run_raster", "sample"), ("run_raster", "seed"), ("run_landscape", "seed")]


def call(name, out, source, **bad):
    function, tiny = RUNS[name]
    return lambda: function(source, out, **{**tiny, **bad})


@settings(max_examples=40, **SETTINGS)
@given(case=st.sampled_from(COUNTS), value=st.one_of(NOT_INTS, st.integers(max_value=0)))
def test_counts_must_be_positive_ints(source, out, case, value):
    name, option = case
    if value is None and name == "run_init_study" and option in OPTIONAL:
        value = "None"  # None is their default ("all batches", "the source's"): a string is not
    assert_clear(f"{name} {option}", call(name, out, source, **{option: value}), [option], value)


@settings(max_examples=20, **SETTINGS)
@given(case=st.sampled_from(NON_NEGATIVE), value=st.one_of(NOT_INTS, st.integers(max_value=-1)))
def test_indices_and_seeds_must_be_non_negative_ints(source, out, case, value):
    name, option = case
    assert_clear(f"{name} {option}", call(name, out, source, **{option: value}), [option], value)


@settings(max_examples=15, **SETTINGS)
@given(name=st.sampled_from(["run_grad_norms", "run_ssim", "run_firing", "run_raster"]), value=NOT_FLAGS)
def test_batch_statistics_is_a_flag_or_auto(source, out, name, value):
    if name == "run_grad_norms" and value == "auto ":
        value = "auto"  # grad-norms measures as in training: no "auto" there
    assert_clear(f"{name} batch_statistics", call(name, out, source, batch_statistics=value), ["batch_statistics"],
                 value)


@settings(max_examples=15, **SETTINGS)
@given(name=st.sampled_from(["run_grad_norms", "run_ssim"]),
       value=st.one_of(st.sampled_from(["ms_resnet8", "ms_resnet9", ["ms_resnet9"], ["resnet8"], [8], [None], 3,
                                        {"ms_resnet8": 1}]), st.text(max_size=4).map(lambda t: [t])))
def test_compare_is_a_list_of_model_names(source, out, name, value):
    assert_clear(f"{name} compare", call(name, out, source, compare=value), ["compare", "compare[0]"], value)


@settings(max_examples=10, **SETTINGS)
@given(value=st.one_of(NOT_NAMES, st.sampled_from(["lif3", "Stream", "", "head"])))
def test_ssim_position_is_one_of_its_names(source, out, value):
    assert_clear("run_ssim position", call("run_ssim", out, source, position=value), ["position"], value)


@settings(max_examples=10, **SETTINGS)
@given(value=st.sampled_from(["stem.lif", ["no.such.lif"], [], "all", 3, [3], {}, ("stem.lif", "nope")]))
def test_raster_layers_are_lif_names(source, out, value):
    assert_clear("run_raster layers", call("run_raster", out, source, layers=value), ["layers"], value)


def test_raster_sample_beyond_the_test_set_is_named(source, out):
    size = len(source.dataset("test"))
    assert_clear("run_raster sample", call("run_raster", out, source, sample=size), ["sample"], size)


@settings(max_examples=10, **SETTINGS)
@given(name=st.sampled_from(list(RUNS)), value=st.sampled_from([None, 3, 2.5, True, ["out"], "", "   "]))
def test_out_dir_is_a_path(source, name, value):
    function, tiny = RUNS[name]
    assert_clear(f"{name} out_dir", lambda: function(source, value, **tiny), ["out_dir"], value)


@settings(max_examples=10, **SETTINGS)
@given(name=st.sampled_from(["depth_model", "schedule"]),
       value=st.sampled_from([56, 3.5, True, "ms_resnet9", "resnet56", "step", ["constant"]]))
def test_init_study_names(source, out, name, value):
    assert_clear(f"run_init_study {name}", call("run_init_study", out, source, **{name: value}), [name], value)


# ---- the studies ------------------------------------------------------------------------------------

STUDY_TINY = dict(dataset="digits", depths=[8], families=["ms"], epochs=1, T=1, batch_size=500,
                  model_options=MODEL_OPTS, dataset_options=DATA_OPTS)


@pytest.fixture()
def no_training(monkeypatch):
    """A bad value that got through would train: count it instead (and fail as ``silent``)."""
    trained = []
    monkeypatch.setattr(depth_study, "train_one", lambda folder, config, progress, log: trained.append(1) or "trained")
    return trained


@settings(max_examples=30, **SETTINGS)
@given(study=st.sampled_from(["run_depth_study", "run_alternatives"]),
       case=st.one_of(
           st.tuples(st.just("depths"), st.sampled_from([9, 10, 0, -4, "8", 8.0, None, True, [8.5], "8,14", []])
                     .map(lambda v: v if isinstance(v, (list, str)) else [v])),
           st.tuples(st.just("depths"), st.integers(1, 200).filter(lambda d: (d - 2) % 6).map(lambda d: [d])),
           st.tuples(st.just("families"), st.sampled_from([["resnet"], ["MS"], "ms", [3], [None], []])),
           st.tuples(st.just("epochs"), st.one_of(NOT_INTS, st.integers(max_value=0))),
           st.tuples(st.just("recipe"), st.sampled_from(["fast", "Depth-study", 3, True, ["alternative"]])),
           st.tuples(st.just("progress"), NOT_FLAGS)))
def test_study_options(tmp_path_factory, no_training, study, case):
    option, value = case
    run = getattr(depth_study, study)
    folder = tmp_path_factory.mktemp("study")
    assert_clear(f"{study} {option}", lambda: run(folder, **{**STUDY_TINY, option: value}), [option], value)
    assert not no_training


# ---- AnalysisSource ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A trained (one tiny epoch) ms_resnet8 and its checkpoint."""
    from tinyspike.train import train

    folder = tmp_path_factory.mktemp("ckpt") / "run"
    train(dict(dataset="digits", model="ms_resnet8", model_options=MODEL_OPTS, dataset_options=DATA_OPTS, T=1,
               epochs=1, batch_size=500), out=folder, progress=False)
    return folder / "last.npz"


@settings(max_examples=10, **SETTINGS)
@given(value=st.sampled_from(["plainnet8", "ms_resnet20", "vanilla_resnet8", "MS_ResNet14"]))
def test_checkpoint_of_another_model_names_the_file(checkpoint, value):
    assert_clear("AnalysisSource.from_checkpoint expect_model",
                 lambda: AnalysisSource.from_checkpoint(checkpoint, expect_model=value), [checkpoint.name, value],
                 value)


def test_a_missing_checkpoint_is_a_file_not_found_error_naming_it(tmp_path):
    """An OSError, as for any missing file (the CLI turns it into its one line, see below)."""
    with pytest.raises(FileNotFoundError, match=r"checkpoint '.*nothing\.npz' does not exist"):
        AnalysisSource.from_checkpoint(tmp_path / "nothing.npz")


@settings(max_examples=15, **SETTINGS)
@given(case=st.one_of(
    st.tuples(st.just("model_name"), st.sampled_from(["ms_resnet9", "ms_resnet10", "plainnet15", "resnet8", "", 8,
                                                      None])),
    st.tuples(st.just("path"), st.sampled_from([None, 3, 2.5, True, ["x.npz"]])),
    st.tuples(st.just("data_opts"), st.sampled_from(["size=8", [("size", 8)], 8, True])),
    st.tuples(st.just("seed"), st.one_of(NOT_INTS, st.integers(max_value=-1))),
    st.tuples(st.just("time_steps"), st.one_of(NOT_INTS.filter(lambda v: v is not None), st.integers(max_value=0)))))
def test_source_constructor_options(case):
    option, value = case
    if option == "path":
        build = lambda: AnalysisSource.from_checkpoint(value)  # noqa: E731
        names = ["checkpoint"]
    else:
        kwargs = {"model_name": "ms_resnet8", "dataset": "digits", "model_opts": MODEL_OPTS, "data_opts": DATA_OPTS,
                  "time_steps": 1, option: value}
        build = lambda: AnalysisSource.from_model(**kwargs)  # noqa: E731
        # a depth that is not 6n + 2 is named by the rule it breaks and the name given
        names = [option, "6n + 2", "6n+2", "model"] if option == "model_name" else [option]
    assert_clear(f"AnalysisSource {option}", build, names, value)


# ---- tinyspike analyze ------------------------------------------------------------------------------

UNTRAINED = ["--model", "ms_resnet8", "--dataset", "digits", "--model-opt", "widths=[4,8,8]", "--data-opt", "size=8",
             "--T", "1", "--no-progress"]


# the tiny options of each analysis on the command line; the bad one replaces its own
CLI_TINY = {
    "grad-norms": {"batches": "1", "batch_size": "2"}, "ssim": {"batches": "1", "batch_size": "2"},
    "firing": {"batches": "1", "batch_size": "2"}, "raster": {"neurons": "4"},
    "landscape": {"grid": "2", "batches": "1", "batch_size": "2"},
}


@settings(max_examples=25, **SETTINGS)
@given(case=st.one_of(
    st.tuples(st.sampled_from(["grad-norms", "ssim", "firing"]), st.sampled_from(["batches", "batch_size"]),
              st.sampled_from(["0", "-1", "2.5", '"3"', "null", "true", "[2]"])),
    st.tuples(st.just("raster"), st.sampled_from(["neurons", "sample", "seed"]),
              st.sampled_from(["-1", "1.5", '"3"', "null", "[1]"])),
    st.tuples(st.just("landscape"), st.sampled_from(["grid", "span", "batches"]),
              st.sampled_from(["0", "-2", '"3"', "null", "[3]", "NaN"]))))
def test_cli_analysis_options(tmp_path_factory, case):
    name, option, text = case
    options = {**CLI_TINY[name], option: text}
    argv = ["analyze", name, *UNTRAINED, *[f"--opt={k}={v}" for k, v in options.items()],
            "--out", str(tmp_path_factory.mktemp("cli"))]
    assert_cli_clear(f"analyze {name} --opt {option}", argv, [option], text)


@settings(max_examples=15, **SETTINGS)
@given(case=st.sampled_from([
    (["analyze", "nothing"], ["nothing"]),
    (["analyze", "firing", "--model", "ms_resnet9", "--dataset", "digits"], ["ms_resnet9", "6n + 2"]),
    (["analyze", "firing", "--model", "ms_resnet8"], ["--dataset"]),
    (["analyze", "firing", "--model", "ms_resnet8", "--dataset", "mnist"], ["mnist", "dataset"]),
    (["analyze", "firing", *UNTRAINED, "--opt", "colour=1"], ["colour"]),
    (["analyze", "firing", *UNTRAINED, "--opt", "noequals"], ["--opt"]),
    (["analyze", "firing", *UNTRAINED, "--depths", "8"], ["--depths"]),
    (["analyze", "firing", *UNTRAINED, "--backend", "tpu"], ["tpu", "backend"]),
    (["analyze", "firing", "/no/such/run/last.npz"], ["/no/such/run/last.npz"]),
    (["analyze", "depth-study", "--depths", "8,nine"], ["--depths"]),
    (["analyze", "depth-study", "--depths", "9"], ["depths"]),
    (["analyze", "depth-study", "--depths", "8", "--families", "ms,resnet"], ["families"]),
    (["analyze", "depth-study", "--depths", "8", "--recipe", "fast"], ["--recipe"]),
    (["analyze", "depth-study", "--depths", "8", "--model", "ms_resnet8"], ["--model"]),
    (["analyze", "alternatives", "--depths", "8", "--epochs", "0"], ["--epochs"]),
    (["analyze", "alternatives", "--depths", "8", "--seed", "-1"], ["--seed"]),
]))
def test_cli_analyze_command_line(tmp_path_factory, case):
    argv, names = case
    argv = [*argv, "--out", str(tmp_path_factory.mktemp("cli"))]
    assert_cli_clear(" ".join(argv[:3]), argv, names, argv)
