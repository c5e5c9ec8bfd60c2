"""Bad scalar arguments to the data modules: each gives a clear TypeError/ValueError naming it.

One table row per (function, argument): a call that takes the bad value, the words a clear
message holds (the argument's name), and the bad values to draw (NaN, ±inf, bools where numbers
are wanted, numbers as strings, None, lists, out-of-range numbers, wrong option names).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from bad_input import assert_clear
from hypothesis import given, settings, strategies as st

from tinyspike.data import transforms as T
from tinyspike.data.cache import FrameCache, cached_arrays
from tinyspike.data.cifar10 import CIFAR10
from tinyspike.data.dataset import ArrayDataset, stratified_split
from tinyspike.data.digits import Digits, upsample
from tinyspike.data.download import download_url
from tinyspike.data.nmnist import NMNIST, decode_nmnist, find_samples
from tinyspike.data.aedat import parse_aedat2
from tinyspike.data.registry import build_dataset, build_splits

NAN, INF = float("nan"), float("inf")
NOT_A_NUMBER = st.sampled_from([NAN, "0.5", "3", None, [1], (2,), {}, object(), 1 + 2j, b"1"])
NOT_AN_INT = st.one_of(
    st.sampled_from([True, False, np.True_, "3", None, [3], 2.0, NAN, INF, object()]),
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not float(v).is_integer()),
)
NOT_A_FLAG = st.sampled_from([0, 1, "yes", "no", "true", None, 1.0, [True], np.int64(1)])
NOT_A_NAME = st.one_of(st.sampled_from([None, 1, True, b"train", ["train"], "", "TRAIN", " train"]),
                       st.text(max_size=6).filter(lambda s: s not in ("train", "test", "val", "all")))


def _real(low=None, high=None):
    """Non-finite and non-numbers, plus finite numbers outside [low, high]."""
    out = [NOT_A_NUMBER, st.sampled_from([NAN, INF, -INF, True, False, np.True_])]
    if low is not None:
        out.append(st.floats(max_value=low, exclude_max=True, allow_nan=False, allow_infinity=False))
    if high is not None:
        out.append(st.floats(min_value=high, exclude_min=True, allow_nan=False, allow_infinity=False))
    return st.one_of(out)


def _int(low=None, high=None):
    out = [NOT_AN_INT]
    if low is not None:
        out.append(st.integers(max_value=low - 1))
    if high is not None:
        out.append(st.integers(min_value=high + 1))
    return st.one_of(out)


def _batch():
    return np.zeros((2, 3, 8, 8), np.uint8)


def _rng():
    return np.random.default_rng(0)


CASES = {
    # transforms
    "RandomCrop padding": (lambda v: T.RandomCrop(8, v), "padding", _int(low=0)),
    "RandomCrop size": (lambda v: T.RandomCrop(v, 1), "size", st.one_of(_int(low=1), st.just([8, 8, 8]))),
    "random_crop padding": (lambda v: T.random_crop(_batch(), 8, v, _rng()), "padding", _int(low=0)),
    "random_crop rng": (lambda v: T.random_crop(_batch(), 8, 1, v), "rng",
                        st.sampled_from([0, None, np.random.RandomState(0), "seed"])),
    "RandomHorizontalFlip p": (lambda v: T.RandomHorizontalFlip(v), "p", _real(0.0, 1.0)),
    "random_horizontal_flip p": (lambda v: T.random_horizontal_flip(_batch(), _rng(), v), "p", _real(0.0, 1.0)),
    "RandomRotation degrees": (lambda v: T.RandomRotation(v), "degrees",
                               st.one_of(_real(low=0.0), st.sampled_from([(NAN, 1.0), (5.0, 1.0), (1, "2"), (1,)]))),
    "random_rotation degrees": (lambda v: T.random_rotation(_batch(), v, _rng()), "degrees", _real(low=0.0)),
    "RandomRotation fill": (lambda v: T.RandomRotation(10, fill=v), "fill", _int(0, 255)),
    "RandomRotation interpolation": (lambda v: T.RandomRotation(10, interpolation=v), "interpolation", NOT_A_NAME),
    "rotate angles": (lambda v: T.rotate(_batch(), v), "angles",
                      st.sampled_from([NAN, INF, "15", None, [NAN, 1.0], [1.0, 2.0, 3.0], True])),
    "Normalize mean": (lambda v: T.Normalize((v, 0.5, 0.5), (0.2, 0.2, 0.2)), "mean", _real()),
    "Normalize std": (lambda v: T.Normalize((0.5, 0.5, 0.5), (0.2, v, 0.2)), "std", _real(low=0.0)),
    "normalize std": (lambda v: T.normalize(_batch(), (0.5,) * 3, (v, 0.2, 0.2)), "std", _real(low=0.0)),
    "preset name": (lambda v: T.preset(v, (0.5,) * 3, (0.2,) * 3), "name", NOT_A_NAME),
    "crop top": (lambda v: T.crop(_batch(), 4, v, np.zeros(2, np.int64)), "top",
                 st.sampled_from([np.array([0.5, 1.0]), np.array(["1", "2"]), np.zeros(3, np.int64), None])),
    # datasets and their helpers
    "Digits size": (lambda v: Digits(size=v), "size", _int(low=8)),
    "Digits channels": (lambda v: Digits(size=8, channels=v), "channels",
                        st.one_of(_int(1, 3), st.just(2))),
    "Digits split": (lambda v: Digits(v, size=8), "split", NOT_A_NAME),
    "Digits seed": (lambda v: Digits(size=8, seed=v), "seed", _int(low=0)),
    "Digits test_fraction": (lambda v: Digits(size=8, test_fraction=v), "test_fraction", _real(0.0, 1.0)),
    "upsample size": (lambda v: upsample(np.zeros((1, 8, 8)), v), "size", _int(low=1)),
    "stratified_split fraction": (lambda v: stratified_split(np.arange(10) % 2, v, 0), "fraction", _real(0.0, 1.0)),
    "ArrayDataset time_steps": (lambda v: ArrayDataset(np.zeros((2, 3, 1, 2, 2)), np.zeros(2, np.int64), "ab",
                                                       time_steps=v), "time_steps",
                                _int(low=1).filter(lambda v: v is not None)),  # None: static images
    "ArrayDataset std": (lambda v: ArrayDataset(np.zeros((2, 1, 2, 2)), np.zeros(2, np.int64), "ab",
                                                mean=(0.5,), std=(v,)), "std", _real(low=0.0)),
    "CIFAR10 val_fraction": (lambda v: CIFAR10("/nonexistent", val_fraction=v), "val_fraction", _real(0.0, 1.0)),
    "CIFAR10 split": (lambda v: CIFAR10("/nonexistent", v), "split",
                      NOT_A_NAME.filter(lambda v: v is not None)),  # None: the default, "train"
    "CIFAR10 seed": (lambda v: CIFAR10("/nonexistent", seed=v), "seed", _int(low=0)),
    "CIFAR10 download": (lambda v: CIFAR10("/nonexistent", download=v), "download", NOT_A_FLAG),
    "CIFAR10 train": (lambda v: CIFAR10("/nonexistent", train=v), "train",
                      NOT_A_FLAG.filter(lambda v: v is not None)),  # None: split decides
    "CIFAR10 root": (lambda v: CIFAR10(v), "root", st.sampled_from([3, 2.5, True, ["/tmp"], b"/tmp", object()])),
    "NMNIST T": (lambda v: NMNIST("/nonexistent", T=v), "T", _int(low=1)),
    "NMNIST split_by": (lambda v: NMNIST("/nonexistent", split_by=v), "split_by", NOT_A_NAME),
    "NMNIST dtype": (lambda v: NMNIST("/nonexistent", dtype=v), "dtype",
                     st.sampled_from(["float16", np.int8, "nonsense", 3, True, np.complex64])),
    "NMNIST use_cache": (lambda v: NMNIST("/nonexistent", use_cache=v), "use_cache", NOT_A_FLAG),
    "NMNIST on_decrease": (lambda v: NMNIST("/nonexistent", on_decrease=v), "on_decrease", NOT_A_NAME),
    "find_samples root": (lambda v: find_samples(v), "root", st.sampled_from([None, 3, 1.5, [".."], object()])),
    "find_samples split": (lambda v: find_samples("/nonexistent", v), "split", NOT_A_NAME),
    "decode_nmnist on_decrease": (lambda v: decode_nmnist(b"", on_decrease=v), "on_decrease", NOT_A_NAME),
    "parse_aedat2 special": (lambda v: parse_aedat2(b"#!AER-DAT2.0\r\n", special=v), "special", NOT_A_NAME),
    "cached_arrays use_cache": (lambda v: cached_arrays({"a": 1}, dict, use_cache=v), "use_cache", NOT_A_FLAG),
    "FrameCache params": (lambda v: FrameCache("/nonexistent").path_for({"a": v}), "params.a",
                          st.sampled_from([NAN, INF, np.float32(1.0), object(), {1: 2}])),
    # downloads and the registry
    "download_url timeout": (lambda v: download_url("file:///x", "/nonexistent/x", "0" * 32, timeout=v),
                             "timeout", _real(low=0.0)),
    "download_url expected_size": (lambda v: download_url("file:///x", "/nonexistent/x", "0" * 32, v),
                                   "expected_size", st.one_of(_int(low=0).filter(lambda v: v is not None))),
    "download_url md5": (lambda v: download_url("file:///x", "/nonexistent/x", v), "md5",
                         st.sampled_from([None, 5, "abc", "g" * 32, "0" * 31])),
    "build_dataset time_steps": (lambda v: build_dataset("cifar10-dvs", "train", None, v), "time_steps",
                                 _int(low=1).filter(lambda v: v is not None)),  # None: the default T
    "build_dataset split": (lambda v: build_dataset("digits", v), "split", NOT_A_NAME),
    "build_dataset download": (lambda v: build_dataset("cifar10", "train", "/nonexistent/c", download=v),
                               "download", NOT_A_FLAG),
    "build_dataset data_dir": (lambda v: build_dataset("nmnist", "train", v), "data_dir",
                               st.sampled_from([3, 2.5, True, ["/tmp"], object()])),
    "build_splits val_fraction": (lambda v: build_splits("digits", val_fraction=v), "val_fraction", _real(0.0, 1.0)),
    "digits-dvs size": (lambda v: build_dataset("digits-dvs", size=v), "size", _int(low=8)),
}


@pytest.mark.parametrize("case", sorted(CASES))
@settings(max_examples=8, deadline=None)
@given(data=st.data())
def test_bad_scalar_argument(case, data):
    call, name, values = CASES[case]
    value = data.draw(values, label=name)
    assert_clear(case, lambda: call(value), [name], value)


def test_the_calls_above_accept_good_values(tmp_path):
    """The table's calls fail because of the bad value alone: with a good one they run."""
    batch, rng = _batch(), _rng()
    assert T.RandomCrop(8, 2)(batch, rng).shape == batch.shape
    assert T.random_horizontal_flip(batch, rng, np.float32(0.5)).shape == batch.shape
    assert T.RandomRotation((-5, 5.0), fill=np.uint8(3))(batch, rng).shape == batch.shape
    assert T.rotate(batch, np.array([1, 2])).shape == batch.shape
    out = T.Normalize(np.array([0.5, 0.5, 0.5]), (0.2, 0.2, np.float64(0.2)))(batch)
    assert out.dtype == np.float32 and math.isclose(float(out[0, 0, 0, 0]), -2.5, rel_tol=1e-6)
    assert T.crop(batch, 4, np.array([0, 1]), np.zeros(2, np.int64)).shape == (2, 3, 4, 4)
    assert len(Digits("test", size=8, channels=np.int64(1), seed=np.int64(1))) == 360
    keep, held = stratified_split(np.arange(10) % 2, np.float32(0.5), 0)
    assert len(held) == 5 and len(keep) == 5
    assert ArrayDataset(np.zeros((2, 3, 1, 2, 2)), np.zeros(2, np.int64), "ab", time_steps=np.int64(3)).time_steps == 3
    assert decode_nmnist(b"", on_decrease="keep").size == 0
