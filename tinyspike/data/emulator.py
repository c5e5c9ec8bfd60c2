"""An event-camera emulator: turn still images into DVS recordings, the way CIFAR10-DVS was made.

CIFAR10-DVS and N-MNIST were recorded by pointing a DVS at a still image and *moving* it (the
image on a monitor, or the camera on a pan-tilt unit), because a DVS sees only change. This module
does the same in software, so that event pipelines can be tried on any image set offline:

1. Motion. The image is shifted along a closed path of ``len(saccades) - 1`` straight saccades
   (default: a triangle of three, as N-MNIST), at constant speed, over ``duration_us``, and
   sampled at the sensor's pixel centres with bilinear interpolation (edges clamped, so the
   image border itself produces no events). Time advances in steps of ``step_us``.
2. Pixels, each on its own. Each pixel keeps a reference log-intensity ``ref`` (initially that of the image at
   rest). At each step it computes ``L = log(I + log_eps)`` (``I`` in [0, 1]; the offset is the
   dark current that keeps log finite) and, if it is not in its refractory period, emits
   ``k = floor(|L - ref| / C)`` events of polarity ``L > ref`` (ON = 1), at most
   ``max(1, step_us // refractory_us)`` per step, and moves ``ref`` by ``k*C`` towards ``L``.
   A change too large for one step is thus emitted over the following ones, as a real pixel
   limited by its refractory period would. ``C`` is the contrast threshold, per pixel
   ``C = threshold * exp(threshold_sigma * N(0, 1))`` (sensor mismatch; 0 = ideal).
3. Noise. Optionally, background-activity events: per pixel a Poisson number with mean
   ``noise_rate_hz * duration``, at uniform random times, random polarity.

Randomness (mismatch, noise) comes only from the ``rng`` argument (a seed or a Generator): the
same seed gives the same events. Timestamps are multiples of ``step_us`` (noise: any µs).

The per-step pixel update is a Numba kernel over images and pixels (``_pixel_kernel``);
``_signed_counts_reference`` is the same model in plain NumPy (``emulate(..., reference=True)``),
kept for tests and for reading: both give the same events, bit for bit. They can, because both
take the log through one function, ``log_intensity``: whether a pixel fires is a threshold test on
a difference of logs, and NumPy's vectorised ``np.log`` and the scalar ``log`` compiled by Numba
differ in the last bit for about 1 value in 200 on some CPUs, enough to flip a pixel sitting on its
threshold. Everything after the log (subtraction, division, floor) is correctly rounded IEEE
arithmetic, the same on every machine and in both paths.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numba
import numpy as np

from tinyspike.data.aedat import write_aedat2
from tinyspike.data.cache import cached_arrays, compact_counts
from tinyspike.data.dataset import ArrayDataset
from tinyspike.data.events import EVENT_DTYPE, check_frame_args, to_frames

#: N-MNIST's three saccades: a closed triangle, (dx, dy) in units of ``amplitude`` pixels.
TRIANGLE = ((0.0, 0.0), (0.5, 1.0), (1.0, 0.0), (0.0, 0.0))


@dataclasses.dataclass(frozen=True)
class EmulatorConfig:
    """The parameters of one emulated recording (see the module docstring)."""

    sensor_size: tuple[int, int] = (34, 34)  # (H, W)
    duration_us: int = 300_000
    step_us: int = 1_000
    threshold: float = 0.2  # C, in units of natural-log intensity
    threshold_sigma: float = 0.0
    refractory_us: int = 1_000
    log_eps: float = 0.1
    amplitude: float = 2.0  # saccade size in sensor pixels
    saccades: tuple = TRIANGLE
    noise_rate_hz: float = 0.0  # background events per pixel per second

    def __post_init__(self):
        size = self.sensor_size
        H, W = size if isinstance(size, (tuple, list)) and len(size) == 2 else (0, 0)
        if not all(isinstance(v, (int, np.integer)) and v > 0 for v in (H, W)):
            raise ValueError(f"sensor_size must be (H, W) positive ints, got {self.sensor_size!r}")
        object.__setattr__(self, "sensor_size", (int(H), int(W)))
        for name in ("duration_us", "step_us"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"{name} must be a positive int (µs), got {v!r}")
        if self.duration_us < self.step_us:
            raise ValueError(f"duration_us ({self.duration_us}) must be at least step_us ({self.step_us})")
        if not isinstance(self.refractory_us, (int, np.integer)) or self.refractory_us < 0:
            raise ValueError(f"refractory_us must be a non-negative int, got {self.refractory_us!r}")
        for name, lo in (("threshold", 0.0), ("log_eps", 0.0)):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not v > lo:
                raise ValueError(f"{name} must be a number > {lo}, got {v!r}")
        for name in ("threshold_sigma", "amplitude", "noise_rate_hz"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not v >= 0 or not np.isfinite(v):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        path = tuple(tuple(float(c) for c in p) for p in self.saccades)
        if len(path) < 2 or any(len(p) != 2 for p in path):
            raise ValueError(f"saccades must be >= 2 (dx, dy) vertices, got {self.saccades!r}")
        object.__setattr__(self, "saccades", path)

    @property
    def n_steps(self) -> int:
        return self.duration_us // self.step_us

    def as_params(self) -> dict:
        """A JSON-able dict of every field, for cache keys."""
        d = dataclasses.asdict(self)
        d["sensor_size"] = list(self.sensor_size)
        d["saccades"] = [list(p) for p in self.saccades]
        return d


def saccade_offsets(config: EmulatorConfig) -> np.ndarray:
    """``[n_steps + 1, 2]`` (dx, dy) image offsets in sensor pixels, at times ``s * step_us``.

    Row 0 is the rest position (the first vertex); the path's segments take equal time.
    """
    vertices = np.asarray(config.saccades, dtype=np.float64) * config.amplitude
    n_seg = len(vertices) - 1
    s = np.arange(config.n_steps + 1, dtype=np.float64) / config.n_steps * n_seg  # path position
    seg = np.minimum(s.astype(np.int64), n_seg - 1)
    frac = (s - seg)[:, None]
    return vertices[seg] * (1 - frac) + vertices[seg + 1] * frac


def _taps(offsets: np.ndarray, out_len: int, in_len: int):
    """Bilinear taps along one axis for every step: image coordinate of sensor pixel r when the
    image is shifted by ``offset`` sensor pixels (pixel centres aligned, edges clamped)."""
    scale = in_len / out_len
    r = np.arange(out_len, dtype=np.float64)
    c = (r[None, :] - offsets[:, None] + 0.5) * scale - 0.5
    c = np.clip(c, 0, in_len - 1)
    lo = np.floor(c).astype(np.int64)
    hi = np.minimum(lo + 1, in_len - 1)
    return lo, hi, c - lo


def _intensity(images) -> np.ndarray:
    """``[N, H, W]`` float64 intensities in [0, 1] from uint8 (0-255) or float (0-1) images,
    ``[N, H, W]`` or ``[N, C, H, W]`` (C = 1, or C = 3 mixed with ITU-R 601 luma weights)."""
    if not isinstance(images, np.ndarray):
        raise TypeError(f"images must be a numpy array, got {type(images).__name__}")
    if images.dtype == np.uint8:
        x = images.astype(np.float64) / 255.0
    elif images.dtype in (np.float32, np.float64):
        if images.size and (np.nanmin(images) < 0 or np.nanmax(images) > 1 or np.isnan(images).any()):
            raise ValueError("float images must lie in [0, 1] (uint8 images in 0-255)")
        x = images.astype(np.float64)
    else:
        raise TypeError(f"images must be uint8 (0-255) or float (0-1), got dtype {images.dtype}")
    if x.ndim == 4:
        if x.shape[1] == 3:
            x = np.tensordot(np.array([0.299, 0.587, 0.114]), x, axes=([0], [1]))
        elif x.shape[1] == 1:
            x = x[:, 0]
        else:
            raise ValueError(f"images must have 1 or 3 channels, got shape {images.shape}")
    if x.ndim != 3 or x.shape[0] == 0:
        raise ValueError(f"images must be [N>0, H, W] or [N>0, C, H, W], got shape {images.shape}")
    # float64 throughout: the kernel and the NumPy reference then round identically.
    return np.ascontiguousarray(x, dtype=np.float64)


def _generator(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0:
        return np.random.default_rng(int(rng))
    # None would mean "seed from the OS": a run could then not be repeated.
    raise TypeError(f"rng must be a non-negative int seed or a numpy Generator, got {rng!r}")


def _setup(images, config: EmulatorConfig, rng):
    rng = _generator(rng)
    intensity = _intensity(images)
    N, Hi, Wi = intensity.shape
    H, W = config.sensor_size
    offsets = saccade_offsets(config)
    ty = _taps(offsets[:, 1], H, Hi)
    tx = _taps(offsets[:, 0], W, Wi)
    # Draw the mismatch for all images first, then (in emulate) the noise: the result then does
    # not depend on how the work is chunked.
    if config.threshold_sigma > 0:
        C = config.threshold * np.exp(config.threshold_sigma * rng.standard_normal((N, H, W)))
    else:
        C = np.full((N, H, W), config.threshold)
    # At most 127 events per pixel and step: the per-step counts are int8.
    cap = max(1, config.step_us // config.refractory_us) if config.refractory_us else 127
    # Steps a pixel must wait after firing: it may fire again at step s if s - last >= wait.
    wait = -(-config.refractory_us // config.step_us)  # ceil
    return rng, intensity, ty, tx, C.astype(np.float64), min(cap, 127), wait


@numba.vectorize(["float64(float64)"], cache=True)
def log_intensity(v):
    """The log-intensity of a pixel value ``v`` (dark-current offset already added).

    The one definition of the log that the Numba kernel (called on scalars) and the NumPy
    reference (called on arrays) share; see the module docstring for why it must be one.
    """
    return math.log(v)


@numba.njit(cache=True, nogil=True)
def _sample(img, a, b, d, e, fy, fx):
    # Bilinear, along x first, then y: the operation order of the NumPy reference's ``render``.
    top = img[a, d] * (1 - fx) + img[a, e] * fx
    bot = img[b, d] * (1 - fx) + img[b, e] * fx
    return top * (1 - fy) + bot * fy


@numba.njit(cache=True, nogil=True)
def _constant_patch(img, r0, r1, c0, c1):
    v = img[r0, c0]
    for a in range(r0, r1 + 1):
        for d in range(c0, c1 + 1):
            if img[a, d] != v:
                return False
    return True


@numba.njit(cache=True, nogil=True)
def _pixel_kernel(images, y0, y1, wy, x0, x1, wx, C, log_eps, cap, wait, out, n_events):
    """out[i, s-1, r, c] = signed number of events of pixel (r, c) of image i at step s;
    n_events[i] = the number of events of image i.

    ``images`` [N, Hi, Wi] float64; the taps are transposed, ``[H, S+1]``/``[W, S+1]``: where
    pixel (r, c) samples the image at step s; ``C`` [N, H, W] thresholds; ``out`` int8 zeros.
    Pixels are independent, so each runs through all its steps with its state (``ref``, its
    band ``lo..hi``, ``last``) in registers. Images are independent too: ``emulate`` runs chunks
    of them on threads (the kernel releases the GIL; ``parallel=True`` compiles 4x slower).
    """
    N = images.shape[0]
    S = y0.shape[1] - 1
    H, W = C.shape[1], C.shape[2]
    for i in range(N):
        img = images[i]
        n = 0
        for r in range(H):
            ya, yb, fys = y0[r], y1[r], wy[r]
            for c in range(W):
                xa, xb, fxs = x0[c], x1[c], wx[c]
                # A pixel that only ever sees a uniform patch cannot fire: skip it.
                if _constant_patch(img, ya.min(), yb.max(), xa.min(), xb.max()):
                    continue
                thr = C[i, r, c]
                ref = log_intensity(_sample(img, ya[0], yb[0], xa[0], xb[0], fys[0], fxs[0]) + log_eps)
                # ref's band in the linear domain, slightly narrowed: inside it
                # |log(v + eps) - ref| < C for sure, so the log is taken only outside it, and
                # the results equal the reference's.
                lo = np.exp(ref - thr) * (1 + 1e-9)
                hi = np.exp(ref + thr) * (1 - 1e-9)
                last = -wait  # ready from the first step
                for s in range(1, S + 1):
                    if s - last < wait:
                        continue
                    v = _sample(img, ya[s], yb[s], xa[s], xb[s], fys[s], fxs[s]) + log_eps
                    if lo < v < hi:
                        continue
                    diff = log_intensity(v) - ref
                    k = int(abs(diff) / thr)
                    if k == 0:
                        continue
                    k = min(k, cap)
                    ref += k * thr if diff > 0 else -(k * thr)
                    lo = np.exp(ref - thr) * (1 + 1e-9)
                    hi = np.exp(ref + thr) * (1 - 1e-9)
                    last = s
                    out[i, s - 1, r, c] = k if diff > 0 else -k
                    n += k
        n_events[i] = n


@numba.njit(cache=True, nogil=True)
def _count_events(counts, n_events):
    N = counts.shape[0]
    flat = counts.reshape(N, -1)
    for i in range(N):
        n = 0
        for q in range(flat.shape[1]):
            n += abs(np.int64(flat[i, q]))
        n_events[i] = n


@numba.njit(cache=True, nogil=True)
def _fill_events(counts, step_us, offsets, t_out, x_out, y_out, p_out):
    """Write image i's events from ``offsets[i]``: by step, then row, then column."""
    N, S, H, W = counts.shape
    flat = counts.reshape(N, -1)  # most cells are 0: one flat scan skips them cheaply
    for i in range(N):
        j = offsets[i]
        for q in range(flat.shape[1]):
            k = flat[i, q]
            if k == 0:
                continue
            s, rc = divmod(q, H * W)
            r, c = divmod(rc, W)
            for _ in range(abs(np.int64(k))):
                t_out[j] = (s + 1) * step_us
                x_out[j] = c
                y_out[j] = r
                p_out[j] = 1 if k > 0 else 0
                j += 1


