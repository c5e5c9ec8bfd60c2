"""How alike the firing patterns of consecutive blocks are: SSIM of firing-rate maps (paper Fig. 2b).

The paper's argument: in MS-ResNet the membrane stream is carried by identity shortcuts, so the
spike pattern the stream produces changes little from one block to the next, while the vanilla
network's LIF after each add re-draws it. This module measures that.

Firing-rate map at a position: the spikes there, averaged over time steps, samples (all batches)
and channels, giving one H×W map of rates in [0, 1]. Positions (``position=``):

- ``"stream"`` (default): the spikes of the stream entering each block, and entering the head.
  Where the stream is spikes (vanilla, PlainNet) they are the block's input itself; where it is
  real-valued (MS, SR-B, SR-C, W/O LIF) they are LIF(x_l), a LIF with the network's constants
  applied to the membrane stream x_l: in an MS block this is exactly the block's ``lif1`` output,
  so for MS and vanilla both, the map is the spike view of what the shortcut carries.
- ``"lif1"`` / ``"lif2"``: the output of each block's first / second LIF module.

SSIM (Wang et al. 2004; the paper's Eq. 11), for maps x, y with local means μ, variances σ²
and covariance σ_xy, weighted by a Gaussian window of σ = 1.5 (truncated at 3.5σ: an 11×11 window):

    SSIM = mean over pixels of  (2 μ_x μ_y + C1)(2 σ_xy + C2) / ((μ_x² + μ_y² + C1)(σ_x² + σ_y² + C2))

with C1 = (K1 L)², C2 = (K2 L)², K1 = 0.01, K2 = 0.03, L = 1 (the range of a rate). Local
statistics use population (not sample) moments and the borders are extended by reflection
(``ssim(..., crop_border=True)`` equals scikit-image's ``structural_similarity(gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=1)``, which then drops a 5-pixel border).
The analysis averages the SSIM map over *all* pixels (``crop_border=False``): CIFAR's last stage
is 8×8, smaller than the window, and cropping would leave nothing.

Pairs are taken between consecutive positions of the same H×W only; a pair across a stage change
(a new spatial size) is skipped (recorded as None), not resampled: resampling would add its own
smoothing to the similarity.

Options of ``run_ssim`` (``tinyspike analyze ssim ... --opt KEY=VALUE``): ``batch_size`` (32),
``batches`` (1), ``compare`` (None: model names measured beside the source, freshly initialised),
``position`` ("stream", "lif1" or "lif2"), ``batch_statistics`` (True, False or "auto": batch
statistics for an untrained model, running ones for a checkpoint).

Outputs: ``<out>/ssim.png`` (a radar chart, one spoke per same-size consecutive pair, one polygon
per model) and ``<out>/ssim.json`` (the SSIM values, None across a stage change, and the maps
themselves). Forward passes only: a rerun recomputes and overwrites both files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tinyspike import backend, checks
from tinyspike import functional as F
from tinyspike.analysis.blocks import (check_batches, check_model_names, compare_source, describe_source,
                                       legend_label, measuring,
                                       residual_blocks, take_batches)
from tinyspike.analysis.firing_plots import resolve_batch_statistics
from tinyspike.analysis.outputs import new_figure, output_dir, wrap, write_outputs
from tinyspike.models.blocks import SPIKES
from tinyspike.nn.monitor import array_of

NAME = "ssim"
POSITIONS = ("stream", "lif1", "lif2")
K1, K2 = 0.01, 0.03


# ---- SSIM in NumPy ----------------------------------------------------------------------------------
def gaussian_kernel(sigma: float = 1.5, truncate: float = 3.5) -> np.ndarray:
    """Normalised 1-D Gaussian weights on [-r, r], r = int(truncate·σ + 0.5) (SciPy's rule)."""
    radius = int(truncate * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    return weights / weights.sum()


def gaussian_filter(image, sigma: float = 1.5, truncate: float = 3.5) -> np.ndarray:
    """Separable Gaussian smoothing of a 2-D map, borders extended by half-sample reflection
    (``d c b a | a b c d | d c b a``: NumPy's "symmetric", SciPy's "reflect")."""
    weights = gaussian_kernel(sigma, truncate)
    radius = len(weights) // 2
    out = np.asarray(image, dtype=np.float64)
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="symmetric")
        length = out.shape[axis]
        # correlate along `axis`: sum_k w[k] · padded[i + k]
        out = sum(w * np.take(padded, np.arange(k, k + length), axis=axis) for k, w in enumerate(weights))
    return out


def ssim_map(a, b, data_range: float = 1.0, sigma: float = 1.5, truncate: float = 3.5) -> np.ndarray:
    """The per-pixel SSIM of two same-shape 2-D maps (module docstring)."""
    where = "ssim"
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"{where}: a and b must be 2-D maps of the same shape, got {a.shape} and {b.shape}")
    data_range = checks.real(where, "data_range", data_range, low=0.0, low_open=True)
    sigma = checks.real(where, "sigma", sigma, low=0.0, low_open=True)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    blur = lambda image: gaussian_filter(image, sigma, truncate)  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    numerator = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    denominator = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    return numerator / denominator


