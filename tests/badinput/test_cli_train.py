"""Bad command lines for ``tinyspike train | eval | info``: each must exit with status 2 and print
exactly one line on stderr (no traceback) that names the offending option, key or file.

The CLI runs in-process (``tinyspike.cli.main(argv)``, stdout and stderr captured), and every case
carries the tiny settings of ``TINY`` besides its one bad value, so a bad value that slipped
through would train a 8x8 network for a second and show up as ``silent``, never hang the suite.
Each case is classified by ``bad_input.assert_clear`` (through ``assert_cli_clear`` below), so the
audit log counts them.
"""

from __future__ import annotations

import contextlib
import io
import json
import string
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bad_input import assert_clear  # noqa: E402

from tinyspike import cli  # noqa: E402

TINY = ["--dataset", "digits", "--data-opt", "size=8", "--model", "ms_resnet8", "--model-opt", "widths=[4,4,4]",
        "--T", "1", "--epochs", "1", "--batch-size", "500", "--no-progress"]
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class CliOutcome(Exception):
    """Not a clear one-line error: a traceback, several lines, a wrong exit status."""


def run_main(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def cli_call(argv):
    """A call for ``assert_clear``: a clear CLI error becomes a ValueError carrying its one line;
    success returns (``silent``); anything else raises CliOutcome (``unclear``)."""
    def call():
        code, out, err = run_main(argv)
        if code == 0:
            return
        lines = err.strip().splitlines()
        if code == 2 and len(lines) == 1 and "Traceback" not in err and ": error: " in lines[0]:
            raise ValueError(lines[0])
        raise CliOutcome(f"exit {code}, {len(lines)} stderr line(s): {err[-500:]!r}")
    return call


def assert_cli_clear(case: str, argv, names, value=None) -> str:
    """Assert that ``tinyspike <argv>`` fails with one line naming one of ``names``."""
    return assert_clear(f"cli {case}", cli_call(argv), names, value if value is not None else argv)


def key_of(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A trained tiny run, and damaged copies of its checkpoint, shared by every case here."""
    root = tmp_path_factory.mktemp("cli-bad")
    code, out, err = run_main(["train", *TINY, "--out", str(root / "run")])
    assert code == 0, err
    last = root / "run" / "last.npz"
    data = last.read_bytes()
    (root / "text.npz").write_text("epoch 3, not a zip file\n")
    (root / "truncated.npz").write_bytes(data[: len(data) // 2])
    (root / "empty.npz").write_bytes(b"")
    (root / "empty-dir").mkdir()
    np.savez(root / "model-only.npz", **{"model/w": np.zeros(3, np.float32)})
    with np.load(last) as arrays:
        saved = {k: arrays[k] for k in arrays.files}
    meta = json.loads(str(saved["trainer"]))
    variants = {
        "no-epoch": {k: v for k, v in meta.items() if k != "epoch"},
        "no-config": {k: v for k, v in meta.items() if k != "config"},
        "config-str": {**meta, "config": "abgre"},
        "epoch-str": {**meta, "epoch": "1"},
        "epoch-neg": {**meta, "epoch": -1},
        "history-dict": {**meta, "history": {"a": 1}},
        "best-epoch-late": {**meta, "best_epoch": 99},
        "config-unknown-key": {**meta, "config": {**meta["config"], "colour": "red"}},
        "config-bad-lr": {**meta, "config": {**meta["config"], "lr": -1}},
    }
    for name, variant in variants.items():
        np.savez(root / f"{name}.npz", **{**saved, "trainer": np.asarray(json.dumps(variant))})
    np.savez(root / "not-json.npz", **{**saved, "trainer": np.asarray("{not json")})
    nan_model = dict(saved)
    key = next(k for k in saved if k.startswith("model/") and saved[k].dtype.kind == "f")
    nan_model[key] = saved[key] * np.float32(np.nan)
    np.savez(root / "nan-weights.npz", **nan_model)
    (root / "a-file").write_text("a file, not a folder")
    return root


# ----------------------------------------------------------------------- numbers and names

INT_OPTIONS = ["--T", "--epochs", "--batch-size", "--seed"]
FLOAT_OPTIONS = ["--lr", "--weight-decay", "--momentum", "--label-smoothing"]
NOT_INTEGERS = ["nan", "inf", "-inf", "1.5", "abc", "", " ", "1e9", "0x10", "1,000", "None", "True", "[1]"]
NOT_REALS = ["nan", "NaN", "inf", "-inf", "+inf", "1e400", "abc", "", " ", "0.1.2", "None", "[0.1]", "1,5"]
OUT_OF_RANGE = {  # values that parse but are refused by the option's range
    "--T": ["0", "-1", "1001", "1000000", "1000000000"], "--epochs": ["0", "-1"], "--batch-size": ["0", "-3"],
    "--seed": ["-1"], "--lr": ["0", "-1", "-0.001"], "--weight-decay": ["-1", "-1e-9"],
    "--momentum": ["1", "1.5", "-0.1"], "--label-smoothing": ["1", "-0.5", "2"],
}


@settings(max_examples=40, **SETTINGS)
@given(flag=st.sampled_from(INT_OPTIONS), text=st.sampled_from(NOT_INTEGERS))
def test_integer_options_refuse_non_integers(tmp_path, flag, text):
    assert_cli_clear(f"train {flag}", ["train", *TINY, flag, text, "--out", str(tmp_path / "r")], [flag], text)


@settings(max_examples=40, **SETTINGS)
@given(flag=st.sampled_from(FLOAT_OPTIONS), text=st.sampled_from(NOT_REALS))
def test_real_options_refuse_non_finite_and_non_numbers(tmp_path, flag, text):
    assert_cli_clear(f"train {flag}", ["train", *TINY, flag, text, "--out", str(tmp_path / "r")],
                     [flag, key_of(flag)], text)


@settings(max_examples=30, **SETTINGS)
@given(data=st.data())
def test_numbers_out_of_range_are_refused(tmp_path, data):
    flag = data.draw(st.sampled_from(sorted(OUT_OF_RANGE)))
    text = data.draw(st.sampled_from(OUT_OF_RANGE[flag]))
    # "-1" is a value to argparse (it looks like a negative number), so range checks see it
    assert_cli_clear(f"train {flag}", ["train", *TINY, flag, text, "--out", str(tmp_path / "r")],
                     [flag, key_of(flag)], text)


NAME_OPTIONS = ["--model", "--dataset", "--optimizer", "--schedule", "--augment", "--backend", "--recipe"]
NAME_TEXT = st.text(alphabet=string.ascii_letters + string.digits + "_.+/ ", min_size=1, max_size=14)


def _is_known(flag, name):
    from tinyspike.models import registry
    from tinyspike.train import config

    if flag == "--model":
        try:
            registry.check_model_name(name)
            return True
        except ValueError:
            return False
    known = {"--dataset": config.DATASET_DEFAULTS, "--optimizer": config.OPTIMIZERS, "--schedule": config.SCHEDULES,
             "--augment": config.AUGMENTS, "--backend": config.BACKENDS, "--recipe": config.RECIPES}[flag]
    return name in known


@settings(max_examples=40, **SETTINGS)
@given(flag=st.sampled_from(NAME_OPTIONS),
       name=st.one_of(NAME_TEXT, st.sampled_from(["SGD", "Adam", "cosine ", "ms-resnet8", "ms_resnet9",
                                                  "plainnet0", "CuPy", "digits ", "mnist", "depth_study"])))
def test_unknown_names_are_refused(tmp_path, flag, name):
    if _is_known(flag, name):
        return
    # the messages name the setting ("model 'x': ...", "optimizer must be one of [...]")
    assert_cli_clear(f"train {flag}", ["train", *TINY, flag, name, "--out", str(tmp_path / "r")],
                     [flag, key_of(flag)], name)


@settings(max_examples=15, **SETTINGS)
@given(flag=st.one_of(st.from_regex(r"--[a-z][a-z-]{0,10}", fullmatch=True), st.sampled_from(["--nesterov", "--lr-max", "-x"])))
def test_unknown_options_are_named(tmp_path, flag):
    known = {a for action in cli.build_parser()._subparsers._group_actions[0].choices["train"]._actions
             for a in action.option_strings}
    if flag in known or any(k.startswith(flag) for k in known):  # argparse accepts unique prefixes
        return
    assert_cli_clear(f"train unknown option {flag}", ["train", *TINY, flag, "--out", str(tmp_path / "r")], [flag], flag)


# ----------------------------------------------------------------------- KEY=VALUE options

MALFORMED = ["widths", "=3", "1a=2", "a b=1", "", "-=1", "a.b=1", "=", "[1]=2", " =1"]
UNKNOWN_KEY = st.from_regex(r"zz_[a-z]{1,6}", fullmatch=True)


@settings(max_examples=20, **SETTINGS)
@given(flag=st.sampled_from(["--model-opt", "--data-opt"]), item=st.sampled_from(MALFORMED))
def test_malformed_key_value_options(tmp_path, flag, item):
    assert_cli_clear(f"train {flag} malformed", ["train", *TINY, flag, item, "--out", str(tmp_path / "r")],
                     [flag], item)


@settings(max_examples=15, **SETTINGS)
@given(flag=st.sampled_from(["--model-opt", "--data-opt"]), key=UNKNOWN_KEY, value=st.sampled_from(["1", "0.5", "x"]))
def test_unknown_option_keys_are_named(tmp_path, flag, key, value):
    assert_cli_clear(f"train {flag} unknown key", ["train", *TINY, flag, f"{key}={value}", "--out", str(tmp_path / "r")],
                     [key], key)


# ----------------------------------------------------------------------- options that would be ignored


@pytest.mark.parametrize("argv, names", [
    (["--data-dir", "/some/folder"], ["data_dir (--data-dir)"]),
    (["--optimizer", "adam", "--momentum", "0.5"], ["momentum (--momentum)"]),
    (["--optimizer", "adamw", "--momentum", "0.9"], ["momentum (--momentum)"]),
    (["--recipe", "dvs"], ["recipe 'dvs'"]),
    (["--dataset", "digits-dvs", "--recipe", "depth-study"], ["recipe 'depth-study'"]),
    (["--dataset", "digits-dvs", "--augment", "crop"], ["augment 'crop'"]),
])
def test_settings_that_would_be_ignored_are_errors(tmp_path, argv, names):
    # later options override TINY's (argparse keeps the last value)
    assert_cli_clear(f"train {' '.join(argv[:2])}", ["train", *TINY, *argv, "--out", str(tmp_path / "r")], names)


@settings(max_examples=12, **SETTINGS)
@given(flag=st.sampled_from(["--lr", "--T", "--model", "--optimizer", "--seed", "--out", "--recipe", "--model-opt"]))
def test_resume_refuses_changed_settings(workspace, flag):
    value = {"--lr": "0.5", "--T": "2", "--model": "ms_resnet14", "--optimizer": "adam", "--seed": "3",
             "--out": str(workspace / "x"), "--recipe": "dvs", "--model-opt": "widths=[4,4,8]"}[flag]
    assert_cli_clear(f"train --resume with {flag}", ["train", "--resume", str(workspace / "run"), flag, value],
                     [flag], value)


# ----------------------------------------------------------------------- files and folders


@pytest.mark.parametrize("name, names", [
    ("missing.npz", ["missing.npz"]), ("text.npz", ["text.npz"]), ("truncated.npz", ["truncated.npz"]),
    ("empty.npz", ["empty.npz"]), ("empty-dir", ["empty-dir"]), ("model-only.npz", ["model-only.npz"]),
    ("no-epoch.npz", ["'epoch'"]), ("no-config.npz", ["'config'"]), ("config-str.npz", ["'config'"]),
    ("epoch-str.npz", ["'epoch'"]), ("epoch-neg.npz", ["'epoch'"]), ("history-dict.npz", ["'history'"]),
    ("best-epoch-late.npz", ["'best_epoch'"]), ("config-unknown-key.npz", ["colour"]),
    ("config-bad-lr.npz", ["lr"]), ("not-json.npz", ["not-json.npz"]), ("nan-weights.npz", ["nan-weights.npz"]),
])
def test_eval_refuses_bad_checkpoints_naming_file_and_key(workspace, name, names):
    message = assert_cli_clear(f"eval {name}", ["eval", str(workspace / name)], names, name)
    assert name in message  # the file, always, besides the key


@pytest.mark.parametrize("argv, names", [
    (["--data-dir", "/nonexistent/data"], ["data_dir (--data-dir)"]),
    (["--batch-size", "0"], ["--batch-size"]), (["--max-batches", "-1"], ["--max-batches"]),
    (["--batch-size", "nan"], ["--batch-size"]), (["--backend", "jax"], ["backend"]), (["--colour"], ["--colour"]),
])
def test_eval_refuses_bad_options(workspace, argv, names):
    assert_cli_clear(f"eval {argv[0]}", ["eval", str(workspace / "run"), *argv], names, argv)


@pytest.mark.parametrize("where, names", [
    ("missing-run", ["missing-run"]), ("empty-dir", ["empty-dir"]), ("a-file", ["a-file"]),
])
def test_resume_refuses_folders_without_a_run(workspace, where, names):
    assert_cli_clear(f"train --resume {where}", ["train", "--resume", str(workspace / where)], names, where)


def test_out_under_a_file_is_refused(workspace):
    assert_cli_clear("train --out under a file", ["train", *TINY, "--out", str(workspace / "a-file" / "run")],
                     ["a-file"])


@settings(max_examples=10, **SETTINGS)
@given(extra=st.sampled_from([["--json"], ["--colour"], ["x"], ["--T", "3"], ["--epochs", "1"]]))
def test_info_refuses_arguments(extra):
    assert_cli_clear(f"info {extra[0]}", ["info", *extra], [extra[0]], extra)
