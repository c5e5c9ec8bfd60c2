"""AEDAT 2.0: the real DVS128 recordings, the bit layout, round trips and corrupt files."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinyspike.data.aedat import (
    MAGIC, decode_dvs128, encode_dvs128, parse_aedat2, read_aedat2, read_aedat2_header,
    write_aedat2,
)
from tinyspike.data.events import EVENT_DTYPE, make_events

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
DVS128 = SHARED / "dvs128"
needs_dvs128 = pytest.mark.skipif(
    not (DVS128 / "labels.csv").is_file(), reason=f"real DVS128 recordings not found at {DVS128}"
)

# Events per file, as decoded here (header stripped, body / 8). All files are clean: body a
# whole number of records, no special events, timestamps never decrease.
EVENT_COUNTS = {
    "alex_walking_again.aedat": 19182,
    "alex_walking_for_10secs.aedat": 125028,
    "cam255_alex_standing_up.aedat": 290292,
    "cam255_alex_standing_up2.aedat": 295301,
    "cam255_neal_standing_up.aedat": 209564,
    "cam255_neal_standing_up2.aedat": 264804,
    "cam255_right_clamp_test1.aedat": 110228,
    "cam289_right_clamp_test1.aedat": 336913,
    "cam298_left_clamp_test1_alex.aedat": 323902,
    "cam300_fix_lense_alex_standing_up.aedat": 155766,
    "neal_walking.aedat": 70304,
}


@needs_dvs128
@pytest.mark.parametrize("name", sorted(EVENT_COUNTS))
def test_real_recordings_decode(name):
    path = DVS128 / name
    ev = read_aedat2(path)
    assert ev.dtype == EVENT_DTYPE
    assert len(ev) == EVENT_COUNTS[name]
    header = read_aedat2_header(path)
    assert header[0] == MAGIC.decode()
    body = path.stat().st_size - sum(len(h) + 2 for h in header)  # jAER ends lines with \r\n
    assert body == 8 * len(ev)
    assert ev["x"].max() <= 127 and ev["y"].max() <= 127
    assert set(np.unique(ev["p"]).tolist()) == {0, 1}
    assert np.all(np.diff(ev["t"]) >= 0), "timestamps decrease"
    # Both polarities and most of the sensor are active in a real recording of people moving.
    assert len(np.unique(ev["x"])) > 100 and len(np.unique(ev["y"])) > 100


@needs_dvs128
def test_all_files_are_covered():
    assert sorted(p.name for p in DVS128.glob("*.aedat")) == sorted(EVENT_COUNTS)
    serial = {
        line.split(",")[0]: line.split(",")[2][:4]
        for line in (DVS128 / "labels.csv").read_text().splitlines()[1:]
    }
    for name, number in serial.items():
        assert any(number in h for h in read_aedat2_header(DVS128 / name))


def test_address_bit_layout():
    # x = (a >> 1) & 0x7F, y = (a >> 8) & 0x7F, p = a & 1
    addr = np.array([(3 << 8) | (5 << 1) | 1, (127 << 8) | (127 << 1), 0], dtype=np.uint32)
    x, y, p = decode_dvs128(addr)
    assert x.tolist() == [5, 127, 0] and y.tolist() == [3, 127, 0] and p.tolist() == [1, 0, 0]
    np.testing.assert_array_equal(encode_dvs128(x, y, p), addr)


def test_file_bytes_are_big_endian_address_then_time(tmp_path):
    ev = make_events(t=[0x01020304], x=[5], y=[3], p=[1])
    path = write_aedat2(tmp_path / "one.aedat", ev, header=())
    data = path.read_bytes()
    assert data == b"#!AER-DAT2.0\r\n" + bytes([0, 0, 0x03, 0x0B, 1, 2, 3, 4])


timestamps = st.lists(st.integers(0, 2**32 - 1), max_size=80).map(sorted)


@settings(max_examples=40, deadline=None)
@given(t=timestamps, data=st.data())
def test_write_read_round_trip(tmp_path_factory, t, data):
    n = len(t)
    coords = st.lists(st.integers(0, 127), min_size=n, max_size=n)
    x, y = data.draw(coords), data.draw(coords)
    p = data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    ev = make_events(np.asarray(t, np.int64), np.asarray(x, np.int64), np.asarray(y, np.int64),
                     np.asarray(p, np.int64))
    path = tmp_path_factory.mktemp("rt") / "r.aedat"
    write_aedat2(path, ev, header=("note: round trip",))
    back = read_aedat2(path)
    np.testing.assert_array_equal(back, ev)
    assert read_aedat2_header(path)[1] == "# note: round trip"
    assert [p.name for p in path.parent.iterdir()] == ["r.aedat"]  # no temporary file left


def _file(tmp_path, body: bytes, header=b"#!AER-DAT2.0\r\n# x\r\n", name="bad.aedat"):
    path = tmp_path / name
    path.write_bytes(header + body)
    return path


def _records(addr, ts):
    words = np.empty((len(addr), 2), dtype=">u4")  # big-endian (address, timestamp) pairs
    words[:, 0], words[:, 1] = addr, ts
    return words.tobytes()


def test_missing_header_raises_naming_the_file(tmp_path):
    path = _file(tmp_path, _records([2], [1]), header=b"")
    with pytest.raises(ValueError, match=r"bad\.aedat.*missing '#!AER-DAT2\.0' header"):
        read_aedat2(path)
    path = _file(tmp_path, b"", header=b"#!AER-DAT3.1\r\n", name="v3.aedat")
    with pytest.raises(ValueError, match=r"v3\.aedat.*AEDAT 3/4"):
        read_aedat2(path)


def test_truncated_body_raises(tmp_path):
    good = _records([2, 4, 6], [1, 2, 3])
    for cut in (1, 3, 4, 7):
        path = _file(tmp_path, good[:-cut], name=f"cut{cut}.aedat")
        with pytest.raises(ValueError, match=rf"cut{cut}\.aedat.*not a whole number of 8-byte events"):
            read_aedat2(path)


def test_truncated_header_raises(tmp_path):
    path = _file(tmp_path, b"", header=b"#!AER-DAT2.0\r\n# no line end")
    with pytest.raises(ValueError, match=r"bad\.aedat.*truncated header"):
        read_aedat2(path)


def test_empty_body_is_an_empty_recording(tmp_path):
    assert len(read_aedat2(_file(tmp_path, b""))) == 0


def test_special_events_are_refused_or_dropped(tmp_path):
    path = _file(tmp_path, _records([2, 0x8000, 4], [1, 2, 3]))
    with pytest.raises(ValueError, match=r"bad\.aedat.*1 of 3 events have address bits above bit 14"):
        read_aedat2(path)
    ev = read_aedat2(path, special="drop")
    assert ev["x"].tolist() == [1, 2] and ev["t"].tolist() == [1, 3]


def test_timestamp_wrap_is_unwrapped_and_resets_are_errors(tmp_path):
    wrapped = _file(tmp_path, _records([2, 2, 2], [2**32 - 10, 5, 7]), name="wrap.aedat")
    assert read_aedat2(wrapped)["t"].tolist() == [2**32 - 10, 2**32 + 5, 2**32 + 7]
    reset = _file(tmp_path, _records([2, 2, 2], [5000, 10, 20]), name="reset.aedat")
    with pytest.raises(ValueError, match=r"reset\.aedat.*timestamps decrease.*record 1"):
        read_aedat2(reset)
    assert read_aedat2(reset, on_decrease="keep")["t"].tolist() == [5000, 10, 20]
    with pytest.raises(ValueError, match="on_decrease"):
        parse_aedat2(b"#!AER-DAT2.0\n", on_decrease="sort")


def test_writer_refuses_what_the_format_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="outside the 128x128 sensor"):
        write_aedat2(tmp_path / "a.aedat", make_events([0], [128], [0], [0]))
    with pytest.raises(ValueError, match=r"2\*\*32"):
        write_aedat2(tmp_path / "a.aedat", make_events([2**32], [0], [0], [0]))
    with pytest.raises(ValueError, match=r"2\*\*32"):
        write_aedat2(tmp_path / "a.aedat", make_events([-1], [0], [0], [0]))
    with pytest.raises(ValueError, match="single-line"):
        write_aedat2(tmp_path / "a.aedat", make_events([0], [0], [0], [0]), header=("a\nb",))
    assert not list(tmp_path.iterdir())  # nothing written by a refused call
