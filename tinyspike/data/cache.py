"""An on-disk cache of preprocessed arrays (event frames), keyed by everything that made them.

Turning 10,000 CIFAR10-DVS recordings into frames takes about a minute; loading the result takes
seconds. The danger of any such cache is a stale hit: frames built with T=8 served to a run that
asked for T=10, or frames of files that have since been re-downloaded. So the key is the SHA-256
of a canonical JSON text of *every* parameter (dataset, split, T, split_by, sensor size,
downsampling, the list of source files with their sizes and modification times, and
``FORMAT_VERSION``, bumped whenever the preprocessing code changes what it produces). Any change
gives a new key, hence a new file; nothing is ever updated in place.

The parameters are also stored inside the file and compared on load, so a hit is verified, not
just trusted. Files are ``.npz`` written to a temporary name and renamed into place
(``tinyspike.atomic``), so a crash or a failed parse never leaves a half-written entry, and
they are loaded with ``allow_pickle=False``: a cache file can only ever yield plain arrays.

A damaged cache file (truncated, bytes flipped, emptied, replaced by something else) is never
served and never an error: it is logged as a warning naming the file and rebuilt from the source
files. The zip container's CRC-32 of every member is what catches a flipped byte.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from tinyspike import atomic, checks
from tinyspike.data.download import default_cache_dir
from tinyspike.data.events import check_frame_dtype, frames_from_files, output_size

log = logging.getLogger(__name__)

# Bump when a change to the parsers or to to_frames changes the frames they produce.
FORMAT_VERSION = 1

_PARAMS_KEY = "__params__"

# What np.load raises on a damaged .npz, as measured on truncated and byte-flipped files: the zip
# layer (BadZipFile: bad CRC, no central directory; NotImplementedError: a flipped compression
# method; RuntimeError: a flipped "encrypted" flag), zlib (a corrupt deflate stream), the .npy
# header parser (ValueError, struct.error; and tokenize.TokenError, SyntaxError or TypeError when a
# flipped byte breaks the header's Python literal before NumPy's own check sees it) and short reads
# (EOFError, OSError).
_UNREADABLE = (OSError, ValueError, EOFError, KeyError, struct.error, zipfile.BadZipFile, zlib.error,
               NotImplementedError, RuntimeError, SyntaxError, TypeError, tokenize.TokenError)

def _check_json_value(value, where: str) -> None:
    # Only plain JSON types: str() of an arbitrary object (an ndarray, a Path) may not change
    # when its content does, and then the key would not either.
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, float) and not np.isfinite(value):
            raise ValueError(f"cache parameter {where} must be finite, got {value!r}")
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_json_value(v, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"cache parameter {where} has a non-str key {k!r}")
            _check_json_value(v, f"{where}.{k}")
        return
    raise TypeError(
        f"cache parameter {where} must be None, bool, int, float, str, list or dict, "
        f"got {type(value).__name__} (convert it explicitly, e.g. str(path) or int(n))"
    )


def canonical_params(params: Mapping) -> str:
    """The JSON text the key hashes: sorted keys, no whitespace, ``format_version`` added."""
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping, got {type(params).__name__}")
    full = {"format_version": FORMAT_VERSION, **params}
    _check_json_value(full, "params")
    return json.dumps(full, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def cache_key(params: Mapping) -> str:
    """SHA-256 hex digest of ``canonical_params(params)``."""
    return hashlib.sha256(canonical_params(params).encode("ascii")).hexdigest()


def file_fingerprints(paths: Iterable, root=None, *, content: bool = False) -> list[list]:
    """``[name, size, mtime_ns]`` per file (``[name, size, sha256]`` with ``content=True``).

    ``name`` is relative to ``root`` when given, so that moving a whole dataset folder keeps its
    cache valid. Size and modification time catch a re-download or an edit at the cost of one
    ``stat`` per file; hashing the content is exact but reads every byte.
    """
    rows = []
    for p in paths:
        p = Path(p)
        st = p.stat()
        name = p.relative_to(root).as_posix() if root is not None else p.as_posix()
        if content:
            rows.append([name, st.st_size, hashlib.sha256(p.read_bytes()).hexdigest()])
        else:
            rows.append([name, st.st_size, st.st_mtime_ns])
    return rows


class FrameCache:
    """A folder of ``<name>-<key>.npz`` files, each a dict of arrays built from one parameter set.

    ``cache_dir`` defaults to ``default_cache_dir() / "frames"``. ``compress`` uses zlib inside
    the .npz: event frames are mostly zeros and shrink about tenfold.
    """

    def __init__(self, cache_dir=None, *, compress: bool = True):
        self.dir = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "frames"
        self.compress = bool(compress)

    def path_for(self, params: Mapping) -> Path:
        name = str(params.get("dataset", "arrays"))
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40]
        return self.dir / f"{safe}-{cache_key(params)}.npz"

    def load(self, params: Mapping, valid: Callable[[dict], bool] | None = None) -> dict[str, np.ndarray] | None:
        """The cached arrays for ``params``, or None if absent (or unreadable: then rebuilt).

        ``valid(arrays)``, if given, says whether the loaded arrays are what the caller expects
        (names, shapes); arrays it refuses are treated as a damaged entry.
        """
        path = self.path_for(params)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except _UNREADABLE as err:
            log.warning("cache file %s is unreadable (%s: %s); it will be rebuilt", path, type(err).__name__, err)
            return None
        stored = arrays.pop(_PARAMS_KEY, None)
        if stored is None or str(stored) != canonical_params(params):
            log.warning("cache file %s holds other parameters; it will be rebuilt", path)
            return None
        if valid is not None and not valid(arrays):
            log.warning("cache file %s holds arrays of other names or shapes; it will be rebuilt", path)
            return None
        return arrays

    def save(self, params: Mapping, arrays: Mapping[str, np.ndarray]) -> Path:
        """Store ``arrays`` under ``params`` atomically; returns the file's path."""
        if _PARAMS_KEY in arrays:
            raise ValueError(f"array name {_PARAMS_KEY!r} is reserved")
        for k, v in arrays.items():
            if not isinstance(v, np.ndarray) or v.dtype == object:
                raise TypeError(f"cached array {k!r} must be a non-object numpy array")
        members = {**arrays, _PARAMS_KEY: np.array(canonical_params(params))}
        # np.savez_compressed would use zlib level 6; level 1 is 2-4x faster to write and only
        # ~20% larger on sparse count frames. np.load reads either.
        mode = zipfile.ZIP_DEFLATED if self.compress else zipfile.ZIP_STORED

        def write_npz(handle):
            with zipfile.ZipFile(handle, "w", mode, compresslevel=1) as zf:
                for name, arr in members.items():
                    with zf.open(name + ".npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, np.asarray(arr), allow_pickle=False)

        return atomic.replace_atomically(self.path_for(params), write_npz)

    def get_or_build(
        self, params: Mapping, build: Callable[[], Mapping[str, np.ndarray]],
        valid: Callable[[dict], bool] | None = None,
    ) -> dict[str, np.ndarray]:
        """Load the arrays for ``params``, or call ``build()``, save its result and return it.

        If ``build`` raises, nothing is written and the exception propagates. ``valid``: see ``load``.
        """
        cached = self.load(params, valid)
        if cached is not None:
            return cached
        arrays = dict(build())
        self.save(params, arrays)
        return arrays


def _all_integral(values: np.ndarray, block: int = 1 << 22) -> bool:
    # In blocks, so that checking a 12 GB float32 frame array needs no second 12 GB.
    flat = values.reshape(-1)
    return all(
        np.array_equal(flat[i : i + block], np.floor(flat[i : i + block]))
        for i in range(0, flat.size, block)
    )


def compact_counts(counts: np.ndarray) -> np.ndarray:
    """Event counts in the smallest unsigned integer dtype that holds them exactly.

    Frames are stored in the cache this way (a uint8 frame is a quarter of a float32 one, and
    compresses faster); the dataset converts them back to the dtype it was asked for.
    """
    counts = np.asarray(counts)
    if counts.size == 0:
        return counts.astype(np.uint8)
    lo, hi = counts.min(), counts.max()
    if lo < 0 or (counts.dtype.kind == "f" and not _all_integral(counts)):
        raise ValueError("counts must be non-negative integers to be stored compactly")
    for dtype in (np.uint8, np.uint16, np.uint32):
        if hi <= np.iinfo(dtype).max:
            return counts.astype(dtype)
    return counts.astype(np.uint64)


def cached_arrays(
    params: Mapping,
    build: Callable[[], Mapping[str, np.ndarray]],
    *,
    cache_dir=None,
    use_cache: bool = True,
    valid: Callable[[dict], bool] | None = None,
) -> dict[str, np.ndarray]:
    """``FrameCache(cache_dir).get_or_build(params, build, valid)``, or just ``build()`` if not use_cache."""
    use_cache = checks.boolean("cached_arrays", "use_cache", use_cache)
    if not use_cache:
        cache_key(params)  # still validate the parameters, so both paths reject the same input
        return dict(build())
    return FrameCache(cache_dir).get_or_build(params, build, valid)


def read_nonempty(read: Callable, path):
    """``read(path)``, refusing a recording without events with a ``ValueError`` naming the file.

    The readers accept an empty recording (a zero-length N-MNIST file, an AEDAT file with a
    header and no body are well-formed); a dataset does not, because such a sample becomes
    all-zero frames with a label: nothing to learn from, and most often a failed copy.
    """
    events = read(path)
    if len(events) == 0:
        raise ValueError(
            f"{path}: the recording holds no events (an empty file, or a header without a body); "
            "a dataset sample needs at least one event: replace or remove the file"
        )
    return events


def cached_frames(
    params: Mapping,
    paths,
    read: Callable,
    T: int,
    sensor_size: tuple[int, int],
    split_by: str,
    *,
    size=None,
    dtype=np.float32,
    cache_dir=None,
    use_cache: bool = True,
    progress: bool = False,
    desc: str = "frames",
) -> np.ndarray:
    """``[N, T, 2, H', W']`` frames of one file per sample, through the cache.

    Builds with ``frames_from_files(paths, read, ...)``, stores the counts compactly
    (``compact_counts``) under ``params`` and returns them as ``dtype`` (exact: ``to_frames``
    checked at build time that every count fits ``dtype``). A file whose recording holds no
    events raises a ``ValueError`` naming it (``read_nonempty``). A cache entry whose frames do
    not have the expected shape is rebuilt.
    """
    dtype = check_frame_dtype("cached_frames", dtype)
    paths = list(paths)
    expected_shape = (len(paths), int(T), 2, *output_size(sensor_size, size))

    def build():
        frames = frames_from_files(
            paths, lambda path: read_nonempty(read, path), T, sensor_size, split_by, size=size,
            dtype=dtype, progress=progress, desc=desc,
        )
        return {"frames": compact_counts(frames)}

    def valid(arrays):
        frames = arrays.get("frames")
        return frames is not None and frames.shape == expected_shape and frames.dtype.kind == "u"

    stored = cached_arrays(params, build, cache_dir=cache_dir, use_cache=use_cache, valid=valid)["frames"]
    return stored.astype(dtype, copy=False)
