"""Fetching and unpacking dataset archives safely.

Three promises, because a half-written or hostile download must never look like a dataset:

- ``download_url`` writes to a temporary file beside the destination and only renames it into
  place (atomically, ``tinyspike.atomic``) once its size and MD5 match the published ones. A crash, a
  dropped connection or a wrong checksum leaves no file at ``dest``.
- ``safe_extract`` unpacks a tar/zip archive only if every member is a plain file or directory
  whose name stays inside the destination and is one the caller expects. It unpacks into a
  temporary folder beside ``dest_dir`` and renames into place, so a refused or failed extraction
  leaves nothing behind. A truncated or damaged archive (a bad gzip or zip CRC, a cut-off
  stream) raises a ``ValueError`` naming it, also before anything reaches ``dest_dir``.
- Nothing downloaded is ever unpickled: the loaders read raw binary formats.

Without network access ``download_url`` raises a ``DownloadError`` that says which file could not
be fetched from which URL, and where to put it by hand (a file placed there with the right MD5 is
used without downloading).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable

from tqdm import tqdm

from tinyspike import atomic, checks

_CHUNK = 1 << 20  # 1 MiB: large enough for throughput, small enough for a smooth progress bar

# What a failed fetch raises: no network, DNS, refused connection, HTTP errors (URLError), a
# connection dropped or stalled mid-file (ConnectionError, TimeoutError, IncompleteRead).
_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)

# What reading a damaged archive raises: tarfile's ReadError, zipfile's BadZipFile (bad CRC, no
# central directory), gzip's BadGzipFile (an OSError: bad CRC or length), a cut-off gzip stream
# (EOFError), a corrupt deflate stream (zlib.error), a flipped zip compression method
# (NotImplementedError).
_ARCHIVE_ERRORS = (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, EOFError, zlib.error,
                   NotImplementedError)


class DownloadError(ConnectionError):
    """A file could not be fetched; the message says from where and how to place it by hand."""


def default_cache_dir() -> Path:
    """Where datasets live unless the caller says otherwise.

    ``$TINYSPIKE_CACHE`` if set, else ``$XDG_CACHE_HOME/tinyspike``, else ``~/.cache/tinyspike``.
    The folder is not created here; the downloaders create what they write into.
    """
    explicit = os.environ.get("TINYSPIKE_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "tinyspike"


def md5_of(path: str | os.PathLike) -> str:
    """Hex MD5 digest of a file, read in chunks so that multi-GB archives need no memory."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_md5_arg(md5: str) -> str:
    if not isinstance(md5, str) or len(md5) != 32 or any(c not in "0123456789abcdef" for c in md5.lower()):
        raise ValueError(f"download_url: md5 must be a 32-character hex string, got {checks.show(md5)}")
    return md5.lower()


def _fetch_failed(url: str, dest: Path, md5: str, expected_size, err: BaseException, hint: str) -> DownloadError:
    reason = getattr(err, "reason", None) or err
    size = f"{expected_size:,} bytes, " if expected_size is not None else ""
    return DownloadError(
        f"could not download {dest.name} from {url} ({type(err).__name__}: {reason}). Without "
        f"network access, fetch that URL elsewhere and place the file at {dest} ({size}MD5 {md5}): "
        f"it is then checked and used without downloading.{hint}"
    )


