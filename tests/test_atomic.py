"""tinyspike.atomic: the one atomic-write helper every file writer uses."""

import os

import pytest

from tinyspike import atomic


def _entries(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("interruption", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, interruption):
    target = tmp_path / "state.npz"
    target.write_bytes(b"old")

    def write_half(handle):
        handle.write(b"half of the new")
        raise interruption

    with pytest.raises(type(interruption)):
        atomic.replace_atomically(target, write_half)
    assert target.read_bytes() == b"old"
    assert _entries(tmp_path) == ["state.npz"]


def test_the_temporary_is_unique_and_beside_the_target(tmp_path):
    seen = []

    def record(handle):
        seen.append(os.readlink(f"/proc/self/fd/{handle.fileno()}"))
        handle.write(b"x")

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd to tell which file a handle writes")
    for _ in range(2):
        atomic.replace_atomically(tmp_path / "sub" / "a.json", record)  # the folder is created
    assert len(set(seen)) == 2
    for name in seen:
        assert os.path.dirname(name) == str(tmp_path / "sub")
        assert os.path.basename(name).startswith(".a.json.") and name.endswith(".tmp")
    assert _entries(tmp_path / "sub") == ["a.json"]


def test_file_is_synced_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync folder" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync file")
        return real_fsync(fd)

    def replace(src, dst):
        events.append("replace")
        return real_replace(src, dst)

    if not os.path.isdir("/proc/self/fd") or not hasattr(os, "O_DIRECTORY"):
        pytest.skip("needs Linux to tell a folder's fd from a file's")
    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    atomic.write_text(tmp_path / "config.json", "{}\n")
    assert events == ["fsync file", "replace", "fsync folder"]


def test_writers_give_the_bytes_and_an_ordinary_file_mode(tmp_path):
    atomic.write_text(tmp_path / "t.txt", "π = 3.14\n")
    atomic.write_bytes(tmp_path / "b.bin", b"\x00\xff")
    atomic.copy_file(tmp_path / "b.bin", tmp_path / "c.bin")
    assert (tmp_path / "t.txt").read_bytes() == "π = 3.14\n".encode("utf-8")
    assert (tmp_path / "c.bin").read_bytes() == b"\x00\xff"
    # mkstemp creates 0600; a checkpoint or figure must be readable like any file (chmod: no umask)
    assert (tmp_path / "c.bin").stat().st_mode & 0o777 == atomic.FILE_MODE