def _signed_counts_reference(intensity, ty, tx, C, log_eps, cap, wait) -> np.ndarray:
    """The model of ``_pixel_kernel`` in plain NumPy, one vectorised update per time step."""
    (y0, y1, wy), (x0, x1, wx) = ty, tx
    N, (H, W) = intensity.shape[0], C.shape[1:]
    S = y0.shape[0] - 1
    eps = float(log_eps)

    def render(s):
        fy, fx = wy[s][:, None], wx[s][None, :]
        top = intensity[:, y0[s]][:, :, x0[s]] * (1 - fx) + intensity[:, y0[s]][:, :, x1[s]] * fx
        bot = intensity[:, y1[s]][:, :, x0[s]] * (1 - fx) + intensity[:, y1[s]][:, :, x1[s]] * fx
        return top * (1 - fy) + bot * fy

    ref = log_intensity(render(0) + eps)  # not np.log: see the module docstring
    last = np.full((N, H, W), -wait, dtype=np.int64)
    out = np.zeros((N, S, H, W), dtype=np.int8)
    for s in range(1, S + 1):
        diff = log_intensity(render(s) + eps) - ref
        ready = (s - last) >= wait
        k = np.where(ready, np.minimum(np.floor(np.abs(diff) / C), cap), 0).astype(np.int64)
        ref = ref + np.where(diff > 0, k * C, -(k * C))
        last = np.where(k > 0, s, last)
        out[:, s - 1] = (np.sign(diff) * k).astype(np.int8)
    return out


