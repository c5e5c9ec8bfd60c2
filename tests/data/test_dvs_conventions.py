"""CIFAR10-DVS conventions against independent implementations of their definitions.

Every reference below is written from the convention's definition (tinyspike/data/cifar10_dvs.py's
docstring, checked against jAER's DVS128 extractor and SpikingJelly's source of Sep 2020 and
today), decoding the AEDAT bytes itself and slicing frames the way SpikingJelly's docstring
states its rules; none of it calls tinyspike's readers or frame helpers. The maths is integer,
so every comparison is exact.
"""

import math
import os
from pathlib import Path

import numpy as np
import pytest

from tinyspike.data.cache import FrameCache, file_fingerprints
from tinyspike.data.cifar10_dvs import CIFAR10DVS, CLASSES, CONVENTIONS, find_recordings, split_of

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
DVS128 = SHARED / "dvs128"
REAL = sorted(DVS128.glob("*.aedat")) if DVS128.is_dir() else []
needs_real = pytest.mark.skipif(not REAL, reason=f"real DVS128 recordings not found in {DVS128}")

# Per class: two recordings in each split of every rule (numeric: 900+ test; sorted: 91-99 and
# 909-999 test; tebn: 0-99 test).
INDICES = (5, 95, 905, 950)


# ----------------------------------------------------------------------------- references

def _decode_aedat2(path):
    """(t, x, y, raw polarity bit) of a DVS128 AEDAT 2.0 file: '#' header lines, then big-endian
    uint32 (address, timestamp) pairs; x = bits 1-7, y = bits 8-14, polarity = bit 0."""
    data = Path(path).read_bytes()
    start = 0
    while data[start:start + 1] == b"#":
        start = data.index(b"\n", start) + 1
    words = np.frombuffer(data[start:], dtype=">u4").astype(np.int64)
    addr, t = words[0::2], words[1::2]
    return t, (addr >> 1) & 0x7F, (addr >> 8) & 0x7F, addr & 1


def _orient(x, y, bit, orientation):
    """The orientations as the docstring defines them (jAER: raw bit 0 = ON, mirrored x)."""
    if orientation == "sensor":
        return x, y, bit
    if orientation == "jaer":
        return 127 - x, y, 1 - bit
    assert orientation == "spikingjelly"
    return 127 - y, 127 - x, 1 - bit


def _slices(t, T, rule):
    """[(j_l, j_r)] per frame: SpikingJelly's documented index slices, or tinyspike's exact ones."""
    n = len(t)
    if rule == "number":  # j_l = (N // T) * j, j_r = j_l + N // T, the last frame ends at N
        d = n // T
        return [(d * j, n if j == T - 1 else d * (j + 1)) for j in range(T)]
    if rule == "time_spikingjelly":  # dt = (t_last - t_0) // T; [t_0 + dt*j, t_0 + dt*(j+1))
        dt = (t[-1] - t[0]) // T
        lo = [np.searchsorted(t, t[0] + dt * j, "left") for j in range(T)]
        hi = [np.searchsorted(t, t[0] + dt * (j + 1), "left") for j in range(T - 1)] + [n]
        return list(zip(lo, hi))
    assert rule == "time"  # edges at t_0 + j * span / T exactly: compare (t - t_0) * T with j * span
    span = t[-1] - t[0]
    scaled = (t - t[0]) * T
    edges = [np.searchsorted(scaled, j * span, "left") for j in range(T)] + [n]
    return list(zip(edges[:-1], edges[1:]))


def _reference_frames(path, T, orientation, rule):
    t, x, y, bit = _decode_aedat2(path)
    x, y, p = _orient(x, y, bit, orientation)
    frames = np.zeros((T, 2, 128, 128), dtype=np.int64)
    for j, (j_l, j_r) in enumerate(_slices(t, T, rule)):
        np.add.at(frames[j], (p[j_l:j_r], y[j_l:j_r], x[j_l:j_r]), 1)
    return frames


def _reference_split(root, split, rule):
    """(class label, index, path) of a split, chosen as each pipeline chooses it."""
    rows = []
    for label, cls in enumerate(CLASSES):
        names = sorted(os.listdir(root / cls))
        index = {name: int(name[len(f"cifar10_{cls}_"):-len(".aedat")]) for name in names}
        if rule == "numeric":
            test = [n for n in names if index[n] >= 900]
        elif rule == "tebn":
            test = [n for n in names if index[n] < 100]
        else:  # the last 100 of the class's 1,000 names in string order
            every_name = sorted(f"cifar10_{cls}_{i}.aedat" for i in range(1000))
            test = [n for n in names if n in every_name[900:]]
        chosen = test if split == "test" else [n for n in names if n not in test]
        rows += sorted((label, index[n], root / cls / n) for n in chosen)
    return rows


