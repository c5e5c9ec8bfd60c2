"""Gradient norms at the input of every residual block: the paper's block dynamical isometry.

Hu et al. (Prop. 1) argue that an MS block passes the gradient back nearly unchanged: with x_l the
stream entering block l (x_L the stream entering the head), the ratio

    ρ_l = ‖∂L/∂x_l‖ / ‖∂L/∂x_{l+1}‖          (block l's backward gain)

stays close to 1 through an MS-ResNet, where a vanilla spiking ResNet, whose LIF after the add
cuts the identity path, lets it drift. ``block_gradient_norms`` measures the norms exactly: a
forward hook on each block calls ``retain_grad()`` on the block's input (and on the last block's
output, the head's input), one backward of the cross-entropy fills their ``.grad``, and the L2
norm is taken over the whole tensor [T, B, C, H, W]. Because a block's input feeds both its
branch and its shortcut, its ``.grad`` is the sum over both paths, which is ∂L/∂x_l itself.

A *block* is every ``ResidualBlock`` of the model in forward order (for PlainNet: its LIF(BN(Conv))
pairs, which have no shortcut). A *stage change* is a block whose stride is not 1 or whose width
changes: there the tensor changes shape, so its ratio mixes the block's gain with the change of
size, and the plot marks it.

Batch statistics: by default the norms are measured as in training, with batch norm using the
batch's own statistics (dropout off, so that the number does not depend on a random mask). The
running statistics, every module's train/eval mode and every parameter's ``.grad`` are restored
afterwards: measuring changes nothing in the model.

Memory: the backward keeps every activation of the batch, like a training step: for
MS-ResNet-482 on 32×32 inputs at T = 6 that is roughly 0.45 GB per sample in float32, so use a
batch of 2-4 there.

Options of ``run_grad_norms`` (``tinyspike analyze grad-norms ... --opt KEY=VALUE``):
``batch_size`` (32) and ``batches`` (1): the first test batches; ``compare`` (None): model names
to measure beside the source's, freshly initialised with its dataset, T, seed and model options
(e.g. ``["vanilla_resnet56"]``: the paper's MS-vs-vanilla comparison); ``batch_statistics`` (True).

Outputs: ``<out>/grad-norms.png`` (norms per position on a log axis, ratios per block) and
``<out>/grad-norms.json`` (every ``GradNormResult``, NaN ratios as null). One backward per batch:
nothing to restart; a rerun recomputes and overwrites both files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from tinyspike import backend, checks
from tinyspike import functional as F
from tinyspike.analysis.blocks import (check_batches, check_model_names, compare_source, describe_source,
                                       legend_label, model_state_kept, residual_blocks, stage_changes, take_batches)
from tinyspike.analysis.outputs import count, new_figure, output_dir, wrap, write_outputs
from tinyspike.autograd import Tensor

NAME = "grad-norms"


# ---- compute ---------------------------------------------------------------------------------------
@dataclass
class GradNormResult:
    """Gradient norms at positions 0..L (inputs of blocks 0..L-1, then the head's input).

    ``norms[i]``: ‖∂L/∂x_i‖₂ over the whole tensor, averaged over the batches (L = mean
    cross-entropy of a batch). ``per_sample_norms[i]``: B·‖∂L/∂x_i[:, b]‖₂ averaged over the
    samples b, i.e. the norm of one sample's own loss gradient (exact without batch statistics;
    with them the samples of a batch interact). ``ratios[l] = norms[l] / norms[l + 1]`` (NaN where
    the denominator is 0). ``stage_changes``: block indices whose ratio crosses a change of shape.
    """

    model: str
    positions: list
    shapes: list
    norms: list
    per_sample_norms: list
    ratios: list
    stage_changes: list
    loss: float
    batch_statistics: bool
    batches: int
    extra: dict = field(default_factory=dict)

    def within_stage_ratios(self) -> list:
        return [r for i, r in enumerate(self.ratios) if i not in self.stage_changes]

    def to_dict(self) -> dict:
        return asdict(self)


def _norm(array) -> float:
    xp = backend.array_module_of(array)
    return float(xp.sqrt(xp.sum(array.astype(np.float64) ** 2)).item())


def _per_sample_norm(array) -> float:
    """B · mean over b of ‖g[:, b]‖ for a gradient g of shape [T, B, ...]."""
    xp = backend.array_module_of(array)
    g = array.astype(np.float64)
    per_sample = xp.sqrt(xp.sum(g.reshape(g.shape[0], g.shape[1], -1) ** 2, axis=(0, 2)))
    return float(per_sample.mean().item()) * g.shape[1]


def block_gradient_norms(model, batches, time_steps=None, batch_statistics=True, model_name=None) -> GradNormResult:
    """Measure ‖∂L/∂x_l‖ at every block input and the head input (module docstring).

    Args:
        model: a ``SpikingResNet`` (anything whose forward runs ``ResidualBlock`` modules in order).
        batches: an iterable of ``(inputs, labels)``: inputs ``[B, C, H, W]`` or ``[T, B, C, H, W]``,
            integer labels ``[B]``.
        time_steps: T for static inputs (default: the model's).
        batch_statistics: BN with batch statistics (training behaviour, the default) or running ones.
    """
    where = "block_gradient_norms"
    blocks = residual_blocks(model, where)
    batch_statistics = checks.boolean(where, "batch_statistics", batch_statistics)
    if time_steps is not None:
        time_steps = checks.integer(where, "time_steps", time_steps, low=1)
    changes = stage_changes(blocks)
    captured: list = [None] * (len(blocks) + 1)

    def make_hook(index, is_last):
        def hook(module, inputs, output):
            captured[index] = inputs[0].retain_grad()
            if is_last:
                captured[index + 1] = output.retain_grad()

        return hook

    sums = np.zeros((2, len(blocks) + 1))
    losses, shapes, count = [], None, 0
    with model_state_kept(model, batch_statistics):
        handles = [b.register_forward_hook(make_hook(i, i == len(blocks) - 1)) for i, (_, b) in enumerate(blocks)]
        try:
            for images, labels in batches:
                captured[:] = [None] * len(captured)
                logits = model(images, time_steps=time_steps) if time_steps is not None else model(images)
                labels = labels.data if isinstance(labels, Tensor) else labels
                loss = F.cross_entropy(logits, backend.to_device(np.asarray(backend.to_numpy(labels))))
                loss.backward()
                if any(t is None for t in captured):
                    raise ValueError(f"{where}: not every block ran in the forward pass; model's forward must "
                                     "call each of its ResidualBlock modules once")
                for i, t in enumerate(captured):
                    grad = t.grad if t.grad is not None else backend.xp().zeros(t.shape, dtype=t.dtype)
                    sums[0, i] += _norm(grad)
                    sums[1, i] += _per_sample_norm(grad)
                shapes = [list(t.shape) for t in captured]
                losses.append(float(loss.item()))
                count += 1
                for p in model.parameters():
                    p.grad = None
        finally:
            for h in handles:
                h.remove()
            captured[:] = [None] * len(captured)
    if count == 0:
        raise ValueError(f"{where}: batches yielded no (inputs, labels) pair")
    norms, per_sample = (sums / count).tolist()
    ratios = [norms[i] / norms[i + 1] if norms[i + 1] > 0 else float("nan") for i in range(len(blocks))]
    return GradNormResult(
        model=model_name or getattr(model, "name", type(model).__name__),
        positions=[name for name, _ in blocks] + ["head"], shapes=shapes, norms=norms,
        per_sample_norms=per_sample, ratios=ratios, stage_changes=changes, loss=float(np.mean(losses)),
        batch_statistics=batch_statistics, batches=count,
    )


# ---- plot -------------------------------------------------------------------------------------------
def batch_words(result: GradNormResult) -> str:
    """``"1 batch of 8 images, T = 4"``, read from the [T, B, C, H, W] shape at the first block."""
    batches = count(result.batches, "batch", "batches")
    shape = result.shapes[0] if result.shapes else None
    if not shape or len(shape) != 5:
        return batches
    time_steps, images = shape[0], shape[1]
    return f"{batches} of {count(images, 'image')}, T = {time_steps}"


def plot_grad_norms(results, title: str):
    """Norms vs position (log y) and ratios vs block (1 = isometry), one line per model; dotted
    vertical lines at the stage changes of the first model."""
    results = [results] if isinstance(results, GradNormResult) else list(results)
    figure = new_figure(12, 4.4)
    ax_norm, ax_ratio = figure.subplots(1, 2)
    many = max(len(r.norms) for r in results) > 60
    marker = "" if many else "o"
    for r in results:
        ax_norm.plot(range(len(r.norms)), r.norms, marker=marker, markersize=3, label=r.model)
        ax_ratio.plot(range(len(r.ratios)), r.ratios, marker=marker, markersize=3, label=r.model)
    first = results[0]
    for k, block in enumerate(first.stage_changes):
        for ax, x in ((ax_norm, block), (ax_ratio, block)):
            ax.axvline(x, color="grey", linestyle=":", linewidth=1, label="stage change" if k == 0 and ax is ax_ratio else None)
    ax_ratio.axhline(1.0, color="black", linewidth=0.8)
    ax_norm.set_yscale("log")
    last = len(first.norms) - 1
    ax_norm.set(xlabel=f"position l (input of block l; {last} = head input)",
                ylabel="‖∂L/∂x_l‖₂ (whole batch tensor)", title="gradient norm at block inputs")
    ax_ratio.set(xlabel="block l", ylabel="‖∂L/∂x_l‖ / ‖∂L/∂x_(l+1)‖  (1 = isometry)",
                 title="per-block gradient ratio")
    from matplotlib.ticker import MaxNLocator  # lazy, as in outputs.new_figure: Matplotlib is heavy

    for ax in (ax_norm, ax_ratio):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    mode = "batch statistics" if first.batch_statistics else "running statistics"
    figure.suptitle(wrap(f"{title}\n{batch_words(first)}, mean cross-entropy, BN with {mode}", 150), fontsize=10)
    figure.set_layout_engine("constrained")
    return figure


# ---- run --------------------------------------------------------------------------------------------
def run_grad_norms(source, out_dir, batch_size=32, batches=1, compare=None, batch_statistics=True) -> dict:
    """Gradient norms of ``source``'s model and of each ``compare`` model (freshly initialised, same
    dataset, T, seed and model options) on the same test batches; writes grad-norms.png/.json."""
    where = "run_grad_norms"
    batch_size, batches = check_batches(where, batch_size, batches)
    compare = check_model_names(where, "compare", compare)
    batch_statistics = checks.boolean(where, "batch_statistics", batch_statistics)
    out_dir = output_dir(where, out_dir)
    residual_blocks(source.model, where)
    data = take_batches(source, batch_size, batches)
    results = [block_gradient_norms(source.model, data, source.time_steps, batch_statistics, legend_label(source))]
    for name in compare:
        other = compare_source(source, name)
        results.append(block_gradient_norms(other.model, data, other.time_steps, batch_statistics,
                                            legend_label(other)))
    figure = plot_grad_norms(results, source.title("block-input gradient norms"))
    payload = {"analysis": NAME, "source": describe_source(source),
               "options": {"batch_size": batch_size, "batches": batches, "compare": compare,
                           "batch_statistics": batch_statistics},
               "results": [r.to_dict() for r in results]}
    return write_outputs(out_dir, NAME, figure, payload)