def _events_from_counts(counts: np.ndarray, step_us: int, n_events=None) -> list[np.ndarray]:
    """Per-image event arrays from signed per-step counts ``[N, S, H, W]`` (time-ordered);
    ``n_events`` (events per image) is counted here unless the kernel already did."""
    if n_events is None:
        n_events = np.zeros(counts.shape[0], dtype=np.int64)
        _count_events(counts, n_events)
    offsets = np.concatenate([[0], np.cumsum(n_events)])
    cols = [np.empty(int(offsets[-1]), dt) for dt in (np.int64, np.uint16, np.uint16, np.uint8)]
    _fill_events(counts, step_us, offsets, *cols)
    ev = np.empty(int(offsets[-1]), dtype=EVENT_DTYPE)
    for name, col in zip("txyp", cols):
        ev[name] = col
    return np.split(ev, offsets[1:-1])


def _add_noise(streams, config: EmulatorConfig, rng) -> list[np.ndarray]:
    H, W = config.sensor_size
    N = len(streams)
    mean = config.noise_rate_hz * config.duration_us * 1e-6
    n = rng.poisson(mean, size=(N, H, W))
    flat = np.flatnonzero(n)
    reps = n.reshape(-1)[flat]
    img, y, x = np.unravel_index(np.repeat(flat, reps), (N, H, W))
    noise = np.empty(img.size, dtype=EVENT_DTYPE)
    noise["t"] = rng.integers(0, config.duration_us, size=img.size)
    noise["x"], noise["y"] = x, y
    noise["p"] = rng.integers(0, 2, size=img.size)
    per_image = np.split(noise, np.searchsorted(img, np.arange(1, N)))
    out = []
    for sig, nz in zip(streams, per_image):
        both = np.concatenate([sig, nz])
        out.append(both[np.argsort(both["t"], kind="stable")])  # signal first at equal times
    return out


