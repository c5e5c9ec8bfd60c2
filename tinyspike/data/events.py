"""Address events, the raw output of an event camera, and how they become frames.

A dynamic vision sensor (DVS) has no frames: each pixel reports, on its own, the moment its
log-brightness changed by more than a threshold. One such report is an *event*
``(t, x, y, p)``: time in microseconds, the pixel's column and row, and the polarity bit, which
says whether the pixel got brighter (ON) or darker (OFF). A recording is a time-ordered array of
events, stored here as one NumPy structured array with ``EVENT_DTYPE`` so that ``events["x"]``
etc. are plain columns.

Polarity. ``p`` holds the polarity *bit as the source defines it*, and sources disagree on which
value is ON, so every loader says which it gives:

- N-MNIST (``nmnist``): p = 1 is ON (its format: "bit 23: 0 for OFF, 1 for ON").
- the emulator (``emulator.emulate``): p = 1 is ON (``L > ref``: brighter).
- DVS128 AEDAT 2.0 (``aedat.read_aedat2``): p is the raw address bit 0, and **p = 1 is OFF**:
  jAER's DVS128 extractor reads raw 0 as ON and raw 1 as OFF.
- CIFAR10-DVS (``CIFAR10DVS``): p = 1 is ON in every named convention but ``"tinyspike"``; they
  swap the raw bit (``p' = 1 - p``) as jAER does.

A spiking network that runs in T steps wants ``T`` frames instead. ``to_frames`` counts the
events of each time slice into a ``[T, 2, H, W]`` array in which **channel c counts the events
with p == c**: channel 1 is ON and channel 0 is OFF for every source above whose p = 1 is ON
(REFERENCE.md §9), and the other way round for raw DVS128 events. The split rules
(``split_by``):

- ``"number"`` (the MS-ResNet/PLIF choice): with N events and ``d = N // T``, frame i takes
  events ``[i*d, (i+1)*d)`` in stream order and the last frame also takes the ``N - T*d`` left
  over. Every frame sees about the same amount of activity, however fast the scene moved. This is
  SpikingJelly's rule too, old and new.
- ``"time"`` (tinyspike's rule): T equal windows over ``[t_first, t_last]``, edges at exact
  fractions of the span; an event at time t goes to frame
  ``floor((t - t_first) * T / (t_last - t_first))``, the one at ``t_last`` to frame T-1.
- ``"time_spikingjelly"`` (SpikingJelly's rule, 2020 and today): windows of a whole number of
  microseconds ``w = (t_last - t_first) // T`` starting at ``t_first``; frame
  ``min((t - t_first) // w, T - 1)``, so the last frame is ``w + (t_last - t_first) % T`` long (up
  to T-1 µs more than the others). It needs ``t_last - t_first >= T`` (SpikingJelly fails there
  too); for time-sorted events it equals SpikingJelly's index slices exactly (its documented
  formula; where a window is empty its code raises an IndexError and this gives an empty frame).

The two time rules put window edge i at ``t_first + i*span/T`` and ``t_first + i*(span//T)``:
``i * (span % T) / T`` µs apart, up to 8.1 µs at T = 10, so the events near an edge can land in
neighbouring frames (at T = 10, 0 to 2 events of each of the 11 real DVS128 recordings in
``shared/data``, 19k-337k events each, land in another frame). tonic's
``ToFrame(n_time_bins=T)`` uses SpikingJelly's width but *drops* the events past
``t_first + T*w`` instead of keeping them in the last frame.

Frames hold raw counts, not 0/1 spikes; the network's first layer is free to scale them.
"""

from __future__ import annotations

import numpy as np

from tinyspike import checks

# Little-endian fixed-size fields: the layout is the same on every machine and in every .npz.
EVENT_DTYPE = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])

#: ``split_by`` values (see the module docstring): by event count, tinyspike's exact time windows,
#: SpikingJelly's whole-microsecond time windows.
SPLIT_BY = ("number", "time", "time_spikingjelly")

