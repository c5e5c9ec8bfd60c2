"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file tinyspike writes (checkpoints, run folders, figures, frame caches, downloads, analysis
results) goes through ``replace_atomically``:

1. a temporary file with a unique name (``tempfile.mkstemp``) is created *in the target's folder*,
   so two writers of the same path never share one, and the final rename stays on one file system
   (a rename across file systems is a copy, which is not atomic);
2. the caller's ``write(file)`` fills it;
3. its bytes are forced to disk (``os.fsync``) *before* the rename: otherwise a power cut soon
   after could leave the new name pointing at an empty or partial file;
4. ``os.replace`` renames it over the target: atomic on POSIX and on Windows;
5. the folder is fsynced too (where the platform allows opening a folder), so that the rename
   itself survives a power cut.

If anything fails (the writer raises, the disk is full, Ctrl-C), the temporary file is removed
and the exception propagates; the target is untouched.

Only the standard library is used, so every layer, from ``nn`` up to ``cli``, may import this.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

#: ``mkstemp`` makes files private (0600); what tinyspike writes is an ordinary, readable file.
FILE_MODE = 0o644


def _fsync_folder(folder: Path) -> None:
    """Put a rename in ``folder`` on disk; a no-op where folders cannot be opened (Windows)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems (network mounts) refuse fsync on a folder
        pass
    finally:
        os.close(fd)


def replace_atomically(path, write: Callable[[BinaryIO], object], *, suffix: str = ".tmp") -> Path:
    """Write ``path`` atomically: ``write(file)`` fills a binary file object opened on a temporary
    file ``.<name>.<random><suffix>`` beside ``path``, which then replaces ``path``.

    The folder of ``path`` is created (with its parents) if missing. Returns ``path`` as a Path.
    """
    path = Path(path)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except BaseException:  # also Ctrl-C: no temporary file may be left behind
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_folder(folder)
    return path


def write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return replace_atomically(path, lambda handle: handle.write(data))


def write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` as UTF-8, atomically."""
    return write_bytes(path, text.encode("utf-8"))


def copy_file(source, path) -> Path:
    """Copy the file ``source`` to ``path`` atomically (``best.npz`` from ``last.npz``)."""
    def copy(handle):
        with open(source, "rb") as original:
            shutil.copyfileobj(original, handle)

    return replace_atomically(path, copy)
