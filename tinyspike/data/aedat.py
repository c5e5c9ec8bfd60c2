"""AEDAT 2.0, the file format of jAER and of the DVS128 recordings in CIFAR10-DVS.

Layout (REFERENCE.md §9): ASCII header lines that start with ``#`` (the first one is
``#!AER-DAT2.0``; jAER ends them with ``\\r\\n``), then the body, a sequence of 8-byte records of
two big-endian uint32: the address, then the timestamp in microseconds. A DVS128 address packs
the pixel and the polarity::

    bit   15   14 ........ 8   7 ....... 1   0
          ext  y (7 bits)      x (7 bits)    p        x = (a >> 1) & 0x7F, y = (a >> 8) & 0x7F

The readers here return these bits as stored. Polarity: **p = 0 is ON (brighter), p = 1 is OFF**,
as jAER's DVS128 extractor reads them (it stores ``1 - p`` as its ON flag and also mirrors x,
``127 - x``); so frames of raw events hold ON in channel 0. ``CIFAR10DVS``'s conventions apply
jAER's swap (``tinyspike.data.cifar10_dvs``), and ``emulator.write_recordings`` writes ON as 0.

Bit 15 marks jAER's "special" (external input / sync) events; any bit above 14 set means the
record is not a DVS128 pixel event, so ``read_aedat2`` refuses such records unless told to drop
them (a DAVIS file, whose 32-bit addresses put x at bits 12-21, would otherwise decode into
plausible-looking garbage).

Timestamps. jAER writes a 32-bit counter: it wraps after 2**32 µs (71.6 minutes). A wrap shows
as a drop of more than 2**31; the reader unwraps it by adding 2**32 from there on, so times
stay increasing. Any other decrease (a timestamp reset, e.g. from synchronising two cameras) is
an error by default, naming the file and the record; ``on_decrease="keep"`` accepts it. All 11
DVS128 recordings in ``shared/data/dvs128`` have non-decreasing timestamps (equal neighbours do
occur: several events in the same microsecond).

Both functions are vectorised: one ``np.frombuffer(..., ">u4")`` view and a few array ops.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinyspike import atomic, checks
from tinyspike.data.dataset import check_path
from tinyspike.data.events import EVENT_DTYPE, check_events

MAGIC = b"#!AER-DAT2.0"
DVS128_SIZE = (128, 128)  # (H, W)

_PIXEL_BITS = 0x7FFF  # y (bits 8-14), x (bits 1-7), p (bit 0)
_WRAP = 2**32
ON_DECREASE = ("error", "keep")
SPECIAL = ("error", "drop")

DEFAULT_HEADER = (
    "# This is a raw AE data file - do not edit",
    "# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event",
    "# Timestamps tick is 1 us",
    "# created by tinyspike",
    "# AEChip: ch.unizh.ini.jaer.chip.retina.DVS128",
)


def decode_dvs128(addr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y, p)`` as uint16, uint16, uint8 from DVS128 addresses (any unsigned int array).

    ``p`` is the raw bit: 0 = ON, 1 = OFF (jAER)."""
    addr = np.asarray(addr)
    x = ((addr >> 1) & 0x7F).astype(np.uint16)
    y = ((addr >> 8) & 0x7F).astype(np.uint16)
    p = (addr & 1).astype(np.uint8)
    return x, y, p


def encode_dvs128(x, y, p) -> np.ndarray:
    """uint32 DVS128 addresses from coordinates in 0..127 and polarities 0/1 (the inverse)."""
    x, y, p = (np.asarray(v).astype(np.uint32) for v in (x, y, p))
    return (y << 8) | (x << 1) | p


def split_header(data: bytes, source) -> tuple[list[str], int]:
    """The header lines (decoded, without line ends) and the offset where the body starts."""
    if not data.startswith(MAGIC):
        first = data[:40].split(b"\n", 1)[0]
        hint = " (an AEDAT 3/4 file?)" if first.startswith(b"#!AER-DAT") else ""
        raise ValueError(
            f"{source}: missing '#!AER-DAT2.0' header, found {first[:30]!r}{hint}; "
            "not an AEDAT 2.0 file"
        )
    lines, pos = [], 0
    # DVS128 addresses are < 2**15, so the first body byte is 0x00 and can never look like '#'.
    while data.startswith(b"#", pos):
        end = data.find(b"\n", pos)
        if end < 0:
            raise ValueError(f"{source}: truncated header (a '#' line without a line end at byte {pos})")
        lines.append(data[pos:end].rstrip(b"\r").decode("latin-1"))
        pos = end + 1
    return lines, pos