# float32 represents every integer up to 2**24 exactly; beyond that counts would round.
EXACT_LIMIT = {
    np.dtype(np.float32): 2**24,
    np.dtype(np.float64): 2**53,
    np.dtype(np.uint8): 2**8 - 1,
    np.dtype(np.uint16): 2**16 - 1,
    np.dtype(np.int16): 2**15 - 1,
    np.dtype(np.uint32): 2**32 - 1,
    np.dtype(np.int32): 2**31 - 1,
    np.dtype(np.int64): 2**63 - 1,
}

#: The dtypes frames can be built in: those ``to_frames`` fills exactly.
FRAME_DTYPES = tuple(sorted(str(d) for d in EXACT_LIMIT))


def check_frame_dtype(where: str, dtype) -> np.dtype:
    """``dtype`` as a ``np.dtype`` that event frames can be built in (``FRAME_DTYPES``)."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if isinstance(dtype, bool) or resolved is None or resolved not in EXACT_LIMIT:
        raise TypeError(f"{where}: dtype must be one of {list(FRAME_DTYPES)}, got {checks.show(dtype)}")
    return resolved


def _where(source) -> str:
    return f"{source}: " if source is not None else ""


def _integer_column(name: str, values, source) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{_where(source)}{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype == np.bool_ and name == "p":
        return arr.astype(np.uint8)
    if arr.size == 0:  # np.asarray([]) is float64, but an empty column loses nothing
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        # Refuse floats: a float time or coordinate means someone already lost precision or
        # scaled the data, and silently truncating it would hide that.
        raise TypeError(f"{_where(source)}{name} must be an integer array, got dtype {arr.dtype}")
    return arr


def make_events(t, x, y, p, *, sensor_size: tuple[int, int] | None = None, source=None) -> np.ndarray:
    """Build a structured event array from four equal-length 1-D integer columns.

    ``t`` in microseconds (any int64), ``x``/``y`` non-negative pixel coordinates (< 65536),
    ``p`` the polarity as 0/1 integers or bools. With ``sensor_size=(H, W)`` the coordinates are
    also checked against the sensor. Floats are refused (TypeError), out-of-range values raise
    ValueError; ``source`` (a file name) is put in front of every message.
    """
    cols = {n: _integer_column(n, v, source) for n, v in zip("txyp", (t, x, y, p))}
    lengths = {n: c.shape[0] for n, c in cols.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{_where(source)}t, x, y, p must have equal lengths, got {lengths}")
    for name, hi in (("x", 2**16 - 1), ("y", 2**16 - 1), ("p", 1)):
        c = cols[name]
        if c.size and (c.min() < 0 or c.max() > hi):
            raise ValueError(
                f"{_where(source)}{name} must lie in [0, {hi}], got values in [{c.min()}, {c.max()}]"
            )
    if cols["t"].dtype == np.uint64 and cols["t"].size and cols["t"].max() > 2**63 - 1:
        raise ValueError(f"{_where(source)}t does not fit int64 microseconds")
    events = np.empty(lengths["t"], dtype=EVENT_DTYPE)
    for name in "txyp":
        events[name] = cols[name]
    if sensor_size is not None:
        check_events(events, sensor_size, source=source)
    return events


def _check_size(sensor_size, name="sensor_size") -> tuple[int, int]:
    if (
        not isinstance(sensor_size, (tuple, list))
        or len(sensor_size) != 2
        or not all(isinstance(v, (int, np.integer)) and v > 0 for v in sensor_size)
    ):
        raise ValueError(f"{name} must be a pair of positive ints (H, W), got {sensor_size!r}")
    return int(sensor_size[0]), int(sensor_size[1])


def check_events(events, sensor_size: tuple[int, int], *, source=None) -> None:
    """Raise ValueError unless ``events`` is an ``EVENT_DTYPE`` array inside an ``(H, W)`` sensor."""
    if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE:
        got = events.dtype if isinstance(events, np.ndarray) else type(events).__name__
        raise TypeError(f"{_where(source)}events must be an array of EVENT_DTYPE, got {got}")
    if events.ndim != 1:
        raise ValueError(f"{_where(source)}events must be 1-D, got shape {events.shape}")
    H, W = _check_size(sensor_size)
    if events.size == 0:
        return
    xmax, ymax, pmax = int(events["x"].max()), int(events["y"].max()), int(events["p"].max())
    if xmax >= W or ymax >= H:
        raise ValueError(
            f"{_where(source)}events outside the {H}x{W} sensor: x up to {xmax}, y up to {ymax} "
            f"(expected x < {W}, y < {H})"
        )
    if pmax > 1:
        raise ValueError(f"{_where(source)}polarity must be 0 or 1, got values up to {pmax}")


def resize_coordinates(events, sensor_size, size) -> np.ndarray:
    """Map events onto a coarser grid by binning coordinates: ``x' = x * W' // W``.

    ``size`` is an ``(H', W')`` pair no larger than the sensor, or a single int for a square
    target. With an integer ratio (128 -> 64) each new pixel pools a 2x2 block; with another
    ratio (128 -> 48) the blocks are 2 or 3 pixels wide, still covering every sensor pixel once.
    Returns a new event array; the input is left untouched.
    """
    H, W = _check_size(sensor_size)
    Ht, Wt = _target_size(size, (H, W))
    out = events.copy()
    # int64 products: 65535 * 65535 would overflow the uint16 columns.
    out["x"] = (events["x"].astype(np.int64) * Wt) // W
    out["y"] = (events["y"].astype(np.int64) * Ht) // H
    return out


def output_size(sensor_size, size=None) -> tuple[int, int]:
    """The ``(H', W')`` frames get for a sensor and a ``size`` argument (None, an int or a pair)."""
    return _target_size(size, _check_size(sensor_size))


def _target_size(size, sensor_size) -> tuple[int, int]:
    H, W = sensor_size
    if size is None:
        return H, W
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    Ht, Wt = _check_size(size, "size")
    if Ht > H or Wt > W:
        raise ValueError(f"size must not exceed the sensor {H}x{W} (binning only shrinks), got {size!r}")
    return Ht, Wt


def check_frame_args(T, split_by, where: str = "to_frames") -> None:
    """Check ``T`` (an int >= 1) and ``split_by`` (one of ``SPLIT_BY``); ``where`` names the caller."""
    checks.integer(where, "T", T, low=1)
    checks.choice(where, "split_by", split_by, SPLIT_BY)


def _slices_by_number(n: int, T: int) -> np.ndarray:
    d = n // T
    if d == 0:  # fewer events than frames: every frame but the last is empty
        return np.full(n, T - 1, dtype=np.int64)
    return np.minimum(np.arange(n, dtype=np.int64) // d, T - 1)


def _slices_by_exact_time(t: np.ndarray, T: int) -> np.ndarray:
    t0, t1 = int(t.min()), int(t.max())
    span = t1 - t0
    if span == 0:  # a single instant: it is both the first and the last window's edge
        return np.zeros(t.size, dtype=np.int64)
    # Integer arithmetic keeps the window edges exact (no float rounding at the boundaries).
    # (t - t0) * T stays far inside int64 for any real recording (2**63 µs / T is millennia).
    return np.minimum((t - t0) * T // span, T - 1)


def _whole_us_width(t0: int, t1: int, T: int, source) -> int:
    """SpikingJelly's window width ``(t1 - t0) // T`` µs; ValueError where it would be 0."""
    width = (t1 - t0) // T
    if width == 0:
        raise ValueError(
            f"{_where(source)}split_by='time_spikingjelly' needs events spanning at least T = {T} µs "
            f"(its windows are span // T whole microseconds wide), got a span of {t1 - t0} µs"
        )
    return width


