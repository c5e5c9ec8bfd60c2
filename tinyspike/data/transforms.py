"""Batch augmentation of uint8 images ``[B, C, H, W]``, vectorised over the batch.

torchvision transforms one PIL image at a time; at CIFAR size the Python overhead per image costs
more than the pixels. Here every transform takes the whole batch and an explicit
``np.random.Generator``, draws all its random numbers for the batch at once, and does the pixel
work in one Numba loop (``nogil``, so the DataLoader's background thread runs it while the main
thread trains). The same generator state gives the same output.

Semantics follow torchvision's (the reference code's):

- ``random_crop``: zero-pad by ``padding`` on every side, then cut a ``size`` window at a uniform
  random offset (``RandomCrop(32, padding=4)``).
- ``random_horizontal_flip``: mirror each image with probability ``p``.
- ``random_rotation``: rotate each image counter-clockwise by an angle uniform in
  ``[-degrees, degrees]`` about its centre, nearest-neighbour by default, zero fill
  (``RandomRotation(15)``).
- ``normalize``: ``(x / 255 - mean[c]) / std[c]`` into float32 (``ToTensor`` + ``Normalize``).

A pipeline is any callable ``f(batch, rng) -> batch``; ``Compose`` chains them, ``preset`` builds
the paper's recipes (REFERENCE §7).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numba
import numpy as np

from tinyspike import checks

Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


# ----------------------------------------------------------------------------- argument checks


def _check_batch(batch, name: str = "batch") -> np.ndarray:
    if not isinstance(batch, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(batch).__name__}")
    if batch.dtype != np.uint8:
        raise TypeError(f"{name} must be uint8 images (0-255), got dtype {batch.dtype}")
    if batch.ndim != 4:
        raise ValueError(f"{name} must be [B, C, H, W], got shape {batch.shape}")
    return batch


def _check_rng(rng, where: str = "transforms") -> np.random.Generator:
    return checks.numpy_generator(where, "rng", rng)


def _pair(value, name: str, where: str = "transforms") -> tuple[int, int]:
    """A positive int or a pair ``(h, w)`` of them."""
    return checks.int_pair(where, name, value, low=1)


def _padding(value, where: str) -> int:
    return checks.integer(where, "padding", value, low=0)


def _probability(value, where: str) -> float:
    return checks.real(where, "p", value, 0.0, 1.0)


def _fill(value, where: str) -> int:
    return checks.integer(where, "fill", value, 0, 255)


def _interpolation(value, where: str) -> str:
    return checks.choice(where, "interpolation", value, ("nearest", "bilinear"))


def _offsets(name: str, values, batch_size: int, where: str, dtype) -> np.ndarray:
    """One integer (or bool, for ``dtype=np.bool_``) per image, as a contiguous array."""
    arr = np.asarray(values)
    kinds = "b" if dtype is np.bool_ else "iu"
    if arr.dtype.kind not in kinds:
        what = "bools" if dtype is np.bool_ else "integers"
        raise TypeError(f"{where}: {name} must be {what} (one per image), got dtype {arr.dtype}")
    if arr.shape != (batch_size,):
        raise ValueError(f"{where}: {name} must have one entry per image ({batch_size}), got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=dtype)


# ----------------------------------------------------------------------------- numba kernels


@numba.njit(cache=True, nogil=True)
def _crop_kernel(src, top, left, flip, out):
    """out[b] = window of the zero-padded src[b] at (top[b], left[b]), mirrored if flip[b].

    ``top``/``left`` are offsets into the *unpadded* image and may be negative: the padding is
    never materialised, pixels that fall outside are written as 0.
    """
    B, C, H, W = src.shape
    oh, ow = out.shape[2], out.shape[3]
    for b in range(B):
        t, l, f = top[b], left[b], flip[b]
        # Output columns [j_lo, j_hi) read inside the image; the rest is padding. Splitting each
        # row into zero / copy / zero runs keeps the copy loop branch-free (it vectorises).
        if f:  # column j reads x = l + ow - 1 - j
            j_lo, j_hi = max(0, l + ow - W), min(ow, l + ow)
        else:  # column j reads x = l + j
            j_lo, j_hi = max(0, -l), min(ow, W - l)
        for c in range(C):
            for i in range(oh):
                y = t + i
                if y < 0 or y >= H or j_lo >= j_hi:
                    out[b, c, i, :] = 0
                    continue
                out[b, c, i, :j_lo] = 0
                out[b, c, i, j_hi:] = 0
                if f:
                    base = l + ow - 1
                    for j in range(j_lo, j_hi):
                        out[b, c, i, j] = src[b, c, y, base - j]
                else:
                    for j in range(j_lo, j_hi):
                        out[b, c, i, j] = src[b, c, y, l + j]


@numba.njit(cache=True, nogil=True)
def _rotate_kernel(src, angles, bilinear, fill, out):
    """Inverse mapping: out pixel (i, j) takes src at the point that rotates onto it.

    With image rows pointing down, a counter-clockwise rotation by θ about the centre
    (cy, cx) = ((H-1)/2, (W-1)/2) sends the output offset (dy, dx) back to the source offset
    (dx·sinθ + dy·cosθ, dx·cosθ - dy·sinθ) in (row, col). Source points outside the image read
    ``fill``.
    """
    B, C, H, W = src.shape
    cy, cx = (H - 1) * 0.5, (W - 1) * 0.5
    for b in range(B):
        s, co = math.sin(angles[b]), math.cos(angles[b])
        for i in range(H):
            dy = i - cy
            for j in range(W):
                dx = j - cx
                sy = cy + dx * s + dy * co
                sx = cx + dx * co - dy * s
                if not bilinear:
                    y = int(math.floor(sy + 0.5))
                    x = int(math.floor(sx + 0.5))
                    inside = 0 <= y < H and 0 <= x < W
                    for c in range(C):
                        out[b, c, i, j] = src[b, c, y, x] if inside else fill
                else:
                    y0 = int(math.floor(sy))
                    x0 = int(math.floor(sx))
                    wy, wx = sy - y0, sx - x0
                    for c in range(C):
                        acc = 0.0
                        for ky in range(2):
                            yy = y0 + ky
                            wyk = wy if ky else 1.0 - wy
                            for kx in range(2):
                                xx = x0 + kx
                                wxk = wx if kx else 1.0 - wx
                                v = src[b, c, yy, xx] if (0 <= yy < H and 0 <= xx < W) else fill
                                acc += wyk * wxk * v
                        out[b, c, i, j] = min(255, max(0, int(acc + 0.5)))


@numba.njit(cache=True, nogil=True)
def _normalize_kernel(src, scale, shift, out):
    """out = src * scale[c] + shift[c] with scale = 1/(255·std), shift = -mean/std (one pass)."""
    B, C, H, W = src.shape
    for b in range(B):
        for c in range(C):
            k, o = scale[c], shift[c]
            for i in range(H):
                for j in range(W):
                    out[b, c, i, j] = np.float32(src[b, c, i, j]) * k + o


# ----------------------------------------------------------------------------- functions


def crop(batch: np.ndarray, size, top: np.ndarray, left: np.ndarray, flip=None) -> np.ndarray:
    """Deterministic crop: image b's window starts at (top[b], left[b]) of the unpadded image.

    Offsets may be negative or run past the edge; those pixels are 0 (zero padding). ``flip``
    (bool ``[B]``, optional) mirrors the chosen windows left-right in the same pass.
    """
    batch = _check_batch(batch)
    oh, ow = _pair(size, "size", "crop")
    B = batch.shape[0]
    top = _offsets("top", top, B, "crop", np.int64)
    left = _offsets("left", left, B, "crop", np.int64)
    flip = np.zeros(B, dtype=np.bool_) if flip is None else _offsets("flip", flip, B, "crop", np.bool_)
    out = np.empty((B, batch.shape[1], oh, ow), dtype=np.uint8)
    _crop_kernel(np.ascontiguousarray(batch), top, left, flip, out)
    return out


def _crop_offsets(batch, size, padding, rng, where="random_crop"):
    oh, ow = _pair(size, "size", where)
    padding = _padding(padding, where)
    B, _, H, W = batch.shape
    if oh > H + 2 * padding or ow > W + 2 * padding:
        raise ValueError(
            f"{where}: crop size {(oh, ow)} is larger than the padded image {(H + 2 * padding, W + 2 * padding)}"
        )
    top = rng.integers(0, H + 2 * padding - oh + 1, size=B) - padding
    left = rng.integers(0, W + 2 * padding - ow + 1, size=B) - padding
    return (oh, ow), top, left


def random_crop(batch: np.ndarray, size, padding: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-pad each image by ``padding`` and cut a ``size`` window at a uniform random place."""
    batch, rng = _check_batch(batch), _check_rng(rng, "random_crop")
    size, top, left = _crop_offsets(batch, size, padding, rng)
    return crop(batch, size, top, left)