def ssim(a, b, data_range: float = 1.0, sigma: float = 1.5, truncate: float = 3.5, crop_border: bool = False) -> float:
    """Mean SSIM of two 2-D maps. ``crop_border=True`` drops the r-pixel border (r = window radius)
    before averaging, as scikit-image does; identical maps give exactly 1."""
    crop_border = checks.boolean("ssim", "crop_border", crop_border)
    values = ssim_map(a, b, data_range, sigma, truncate)
    if crop_border:
        r = len(gaussian_kernel(sigma, truncate)) // 2
        if min(values.shape) <= 2 * r:
            raise ValueError(f"ssim: crop_border=True needs maps larger than {2 * r}×{2 * r}, got {values.shape}")
        values = values[r:-r, r:-r]
    return float(values.mean())


# ---- firing-rate maps -------------------------------------------------------------------------------
@dataclass
class FiringMaps:
    model: str
    position: str
    names: list          # one per map: the block (or "head") whose input/LIF it is
    maps: list           # H×W lists of rates
    sizes: list          # (H, W) per map


def firing_rate_maps(model, batches, time_steps=None, position="stream", model_name=None,
                     batch_statistics=False) -> FiringMaps:
    """Firing-rate maps (mean over T, samples and channels) at every block (module docstring).
    No gradients; BN with running statistics or, if ``batch_statistics``, each batch's own."""
    where = "firing_rate_maps"
    blocks = residual_blocks(model, where)
    position = checks.choice(where, "position", position, POSITIONS)
    batch_statistics = checks.boolean(where, "batch_statistics", batch_statistics)
    if time_steps is not None:
        time_steps = checks.integer(where, "time_steps", time_steps, low=1)
    spiking_stream = blocks[0][1].stream == SPIKES
    names = [n for n, _ in blocks] + (["head"] if position == "stream" else [])
    sums = [None] * len(names)
    counts = [0] * len(names)

    def add(index, spikes):
        data = array_of(spikes)
        xp = backend.array_module_of(data)
        # [T, B, C, H, W] → sum over T, B, C; counted in float64
        total = xp.sum(data.astype(np.float64), axis=(0, 1, 2))
        sums[index] = total if sums[index] is None else sums[index] + total
        counts[index] += int(np.prod(data.shape[:3]))

    def stream_spikes(block, x):
        if spiking_stream:
            return x
        lif = block.lif1
        return F.lif(x, lif.v_th, lif.decay, lif.detach_reset, lif.surrogate)

    def make_hook(index, block, is_last):
        def hook(module, inputs, output):
            add(index, stream_spikes(block, inputs[0]))
            if is_last:
                add(index + 1, stream_spikes(block, output))

        return hook

    def make_lif_hook(index):
        def hook(module, inputs, output):
            add(index, output)

        return hook

    handles = []
    for i, (_, block) in enumerate(blocks):
        if position == "stream":
            handles.append(block.register_forward_hook(make_hook(i, block, i == len(blocks) - 1)))
        else:
            handles.append(getattr(block, position).register_forward_hook(make_lif_hook(i)))
    try:
        with measuring(model, batch_statistics):
            for batch in batches:
                images = batch[0] if isinstance(batch, (tuple, list)) else batch
                model(images, time_steps=time_steps) if time_steps is not None else model(images)
    finally:
        for h in handles:
            h.remove()
    if not counts[0]:
        raise ValueError(f"{where}: batches yielded no inputs")
    maps = [backend.to_numpy(s) / c for s, c in zip(sums, counts)]
    return FiringMaps(model=model_name or getattr(model, "name", type(model).__name__), position=position,
                      names=names, maps=[m.tolist() for m in maps], sizes=[list(m.shape) for m in maps])


