"""download_url and safe_extract: checksums, atomic writes, and refusal of hostile archives.

No internet here: downloads come from file:// URLs and from an http.server on 127.0.0.1.
"""

import hashlib
import io
import tarfile
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tinyspike.data.download import default_cache_dir, download_url, md5_of, safe_extract

PAYLOAD = bytes(range(256)) * 5000  # 1.28 MB: several read chunks


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def source(tmp_path):
    src = tmp_path / "srv" / "blob.bin"
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    return src


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_md5_of_matches_hashlib(source):
    assert md5_of(source) == _md5(PAYLOAD)


def test_download_file_url_checks_and_writes(source, tmp_path):
    dest = tmp_path / "out" / "blob.bin"
    got = download_url(source.as_uri(), dest, _md5(PAYLOAD), len(PAYLOAD), progress=False)
    assert got == dest and dest.read_bytes() == PAYLOAD
    assert _leftovers(dest.parent) == ["blob.bin"]  # no temp file left


def test_existing_file_with_right_md5_is_not_downloaded_again(source, tmp_path):
    dest = tmp_path / "blob.bin"
    dest.write_bytes(PAYLOAD)
    # An unreachable URL proves nothing is fetched.
    assert download_url("file:///nonexistent/nowhere.bin", dest, _md5(PAYLOAD), progress=False) == dest


