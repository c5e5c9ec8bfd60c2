"""The initialisation study (the paper's Fig. 5): how the initial γ of each residual block's two
batch norms decides how well an MS-ResNet starts to train.

(a) For every pair (γ₁, γ₂) of a grid, a network is built, the γ of ``bn1`` and of ``bn2`` in every
    residual block are set to γ₁ and γ₂, it is trained for ``epochs`` epoch(s) (one: the paper's
    "accuracy after the first epoch"), and its test accuracy is tabulated as a heatmap.
(b) A deep network (``depth_model``, e.g. ``ms_resnet56``) is trained twice: with γ₂ = 0 (the
    zero-init of the paper, §V-B) and with the standard tdBN init γ₁ = γ₂ = α·V_th, and the
    training loss of every iteration is drawn for both.

How γ is set: the model is built exactly as ``tinyspike train`` builds it (``build_parts``: the
registry, seeded by the run's seed), and then ``block.bn1.weight`` and ``block.bn2.weight`` of every
``ResidualBlock`` are overwritten in place, before the first step (the optimizer holds the same
Parameter objects and has no state yet, so nothing else needs rebuilding). The stem's BN and the
shortcut projections' BNs keep their tdBN init. Each run's initial state is saved as ``init.npz``
so the γ actually used can be read back.

Training settings: the source's own (``source.config``: dataset, options, T, optimizer, batch
size, ...), with a *constant* learning rate by default: the paper reads the first epoch of
100-epoch runs whose schedules (multistep at epoch 40, or cosine) have barely moved the lr yet,
whereas a cosine over a 1-epoch run would decay it to zero within that epoch. ``train_batches``
and ``eval_batches`` cut every epoch and every evaluation to their first batches (then "epoch"
means that many batches: for quick looks and tests).

Restart: every run has its own run folder under ``<out_dir>/init_study/``, written by the
``Trainer`` (``config.json``, ``metrics.jsonl``, ``last.npz``, ``best.npz``) plus ``point.json``
(the γ's and settings), ``init.npz`` and ``train_losses.json`` (per-iteration training losses,
one list per epoch). A rerun skips every finished run and rebuilds the tables from the folders;
a run interrupted after k epochs resumes from its ``last.npz`` (exactly, as ``--resume``); one
interrupted before its first epoch ended starts again.

Options of ``run_init_study`` (``tinyspike analyze init-study ... --opt KEY=VALUE``): ``gammas1``,
``gammas2`` (the grid), ``epochs`` (1), ``depth_model`` (None), ``depth_epochs`` (1),
``train_batches``/``eval_batches`` (None: whole epochs), ``batch_size``/``lr`` (None: the
source's), ``schedule`` ("constant"), ``progress`` (True). Outputs: ``<out>/init-study.json`` (the
accuracy table and every run's record) and ``<out>/init-study.png``; run folders under
``<out>/init-study/``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tinyspike import checks
from tinyspike.analysis.blocks import check_model_name, describe_source, residual_blocks
from tinyspike.analysis.outputs import new_figure, output_dir, output_paths, read_json, wrap, write_figure, write_json
from tinyspike.functional.loss import cross_entropy
from tinyspike.nn import save_checkpoint
from tinyspike.train.config import TrainConfig
from tinyspike.train.run_dir import RunDir, checkpoint_epoch
from tinyspike.train.setup import build_parts, build_schedule, remove_unfinished_run
from tinyspike.train.trainer import Trainer

NAME = "init-study"
SCHEDULES = ("constant", "cosine", "multistep")


class InitStudyError(ValueError):
    """A run folder of the study that belongs to other settings (the message names it)."""


# ---------------------------------------------------------------------------------- γ


def tdbn_gamma(bn) -> float:
    """The standard tdBN init of a batch norm: γ₀ = α·V_th (REFERENCE.md §2; 1 for a plain BatchNorm2d)."""
    return float(bn.alpha * bn.v_th) if hasattr(bn, "alpha") and hasattr(bn, "v_th") else 1.0


def set_block_gammas(model, gamma1: float | None, gamma2: float | None) -> int:
    """Set γ of ``bn1`` to ``gamma1`` and of ``bn2`` to ``gamma2`` in every residual block; None
    means the standard tdBN init γ₀ = α·V_th (so ``gamma2=None`` undoes the zero-init that
    ``ms_resnet*`` models are built with). Returns the number of blocks set; a model without
    residual blocks is refused."""
    blocks = residual_blocks(model, "set_block_gammas")
    for _, block in blocks:
        block.bn1.reset_gamma(tdbn_gamma(block.bn1) if gamma1 is None else gamma1)
        block.bn2.reset_gamma(tdbn_gamma(block.bn2) if gamma2 is None else gamma2)
    return len(blocks)


def block_gammas(state: dict) -> dict:
    """``{"bn1": sorted distinct γ values, "bn2": ...}`` over every residual block of a model state
    (name -> array), from the keys ``...<block>.bn1.weight`` / ``bn2.weight``."""
    found = {"bn1": set(), "bn2": set()}
    for key, value in state.items():
        for bn in found:
            if key.endswith(f".{bn}.weight"):
                found[bn].update(float(v) for v in np.asarray(value).ravel())
    return {bn: sorted(values) for bn, values in found.items()}


# ---------------------------------------------------------------------------------- pieces of a run


class FirstBatches:
    """The first ``limit`` batches of each epoch of a ``DataLoader`` (all of them when None).

    Keeps what the Trainer uses: ``len``, ``set_epoch``, ``dataset`` and iteration; the loader's
    background thread is stopped when the cut iteration ends.
    """

    def __init__(self, loader, limit: int | None):
        self.loader, self.limit = loader, limit
        self.dataset = getattr(loader, "dataset", None)

    def __len__(self) -> int:
        return len(self.loader) if self.limit is None else min(self.limit, len(self.loader))

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __iter__(self):
        batches = iter(self.loader)
        try:
            for _ in range(len(self)):
                yield next(batches)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()


class TrainingLossRecorder:
    """The Trainer's loss function (cross-entropy), also recording every training-mode loss value."""

    def __init__(self, model, label_smoothing: float = 0.0):
        self.model, self.label_smoothing = model, float(label_smoothing)
        self.values: list[float] = []

    def __call__(self, logits, labels):
        loss = cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        if self.model.training:  # evaluation calls it too, in eval mode
            self.values.append(float(loss.item()))
        return loss