def download_url(
    url: str,
    dest: str | os.PathLike,
    md5: str,
    expected_size: int | None = None,
    progress: bool = True,
    timeout: float = 60.0,
    hint: str = "",
) -> Path:
    """Download ``url`` to ``dest`` and check it; return ``dest`` as a Path.

    If ``dest`` already exists with the right MD5 nothing is downloaded (an existing file with the
    wrong MD5 is downloaded again and replaced). The bytes go to a temporary file in ``dest``'s
    folder (``tinyspike.atomic``), which is renamed over ``dest`` only once size and MD5 match.

    Raises ``ValueError`` if the size differs from ``expected_size`` or the MD5 from ``md5``
    (naming the file and both values); the temporary file is removed in every failure.
    ``timeout`` (seconds) bounds each network wait, so a stalled server raises instead of hanging.
    ``dest``'s folder is created (parents included) if it does not exist.

    A fetch that fails (no network, an unknown host, a refused connection, an HTTP error, a
    dropped connection) raises ``DownloadError`` naming the file, the URL, the reason, and where
    to place the file by hand; ``hint`` (one or more sentences) is appended to that message.
    """
    if not isinstance(url, str) or not url:
        raise TypeError(f"download_url: url must be a non-empty str, got {checks.kind_of(url)} {checks.show(url)}")
    md5 = _check_md5_arg(md5)
    expected_size = checks.optional_integer("download_url", "expected_size", expected_size, low=0)
    progress = checks.boolean("download_url", "progress", progress)
    timeout = checks.real("download_url", "timeout", timeout, 0.0, low_open=True)
    if not isinstance(hint, str):
        raise TypeError(f"download_url: hint must be a str, got {checks.kind_of(hint)}")
    hint = " " + hint.strip() if hint.strip() else ""
    if not isinstance(dest, (str, os.PathLike)):
        raise TypeError(f"download_url: dest must be a path (str or os.PathLike), got {checks.kind_of(dest)}")
    dest = Path(dest)
    if dest.is_file() and md5_of(dest) == md5:
        return dest

    def fetch_and_check(out):
        """Stream the response into ``out``; raise (so nothing replaces ``dest``) on a bad file."""
        digest = hashlib.md5(usedforsecurity=False)
        n_bytes = 0
        try:
            response = urllib.request.urlopen(url, timeout=timeout)
        except _NETWORK_ERRORS as err:
            raise _fetch_failed(url, dest, md5, expected_size, err, hint) from err
        with response:
            header = response.headers.get("Content-Length") if response.headers else None
            total = expected_size if expected_size is not None else (int(header) if header else None)
            with tqdm(
                total=total, unit="B", unit_scale=True, unit_divisor=1024,
                desc=dest.name, disable=not progress, leave=False,
            ) as bar:
                while True:
                    try:
                        chunk = response.read(_CHUNK)
                    except _NETWORK_ERRORS as err:
                        raise _fetch_failed(url, dest, md5, expected_size, err, hint) from err
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    n_bytes += len(chunk)
                    bar.update(len(chunk))
        if expected_size is not None and n_bytes != expected_size:
            raise ValueError(
                f"download of {url} to {dest}: expected {expected_size} bytes, got {n_bytes} "
                "(truncated or changed upstream)"
            )
        got = digest.hexdigest()
        if got != md5:
            raise ValueError(
                f"MD5 mismatch for {dest.name} (from {url}): expected {md5}, got {got}"
            )

    atomic.replace_atomically(dest, fetch_and_check, suffix=".part")
    return dest


def _archive_kind(archive: Path) -> str:
    # Trust the suffix first: content sniffing alone can mistake a tar that ends with a zip member
    # for a zip (is_zipfile looks for a zip trailer near the end of the file).
    name = archive.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar", ".tar.gz", ".tgz")):
        return "tar"
    if zipfile.is_zipfile(archive):
        return "zip"
    if tarfile.is_tarfile(archive):
        return "tar"
    raise ValueError(f"{archive}: not a tar, tar.gz or zip archive")


def _check_name(archive: Path, name: str, allowed: Callable[[str], bool]) -> None:
    """Refuse member names that could escape the destination or that the caller did not expect."""
    # Archives made on Windows may use backslashes; treat them as separators when checking.
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ValueError(f"{archive}: refusing absolute member path {name!r}")
    if ".." in parts:
        raise ValueError(f"{archive}: refusing member {name!r} that contains '..'")
    if not parts:
        raise ValueError(f"{archive}: refusing member with an empty name")
    if not allowed(name):
        raise ValueError(f"{archive}: unexpected member {name!r} (not allowed by the caller)")


def _tar_members(archive: Path, tar: tarfile.TarFile, allowed) -> list[tarfile.TarInfo]:
    members = tar.getmembers()
    for m in members:
        if not (m.isfile() or m.isdir()):
            raise ValueError(
                f"{archive}: refusing member {m.name!r}: links and devices are not extracted"
            )
        _check_name(archive, m.name, allowed)
    return members