def _slices_by_whole_us_windows(t: np.ndarray, T: int, source) -> np.ndarray:
    t0 = int(t.min())
    width = _whole_us_width(t0, int(t.max()), T, source)
    return np.minimum((t - t0) // width, T - 1)


def frame_slices(events, T: int, split_by: str = "number", *, source=None) -> np.ndarray:
    """The frame index (0..T-1) of every event, as ``to_frames`` assigns it (module docstring)."""
    check_frame_args(T, split_by, "frame_slices")
    T = int(T)
    n = events.shape[0]
    if split_by == "number":
        return _slices_by_number(n, T)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    t = events["t"]
    if split_by == "time":
        return _slices_by_exact_time(t, T)
    return _slices_by_whole_us_windows(t, T, source)


def _bounds_by_number(n: int, T: int) -> np.ndarray:
    """Frame i's events are ``[bounds[i], bounds[i+1])`` of the stream: ``_slices_by_number``
    as T + 1 edges, the left-over ``n - T*d`` events in the last frame."""
    bounds = np.arange(T + 1, dtype=np.int64) * (n // T)
    bounds[T] = n
    return bounds


def _bounds_by_time(t: np.ndarray, T: int, split_by: str, source) -> np.ndarray:
    """The T + 1 edges of each frame's events in the time-sorted ``t``, as ``frame_slices``
    assigns them: frame i starts at the first event whose frame index is >= i.

    Both time rules give a frame index that grows with t, so "index >= i" is "t >= the first
    microsecond of frame i", and ``searchsorted`` finds that edge in log(n) steps. The edges
    are Python ints, exact for any span.
    """
    n, t0, t1 = t.size, int(t[0]), int(t[-1])
    span = t1 - t0
    if split_by == "time":
        if span == 0:  # a single instant: everything is in frame 0, as ``_slices_by_exact_time``
            return np.array([0] + [n] * T, dtype=np.int64)
        # (t - t0) * T // span >= i  <=>  t - t0 >= ceil(i * span / T), t being whole µs.
        first_us = [t0 - (-i * span // T) for i in range(1, T)]
    else:  # "time_spikingjelly": (t - t0) // width >= i  <=>  t - t0 >= i * width
        width = _whole_us_width(t0, t1, T, source)
        first_us = [t0 + i * width for i in range(1, T)]
    inner = np.searchsorted(t, np.array(first_us, dtype=np.int64), side="left")
    return np.concatenate(([0], inner, [n])).astype(np.int64)


def _is_time_sorted(t: np.ndarray) -> bool:
    return bool(np.all(t[1:] >= t[:-1]))


def _index_type(bins: int) -> np.dtype:
    """The narrowest unsigned type that holds 0..bins-1 and that ``np.bincount`` takes (it
    refuses uint64, which does not cast safely to intp)."""
    narrowest = np.min_scalar_type(bins - 1)
    return narrowest if narrowest.itemsize <= 4 else np.dtype(np.intp)


def _pixel_index(events, sensor_size, target_size) -> np.ndarray:
    """Each event's flat index into one ``[2, Ht, Wt]`` frame: ``(p * Ht + y') * Wt + x'``.

    Built in place in one array of the narrowest type that holds every index (uint16 for
    2x128x128), straight from the narrow uint8/uint16 columns: less memory to move, and no
    fresh temporary per step (page faults cost more than the arithmetic). Binned coordinates
    ``x' = x * Wt // W`` come from a W-entry lookup table rather than a division per event.
    """
    (H, W), (Ht, Wt) = sensor_size, target_size
    index_type = _index_type(2 * Ht * Wt)

    def binned(coordinates, before: int, after: int):
        if before == after:
            return coordinates
        # intp products (65535 * 65535 overflows 32 bits); the binned values fit index_type.
        table = (np.arange(before, dtype=np.intp) * after // before).astype(index_type)
        return table[coordinates]

    index = events["p"].astype(index_type)
    index *= Ht
    index += binned(events["y"], H, Ht)
    index *= Wt
    index += binned(events["x"], W, Wt)
    return index


def to_frames(
    events,
    T: int,
    sensor_size: tuple[int, int],
    split_by: str = "number",
    *,
    size=None,
    dtype=np.float32,
    source=None,
) -> np.ndarray:
    """Count events into ``[T, 2, H, W]`` frames: ``frames[i, c, y, x]`` counts the events of
    frame i (``split_by``, see the module docstring) at pixel (x, y) with ``p == c``. Which
    channel is ON is the source's polarity convention (module docstring): channel 1 for N-MNIST,
    the emulator and CIFAR10-DVS's named conventions; channel 0 for raw DVS128 events.

    ``sensor_size`` is the ``(H, W)`` the events were recorded at; events outside it raise
    ValueError (naming ``source`` when given). ``size`` bins the coordinates down to a smaller
    grid first (see ``resize_coordinates``). ``dtype`` is the output type: float32 (default,
    exact for counts up to 2**24) or an integer type; if any count would not fit exactly, a
    ValueError says so instead of wrapping around.

    Events need not be sorted by time; sorted ones (every loader's) are counted fastest.
    """
    check_frame_args(T, split_by, "to_frames")
    dtype = check_frame_dtype("to_frames", dtype)
    check_events(events, sensor_size, source=source)
    H, W = _check_size(sensor_size)
    Ht, Wt = _target_size(size, (H, W))
    T = int(T)

    # Every frame is a contiguous run of events: for "number" in stream order; for the time
    # rules in time order, since an event's frame depends on its t alone (so sorting the
    # rare unsorted stream changes no count). A frame is then one bincount over its slice,
    # with no frame index computed per event.
    if split_by == "number":
        bounds = _bounds_by_number(events.shape[0], T)
    elif events.shape[0] == 0:
        bounds = np.zeros(T + 1, dtype=np.int64)
    else:
        if not _is_time_sorted(events["t"]):
            events = events[np.argsort(events["t"], kind="stable")]
        bounds = _bounds_by_time(events["t"], T, split_by, source)

    pixels_per_frame = 2 * Ht * Wt
    frames = np.empty((T, pixels_per_frame), dtype=dtype)
    most = 0  # the largest count of any pixel in any frame, where one could exceed the dtype
    for i in range(T):
        # One frame's slice at a time: its index array stays in cache.
        pixels = _pixel_index(events[bounds[i] : bounds[i + 1]], (H, W), (Ht, Wt))
        # bincount sums duplicates correctly (unlike fancy-index +=), ~50x faster than np.add.at.
        counts = np.bincount(pixels, minlength=pixels_per_frame)
        if bounds[i + 1] - bounds[i] > EXACT_LIMIT[dtype]:  # else no pixel can have too many
            most = max(most, int(counts.max()))
        frames[i] = counts
    if most > EXACT_LIMIT[dtype]:
        raise ValueError(
            f"{_where(source)}a pixel collected {most} events in one frame, more than "
            f"dtype {dtype} holds exactly; use a wider dtype"
        )
    return frames.reshape(T, 2, Ht, Wt)


def frames_from_files(
    paths,
    read,
    T: int,
    sensor_size: tuple[int, int],
    split_by: str = "number",
    *,
    size=None,
    dtype=np.float32,
    progress: bool = False,
    desc: str = "frames",
) -> np.ndarray:
    """``[N, T, 2, H', W']`` frames, one sample per file: ``to_frames(read(path), ...)``.

    The output is allocated once and filled in place, so memory peaks at the result's size plus
    one recording. ``read(path)`` must return an ``EVENT_DTYPE`` array; its errors propagate
    (nothing partial is returned, so nothing partial can be cached).
    """
    from tqdm import tqdm  # only here: the rest of the module needs no progress bar

    check_frame_args(T, split_by, "frames_from_files")
    paths = list(paths)
    Ht, Wt = _target_size(size, _check_size(sensor_size))
    out = np.zeros((len(paths), int(T), 2, Ht, Wt), dtype=np.dtype(dtype))
    for i, path in enumerate(tqdm(paths, desc=desc, disable=not progress, leave=False)):
        out[i] = to_frames(read(path), T, sensor_size, split_by, size=size, dtype=dtype, source=path)
    return out
