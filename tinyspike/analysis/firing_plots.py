"""Firing rate of every LIF layer (paper Fig. 3a) and spike rasters of a few layers (Fig. 3b).

``layer_firing_rates`` counts with ``FiringRateMonitor`` (r = #spikes / (#neurons · T), over all
samples of the batches) and labels each LIF by its role, read from its module name: the stem's
LIF, a block's ``lif1`` (the one before conv1 in MS and SR-B blocks, after it in the others) or
``lif2``, and the head's LIF. Stage changes (blocks of stride ≠ 1 or a new width) are marked on
the chart at their block's first LIF.

``spike_raster`` takes one input sample and, for a few LIF layers (default: the first, the middle
and the last in registration order), the spikes of ``neurons`` of that layer's neurons chosen
without replacement by ``np.random.default_rng(seed)`` (every neuron of the sample's [C, H, W]
output is a candidate), over the T time steps.

Options of ``run_firing`` (``tinyspike analyze firing ... --opt KEY=VALUE``): ``batch_size``
(32), ``batches`` (4), ``batch_statistics`` ("auto": batch statistics for an untrained model,
whose running statistics are still 0 and 1, running ones for a checkpoint; or True/False).
Options of ``run_raster`` (``tinyspike analyze raster``): ``neurons`` (100), ``layers`` (None:
first, middle, last LIF), ``sample`` (0: the test sample's index), ``seed`` (0: which neurons),
``batch_statistics`` ("auto").

Outputs: ``<out>/firing.png`` + ``<out>/firing.json`` (rates per LIF, roles, stage changes) and
``<out>/raster.png`` + ``<out>/raster.json`` (the chosen neurons and their 0/1 spikes [T, n]).
Forward passes only: a rerun recomputes and overwrites the files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tinyspike import backend, checks
from tinyspike.analysis.blocks import (check_batches, describe_source, measuring, residual_blocks, stage_changes,
                                       take_batches)
from tinyspike.analysis.outputs import count, new_figure, output_dir, wrap, write_outputs
from tinyspike.nn.monitor import FiringRateMonitor, array_of, spiking_layers

FIRING, RASTER = "firing", "raster"
ROLE_COLOURS = {"lif1": "tab:blue", "lif2": "tab:orange", "stem": "tab:green", "head": "tab:red", "other": "tab:gray"}


def lif_role(name: str) -> str:
    """"lif1"/"lif2" for a block's LIFs, "stem"/"head" for the network's own, "other" else."""
    last = name.rsplit(".", 1)[-1]
    if last in ("lif1", "lif2"):
        return last
    if name.startswith("stem"):
        return "stem"
    if name.startswith("head"):
        return "head"
    return "other"


def _check_lifs(model, where):
    if not hasattr(model, "named_modules"):
        raise TypeError(f"{where}: model must be a tinyspike Module, got {checks.kind_of(model)}")
    layers = spiking_layers(model)
    if not layers:
        raise ValueError(f"{where}: model has no LIF layers; got a {type(model).__name__}")
    return layers


def _stage_change_layers(model, names) -> list[int]:
    """Indices (into ``names``) of the first LIF of each block that changes the shape."""
    try:
        blocks = residual_blocks(model, "firing")
    except ValueError:
        return []
    marks = []
    for b in stage_changes(blocks):
        prefix = blocks[b][0] + "."
        hits = [i for i, n in enumerate(names) if n.startswith(prefix)]
        if hits:
            marks.append(hits[0])
    return marks


def _run(model, batches, time_steps):
    for batch in batches:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        model(images, time_steps=time_steps) if time_steps is not None else model(images)


def resolve_batch_statistics(where: str, source, batch_statistics) -> bool:
    """"auto": batch statistics for an untrained model (its running statistics are still the
    initial 0 and 1, which make every BN a plain scale), running ones for a checkpoint."""
    value = checks.boolean_or(where, "batch_statistics", batch_statistics, ("auto",))
    return source.checkpoint is None if value == "auto" else value


# ---- compute ---------------------------------------------------------------------------------------
@dataclass
class FiringResult:
    model: str
    names: list           # LIF module names, registration order
    roles: list           # "stem" | "lif1" | "lif2" | "head" | "other"
    rates: list           # spikes / (neurons · T) over all samples seen
    mean_rate: float      # all spikes / all neuron-steps
    stage_changes: list   # indices into names: first LIF of a shape-changing block
    samples: int

    def to_dict(self) -> dict:
        return asdict(self)


def layer_firing_rates(model, batches, time_steps=None, model_name=None, batch_statistics=False) -> FiringResult:
    """Firing rate of every LIF layer over ``batches`` (no gradients; BN with running statistics,
    or with each batch's own if ``batch_statistics``; the model is left as it was)."""
    where = "layer_firing_rates"
    _check_lifs(model, where)
    batch_statistics = checks.boolean(where, "batch_statistics", batch_statistics)
    if time_steps is not None:
        time_steps = checks.integer(where, "time_steps", time_steps, low=1)
    samples = [0]

    def counting(batches):
        for batch in batches:
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            samples[0] += images.shape[1] if images.ndim == 5 else images.shape[0]
            yield images

    with measuring(model, batch_statistics), FiringRateMonitor(model) as monitor:
        _run(model, counting(batches), time_steps)
        rates, mean = monitor.rates(), monitor.mean_rate()
    if not samples[0]:
        raise ValueError(f"{where}: batches yielded no inputs")
    names = list(rates)
    return FiringResult(model=model_name or getattr(model, "name", type(model).__name__), names=names,
                        roles=[lif_role(n) for n in names], rates=list(rates.values()), mean_rate=mean,
                        stage_changes=_stage_change_layers(model, names), samples=samples[0])


@dataclass
class RasterResult:
    model: str
    layers: list          # LIF names
    neurons: list         # per layer: the chosen flat neuron indices into [C, H, W]
    spikes: list          # per layer: [T, neurons] 0/1
    shapes: list          # per layer: [C, H, W] of one sample
    sample: int

    def to_dict(self) -> dict:
        return asdict(self)


def default_raster_layers(names) -> list:
    """The first, middle and last LIF (fewer if the model has fewer)."""
    picks = [0, len(names) // 2, len(names) - 1]
    return [names[i] for i in dict.fromkeys(picks)]


def spike_raster(model, image, layers=None, neurons=100, seed=0, time_steps=None, model_name=None,
                 sample=0, batch_statistics=False) -> RasterResult:
    """Spikes over time of ``neurons`` neurons (fixed by ``seed``) in each of ``layers`` for one
    input ``image`` ([1, C, H, W] or [T, 1, C, H, W]); ``sample`` is only recorded.
    ``batch_statistics``: BN normalises with the one sample's own statistics (for an untrained
    model, see ``resolve_batch_statistics``)."""
    where = "spike_raster"
    found = _check_lifs(model, where)
    batch_statistics = checks.boolean(where, "batch_statistics", batch_statistics)
    neurons = checks.integer(where, "neurons", neurons, low=1)
    seed = checks.integer(where, "seed", seed, low=0)
    if time_steps is not None:
        time_steps = checks.integer(where, "time_steps", time_steps, low=1)
    names = [n for n, _ in found]
    if layers is None:
        layers = default_raster_layers(names)
    elif isinstance(layers, str) or not isinstance(layers, (list, tuple)) or not layers:
        raise TypeError(f"{where}: layers must be a non-empty list of LIF names or None, got {checks.show(layers)}")
    unknown = [n for n in layers if n not in names]
    if unknown:
        raise ValueError(f"{where}: layers names no LIF layer {unknown}; the model has {names}")
    modules = dict(found)
    outputs = {}

    def make_hook(name):
        def hook(module, inputs, output):
            outputs[name] = backend.to_numpy(array_of(output))

        return hook

    handles = [modules[n].register_forward_hook(make_hook(n)) for n in layers]
    try:
        with measuring(model, batch_statistics):
            _run(model, [image], time_steps)
    finally:
        for h in handles:
            h.remove()
    rng = np.random.default_rng(seed)
    chosen, spikes, shapes = [], [], []
    for name in layers:
        out = outputs[name][:, 0]                          # [T, C, H, W] of the one sample
        flat = out.reshape(out.shape[0], -1)
        pick = np.sort(rng.choice(flat.shape[1], size=min(neurons, flat.shape[1]), replace=False))
        chosen.append(pick.tolist())
        spikes.append(flat[:, pick].astype(np.int8).tolist())
        shapes.append(list(out.shape[1:]))
    return RasterResult(model=model_name or getattr(model, "name", type(model).__name__), layers=list(layers),
                        neurons=chosen, spikes=spikes, shapes=shapes, sample=sample)


# ---- plots ------------------------------------------------------------------------------------------
def plot_firing(result: FiringResult, title: str):
    """Bars of each LIF's firing rate coloured by role, stage changes as dotted lines, the mean dashed."""
    figure = new_figure(max(8.0, min(24.0, 0.18 * len(result.rates) + 4)), 4.4)
    ax = figure.add_subplot()
    x = np.arange(len(result.rates))
    colours = [ROLE_COLOURS[r] for r in result.roles]
    ax.bar(x, result.rates, color=colours, width=0.8)
    for role in ROLE_COLOURS:
        if role in result.roles:
            ax.bar([np.nan], [np.nan], color=ROLE_COLOURS[role], label=role)
    for k, i in enumerate(result.stage_changes):
        ax.axvline(i - 0.5, color="grey", linestyle=":", label="stage change" if k == 0 else None)
    ax.axhline(result.mean_rate, color="black", linestyle="--", linewidth=1, label=f"network mean {result.mean_rate:.3f}")
    ax.set(xlabel="LIF layer (forward order)", ylabel="firing rate (spikes / neuron / time step)",
           xlim=(-0.8, len(x) - 0.2))
    if len(x) <= 40:
        ax.set_xticks(x)
        ax.set_xticklabels([n.replace("stages.", "s") for n in result.names], rotation=90, fontsize=6)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.suptitle(wrap(f"{title}\n{count(result.samples, 'test sample')}", 110), fontsize=10)
    figure.set_layout_engine("constrained")
    return figure


def plot_raster(result: RasterResult, title: str):
    """One raster per layer: time step on x, chosen neuron on y, a dot per spike."""
    figure = new_figure(4.2 * len(result.layers), 4.6)
    axes = figure.subplots(1, len(result.layers), squeeze=False)[0]
    for ax, name, spikes, shape in zip(axes, result.layers, result.spikes, result.shapes):
        spikes = np.asarray(spikes)
        t, n = np.nonzero(spikes)
        ax.scatter(t, n, marker="s", s=6, color="black", clip_on=False)  # rows 0 and n-1 drawn whole
        rate = spikes.mean() if spikes.size else float("nan")
        # the spike count goes in the panel's title, not a legend: a legend inside the axes would
        # cover the top neurons' spikes
        ax.set(xlabel="time step t", ylabel="neuron (random sample)", xlim=(-0.5, spikes.shape[0] - 0.5),
               ylim=(-0.5, spikes.shape[1] - 0.5),
               title=f"{name}\n{spikes.shape[1]} of {int(np.prod(shape))} neurons: "
                     f"{count(int(spikes.sum()), 'spike')}, rate {rate:.3f}")
        ax.set_xticks(range(spikes.shape[0]))
        ax.title.set_fontsize(9)
    figure.suptitle(wrap(f"{title}\ntest sample {result.sample}", 40 * len(result.layers)), fontsize=10)
    figure.set_layout_engine("constrained")
    return figure


# ---- run --------------------------------------------------------------------------------------------
def run_firing(source, out_dir, batch_size=32, batches=4, batch_statistics="auto") -> dict:
    """Per-LIF firing rates of ``source``'s model on ``batches`` test batches; firing.png/.json.
    ``batch_statistics``: True, False or "auto" (see ``resolve_batch_statistics``)."""
    where = "run_firing"
    batch_size, batches = check_batches(where, batch_size, batches)
    batch_statistics = resolve_batch_statistics(where, source, batch_statistics)
    out_dir = output_dir(where, out_dir)
    _check_lifs(source.model, where)
    data = take_batches(source, batch_size, batches)
    result = layer_firing_rates(source.model, data, source.time_steps, source.model_name, batch_statistics)
    figure = plot_firing(result, source.title("firing rate per LIF layer"))
    payload = {"analysis": FIRING, "source": describe_source(source),
               "options": {"batch_size": batch_size, "batches": batches, "batch_statistics": batch_statistics},
               "result": result.to_dict()}
    return write_outputs(out_dir, FIRING, figure, payload)


def run_raster(source, out_dir, neurons=100, layers=None, sample=0, seed=0, batch_statistics="auto") -> dict:
    """Spike rasters of ``neurons`` neurons of ``layers`` (default first, middle, last LIF) for test
    sample number ``sample``; raster.png/.json. ``batch_statistics`` as in ``run_firing``."""
    where = "run_raster"
    batch_statistics = resolve_batch_statistics(where, source, batch_statistics)
    neurons = checks.integer(where, "neurons", neurons, low=1)
    sample = checks.integer(where, "sample", sample, low=0)
    seed = checks.integer(where, "seed", seed, low=0)
    out_dir = output_dir(where, out_dir)
    _check_lifs(source.model, where)
    image = _nth_sample(source, sample)
    result = spike_raster(source.model, image, layers, neurons, seed, source.time_steps, source.model_name, sample,
                          batch_statistics)
    figure = plot_raster(result, source.title("spike raster"))
    payload = {"analysis": RASTER, "source": describe_source(source),
               "options": {"neurons": neurons, "layers": result.layers, "sample": sample, "seed": seed,
                           "batch_statistics": batch_statistics},
               "result": result.to_dict()}
    return write_outputs(out_dir, RASTER, figure, payload)


def _nth_sample(source, sample: int):
    """Test sample ``sample`` as a batch of one ([1, C, H, W], or [T, 1, C, H, W] for frames)."""
    batch_size = 64
    for k, (images, _) in enumerate(source.batches("test", batch_size=batch_size)):
        index = sample - k * batch_size
        n = images.shape[1] if images.ndim == 5 else images.shape[0]
        if index < n:
            return images[:, index:index + 1] if images.ndim == 5 else images[index:index + 1]
    raise ValueError(f"run_raster: sample must be below the test set's size, got {sample}")
