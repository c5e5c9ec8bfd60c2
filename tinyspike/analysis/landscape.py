"""The loss landscape around a trained network (the paper's Fig. 4), by the method of Li et al.
(2018), "Visualizing the Loss Landscape of Neural Nets":

    f(α, β) = L(θ* + α·δ + β·η)

θ* are the trained weights, δ and η two random directions, and L the mean cross-entropy on a few
fixed batches. The directions are *filter-normalised*: a direction is drawn from N(0, 1) per
element, then every filter (one output channel: a slice ``w[k]`` of a conv weight
``[out, in, kh, kw]`` or a row of a linear weight ``[out, in]``) is rescaled so that its norm
equals the norm of the same filter in θ*,

    δ[k] ← δ[k] · ‖θ*[k]‖ / ‖δ[k]‖,

so that a step of α = 1 changes every filter by as much as it weighs, whatever the scale of the
layer (batch norm makes a conv's output invariant to the scale of its filters, and without this
the plots of two networks would not be comparable). Batch-norm parameters and biases (every 1-D
parameter) get a zero direction: Li et al.'s ``ignore='biasbn'`` option. The running statistics
are buffers, not parameters, and stay at θ*'s.

What the paper does not say, and what we do: the loss is evaluated in eval mode, so batch norm
uses the running statistics of θ* (f is then a deterministic function of the weights alone; in
training mode every point would renormalise with its own batch statistics and hide much of the
perturbation), on ``batches`` fixed batches of the *training* split (the landscape of the training
loss, as Li et al. plot it). The grid is ``grid`` × ``grid`` points over [-span, span]².

Layers: ``filter_normalised_direction`` / ``landscape_directions`` (the directions),
``evaluate_loss`` (L on fixed batches), ``loss_landscape`` (the scan; compute), ``plot_landscape``
(contour and surface; plot), ``run_landscape`` (an ``AnalysisSource`` to
``landscape.json``/``landscape.png``, restartable; run).

Restart: ``run_landscape`` rewrites ``landscape.json`` after every grid point with the losses
found so far (``null`` for the others) and a hash of everything that defines the scan (the
settings, the model and dataset names, and the bytes of θ* itself). A rerun with the same hash
computes only the missing points; a different hash starts again (``tinyspike analyze landscape``
with the same options continues a stopped scan).

Options of ``run_landscape`` (``--opt KEY=VALUE``): ``grid`` (11), ``span`` (1.0), ``batches``
(2), ``batch_size`` (32), ``seed`` (0: the directions), ``split`` ("train"), ``progress`` (True).
Outputs: ``<out>/landscape.json`` (``loss[i][j]``, ``accuracy[i][j]``, null where not computed) and
``<out>/landscape.png`` (contours and surface).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from tinyspike import backend, checks
from tinyspike.analysis.blocks import describe_source, take_batches
from tinyspike.analysis.outputs import new_figure, output_dir, output_paths, read_json, wrap, write_figure, write_json
from tinyspike.autograd import no_grad
from tinyspike.functional.loss import cross_entropy

NAME = "landscape"
FORMAT = "tinyspike-landscape"


# ---------------------------------------------------------------------------------- directions


def is_filter_weight(param) -> bool:
    """Whether a parameter is a conv or linear weight (at least 2-D: it has filters to normalise).

    Batch-norm γ/β and biases are 1-D and get a zero direction (Li et al.'s "ignore biasbn").
    """
    return param.ndim >= 2


def filter_normalised_direction(weight: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random N(0, 1) direction shaped like ``weight`` (float64, NumPy), each filter (slice along
    axis 0) rescaled to the norm of the same filter of ``weight``.

    A filter of ``weight`` that is all zeros gets a zero direction (its norm is 0).
    """
    weight = np.asarray(weight, dtype=np.float64)
    direction = rng.standard_normal(weight.shape)
    axes = tuple(range(1, weight.ndim))
    weight_norms = np.sqrt(np.sum(weight * weight, axis=axes, keepdims=True))
    direction_norms = np.sqrt(np.sum(direction * direction, axis=axes, keepdims=True))
    # a standard normal filter of >= 1 element has norm 0 with probability 0; the guard only
    # keeps a 0/0 out of a zero weight filter
    return direction * (weight_norms / np.maximum(direction_norms, np.finfo(np.float64).tiny))


def landscape_directions(model, seed: int) -> tuple[dict, dict]:
    """Two filter-normalised directions ``(δ, η)``: dicts name -> NumPy array in each parameter's
    dtype, zero for 1-D parameters (batch norm, biases).

    The same ``seed`` and weights give the same directions (δ is drawn for every parameter in
    ``named_parameters`` order, then η), so a restarted scan continues on the same plane.
    """
    rng = np.random.default_rng(checks.integer("landscape_directions", "seed", seed, low=0))
    named = [(name, backend.to_numpy(p.data)) for name, p in model.named_parameters()]
    directions = []
    for _ in range(2):
        direction = {}
        for name, weight in named:
            if is_filter_weight(weight):
                direction[name] = filter_normalised_direction(weight, rng).astype(weight.dtype)
            else:
                direction[name] = np.zeros_like(weight)
        directions.append(direction)
    return directions[0], directions[1]


# ---------------------------------------------------------------------------------- the loss


def evaluate_loss(model, batches, time_steps: int) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` (as it is, in its current mode) over ``batches``
    (a list of ``(images, labels)``), each sample weighing the same."""
    loss_sum, correct, seen = 0.0, 0, 0
    with no_grad():
        for images, labels in batches:
            x, y = backend.to_device(images), backend.to_device(labels)
            logits = model(x, time_steps=time_steps) if x.ndim == 4 else model(x)
            n = int(y.shape[0])
            loss_sum += float(cross_entropy(logits, y).item()) * n
            correct += int((logits.data.argmax(axis=1) == y).sum().item())
            seen += n
    return loss_sum / seen, correct / seen


# ---------------------------------------------------------------------------------- the scan


@dataclass
class LandscapeResult:
    """``loss[i, j]`` = f(alphas[i], betas[j]) (NaN where not computed yet); ``accuracy`` likewise."""

    alphas: np.ndarray
    betas: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    settings: dict = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return bool(np.isfinite(self.loss).all())

    def centre_loss(self) -> float:
        """f(0, 0) when the grid has the point 0 on both axes (an odd ``grid``), else NaN."""
        i, j = np.flatnonzero(self.alphas == 0.0), np.flatnonzero(self.betas == 0.0)
        return float(self.loss[i[0], j[0]]) if len(i) and len(j) else float("nan")


def grid_axis(grid: int, span: float) -> np.ndarray:
    """``grid`` evenly spaced coordinates over [-span, span]; the middle one is exactly 0 for odd grid."""
    axis = np.linspace(-span, span, grid)
    if grid % 2:
        axis[grid // 2] = 0.0  # linspace can leave 1e-17 there; the centre must be θ* exactly
    return axis


def check_scan_options(where: str, grid, span, batches, batch_size, seed) -> tuple[int, float, int, int, int]:
    grid = checks.integer(where, "grid", grid, low=2)  # points per axis: one point is no landscape
    span = checks.real(where, "span", span, low=0.0, low_open=True)
    batches = checks.integer(where, "batches", batches, low=1)
    batch_size = checks.integer(where, "batch_size", batch_size, low=1)
    seed = checks.integer(where, "seed", seed, low=0)
    return grid, span, batches, batch_size, seed


def loss_landscape(model, batches, *, time_steps: int, grid: int = 11, span: float = 1.0, seed: int = 0,
                   previous: LandscapeResult | None = None,
                   on_point: Callable[[LandscapeResult], None] | None = None,
                   progress: bool = False) -> LandscapeResult:
    """Scan f(α, β) on a ``grid`` × ``grid`` grid over [-span, span]² (see the module docstring).

    ``batches``: a list of ``(images, labels)``, the same for every point. ``previous``: a partial
    result of the same scan; its finite points are kept, not recomputed. ``on_point(result)`` is
    called after every computed point (``run_landscape`` saves there). The model is evaluated in
    eval mode; its weights and mode are restored exactly afterwards, also after an error.
    """
    where = "loss_landscape"
    grid, span, _, _, seed = check_scan_options(where, grid, span, 1, 1, seed)
    time_steps = checks.integer(where, "time_steps", time_steps, low=1)
    batches = list(batches)
    if not batches:
        raise ValueError(f"{where}: batches must hold at least one (images, labels) batch, got none")
    alphas, betas = grid_axis(grid, span), grid_axis(grid, span)
    if previous is not None and previous.loss.shape == (grid, grid):
        result = LandscapeResult(alphas, betas, previous.loss.copy(), previous.accuracy.copy())
    else:
        result = LandscapeResult(alphas, betas, np.full((grid, grid), np.nan), np.full((grid, grid), np.nan))
    delta, eta = landscape_directions(model, seed)
    params = list(model.named_parameters())
    trained = {name: p.data.copy() for name, p in params}  # θ*, on the device, restored at the end
    moves = {name: (backend.to_device(delta[name]), backend.to_device(eta[name])) for name, _ in params}
    todo = [(i, j) for i in range(grid) for j in range(grid) if not np.isfinite(result.loss[i, j])]
    was_training = model.training

    bar = tqdm(total=grid * grid, initial=grid * grid - len(todo), desc="loss landscape", unit="point",
               disable=not progress, leave=False, dynamic_ncols=True)
    model.eval()
    try:
        for i, j in todo:
            alpha, beta = alphas[i], betas[j]
            for name, p in params:
                d, e = moves[name]
                # from θ* every time (never by increments), so rounding cannot drift across the grid
                p.data[...] = trained[name] + p.data.dtype.type(alpha) * d + p.data.dtype.type(beta) * e
            result.loss[i, j], result.accuracy[i, j] = evaluate_loss(model, batches, time_steps)
            bar.update(1)
            if on_point is not None:
                on_point(result)
    finally:
        for name, p in params:
            p.data[...] = trained[name]
        model.train(was_training)
        bar.close()
    return result


# ---------------------------------------------------------------------------------- the plot


def plot_landscape(result: LandscapeResult, title: str):
    """Contour map (left) and surface (right) of f(α, β); returns a ``matplotlib.figure.Figure``."""
    alphas, betas = result.alphas, result.betas
    loss = np.ma.masked_invalid(result.loss.T)  # rows: β, columns: α (contour's convention)
    fig = new_figure(14, 6, dpi=100)
    ax_map = fig.add_subplot(1, 2, 1)
    ax_surface = fig.add_subplot(1, 2, 2, projection="3d")
    mesh_a, mesh_b = np.meshgrid(alphas, betas)
    filled = ax_map.contourf(mesh_a, mesh_b, loss, levels=20, cmap="viridis")
    lines = ax_map.contour(mesh_a, mesh_b, loss, levels=10, colors="white", linewidths=0.6)
    ax_map.clabel(lines, fontsize=7, fmt="%.2f")
    ax_map.plot([0], [0], marker="*", color="red", markersize=12, linestyle="none", label="centre: the model's weights θ*")
    ax_map.legend(loc="upper right", fontsize=8)
    ax_map.set(xlabel="α (step along δ, filter-normalised units)",
               ylabel="β (step along η, filter-normalised units)", title="contours of the loss")
    ax_map.set_aspect("equal")
    fig.colorbar(filled, ax=ax_map, label="training loss (cross-entropy, nats)")
    ax_surface.plot_surface(mesh_a, mesh_b, loss.filled(np.nan), cmap="viridis", linewidth=0, antialiased=True,
                            vmin=filled.get_clim()[0], vmax=filled.get_clim()[1])  # the contour map's colours
    ax_surface.set(xlabel="α", ylabel="β", title="surface (colours as on the left)")
    ax_surface.set_zlabel("loss (nats)", labelpad=12)
    fig.suptitle(wrap(title, 170), fontsize=10)
    fig.subplots_adjust(left=0.06, right=0.95, bottom=0.11, top=0.88, wspace=0.15)
    return fig


# ---------------------------------------------------------------------------------- the run


def settings_hash(settings: dict, model) -> str:
    """sha256 of the scan's settings and of θ*'s bytes: a rerun may reuse points only if this matches."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for name, p in model.named_parameters():
        array = np.ascontiguousarray(backend.to_numpy(p.data))
        digest.update(name.encode())
        digest.update(str(array.dtype).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def result_to_json(result: LandscapeResult, digest: str, title: str) -> dict:
    """The JSON of a (partial) scan: points not computed yet are NaN here, ``null`` once written."""
    loss = result.loss
    finite = loss[np.isfinite(loss)]
    return {
        "format": FORMAT,
        "settings_hash": digest,
        "settings": result.settings,
        "title": title,
        "complete": result.complete,
        "points_done": int(finite.size),
        "alphas": [float(a) for a in result.alphas],
        "betas": [float(b) for b in result.betas],
        "loss": loss,
        "accuracy": result.accuracy,
        "centre_loss": result.centre_loss(),
        "min_loss": float(finite.min()) if finite.size else None,
        "max_loss": float(finite.max()) if finite.size else None,
        "note": "loss[i][j] = f(alphas[i], betas[j]), mean cross-entropy in eval mode (BN running statistics) "
                "on fixed training batches; filter-normalised directions, zero on BN parameters and biases",
    }


def read_partial(path: Path, digest: str) -> LandscapeResult | None:
    """The points of an earlier scan in ``path`` when its settings hash is ``digest``, else None."""
    data = read_json(path, None)
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("settings_hash") != digest:
        return None

    def grid_array(rows):
        return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float64)

    try:
        return LandscapeResult(np.array(data["alphas"]), np.array(data["betas"]),
                               grid_array(data["loss"]), grid_array(data["accuracy"]))
    except (KeyError, TypeError, ValueError):
        return None


def run_landscape(source, out_dir, grid: int = 11, span: float = 1.0, batches: int = 2, batch_size: int = 32,
                  seed: int = 0, split: str = "train", progress: bool = True) -> dict:
    """Scan the loss landscape of ``source.model``; write ``landscape.json`` and ``landscape.png``.

    Args:
        source: an ``AnalysisSource`` (the model, its name, dataset, checkpoint and T).
        out_dir: the output folder (created).
        grid: points per axis (>= 2; odd puts θ* itself on the grid). span: the grid covers
            [-span, span]² in filter-normalised units. batches, batch_size: the fixed data.
        seed: the directions' seed. split: the data split ("train": the training loss).
        progress: a tqdm bar over the grid points.

    Restartable: finished points are saved after each point and reused by a rerun with the same
    settings and weights (see the module docstring). Returns the JSON dict.
    """
    where = "run_landscape"
    grid, span, batches, batch_size, seed = check_scan_options(where, grid, span, batches, batch_size, seed)
    split = checks.choice(where, "split", split, ("train", "test"))
    progress = checks.boolean(where, "progress", progress)
    out_dir = output_dir(where, out_dir)
    model = source.model
    data = take_batches(source, batch_size, batches, split)
    settings = {
        "grid": grid, "span": span, "batches": batches, "batch_size": batch_size, "seed": seed, "split": split,
        "model": source.model_name, "dataset": source.dataset_name, "time_steps": int(source.time_steps),
        "checkpoint": None if source.checkpoint is None else str(source.checkpoint),
        "images": int(sum(len(labels) for _, labels in data)),
    }
    digest = settings_hash(settings, model)
    json_path, png_path = output_paths(out_dir, NAME)
    title = source.title(f"loss landscape ({split} loss, {settings['images']} images, eval-mode BN)")
    previous = read_partial(json_path, digest) if json_path.exists() else None

    def save(result):
        result.settings = settings
        write_json(json_path, result_to_json(result, digest, title))

    result = loss_landscape(model, data, time_steps=int(source.time_steps), grid=grid, span=span, seed=seed,
                            previous=previous, on_point=save, progress=progress)
    result.settings = settings
    summary = write_json(json_path, {**result_to_json(result, digest, title), "source": describe_source(source)})
    write_figure(png_path, plot_landscape(result, title))
    return summary