def horizontal_flip(batch: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mirror left-right the images where ``mask`` (bool ``[B]``) is True; a new array."""
    batch = _check_batch(batch)
    mask = _offsets("mask", mask, batch.shape[0], "horizontal_flip", np.bool_)
    out = batch.copy()
    out[mask] = batch[mask][..., ::-1]
    return out


def random_horizontal_flip(batch: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Mirror each image left-right with probability ``p``."""
    batch, rng = _check_batch(batch), _check_rng(rng, "random_horizontal_flip")
    p = _probability(p, "random_horizontal_flip")
    return horizontal_flip(batch, rng.random(batch.shape[0]) < p)


def rotate(batch: np.ndarray, angles, interpolation: str = "nearest", fill: int = 0) -> np.ndarray:
    """Rotate image b counter-clockwise by ``angles[b]`` degrees about its centre.

    ``interpolation`` is ``"nearest"`` (torchvision's default) or ``"bilinear"``; pixels that come
    from outside the image are ``fill``.
    """
    batch = _check_batch(batch)
    interpolation = _interpolation(interpolation, "rotate")
    fill = _fill(fill, "rotate")
    if checks.is_real(angles):
        angles = np.full(batch.shape[0], checks.real("rotate", "angles", angles))
    angles = np.asarray(angles)
    if angles.dtype.kind not in "iuf":
        raise TypeError(f"rotate: angles must be real numbers (degrees), got dtype {angles.dtype}")
    angles = angles.astype(np.float64)
    if angles.shape != (batch.shape[0],):
        raise ValueError(f"rotate: angles must be one number or one per image ({batch.shape[0]}), got shape {angles.shape}")
    if not np.all(np.isfinite(angles)):
        raise ValueError(f"rotate: angles must be finite, got {angles[~np.isfinite(angles)][:3].tolist()}")
    out = np.empty_like(batch)
    _rotate_kernel(
        np.ascontiguousarray(batch), np.deg2rad(angles), interpolation == "bilinear", int(fill), out
    )
    return out


def _degree_range(degrees, where: str = "random_rotation") -> tuple[float, float]:
    """A number d (the range [-d, d]) or a pair (lo, hi) with lo <= hi, in finite degrees."""
    if checks.is_real(degrees):
        d = checks.real(where, "degrees", degrees, low=0.0)
        return -d, d
    if isinstance(degrees, (tuple, list)):
        lo, hi = checks.reals(where, "degrees", degrees, length=2)
        if lo > hi:
            raise ValueError(f"{where}: degrees (lo, hi) must have lo <= hi, got {checks.show(degrees)}")
        return lo, hi
    raise TypeError(f"{where}: degrees must be a number d (range [-d, d]) or a pair (lo, hi), got "
                    f"{checks.kind_of(degrees)} {checks.show(degrees)}")


def random_rotation(
    batch: np.ndarray,
    degrees,
    rng: np.random.Generator,
    interpolation: str = "nearest",
    fill: int = 0,
) -> np.ndarray:
    """Rotate each image by an angle uniform in ``[-degrees, degrees]`` (or ``[lo, hi]``)."""
    batch, rng = _check_batch(batch), _check_rng(rng, "random_rotation")
    lo, hi = _degree_range(degrees)
    return rotate(batch, rng.uniform(lo, hi, size=batch.shape[0]), interpolation, fill)


def _per_channel(where: str, name: str, values, **bounds) -> np.ndarray:
    """One finite real per channel: a number, a tuple/list, or a 1-D real array."""
    if checks.is_real(values):
        values = [values]
    elif isinstance(values, np.ndarray):
        if values.dtype.kind not in "iuf" or values.ndim > 1:
            raise TypeError(f"{where}: {name} must be real numbers, one per channel, got "
                            f"{values.dtype} array of shape {values.shape}")
        values = values.reshape(-1).tolist()
    return np.asarray(checks.reals(where, name, values, **bounds), dtype=np.float64)


def _mean_std(mean, std, channels: int | None, where: str = "normalize") -> tuple[np.ndarray, np.ndarray]:
    mean = _per_channel(where, "mean", mean)
    std = _per_channel(where, "std", std, low=0.0, low_open=True)
    channels = mean.size if channels is None else channels
    if mean.shape != (channels,) or std.shape != (channels,):
        raise ValueError(
            f"{where}: mean and std need one value per channel ({channels}), got {mean.size} and {std.size}"
        )
    return mean, std


def normalize(batch: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``(x / 255 - mean[c]) / std[c]`` as float32 ``[B, C, H, W]``, in one pass over the batch."""
    batch = _check_batch(batch)
    mean, std = _mean_std(mean, std, batch.shape[1])
    scale = (1.0 / (255.0 * std)).astype(np.float32)
    shift = (-mean / std).astype(np.float32)
    out = np.empty(batch.shape, dtype=np.float32)
    _normalize_kernel(np.ascontiguousarray(batch), scale, shift, out)
    return out


# ----------------------------------------------------------------------------- pipeline objects


class RandomCrop:
    """``random_crop`` as a pipeline step (``Compose`` fuses it with a following flip)."""

    def __init__(self, size, padding: int = 0):
        self.size = _pair(size, "size", "RandomCrop")
        self.padding = _padding(padding, "RandomCrop")

    def __call__(self, batch, rng):
        return random_crop(batch, self.size, self.padding, rng)

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    def __init__(self, p: float = 0.5):
        self.p = _probability(p, "RandomHorizontalFlip")

    def __call__(self, batch, rng):
        return random_horizontal_flip(batch, rng, self.p)

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class RandomCropFlip:
    """Crop and flip fused into one gather: what ``Compose`` turns a crop followed by a flip into.

    It draws the same random numbers, in the same order, as ``RandomCrop`` then
    ``RandomHorizontalFlip``, so the fused and unfused pipelines give identical output.
    """

    def __init__(self, crop: RandomCrop, flip: RandomHorizontalFlip):
        if not isinstance(crop, RandomCrop) or not isinstance(flip, RandomHorizontalFlip):
            raise TypeError(f"RandomCropFlip: takes a RandomCrop and a RandomHorizontalFlip, got "
                            f"{checks.kind_of(crop)} and {checks.kind_of(flip)}")
        self.crop, self.flip = crop, flip

    def __call__(self, batch, rng):
        batch, rng = _check_batch(batch), _check_rng(rng, "RandomCropFlip")
        size, top, left = _crop_offsets(batch, self.crop.size, self.crop.padding, rng, "RandomCropFlip")
        mask = rng.random(batch.shape[0]) < self.flip.p
        return crop(batch, size, top, left, mask)

    def __repr__(self):
        return f"RandomCropFlip({self.crop!r}, {self.flip!r})"


class RandomRotation:
    def __init__(self, degrees, interpolation: str = "nearest", fill: int = 0):
        self.range = _degree_range(degrees, "RandomRotation")
        self.interpolation = _interpolation(interpolation, "RandomRotation")
        self.fill = _fill(fill, "RandomRotation")

    def __call__(self, batch, rng):
        return random_rotation(batch, self.range, rng, self.interpolation, self.fill)

    def __repr__(self):
        return f"RandomRotation(degrees={self.range}, interpolation={self.interpolation!r})"


class Normalize:
    """uint8 -> float32 ``(x / 255 - mean) / std``; uses no randomness (ignores ``rng``)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        mean, std = _mean_std(mean, std, None, "Normalize")
        self.mean, self.std = tuple(mean.tolist()), tuple(std.tolist())

    def __call__(self, batch, rng=None):
        return normalize(batch, self.mean, self.std)

    def __repr__(self):
        return f"Normalize(mean={self.mean}, std={self.std})"


class Compose:
    """Apply steps in order, each as ``step(batch, rng)`` with the one shared generator.

    Adjacent ``RandomCrop``, ``RandomHorizontalFlip`` are fused into one ``RandomCropFlip`` pass
    (same random draws, same result, one copy fewer).
    """

    def __init__(self, steps: Sequence[Transform]):
        steps = list(steps)
        for k, step in enumerate(steps):
            if not callable(step):
                raise TypeError(f"step {k} of Compose is not callable: {step!r}")
        fused = []
        for step in steps:
            if isinstance(step, RandomHorizontalFlip) and fused and type(fused[-1]) is RandomCrop:
                fused[-1] = RandomCropFlip(fused[-1], step)
            else:
                fused.append(step)
        self.steps = fused

    def __call__(self, batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for step in self.steps:
            batch = step(batch, rng)
        return batch

    def __repr__(self):
        inner = ", ".join(repr(s) for s in self.steps)
        return f"Compose([{inner}])"


PRESETS = ("depth_study", "alternative", "none")


def preset(name: str, mean: Sequence[float], std: Sequence[float], size=32, padding: int = 4) -> Compose:
    """The augmentation recipes of REFERENCE §7, ending in ``Normalize(mean, std)``.

    - ``"depth_study"`` (Table II): RandomCrop(size, padding), Normalize.
    - ``"alternative"`` (Table VI): RandomCrop(size, padding), RandomRotation(15),
      RandomHorizontalFlip, Normalize.
    - ``"none"``: Normalize only (evaluation, or training without augmentation).
    """
    checks.choice("preset", "name", name, PRESETS)
    if name == "depth_study":
        steps = [RandomCrop(size, padding)]
    elif name == "alternative":
        steps = [RandomCrop(size, padding), RandomRotation(15), RandomHorizontalFlip()]
    elif name == "none":
        steps = []
    else:
        raise ValueError(f"preset name must be one of {PRESETS}, got {name!r}")
    return Compose(steps + [Normalize(mean, std)])