def emulate(images, config: EmulatorConfig | None = None, *, rng=0, chunk: int = 64,
            workers: int | None = None, reference: bool = False) -> list[np.ndarray]:
    """Emulate a DVS watching each image move; returns one ``EVENT_DTYPE`` array per image.

    ``images``: uint8 (0-255) or float (0-1), ``[N, H, W]`` or ``[N, C, H, W]`` (C = 1 or 3); any
    size (they are resampled to ``config.sensor_size``). ``rng``: a seed or a
    ``np.random.Generator`` for mismatch and noise. ``chunk`` images are run at a time (memory:
    ``chunk * n_steps * H * W`` bytes of per-step counts), on ``workers`` threads (default: one
    per CPU); neither changes the result. ``reference=True`` uses the NumPy model instead of the
    Numba kernel (same events, much slower).
    """
    config = config or EmulatorConfig()
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive int or None, got {workers!r}")
    rng, intensity, ty, tx, C, cap, wait = _setup(images, config, rng)
    H, W = config.sensor_size
    # The kernel walks time innermost: give it the taps with time as the last, contiguous axis.
    ty_t = [np.ascontiguousarray(a.T) for a in ty]
    tx_t = [np.ascontiguousarray(a.T) for a in tx]

    def run(start):
        part = slice(start, start + chunk)
        if reference:
            counts = _signed_counts_reference(intensity[part], ty, tx, C[part], config.log_eps, cap, wait)
        else:
            counts = np.zeros((intensity[part].shape[0], config.n_steps, H, W), dtype=np.int8)
            n_events = np.zeros(counts.shape[0], dtype=np.int64)
            _pixel_kernel(intensity[part], *ty_t, *tx_t, C[part], float(config.log_eps), cap, wait,
                          counts, n_events)
            return _events_from_counts(counts, config.step_us, n_events)
        return _events_from_counts(counts, config.step_us)

    starts = range(0, intensity.shape[0], chunk)
    workers = min(workers or os.cpu_count() or 1, len(starts))
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(run, starts))  # in order: the result does not depend on threads
    else:
        parts = [run(start) for start in starts]
    streams = [ev for part in parts for ev in part]
    if config.noise_rate_hz > 0:
        streams = _add_noise(streams, config, rng)
    return streams