@dataclass
class SSIMResult:
    model: str
    position: str
    pairs: list          # "a -> b" for every consecutive pair
    values: list         # SSIM, or None where the sizes differ (a stage change)
    sizes: list

    def to_dict(self) -> dict:
        return asdict(self)


def consecutive_ssim(maps: FiringMaps) -> SSIMResult:
    """SSIM between each map and the next (None across a change of spatial size)."""
    pairs, values = [], []
    for i in range(len(maps.maps) - 1):
        pairs.append(f"{maps.names[i]} -> {maps.names[i + 1]}")
        a, b = np.asarray(maps.maps[i]), np.asarray(maps.maps[i + 1])
        values.append(ssim(a, b, data_range=1.0) if a.shape == b.shape else None)
    return SSIMResult(model=maps.model, position=maps.position, pairs=pairs, values=values, sizes=maps.sizes)


# ---- plot -------------------------------------------------------------------------------------------
#: About this many spokes carry a label; with more pairs than this, every k-th does (a deep network
#: has 50+ pairs: labelling them all would print the names over each other).
SPOKE_LABELS = 14


def spoke_label_step(n_spokes: int, wanted: int = SPOKE_LABELS) -> int:
    """k such that labelling spokes 0, k, 2k, ... gives at most ``wanted`` labels (k = 1: all)."""
    return max(1, -(-n_spokes // wanted))  # ceil(n / wanted)


def segments(values) -> list[list[int]]:
    """The indices of ``values`` split into runs of measured (not None) pairs: one run per stage."""
    runs, current = [], []
    for i, v in enumerate(values):
        if v is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(i)
    if current:
        runs.append(current)
    return runs


def plot_ssim(results, title: str):
    """A radar chart: one spoke per pair of consecutive positions, one outline per model. A pair
    across a stage change (new H×W, not measured) keeps its spoke, drawn dashed and unlabelled, and
    each outline breaks there, so the chart shows where the stages begin."""
    results = [results] if isinstance(results, SSIMResult) else list(results)
    first = results[0]
    measured = [i for i, v in enumerate(first.values) if v is not None]
    if not measured:
        raise ValueError("plot_ssim: no pair of consecutive maps has the same size")
    values_seen = [v for r in results for v in r.values if v is not None]
    r_min = min(0.0, float(np.floor(min(values_seen) * 10) / 10))
    figure = new_figure(7.5, 8.2)
    ax = figure.add_subplot(projection="polar")
    n = len(first.values)
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    closes = len(measured) == n  # no stage change: the outline goes all the way round
    for k, r in enumerate(results):
        color = f"C{k}"
        measured_here = [r.values[i] if i < len(r.values) else None for i in range(n)]
        values = np.array([np.nan if v is None else v for v in measured_here], dtype=float)
        label = f"{r.model} (mean {np.nanmean(values):.3f})"
        for run in ([list(range(n)) + [0]] if closes else segments(measured_here)):
            theta, radius = angles[run], values[run]
            ax.plot(theta, radius, marker="o", markersize=3, color=color, label=label)
            label = None  # one legend entry per model
            # a wedge from the centre under this stage's outline
            ax.fill(np.concatenate([[theta[0]], theta, [theta[-1]]]), np.concatenate([[r_min], radius, [r_min]]),
                    color=color, alpha=0.10, linewidth=0)
    changes = [i for i, v in enumerate(first.values) if v is None]
    for j, i in enumerate(changes):
        ax.plot([angles[i], angles[i]], [r_min, 1.0], color="grey", linestyle="--", linewidth=1.2,
                label="stage change (new H×W: pair not measured)" if j == 0 else None)
    step = spoke_label_step(len(measured))
    shown = set(measured[::step])
    labels = [first.pairs[i].replace("stages.", "s").replace(" -> ", "→") if i in shown else "" for i in range(n)]
    ax.set_xticks(angles)
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylim(r_min, 1.0)
    # radial labels inside the rings, not on the outer ring (the ring at 1.0 is named in the title)
    ticks = [t for t in np.arange(0.2, 1.0, 0.2) if t > r_min]
    ax.set_yticks(ticks)
    ax.set_yticklabels([f"{t:.1f}" for t in ticks], fontsize=7, color="dimgrey")
    ax.set_rlabel_position(float(np.degrees(angles[1] / 2)) if n > 1 else 22.5)  # between the first two spokes
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), fontsize=8, ncol=1, frameon=False)
    every = "every pair labelled" if step == 1 else f"1 pair in {step} labelled"
    figure.suptitle(wrap(title) + "\nSSIM (unitless; outer ring = 1, identical) between the firing-rate maps of "
                    f"consecutive blocks\n({first.position} spikes, rate = mean over T, samples, channels; "
                    f"{len(measured)} pairs, {every})", fontsize=9)
    figure.set_layout_engine("constrained")
    return figure