def test_existing_file_with_wrong_md5_is_replaced(source, tmp_path):
    dest = tmp_path / "blob.bin"
    dest.write_bytes(b"stale")
    download_url(source.as_uri(), dest, _md5(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_md5_mismatch_raises_and_leaves_nothing(source, tmp_path):
    dest_dir = tmp_path / "out"
    wrong = "0" * 32
    with pytest.raises(ValueError) as info:
        download_url(source.as_uri(), dest_dir / "blob.bin", wrong, progress=False)
    msg = str(info.value)
    assert "blob.bin" in msg and wrong in msg and _md5(PAYLOAD) in msg
    assert _leftovers(dest_dir) == []


def test_size_mismatch_raises_and_leaves_nothing(source, tmp_path):
    with pytest.raises(ValueError, match=f"expected {len(PAYLOAD) + 1} bytes, got {len(PAYLOAD)}"):
        download_url(source.as_uri(), tmp_path / "blob.bin", _md5(PAYLOAD), len(PAYLOAD) + 1, progress=False)
    assert not (tmp_path / "blob.bin").exists()
    assert [p for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_bad_md5_argument_is_rejected(source, tmp_path):
    with pytest.raises(ValueError, match="md5 must be"):
        download_url(source.as_uri(), tmp_path / "x", "abc", progress=False)


def test_download_over_local_http(source, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(source.parent)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/blob.bin"
        dest = download_url(url, tmp_path / "dl" / "blob.bin", _md5(PAYLOAD), len(PAYLOAD), progress=True)
        assert dest.read_bytes() == PAYLOAD
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


def test_default_cache_dir_respects_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYSPIKE_CACHE", str(tmp_path / "tc"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "tc"
    monkeypatch.delenv("TINYSPIKE_CACHE")
    assert default_cache_dir() == tmp_path / "xdg" / "tinyspike"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir().parts[-2:] == (".cache", "tinyspike")


# ----------------------------------------------------------------------------- archives


def _tar(path, members, mode="w:gz"):
    """members: list of (name, bytes | None for a directory | ('symlink', target))."""
    with tarfile.open(path, mode) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(data, tuple):
                info.type = tarfile.SYMTYPE
                info.linkname = data[1]
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


GOOD = [("pkg", None), ("pkg/a.bin", b"aaa"), ("pkg/sub/b.txt", b"bb")]


def allow_all(name):
    return True


@pytest.mark.parametrize("maker,suffix", [(_tar, "tar.gz"), (_zip, "zip")])
def test_safe_extract_good_archive(tmp_path, maker, suffix):
    members = GOOD if maker is _tar else [m for m in GOOD if m[1] is not None]
    archive = maker(tmp_path / f"good.{suffix}", members)
    dest = tmp_path / "dest"
    out = safe_extract(archive, dest, allow_all)
    assert sorted(out) == [dest / "pkg/a.bin", dest / "pkg/sub/b.txt"]
    assert (dest / "pkg/a.bin").read_bytes() == b"aaa"
    assert (dest / "pkg/sub/b.txt").read_bytes() == b"bb"
    # Only the archive and the destination remain: the temporary folder is gone.
    assert _leftovers(tmp_path) == sorted([archive.name, "dest"])


def test_safe_extract_merges_into_existing_folder(tmp_path):
    dest = tmp_path / "dest"
    (dest / "pkg").mkdir(parents=True)
    (dest / "pkg" / "keep.txt").write_text("mine")
    (dest / "other").mkdir()
    archive = _tar(tmp_path / "good.tar.gz", GOOD)
    safe_extract(archive, dest, allow_all)
    assert (dest / "pkg" / "keep.txt").read_text() == "mine"
    assert (dest / "pkg" / "a.bin").read_bytes() == b"aaa"
    assert _leftovers(tmp_path) == ["dest", "good.tar.gz"]


HOSTILE = [
    ("dotdot", [("pkg/a.bin", b"a"), ("../evil.txt", b"x")], "'..'"),
    ("nested-dotdot", [("pkg/a.bin", b"a"), ("pkg/../../evil.txt", b"x")], "'..'"),
    ("absolute", [("pkg/a.bin", b"a"), ("/tmp/evil.txt", b"x")], "absolute"),
    ("symlink", [("pkg/a.bin", b"a"), ("pkg/link", ("symlink", "/etc/passwd"))], "links"),
]


@pytest.mark.parametrize("label,members,reason", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_safe_extract_refuses_hostile_tar(tmp_path, label, members, reason):
    archive = _tar(tmp_path / "bad.tar.gz", members)
    dest = tmp_path / "dest"
    with pytest.raises(ValueError, match=reason) as info:
        safe_extract(archive, dest, allow_all)
    assert "bad.tar.gz" in str(info.value)
    assert not dest.exists()  # not even the harmless first member
    assert _leftovers(tmp_path) == ["bad.tar.gz"]
    assert not (tmp_path.parent / "evil.txt").exists()


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt"])
def test_safe_extract_refuses_hostile_zip(tmp_path, name):
    archive = _zip(tmp_path / "bad.zip", [("pkg/a.bin", b"a"), (name, b"x")])
    with pytest.raises(ValueError) as info:
        safe_extract(archive, tmp_path / "dest", allow_all)
    assert "bad.zip" in str(info.value) and repr(name) in str(info.value)
    assert _leftovers(tmp_path) == ["bad.zip"]


def test_safe_extract_refuses_zip_symlink(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("pkg/link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ValueError, match="links"):
        safe_extract(archive, tmp_path / "dest", allow_all)
    assert _leftovers(tmp_path) == ["link.zip"]


def test_safe_extract_refuses_unexpected_member(tmp_path):
    archive = _tar(tmp_path / "extra.tar.gz", GOOD + [("pkg/surprise.exe", b"MZ")])
    with pytest.raises(ValueError, match="unexpected member 'pkg/surprise.exe'"):
        safe_extract(archive, tmp_path / "dest", lambda n: not n.endswith(".exe"))
    assert _leftovers(tmp_path) == ["extra.tar.gz"]


def test_safe_extract_rejects_non_archive(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not an archive at all" * 10)
    with pytest.raises(ValueError, match="not a tar"):
        safe_extract(junk, tmp_path / "dest", allow_all)


def test_unreachable_url_names_the_file_the_url_and_where_to_place_it(tmp_path):
    import socket

    from tinyspike.data.download import DownloadError

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/archive.tar.gz"
    dest = tmp_path / "new" / "archive.tar.gz"
    md5 = _md5(PAYLOAD)
    with pytest.raises(DownloadError, match="could not download archive.tar.gz from") as info:
        download_url(url, dest, md5, len(PAYLOAD), progress=False, timeout=5,
                     hint="Or unpack it into the data folder.")
    message = str(info.value)
    for part in (url, str(dest), md5, f"{len(PAYLOAD):,} bytes", "Or unpack it into the data folder."):
        assert part in message, part
    assert isinstance(info.value, OSError)  # the CLI reports OSErrors as user errors
    assert _leftovers(dest.parent) == []


def test_download_url_checks_its_scalar_arguments(source, tmp_path):
    dest, md5 = tmp_path / "blob.bin", _md5(PAYLOAD)
    with pytest.raises(TypeError, match="expected_size must be an int"):
        download_url(source.as_uri(), dest, md5, float(len(PAYLOAD)), progress=False)
    with pytest.raises(ValueError, match="timeout must be a finite real number > 0"):
        download_url(source.as_uri(), dest, md5, timeout=float("nan"))
    with pytest.raises(TypeError, match="progress must be True or False"):
        download_url(source.as_uri(), dest, md5, progress="no")
    assert not dest.exists()