def write_recordings(streams, folder, names) -> list[Path]:
    """Write event streams as DVS128 AEDAT 2.0 files ``folder/<name>`` (sensor <= 128x128).

    Polarity is written as a DVS128 does: the emulator's ON (p = 1) as raw bit 0, which jAER
    reads as ON, so ``read_aedat2`` gives back ``1 - p`` and ``CIFAR10DVS`` (whose named
    conventions swap the raw bit) puts ON in frame channel 1, as ``DigitsDVS`` does.
    """
    folder = Path(folder)
    if len(streams) != len(names):
        raise ValueError(f"got {len(streams)} streams but {len(names)} names")
    header = ("# created by tinyspike.data.emulator (emulated DVS recording of a still image)",)
    return [write_aedat2(folder / name, _as_dvs128_polarity(ev), header=header)
            for ev, name in zip(streams, names)]


def _as_dvs128_polarity(events: np.ndarray) -> np.ndarray:
    raw = events.copy()
    raw["p"] = 1 - events["p"]  # jAER's DVS128 extractor: raw bit 0 = ON
    return raw


def make_cifar10_dvs_folder(images, labels, root, *, config: EmulatorConfig | None = None,
                            rng=0, indices=None) -> list[Path]:
    """Emulate recordings of CIFAR-10-like images into ``root/<class>/cifar10_<class>_<i>.aedat``,
    the layout ``CIFAR10DVS`` reads. ``indices`` (default: numbered 0, 1, ... per class) are the
    recording numbers; 0-899 fall in the numeric (PLIF) train split, 900-999 in its test split."""
    from tinyspike.data.cifar10_dvs import CLASSES

    labels = np.asarray(labels)
    config = config or EmulatorConfig(sensor_size=(128, 128), duration_us=200_000, step_us=2_000,
                                      amplitude=4.0)
    if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be {len(images)} integers (one per image), got {labels.dtype} {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"labels must lie in 0-9, got range [{labels.min()}, {labels.max()}]")
    if indices is None:
        seen = {}
        indices = []
        for lab in labels.tolist():
            indices.append(seen.get(lab, 0))
            seen[lab] = indices[-1] + 1
    indices = [int(i) for i in indices]
    if len(indices) != len(labels) or any(not 0 <= i < 1000 for i in indices):
        raise ValueError(f"indices must be {len(labels)} recording numbers in 0-999, got {indices[:10]}...")
    streams = emulate(images, config, rng=rng)
    paths = []
    for ev, lab, idx in zip(streams, labels.tolist(), indices):
        cls = CLASSES[lab]
        paths += write_recordings([ev], Path(root) / cls, [f"cifar10_{cls}_{idx}.aedat"])
    return paths