def _unwrap(ts: np.ndarray, on_decrease: str, source) -> np.ndarray:
    t = ts.astype(np.int64)
    if t.size < 2:
        return t
    step = np.diff(t)
    if step.min() >= 0:  # the common case: one pass, nothing to fix
        return t
    wraps = step < -(2**31)
    if wraps.any():
        t[1:] += np.cumsum(wraps, dtype=np.int64) * _WRAP
        step = np.diff(t)
    back = np.flatnonzero(step < 0)
    if back.size and on_decrease == "error":
        i = int(back[0]) + 1
        raise ValueError(
            f"{source}: timestamps decrease at {back.size} place(s), first at record {i} "
            f"({t[i - 1]} -> {t[i]} µs); a reset in the recording? "
            "Pass on_decrease='keep' to accept it"
        )
    return t


def parse_aedat2(
    data: bytes, *, source="<bytes>", special: str = "error", on_decrease: str = "error"
) -> np.ndarray:
    """Decode the bytes of an AEDAT 2.0 file into an ``EVENT_DTYPE`` array (see ``read_aedat2``)."""
    checks.choice("parse_aedat2", "special", special, SPECIAL)
    checks.choice("parse_aedat2", "on_decrease", on_decrease, ON_DECREASE)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"parse_aedat2: data must be bytes, got {checks.kind_of(data)}")
    data = bytes(data)
    _, start = split_header(data, source)
    body = len(data) - start
    if body % 8:
        raise ValueError(
            f"{source}: body of {body} bytes is not a whole number of 8-byte events "
            f"({body % 8} bytes left over): truncated or corrupt file"
        )
    words = np.frombuffer(data, dtype=">u4", offset=start)
    addr, ts = words[0::2], words[1::2]
    bad = (addr & ~np.uint32(_PIXEL_BITS)) != 0
    n_bad = int(np.count_nonzero(bad))
    if n_bad:
        if special == "error":
            i = int(np.argmax(bad))
            raise ValueError(
                f"{source}: {n_bad} of {addr.size} events have address bits above bit 14 set "
                f"(first: record {i}, address {int(addr[i]):#010x}); jAER special events or not a "
                "DVS128 recording. Pass special='drop' to skip them"
            )
        keep = ~bad
        addr, ts = addr[keep], ts[keep]
    t = _unwrap(ts, on_decrease, source)
    events = np.empty(addr.size, dtype=EVENT_DTYPE)
    events["t"] = t
    events["x"], events["y"], events["p"] = decode_dvs128(addr)
    return events


def read_aedat2(path, *, special: str = "error", on_decrease: str = "error") -> np.ndarray:
    """Read a DVS128 AEDAT 2.0 file into an ``EVENT_DTYPE`` array (x, y in 0..127).

    ``special``: ``"error"`` (default) raises if any address has bits above bit 14 set,
    ``"drop"`` skips those records. ``on_decrease``: ``"error"`` (default) raises on a
    timestamp that goes backwards (other than a 32-bit wrap, which is unwrapped), ``"keep"``
    keeps the events in file order. Timestamps are the file's own (not shifted to start at 0).
    Every error is a ValueError that names the file. A file with a header and no body is
    well-formed and gives an empty array; the datasets refuse such a recording
    (``tinyspike.data.cache.read_nonempty``).
    """
    path = check_path("read_aedat2", "path", path)
    data = path.read_bytes()
    return parse_aedat2(data, source=path, special=special, on_decrease=on_decrease)


def read_aedat2_header(path) -> list[str]:
    """The header lines of an AEDAT 2.0 file (e.g. to find the camera's serial number)."""
    path = check_path("read_aedat2_header", "path", path)
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    # A header longer than 64 KiB would need the whole file; jAER's are about 5 KB.
    if len(head) == 1 << 16:
        head = path.read_bytes()
    return split_header(head, path)[0]


def encode_aedat2(events, header=DEFAULT_HEADER) -> bytes:
    """The bytes of an AEDAT 2.0 file holding ``events`` (see ``write_aedat2``)."""
    check_events(events, DVS128_SIZE)
    t = events["t"]
    if t.size and (t.min() < 0 or t.max() >= _WRAP):
        raise ValueError(
            f"event times must lie in [0, 2**32) µs to fit AEDAT 2.0, got [{t.min()}, {t.max()}]"
        )
    lines = []
    for line in header:
        if not isinstance(line, str) or "\n" in line or "\r" in line:
            raise ValueError(f"header lines must be single-line strings, got {line!r}")
        lines.append(line if line.startswith("#") else "# " + line)
    head = "\r\n".join([MAGIC.decode()] + lines) + "\r\n"
    words = np.empty((t.size, 2), dtype=">u4")
    words[:, 0] = encode_dvs128(events["x"], events["y"], events["p"])
    words[:, 1] = t
    return head.encode("latin-1") + words.tobytes()


def write_aedat2(path, events, *, header=DEFAULT_HEADER) -> Path:
    """Write ``events`` (``EVENT_DTYPE``, x, y < 128, 0 <= t < 2**32) as a DVS128 AEDAT 2.0 file.

    ``header`` lines go after ``#!AER-DAT2.0`` (a ``# `` is prepended where missing). The file
    is written to a temporary name and renamed into place, so a reader never sees half a file.
    """
    return atomic.write_bytes(path, encode_aedat2(events, header))