# ----------------------------------------------------------------------------- fake folders

def _link_real_recordings(root):
    """root/<class>/cifar10_<class>_<i>.aedat as links to the real DVS128 recordings, in turn."""
    k = 0
    for cls in CLASSES:
        (root / cls).mkdir(parents=True)
        for i in INDICES:
            (root / cls / f"cifar10_{cls}_{i}.aedat").symlink_to(REAL[k % len(REAL)])
            k += 1
    return root


@pytest.fixture(scope="module")
def real_folder(tmp_path_factory):
    return _link_real_recordings(tmp_path_factory.mktemp("c10dvs-real"))


@needs_real
@pytest.mark.parametrize("name", sorted(CONVENTIONS))
def test_each_convention_equals_its_definition_on_real_recordings(real_folder, name):
    conv = CONVENTIONS[name]
    reference = {}
    for split in ("train", "test"):
        rows = _reference_split(real_folder, split, conv.split)
        for split_by, rule in (("number", "number"), ("time", conv.time_rule)):
            ds = CIFAR10DVS(real_folder, split, T=10, split_by=split_by, convention=name,
                            use_cache=False, progress=False)
            assert ds.labels.tolist() == [r[0] for r in rows]
            assert ds.indices.tolist() == [r[1] for r in rows]
            assert list(ds.files) == [r[2] for r in rows]
            for path, frames in zip(ds.files, ds.inputs):
                key = (path.resolve(), rule)
                if key not in reference:
                    reference[key] = _reference_frames(path, 10, conv.orientation, rule)
                np.testing.assert_array_equal(frames, reference[key], err_msg=f"{name} {path.name} {rule}")


@needs_real
def test_channels_say_which_polarity_is_on(real_folder):
    # jAER reads raw bit 0 as ON: channel 1 of every swapping convention counts raw-0 events.
    path = real_folder / "cat" / "cifar10_cat_950.aedat"
    _, _, _, bit = _decode_aedat2(path)
    for name, conv in CONVENTIONS.items():
        ds = CIFAR10DVS(real_folder, "all", T=2, convention=name, use_cache=False, progress=False)
        frames = ds.inputs[ds.files.index(path)]
        on = conv.channels.index("ON")
        assert ds.channel_names == conv.channels
        assert frames[:, on].sum() == np.count_nonzero(bit == 0), name
    assert CONVENTIONS["tinyspike"].channels == ("ON", "OFF")
    assert CONVENTIONS["plif2020"].channels == CONVENTIONS["spikingjelly"].channels == ("OFF", "ON")


@needs_real
def test_the_frame_cache_key_holds_the_convention(real_folder, tmp_path):
    cache = tmp_path / "cache"
    # An entry as the loader before conventions keyed it (orientation, no convention), holding
    # frames of the old default: the new default must not be served them.
    paths, labels, _ = find_recordings(real_folder, "test")
    old_params = {
        "dataset": "cifar10_dvs", "split": "test", "T": 3, "split_by": "number",
        "sensor_size": [128, 128], "size": [128, 128], "dtype": np.dtype(np.uint16).str,
        "orientation": "sensor", "special": "error", "on_decrease": "error",
        "files": file_fingerprints(paths, real_folder),
    }
    stale = np.stack([_reference_frames(p, 3, "sensor", "number") for p in paths]).astype(np.uint16)
    FrameCache(cache).save(old_params, {"frames": stale})
    built = {}
    for name in ("plif2020", "tinyspike", "spikingjelly"):
        ds = CIFAR10DVS(real_folder, "test", T=3, convention=name, cache_dir=cache, progress=False)
        conv = CONVENTIONS[name]
        expect = np.stack([_reference_frames(p, 3, conv.orientation, "number") for p in ds.files])
        np.testing.assert_array_equal(ds.inputs, expect, err_msg=name)
        built[name] = ds.inputs
    assert len(list(cache.glob("*.npz"))) == 4  # the stale entry and one per convention
    assert not np.array_equal(built["plif2020"], built["tinyspike"])
    again = CIFAR10DVS(real_folder, "test", T=3, cache_dir=cache, progress=False)  # a hit, same frames
    np.testing.assert_array_equal(again.inputs, built["plif2020"])
    assert len(list(cache.glob("*.npz"))) == 4


# ----------------------------------------------------------------------------- splits

