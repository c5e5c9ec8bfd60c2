"""Events -> frames: the split rules of REFERENCE.md §9, polarity channels, binning, validation."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinyspike.data.events import (
    EVENT_DTYPE, check_events, frame_slices, make_events, output_size, resize_coordinates,
    to_frames,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
BIGGEST = SHARED / "dvs128" / "cam289_right_clamp_test1.aedat"


def _naive_frames(events, T, H, W, split_by):
    """A plain loop over events: the definition, written as directly as possible."""
    n = len(events)
    out = np.zeros((T, 2, H, W), dtype=np.int64)
    if split_by == "number":
        d = n // T
        for k, e in enumerate(events):
            i = min(k // d, T - 1) if d else T - 1
            out[i, e["p"], e["y"], e["x"]] += 1
    elif n:  # (no events: all frames stay empty)
        t0, t1 = int(events["t"].min()), int(events["t"].max())
        for e in events:
            i = 0 if t1 == t0 else min((int(e["t"]) - t0) * T // (t1 - t0), T - 1)
            out[i, e["p"], e["y"], e["x"]] += 1
    return out


def test_hand_built_example_by_number():
    # 7 events, T = 3: d = 2, frames take events [0,2), [2,4) and the last one [4,7).
    ev = make_events(
        t=[0, 1, 2, 3, 4, 5, 6],
        x=[0, 1, 2, 0, 1, 2, 2],
        y=[0, 0, 1, 1, 2, 2, 2],
        p=[1, 0, 1, 1, 0, 0, 0],
    )
    f = to_frames(ev, 3, (3, 3), "number")
    assert f.shape == (3, 2, 3, 3) and f.dtype == np.float32
    expect = np.zeros((3, 2, 3, 3))
    expect[0, 1, 0, 0] = 1  # ON at (x=0, y=0)
    expect[0, 0, 0, 1] = 1  # OFF at (x=1, y=0): channel 0 = OFF
    expect[1, 1, 1, 2] = 1
    expect[1, 1, 1, 0] = 1
    expect[2, 0, 2, 1] = 1
    expect[2, 0, 2, 2] = 2  # the remainder: two events on one pixel are counted, not binarised
    np.testing.assert_array_equal(f, expect)
    assert f.reshape(3, -1).sum(1).tolist() == [2, 2, 3]


def test_hand_built_example_by_time():
    ev = make_events(t=[100, 110, 120, 130, 140], x=[0] * 5, y=[0] * 5, p=[1, 1, 0, 0, 1])
    f = to_frames(ev, 2, (1, 1), "time")
    # window = 20 µs: t - t0 in {0, 10} -> frame 0; {20, 30, 40} -> frame 1 (t_last in the last).
    assert f[:, :, 0, 0].tolist() == [[0, 2], [2, 1]]
    assert frame_slices(ev, 2, "time").tolist() == [0, 0, 1, 1, 1]


def test_fewer_events_than_frames_go_to_the_last_frame():
    ev = make_events(t=[0, 1], x=[0, 1], y=[0, 0], p=[0, 1])
    f = to_frames(ev, 5, (1, 2))
    assert f[:4].sum() == 0 and f[4].sum() == 2


def test_empty_stream_gives_zero_frames():
    ev = make_events([], [], [], [])
    assert ev.dtype == EVENT_DTYPE and ev.shape == (0,)
    for split_by in ("number", "time"):
        f = to_frames(ev, 4, (5, 6), split_by)
        assert f.shape == (4, 2, 5, 6) and f.sum() == 0


def test_all_events_at_one_instant_by_time():
    ev = make_events(t=[7, 7, 7], x=[0, 1, 2], y=[0, 0, 0], p=[1, 1, 0])
    f = to_frames(ev, 3, (1, 3), "time")
    assert f[0].sum() == 3 and f[1:].sum() == 0


events_strategy = st.integers(0, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 10**6), min_size=n, max_size=n),
        st.lists(st.integers(0, 6), min_size=n, max_size=n),
        st.lists(st.integers(0, 4), min_size=n, max_size=n),
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
    )
)


@settings(max_examples=60, deadline=None)
@given(cols=events_strategy, T=st.integers(1, 7), split_by=st.sampled_from(["number", "time"]))
def test_frames_equal_the_naive_definition(cols, T, split_by):
    t, x, y, p = cols
    ev = make_events(np.sort(np.asarray(t, dtype=np.int64)), np.asarray(x, dtype=np.int64),
                     np.asarray(y, dtype=np.int64), np.asarray(p, dtype=np.int64))
    f = to_frames(ev, T, (5, 7), split_by, dtype=np.int64)
    np.testing.assert_array_equal(f, _naive_frames(ev, T, 5, 7, split_by))
    assert f.sum() == len(ev)
    assert f[:, 1].sum() == int(np.sum(p)) and f[:, 0].sum() == len(ev) - int(np.sum(p))


def _spikingjelly_time_windows(t, T):
    """SpikingJelly's index slices [j_l, j_r) for split_by="time", as its docstring defines them:
    dt = (t[-1] - t[0]) // T; j_l = min k with t_k >= t_0 + dt*j; j_r = (max k with
    t_k < t_0 + dt*(j+1)) + 1, and N for the last frame. (Its code finds them with a mask of
    each window and raises an IndexError where a window is empty; the formula still holds.)"""
    n, dt = len(t), (int(t[-1]) - int(t[0])) // T
    bounds = []
    for j in range(T):
        lo, hi = int(t[0]) + dt * j, int(t[0]) + dt * (j + 1)
        j_l = min([k for k in range(n) if t[k] >= lo], default=n)
        j_r = n if j == T - 1 else max([k for k in range(n) if t[k] < hi], default=-1) + 1
        bounds.append((j_l, max(j_l, j_r)))
    return bounds


@settings(max_examples=60, deadline=None)
@given(cols=events_strategy.filter(lambda c: len(c[0]) > 0), T=st.integers(1, 7))
def test_spikingjelly_time_rule_equals_its_index_slices(cols, T):
    t, x, y, p = cols
    t = np.sort(np.asarray(t, dtype=np.int64))
    ev = make_events(t, np.asarray(x, dtype=np.int64), np.asarray(y, dtype=np.int64),
                     np.asarray(p, dtype=np.int64))
    if t[-1] - t[0] < T:  # windows of 0 µs: SpikingJelly fails, and so does tinyspike, clearly
        with pytest.raises(ValueError, match=r"rec\.aedat: split_by='time_spikingjelly' needs events spanning"):
            to_frames(ev, T, (5, 7), "time_spikingjelly", source="rec.aedat")
        return
    expect = np.zeros((T, 2, 5, 7), dtype=np.int64)
    for j, (j_l, j_r) in enumerate(_spikingjelly_time_windows(t, T)):
        for e in ev[j_l:j_r]:
            expect[j, e["p"], e["y"], e["x"]] += 1
    np.testing.assert_array_equal(to_frames(ev, T, (5, 7), "time_spikingjelly", dtype=np.int64), expect)


def test_the_two_time_rules_differ_by_the_remainder():
    # span 10 µs, T = 3: tinyspike's edges at 3.33 and 6.67 µs, SpikingJelly's (width 10 // 3 = 3)
    # at 3 and 6, the last frame 4 µs long.
    ev = make_events(t=[0, 3, 4, 6, 7, 10], x=[0] * 6, y=[0] * 6, p=[1] * 6)
    assert frame_slices(ev, 3, "time").tolist() == [0, 0, 1, 1, 2, 2]
    assert frame_slices(ev, 3, "time_spikingjelly").tolist() == [0, 1, 1, 2, 2, 2]


def test_binning_to_half_size_pools_two_by_two_blocks():
    rng = np.random.default_rng(0)
    n = 5000
    ev = make_events(np.arange(n), rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n))
    full = to_frames(ev, 4, (128, 128))
    half = to_frames(ev, 4, (128, 128), size=64)
    np.testing.assert_array_equal(half, full.reshape(4, 2, 64, 2, 64, 2).sum(axis=(3, 5)))
    third = to_frames(ev, 4, (128, 128), size=48)
    assert third.shape == (4, 2, 48, 48) and third.sum() == n
    assert output_size((128, 128), 48) == (48, 48)
    moved = resize_coordinates(ev, (128, 128), (64, 32))
    assert moved["x"].max() < 32 and moved["y"].max() < 64
    np.testing.assert_array_equal(moved["t"], ev["t"])
    with pytest.raises(ValueError, match="size"):
        to_frames(ev, 4, (128, 128), size=256)


def test_events_outside_the_sensor_raise_naming_the_source():
    ev = make_events(t=[0, 1], x=[3, 34], y=[0, 0], p=[0, 1])
    with pytest.raises(ValueError, match=r"sample\.bin.*outside the 34x34 sensor"):
        to_frames(ev, 2, (34, 34), source="sample.bin")
    with pytest.raises(ValueError, match="outside"):
        check_events(make_events([0], [0], [40], [0]), (34, 34))


def test_make_events_validates_columns():
    with pytest.raises(TypeError, match="t must be an integer array"):
        make_events(t=[0.5], x=[0], y=[0], p=[0])
    with pytest.raises(ValueError, match="equal lengths"):
        make_events(t=[0, 1], x=[0], y=[0], p=[0])
    with pytest.raises(ValueError, match=r"x must lie in \[0, 65535\]"):
        make_events(t=[0], x=[-1], y=[0], p=[0])
    with pytest.raises(ValueError, match=r"p must lie in \[0, 1\]"):
        make_events(t=[0], x=[0], y=[0], p=[2])
    ev = make_events(t=[5], x=[1], y=[2], p=np.array([True]))
    assert ev.dtype == EVENT_DTYPE and ev["p"][0] == 1
    with pytest.raises(ValueError, match="outside"):
        make_events(t=[0], x=[9], y=[0], p=[0], sensor_size=(4, 4))


def test_bad_arguments():
    ev = make_events([0], [0], [0], [0])
    with pytest.raises(ValueError, match=r"to_frames: T must be an int >= 1, got 0"):
        to_frames(ev, 0, (2, 2))
    with pytest.raises(TypeError, match=r"to_frames: T must be an int, got float 2\.0"):
        to_frames(ev, 2.0, (2, 2))
    with pytest.raises(ValueError, match="split_by"):
        to_frames(ev, 2, (2, 2), "count")
    with pytest.raises(ValueError, match="sensor_size"):
        to_frames(ev, 2, (2,))
    with pytest.raises(TypeError, match="EVENT_DTYPE"):
        to_frames(np.zeros(3), 2, (2, 2))
    with pytest.raises(TypeError, match="dtype"):
        to_frames(ev, 2, (2, 2), dtype=np.float16)


def test_a_dtype_that_would_overflow_is_refused():
    n = 300
    ev = make_events(np.arange(n), np.zeros(n, int), np.zeros(n, int), np.ones(n, int))
    with pytest.raises(ValueError, match="uint8"):
        to_frames(ev, 1, (1, 1), dtype=np.uint8)
    assert to_frames(ev, 1, (1, 1), dtype=np.uint16)[0, 1, 0, 0] == n


@pytest.mark.skipif(not BIGGEST.is_file(), reason=f"real DVS128 recording not found at {BIGGEST}")
def test_real_recording_frames_by_number_and_time():
    from tinyspike.data.aedat import read_aedat2

    ev = read_aedat2(BIGGEST)
    n = len(ev)
    f = to_frames(ev, 10, (128, 128))
    per_frame = f.reshape(10, -1).sum(1)
    assert per_frame[:9].tolist() == [n // 10] * 9 and per_frame[9] == n - 9 * (n // 10)
    assert f[:, 1].sum() == ev["p"].sum()
    g = to_frames(ev, 10, (128, 128), "time")
    assert g.sum() == n


# ---- to_frames against a per-event reference (the fast path counts contiguous slices) ----

FRAME_DTYPE_LIMITS = {  # the largest count each output dtype holds exactly
    "float32": 2**24, "float64": 2**53, "uint8": 255, "uint16": 65535, "int16": 32767,
    "uint32": 2**32 - 1, "int32": 2**31 - 1, "int64": 2**63 - 1,
}


def _reference_frame_of(k, t, n, T, split_by):
    """Event k's frame, straight from the module docstring's rules, in Python ints."""
    if split_by == "number":
        d = n // T
        return T - 1 if d == 0 else min(k // d, T - 1)
    t0, t1 = min(t), max(t)
    if split_by == "time":
        return 0 if t1 == t0 else min((t[k] - t0) * T // (t1 - t0), T - 1)
    return min((t[k] - t0) // ((t1 - t0) // T), T - 1)  # "time_spikingjelly"


def _reference_counts(events, T, sensor, target, split_by):
    """int64 [T, 2, Ht, Wt] counts, one event at a time in stream order."""
    (H, W), (Ht, Wt) = sensor, target
    t = [int(v) for v in events["t"]]
    out = np.zeros((T, 2, Ht, Wt), dtype=np.int64)
    for k, e in enumerate(events):
        i = _reference_frame_of(k, t, len(t), T, split_by)
        out[i, int(e["p"]), int(e["y"]) * Ht // H, int(e["x"]) * Wt // W] += 1
    return out


@st.composite
def event_streams(draw):
    """Up to 2,000 events on a small sensor (a quarter of them 1 or 2 pixels), with time spans
    that put many events on window edges (a few µs) or none (one instant), sorted by time or
    not. Events are drawn with NumPy from a drawn seed: lists of 2,000 would be slow to draw."""
    n = draw(st.integers(0, 2000) | st.integers(1500, 2000))
    any_sensor = st.tuples(st.integers(1, 40), st.integers(1, 40))
    H, W = draw(st.one_of(any_sensor, any_sensor, any_sensor, st.sampled_from([(1, 1), (1, 2)])))
    span = draw(st.sampled_from([0, 1, 5, 11, 60, 10**6, 2**40]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    t = draw(st.integers(-(2**40), 2**40)) + rng.integers(0, span + 1, n)
    if draw(st.booleans()):
        t = np.sort(t)
    events = make_events(t, rng.integers(0, W, n), rng.integers(0, H, n), rng.integers(0, 2, n))
    return events, (H, W)


@settings(max_examples=150, deadline=None)
@given(stream=event_streams(), T=st.integers(1, 12),
       split_by=st.sampled_from(["number", "time", "time_spikingjelly"]),
       shrink=st.tuples(st.integers(1, 40), st.integers(1, 40)) | st.none(),
       dtype=st.sampled_from(sorted(FRAME_DTYPE_LIMITS)))
def test_to_frames_equals_a_per_event_count(stream, T, split_by, shrink, dtype):
    events, (H, W) = stream
    target = (H, W) if shrink is None else (min(shrink[0], H), min(shrink[1], W))
    size = None if shrink is None else target
    call = lambda: to_frames(events, T, (H, W), split_by, size=size, dtype=dtype, source="rec")
    if split_by == "time_spikingjelly" and len(events) and np.ptp(events["t"]) < T:
        with pytest.raises(ValueError, match="rec: split_by='time_spikingjelly' needs events spanning"):
            call()
        return
    expect = _reference_counts(events, T, (H, W), target, split_by)
    if expect.max(initial=0) > FRAME_DTYPE_LIMITS[dtype]:
        with pytest.raises(ValueError, match=f"rec: a pixel collected {expect.max()} events in one frame"):
            call()
        return
    frames = call()
    assert frames.dtype == np.dtype(dtype) and frames.shape == (T, 2, *target)
    np.testing.assert_array_equal(frames, expect)  # exact: counts are integers in every dtype


def test_a_stream_out_of_time_order_counts_as_the_sorted_one_by_time():
    # The time rules depend on t alone; "number" depends on stream order.
    rng = np.random.default_rng(3)
    n = 1000
    events = make_events(rng.integers(0, 500, n), rng.integers(0, 8, n), rng.integers(0, 8, n),
                         rng.integers(0, 2, n))
    in_order = events[np.argsort(events["t"], kind="stable")]
    for split_by in ("time", "time_spikingjelly"):
        np.testing.assert_array_equal(to_frames(events, 7, (8, 8), split_by),
                                      to_frames(in_order, 7, (8, 8), split_by))
    assert not np.array_equal(to_frames(events, 7, (8, 8)), to_frames(in_order, 7, (8, 8)))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 1200), T=st.integers(1, 4), on=st.floats(0, 1),
       dtype=st.sampled_from(["uint8", "int16"]))
def test_a_count_beyond_the_dtype_is_refused_exactly_when_one_occurs(n, T, on, dtype):
    # One pixel: frame i's count is its number of events of each polarity, so counts cross
    # 255 (uint8) for some draws and not others; int16 (32767) never overflows here.
    p = (np.arange(n) < round(on * n)).astype(np.int64)
    events = make_events(np.arange(n), np.zeros(n, np.int64), np.zeros(n, np.int64), p)
    expect = _reference_counts(events, T, (1, 1), (1, 1), "number")
    if expect.max(initial=0) > FRAME_DTYPE_LIMITS[dtype]:
        message = f"a pixel collected {expect.max()} events in one frame, more than dtype {dtype}"
        with pytest.raises(ValueError, match=message):
            to_frames(events, T, (1, 1), dtype=dtype)
    else:
        np.testing.assert_array_equal(to_frames(events, T, (1, 1), dtype=dtype), expect)


@pytest.mark.skipif(not BIGGEST.is_file(), reason=f"real DVS128 recording not found at {BIGGEST}")
def test_real_recording_equals_counting_each_event_at_its_frame_slice():
    from tinyspike.data.aedat import read_aedat2

    ev = read_aedat2(BIGGEST)
    for split_by in ("number", "time", "time_spikingjelly"):
        for size in (None, 48):
            Ht = 128 if size is None else size
            expect = np.zeros((10, 2, Ht, Ht), dtype=np.int64)
            np.add.at(expect, (frame_slices(ev, 10, split_by), ev["p"],
                               ev["y"].astype(np.int64) * Ht // 128, ev["x"].astype(np.int64) * Ht // 128), 1)
            np.testing.assert_array_equal(to_frames(ev, 10, (128, 128), split_by, size=size, dtype=np.int32),
                                          expect)