# ---- run --------------------------------------------------------------------------------------------
def run_ssim(source, out_dir, batch_size=32, batches=1, compare=None, position="stream",
             batch_statistics="auto") -> dict:
    """SSIM of consecutive blocks' firing-rate maps of ``source`` and of each ``compare`` model
    (freshly initialised, same dataset, T, seed, options), on the same test batches.
    ``batch_statistics``: True, False or "auto" (batch statistics for untrained models, whose
    running statistics are still 0 and 1; running ones for a checkpoint), per model."""
    where = "run_ssim"
    checks.boolean_or(where, "batch_statistics", batch_statistics, ("auto",))
    batch_size, batches = check_batches(where, batch_size, batches)
    compare = check_model_names(where, "compare", compare)
    position = checks.choice(where, "position", position, POSITIONS)
    out_dir = output_dir(where, out_dir)
    residual_blocks(source.model, where)
    data = take_batches(source, batch_size, batches)
    sources = [source] + [compare_source(source, n) for n in compare]
    results, maps = [], []
    for s in sources:
        found = firing_rate_maps(s.model, data, s.time_steps, position, legend_label(s),
                                 resolve_batch_statistics(where, s, batch_statistics))
        maps.append(found)
        results.append(consecutive_ssim(found))
    figure = plot_ssim(results, source.title("firing-pattern similarity"))
    payload = {"analysis": NAME, "source": describe_source(source),
               "options": {"batch_size": batch_size, "batches": batches, "compare": compare, "position": position,
                           "batch_statistics": batch_statistics,
                           "window": "gaussian sigma 1.5, truncate 3.5 (11x11), reflect borders, mean over all "
                                     "pixels", "K1": K1, "K2": K2, "L": 1.0},
               "results": [r.to_dict() for r in results],
               "maps": [asdict(m) for m in maps]}
    return write_outputs(out_dir, NAME, figure, payload)