class DigitsDVS(ArrayDataset):
    """The built-in digits, recorded by the emulator: frames ``[N, T, 2, H, W]``, labels 0-9.

    An offline stand-in for N-MNIST/CIFAR10-DVS: a real event pipeline (motion, log-intensity
    thresholds, events, frames by count) on data that ships with tinyspike, at a small sensor
    (34x34 by default) so that training is quick on a CPU.

    Args:
        split: ``"train"``, ``"test"`` or ``"all"`` (the ``Digits`` split).
        T, split_by: frames per sample and how events are divided among them.
        config: the emulator's parameters; its ``sensor_size`` must be square.
        seed: the emulator's random seed (mismatch, noise).
        dtype: frame dtype (float32 default).
        test_fraction, split_seed: passed to ``Digits``.
        cache_dir, use_cache: the frame cache.
    """

    def __init__(self, split: str = "train", T: int = 10, split_by: str = "number", *,
                 config: EmulatorConfig | None = None, seed: int = 0, dtype=np.float32,
                 test_fraction: float | None = None, split_seed: int = 0, cache_dir=None,
                 use_cache: bool = True):
        from tinyspike.data.digits import TEST_FRACTION, Digits

        check_frame_args(T, split_by)
        config = config or EmulatorConfig()
        if not isinstance(config, EmulatorConfig):
            raise TypeError(f"config must be an EmulatorConfig, got {type(config).__name__}")
        H, W = config.sensor_size
        if H != W:
            raise ValueError(f"DigitsDVS needs a square sensor_size, got {config.sensor_size}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        dtype = np.dtype(dtype)
        fraction = TEST_FRACTION if test_fraction is None else test_fraction
        digits = Digits(split, size=H, channels=1, interpolation="bilinear",
                        test_fraction=fraction, seed=split_seed)
        digest = hashlib.sha256(digits.inputs.tobytes() + digits.labels.tobytes()).hexdigest()
        params = {
            "dataset": "digits_dvs", "split": split, "T": int(T), "split_by": split_by,
            "emulator": config.as_params(), "seed": int(seed), "dtype": dtype.str,
            "test_fraction": float(fraction), "split_seed": int(split_seed), "digits_sha256": digest,
        }

        def build():
            streams = emulate(digits.inputs, config, rng=int(seed))
            frames = np.stack([to_frames(ev, T, (H, W), split_by, dtype=dtype) for ev in streams])
            return {"frames": compact_counts(frames)}

        stored = cached_arrays(params, build, cache_dir=cache_dir, use_cache=use_cache)["frames"]
        super().__init__(
            stored.astype(dtype, copy=False), digits.labels, digits.classes, time_steps=int(T),
            description=(
                f"DigitsDVS {split} ({len(digits.labels)} emulated recordings of UCI digits, "
                f"{H}x{W} sensor, C={config.threshold}, seed={seed}), T={T} frames split by {split_by}"
            ),
        )
        self.split = split
        self.config = config