def test_splits_on_a_full_layout_of_names(tmp_path):
    empty = tmp_path / "empty"
    empty.touch()
    for cls in CLASSES:
        (tmp_path / cls).mkdir()
        for i in range(1000):  # no events needed to split; hard links are quick to make
            os.link(empty, tmp_path / cls / f"cifar10_{cls}_{i}.aedat")
    expected_test = {
        "numeric": set(range(900, 1000)),
        "sorted": set(range(91, 100)) | set(range(909, 1000)),
        "tebn": set(range(100)),
    }
    for rule, test_set in expected_test.items():
        for split in ("train", "test"):
            paths, labels, indices = find_recordings(tmp_path, split, rule)
            rows = _reference_split(tmp_path, split, rule)
            assert list(paths) == [r[2] for r in rows]
            assert labels.tolist() == [r[0] for r in rows] and indices.tolist() == [r[1] for r in rows]
            if rule == "sorted":  # on the full dataset, what SpikingJelly does: files in string
                # order (its DatasetFolder), then split_to_train_test_set(0.9): ceil(0.9 n) train
                for label, cls in enumerate(CLASSES):
                    names = sorted(os.listdir(tmp_path / cls))
                    cut = math.ceil(0.9 * len(names))
                    chosen = names[cut:] if split == "test" else names[:cut]
                    assert sorted(p.name for p in np.asarray(paths)[labels == label]) == sorted(chosen)
            per_class = set(indices[labels == 3].tolist())
            assert per_class == (test_set if split == "test" else set(range(1000)) - test_set), rule
            assert len(paths) == (1000 if split == "test" else 9000)
        assert {i for i in range(1000) if split_of(i, rule) == "test"} == test_set


def test_each_convention_names_a_known_split_orientation_and_time_rule():
    assert CONVENTIONS["plif2020"] == CONVENTIONS[CIFAR10DVS.__init__.__kwdefaults__["convention"]]
    assert (CONVENTIONS["plif2020"].orientation, CONVENTIONS["plif2020"].split) == ("jaer", "numeric")
    assert (CONVENTIONS["spikingjelly"].orientation, CONVENTIONS["spikingjelly"].split) == ("spikingjelly", "sorted")
    assert CONVENTIONS["tinyspike"].time_rule == "time"
    assert {c.time_rule for n, c in CONVENTIONS.items() if n != "tinyspike"} == {"time_spikingjelly"}


# ----------------------------------------------------------------------------- emulator, CLI

def test_emulated_recordings_keep_on_in_channel_1(tmp_path):
    from tinyspike.data.emulator import EmulatorConfig, emulate, make_cifar10_dvs_folder
    from tinyspike.data.events import make_events, to_frames

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (10, 32, 32), dtype=np.uint8)
    cfg = EmulatorConfig(sensor_size=(128, 128), duration_us=40_000, step_us=4_000, amplitude=3.0)
    make_cifar10_dvs_folder(images, np.arange(10), tmp_path, config=cfg, indices=[950] * 10)
    streams = emulate(images, cfg, rng=0)
    ds = CIFAR10DVS(tmp_path, "test", T=4, use_cache=False, progress=False)  # plif2020: x mirrored
    for frames, ev in zip(ds.inputs, streams):
        mirrored = make_events(ev["t"], 127 - ev["x"].astype(np.int64), ev["y"], ev["p"])
        np.testing.assert_array_equal(frames, to_frames(mirrored, 4, (128, 128)))
        assert frames[:, 1].sum() == ev["p"].sum() > 0  # the emulator's ON events, in channel 1


def test_convention_through_the_registry_and_the_command_line(tmp_path, capsys):
    from tinyspike.cli import build_parser, main, parse_options
    from tinyspike.data.aedat import write_aedat2
    from tinyspike.data.events import make_events
    from tinyspike.data.registry import build_splits

    rng = np.random.default_rng(0)
    for cls in CLASSES:
        for i in (1, 95, 950):
            n = 200
            write_aedat2(tmp_path / cls / f"cifar10_{cls}_{i}.aedat", make_events(
                np.sort(rng.integers(0, 10**6, n)), rng.integers(0, 128, n), rng.integers(0, 128, n),
                rng.integers(0, 2, n)))
    args = build_parser().parse_args(["train", "--dataset", "cifar10-dvs", "--data-dir", str(tmp_path),
                                      "--data-opt", "convention=spikingjelly"])
    options = parse_options(args.data_opt, "--data-opt")
    assert options == {"convention": "spikingjelly"}
    train, test, _ = build_splits("cifar10-dvs", tmp_path, 2, use_cache=False, progress=False, **options)
    assert train.convention.name == test.convention.name == "spikingjelly"
    assert sorted(set(test.indices.tolist())) == [95, 950] and sorted(set(train.indices.tolist())) == [1]
    default, _, _ = build_splits("cifar10-dvs", tmp_path, 2, use_cache=False, progress=False)
    assert default.convention.name == "plif2020" and sorted(set(default.indices.tolist())) == [1, 95]

    rc = main(["train", "--dataset", "cifar10-dvs", "--data-dir", str(tmp_path), "--data-opt",
               "convention=upright", "--out", str(tmp_path / "run"), "--no-progress"])
    out = capsys.readouterr()
    assert rc == 2 and "convention must be one of" in out.err + out.out