def _zip_members(archive: Path, zf: zipfile.ZipFile, allowed) -> list[zipfile.ZipInfo]:
    members = zf.infolist()
    for m in members:
        # A zip made on Unix stores the file mode in the high 16 bits; refuse symlinks (0o120000)
        # and anything else that is not a regular file or directory.
        mode = (m.external_attr >> 16) & 0o170000
        if mode not in (0, 0o100000, 0o040000):
            raise ValueError(
                f"{archive}: refusing member {m.filename!r}: links and devices are not extracted"
            )
        _check_name(archive, m.filename, allowed)
    return members


def _move_into(src: Path, dst: Path) -> None:
    """Move the tree ``src`` into the existing folder ``dst``.

    A top-level entry that ``dst`` lacks (the usual ``cifar-10-batches-bin/`` folder) moves with one
    atomic rename; only where both have a folder of the same name are files moved one by one.
    """
    for entry in src.iterdir():
        target = dst / entry.name
        if entry.is_dir() and target.is_dir():
            _move_into(entry, target)
        else:
            os.replace(entry, target)


def _extract_tar(archive: Path, tmp: Path, allowed) -> None:
    with tarfile.open(archive) as tar:
        members = _tar_members(archive, tar, allowed)
        for m in members:
            target = tmp / m.name
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(m)
            with src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
        # tarfile stops at the end-of-archive marker; a gzip/bz2/xz stream checks its CRC only
        # when read to its very end, so read the rest (the zero padding) to have it checked.
        while tar.fileobj.read(_CHUNK):
            pass


def _extract_zip(archive: Path, tmp: Path, allowed) -> None:
    # zipfile checks each member's CRC-32 when it has been read to the end (copyfileobj does).
    with zipfile.ZipFile(archive) as zf:
        members = _zip_members(archive, zf, allowed)
        for m in members:
            target = tmp / m.filename
            if m.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(m) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)


def safe_extract(
    archive: str | os.PathLike,
    dest_dir: str | os.PathLike,
    allowed: Callable[[str], bool],
) -> list[Path]:
    """Extract a ``.tar``, ``.tar.gz`` or ``.zip`` into ``dest_dir`` after checking every member.

    ``allowed(name)`` gets each member's name as stored (``"cifar-10-batches-bin/data_batch_1.bin"``)
    and returns whether it is expected. Any member that is absolute, contains ``..``, is a link or
    device, or is not allowed raises ``ValueError`` naming the archive and the member, before a
    single byte is written. Extraction goes to a temporary folder beside ``dest_dir`` and is then
    moved into ``dest_dir`` (created if needed); existing files there with the same names are
    replaced. Returns the paths of the extracted regular files.

    A damaged archive (empty, truncated, a failed gzip or zip CRC check, garbage) raises a
    ``ValueError`` naming it; the compressed stream is read to its end so that its checksum is
    always verified, and nothing is moved into ``dest_dir`` unless the whole archive was sound.
    """
    if not isinstance(archive, (str, os.PathLike)):
        raise TypeError(f"safe_extract: archive must be a path (str or os.PathLike), got {checks.kind_of(archive)}")
    if not isinstance(dest_dir, (str, os.PathLike)):
        raise TypeError(f"safe_extract: dest_dir must be a path (str or os.PathLike), got {checks.kind_of(dest_dir)}")
    archive, dest_dir = Path(archive), Path(dest_dir)
    if not archive.is_file():
        raise FileNotFoundError(f"archive {archive} does not exist")
    if not callable(allowed):
        raise TypeError(f"safe_extract: allowed must be a callable name -> bool, got {type(allowed).__name__}")
    kind = _archive_kind(archive)
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest_dir.name}.", suffix=".extract", dir=dest_dir.parent))
    try:
        try:
            (_extract_tar if kind == "tar" else _extract_zip)(archive, tmp, allowed)
        except _ARCHIVE_ERRORS as err:
            raise ValueError(
                f"{archive}: damaged or truncated {kind} archive ({type(err).__name__}: {err}); "
                "delete it and download it again"
            ) from err
        extracted_rel = sorted(p.relative_to(tmp) for p in tmp.rglob("*") if p.is_file())
        if not dest_dir.exists():
            os.replace(tmp, dest_dir)  # one atomic rename
        else:
            _move_into(tmp, dest_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return [dest_dir / rel for rel in extracted_rel]