def point_record(folder: Path) -> dict:
    """What a finished (or partial) run folder holds: γ's, per-epoch metrics, per-iteration losses."""
    point = read_json(folder / "point.json", {})
    history = RunDir(folder).read_metrics()
    losses = read_json(folder / "train_losses.json", {}).get("epochs", [])
    return {
        "folder": str(folder),
        "gamma1": point.get("initial_gammas", {}).get("bn1"),
        "gamma2": point.get("initial_gammas", {}).get("bn2"),
        "epochs_done": len(history),
        "test_acc": [r.get("test_acc") for r in history],
        "test_loss": [r.get("test_loss") for r in history],
        "train_loss": [r.get("train_loss") for r in history],
        "iteration_losses": [v for epoch in losses for v in epoch],
    }


def train_point(config, folder: Path, gamma1: float | None, gamma2: float | None, *,
                train_batches: int | None, eval_batches: int | None, progress: bool) -> dict:
    """Train (or resume, or skip when finished) the run of one γ pair in ``folder``; returns
    ``point_record(folder)``. ``None`` for a γ means the tdBN init α·V_th of that BN."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {"gamma1": gamma1, "gamma2": gamma2, "config": config.to_dict(),
              "train_batches": train_batches, "eval_batches": eval_batches}
    saved = read_json(folder / "point.json", None)
    if saved is not None and {k: saved.get(k) for k in wanted} != wanted:
        raise InitStudyError(f"run folder {str(folder)!r} holds a run of other settings than this study's; "
                             "choose another out_dir, or remove that folder to train it again")
    run = RunDir(folder)
    done = checkpoint_epoch(run.last_path) if run.last_path.exists() else None
    if done is not None and done >= config.epochs and saved is not None:
        return point_record(folder)  # finished: nothing to train

    parts = build_parts(config)
    set_block_gammas(parts.model, gamma1, gamma2)
    train_loader = FirstBatches(parts.train_loader, train_batches)
    eval_loader = FirstBatches(parts.eval_loader, eval_batches)
    schedule = build_schedule(config, parts.optimizer, len(train_loader))  # steps of the cut epoch
    recorder = TrainingLossRecorder(parts.model, config.label_smoothing)
    if done is None or saved is None:
        # a new run, or one stopped before its first epoch ended: start (again) from the init
        remove_unfinished_run(run, created_folder=False)
        run = RunDir.create(folder, config.to_dict())
        initial = parts.model.to_numpy_state()
        save_checkpoint(folder / "init.npz", parts.model)
        write_json(folder / "point.json", {**wanted, "initial_gammas": _single_values(block_gammas(initial))})
        write_json(folder / "train_losses.json", {"epochs": []})
    trainer = Trainer(
        parts.model, parts.optimizer, train_loader, eval_loader, epochs=config.epochs, time_steps=config.T,
        schedule=schedule, schedule_per=config.schedule_per, grad_clip=config.grad_clip, loss_fn=recorder,
        run_dir=run, config=config.to_dict(), progress=progress, plot=False,
    )
    if done is not None and saved is not None:
        trainer.load(run.last_path)
    losses = read_json(folder / "train_losses.json", {}).get("epochs", [])[: trainer.epoch]
    losses += [[] for _ in range(trainer.epoch - len(losses))]  # an epoch whose losses a stop lost
    trainer.check_model_finite(f"before epoch {trainer.epoch + 1}")
    while trainer.epoch < trainer.epochs:
        recorder.values = []
        trainer.run_epoch()
        losses.append(list(recorder.values))
        write_json(folder / "train_losses.json", {"epochs": losses})
    return point_record(folder)


def _single_values(gammas: dict) -> dict:
    """One γ per BN kind when every block has the same (the study's case), else the list."""
    return {bn: values[0] if len(values) == 1 else values for bn, values in gammas.items()}


# ---------------------------------------------------------------------------------- the study


def point_folder_name(gamma1: float, gamma2: float) -> str:
    return f"g1_{float(gamma1)!r}_g2_{float(gamma2)!r}"


def check_gammas(where: str, name: str, values) -> tuple[float, ...]:
    values = checks.reals(where, name, values)
    if not values:
        raise ValueError(f"{where}: {name} must hold at least one γ value, got an empty grid {checks.show(values)}")
    if len(set(values)) != len(values):
        raise ValueError(f"{where}: {name} must not repeat a value, got {checks.show(values)}")
    return values


def study_config(source, *, model: str, epochs: int, schedule: str, batch_size, lr):
    """The source's training config with the study's changes (a new, validated ``TrainConfig``)."""
    base = source.config.to_dict() if source.config is not None else {
        "dataset": source.dataset_name, "model": source.model_name, "T": int(source.time_steps), "seed": source.seed}
    base.update(model=model, epochs=epochs, schedule=schedule)
    base["warmup_epochs"] = 0
    if batch_size is not None:
        base["batch_size"] = batch_size
    if lr is not None:
        base["lr"] = lr
    if schedule == "multistep":
        base["schedule_per"] = "epoch"
    return TrainConfig.from_dict(base).validate()


def plot_init_study(result: dict, title: str):
    """Heatmap of the test accuracy over (γ₁, γ₂) and, when there are depth runs, their
    training-loss curves; returns a ``matplotlib.figure.Figure``."""
    curves = result.get("depth_runs") or {}
    fig = new_figure(13 if curves else 7, 5.6, dpi=100)
    axes = fig.subplots(1, 2 if curves else 1, squeeze=False)[0]
    ax = axes[0]
    acc = np.array([[np.nan if v is None else 100 * v for v in row] for row in result["accuracy"]])
    g1, g2 = result["gammas1"], result["gammas2"]
    image = ax.imshow(acc, origin="lower", cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for i in range(len(g1)):
        for j in range(len(g2)):
            text = "-" if math.isnan(acc[i, j]) else f"{acc[i, j]:.1f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=9,
                    color="black" if not math.isnan(acc[i, j]) and acc[i, j] > 60 else "white")
    ax.set_xticks(range(len(g2)), [f"{g:g}" for g in g2])
    ax.set_yticks(range(len(g1)), [f"{g:g}" for g in g1])
    epochs = result["settings"]["epochs"]
    ax.set(xlabel="γ₂: initial γ of each block's bn2 (dimensionless)",
           ylabel="γ₁: initial γ of each block's bn1 (dimensionless)",
           title=f"(a) {result['settings']['model']}: test accuracy after {epochs} epoch{'s' if epochs > 1 else ''}")
    fig.colorbar(image, ax=ax, label="test accuracy (%)")
    if curves:
        ax = axes[1]
        for key, run in curves.items():
            losses = run["iteration_losses"]
            label = (f"{'zero γ₂' if key == 'zero_gamma2' else 'standard tdBN init'} "
                     f"(γ₁ = {run['gamma1']:g}, γ₂ = {run['gamma2']:g})")
            ax.plot(np.arange(1, len(losses) + 1), losses, label=label, linewidth=1.2)
        ax.set(xlabel="training iteration (batches)", ylabel="training loss (cross-entropy, nats)",
               title=f"(b) {result['settings']['depth_model']}: training loss")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(wrap(title, 120 if curves else 65), fontsize=10)
    fig.tight_layout()
    return fig


def run_init_study(source, out_dir, gammas1=(0.0, 0.25, 0.5, 1.0), gammas2=(0.0, 0.25, 0.5, 1.0), epochs: int = 1,
                   depth_model: str | None = None, depth_epochs: int = 1, train_batches: int | None = None,
                   eval_batches: int | None = None, batch_size: int | None = None, lr: float | None = None,
                   schedule: str = "constant", progress: bool = True) -> dict:
    """Fig. 5 of the paper on ``source``'s model and dataset; writes ``init_study.json`` and
    ``init_study.png`` into ``out_dir`` and returns the JSON dict.

    Args:
        source: an ``AnalysisSource``: its model name and training config (dataset, options, T,
            optimizer, seed) define the runs; its weights are not used (every run starts fresh).
        gammas1, gammas2: the γ₁ (bn1) and γ₂ (bn2) values of the grid (non-empty, distinct).
        epochs: epochs per grid run (1: the paper's first-epoch accuracy).
        depth_model: a deep model name for the loss curves (e.g. "ms_resnet56"; None: no curves);
            it takes the source's model options (widths). depth_epochs: epochs of those two runs.
        train_batches, eval_batches: cut each epoch / evaluation to this many batches (None: all).
        batch_size, lr: override the source's. schedule: "constant" (default), "cosine" or
            "multistep" over the run's epochs.
        progress: a tqdm bar over the runs (and one per epoch).
    """
    where = "run_init_study"
    gammas1 = check_gammas(where, "gammas1", gammas1)
    gammas2 = check_gammas(where, "gammas2", gammas2)
    epochs = checks.integer(where, "epochs", epochs, low=1)
    if depth_model is not None:
        depth_model = check_model_name(where, "depth_model", depth_model)
    depth_epochs = checks.integer(where, "depth_epochs", depth_epochs, low=1)
    train_batches = checks.optional_integer(where, "train_batches", train_batches, low=1)
    eval_batches = checks.optional_integer(where, "eval_batches", eval_batches, low=1)
    batch_size = checks.optional_integer(where, "batch_size", batch_size, low=1)
    lr = None if lr is None else checks.real(where, "lr", lr, low=0.0, low_open=True)
    schedule = checks.choice(where, "schedule", schedule, SCHEDULES)
    progress = checks.boolean(where, "progress", progress)
    out_dir = output_dir(where, out_dir)
    root = out_dir / NAME  # one run folder per γ pair (and depth run) below it
    options = dict(train_batches=train_batches, eval_batches=eval_batches, progress=False)


    grid_config = study_config(source, model=source.model_name, epochs=epochs, schedule=schedule,
                               batch_size=batch_size, lr=lr)
    jobs = [("grid", point_folder_name(a, b), grid_config, a, b) for a in gammas1 for b in gammas2]
    if depth_model is not None:
        depth_config = study_config(source, model=depth_model, epochs=depth_epochs, schedule=schedule,
                                    batch_size=batch_size, lr=lr)
        jobs += [("depth", "zero_gamma2", depth_config, None, 0.0), ("depth", "standard", depth_config, None, None)]
    records = {}
    for kind, name, config, g1, g2 in tqdm(jobs, desc="init study", unit="run", disable=not progress):
        records[(kind, name)] = train_point(config, root / kind / name, g1, g2, **options)

    accuracy = [[_last(records[("grid", point_folder_name(a, b))]["test_acc"]) for b in gammas2] for a in gammas1]
    result = {
        "format": "tinyspike-init-study",
        "source": describe_source(source),
        "settings": {"model": source.model_name, "dataset": source.dataset_name, "epochs": epochs,
                     "depth_model": depth_model, "depth_epochs": depth_epochs, "train_batches": train_batches,
                     "eval_batches": eval_batches, "batch_size": grid_config.batch_size, "lr": grid_config.lr,
                     "schedule": schedule, "T": grid_config.T, "seed": grid_config.seed},
        "gammas1": list(gammas1),
        "gammas2": list(gammas2),
        "accuracy": accuracy,
        "runs": [records[("grid", point_folder_name(a, b))] for a in gammas1 for b in gammas2],
        "depth_runs": {name: records[("depth", name)] for kind, name in records if kind == "depth"},
        "note": "accuracy[i][j]: test accuracy after the last epoch of the run with gamma1 = gammas1[i] (bn1) "
                "and gamma2 = gammas2[j] (bn2) in every residual block",
    }
    title = source.title(f"initialisation study ({source.dataset_name}, T={grid_config.T}, lr {grid_config.lr:g} "
                         f"{schedule}" + (f", {train_batches} batches/epoch" if train_batches else "") + ")")
    result["title"] = title
    json_path, png_path = output_paths(out_dir, NAME)
    result = write_json(json_path, result)
    write_figure(png_path, plot_init_study(result, title))
    return result


def _last(values):
    return values[-1] if values else None
