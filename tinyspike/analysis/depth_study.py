"""The depth study (paper Table II) and the alternative structures (Table VI): many trainings, one table.

Each (family, depth) pair is one ordinary training run, in its own run folder under the study's
folder, named by its model (``<out>/ms_resnet20``, ``<out>/plainnet14``, ...), trained by
``tinyspike.train.train`` (the same ``Trainer``, checkpoints and exact resume as ``tinyspike
train``). That makes the study restartable for free:

- a folder whose ``last.npz`` has reached the requested epochs is finished and skipped;
- a folder with fewer epochs (the study was stopped) is resumed exactly where it stopped;
- a folder holding a run with other settings is refused (one line naming the folder and the
  settings that differ), so two studies never mix in one table.

The summary (``<out>/depth-study.json`` and ``depth-study.png``, or ``alternatives.*``) is rebuilt from
the run folders' ``metrics.jsonl`` after every run, so it always shows what is on disk. Its
numbers per run: the test accuracy after the requested number of epochs, the best one, and the
mean over the last five epochs (the paper's measure, REFERENCE §7). On CIFAR-10 the figure draws
the paper's Table II values as dashed lines beside ours: only the values REFERENCE §7 gives.

    from tinyspike.analysis.depth_study import run_depth_study
    run_depth_study("studies/t2", dataset="cifar10", data_dir="~/data/cifar-10-batches-bin",
                    depths=[8, 14, 20], families=["plain", "vanilla", "ms"], epochs=100)

Options (``tinyspike analyze depth-study|alternatives --depths ... --families ... --epochs N
--recipe R``): ``depths`` (6n + 2 each), ``families`` (ms, srb, src, vanilla, wolif, plain),
``epochs``, ``recipe`` (a name of ``tinyspike.train.config.RECIPES`` or "none"), ``progress``,
and the run settings of ``RUN_SETTINGS``. Restart: run the same command again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from tqdm import tqdm

from tinyspike import checks
from tinyspike.analysis.outputs import count, new_figure, output_dir, output_paths, wrap, write_figure, write_json
from tinyspike.models.registry import cifar_depth_to_blocks
from tinyspike.train import TrainConfig, read_trainer_checkpoint, resolve_config, train
from tinyspike.train.config import RECIPES
from tinyspike.train.run_dir import RUN_FILES, RunDir

#: family short name -> model name prefix (tinyspike.models.registry) and the label in figures
FAMILIES = {
    "ms": ("ms_resnet", "MS-ResNet (SR-A)"),
    "srb": ("srb_resnet", "SR-B (pre-activation)"),
    "src": ("src_resnet", "SR-C (LIF before add)"),
    "vanilla": ("vanilla_resnet", "vanilla spiking ResNet"),
    "wolif": ("wolif_resnet", "W/O LIF"),
    "plain": ("plainnet", "PlainNet"),
}

#: The paper's Table II, CIFAR-10 test accuracy (%), as far as REFERENCE §7 gives it.
PAPER_TABLE_II = {
    "ms": {8: 82.0, 14: 87.4, 20: 88.4, 32: 89.7, 44: 90.0, 56: 90.4},
    "vanilla": {20: 86.7, 56: 72.4},
    "plain": {14: 85.2},
}

#: the two studies: default families, recipe and the name of their summary files
STUDIES = {
    "depth-study": dict(families=("plain", "vanilla", "wolif", "ms"), recipe="depth-study", paper=PAPER_TABLE_II,
                        what="Table II depth study"),
    "alternatives": dict(families=("ms", "srb", "src", "vanilla", "wolif"), recipe="alternative", paper={},
                         what="Table VI alternative structures"),
}

#: the settings a caller may give for every run of a study (keys of TrainConfig)
RUN_SETTINGS = ("T", "batch_size", "lr", "weight_decay", "seed", "model_options", "dataset_options", "data_dir",
                "eval_batch_size", "backend")

#: settings a resumed run may differ in (as ``tinyspike train --resume``)
_RESUMABLE = ("epochs", "data_dir", "backend")

#: how many final epochs the paper averages (REFERENCE §7)
LAST_EPOCHS = 5


class StudyError(ValueError):
    """A study that cannot be run as asked (the message says why, in one line)."""


# ---------------------------------------------------------------------------------- the plan


def model_name(family: str, depth: int) -> str:
    """``("ms", 20)`` -> ``"ms_resnet20"``; ``("plain", 14)`` -> ``"plainnet14"``."""
    return f"{FAMILIES[family][0]}{depth}"


def check_depths(where: str, depths) -> list[int]:
    """The depths as ints, each 6n + 2 (8, 14, 20, ...), without repeats."""
    if isinstance(depths, str) or not isinstance(depths, (list, tuple)) or not depths:
        raise TypeError(f"{where}: depths must be a non-empty list of depths 6n + 2, got {checks.show(depths)}")
    out = []
    for depth in depths:
        checks.integer(where, "depths", depth, low=1)
        try:
            cifar_depth_to_blocks(depth)
        except ValueError as err:
            raise StudyError(f"{where}: depths: {err}") from None
        if int(depth) not in out:
            out.append(int(depth))
    return out


def check_families(where: str, families) -> list[str]:
    if isinstance(families, str) or not isinstance(families, (list, tuple)) or not families:
        raise TypeError(f"{where}: families must be a non-empty list of {list(FAMILIES)}, got {checks.show(families)}")
    out = []
    for family in families:
        checks.choice(where, "families", family, tuple(FAMILIES))
        if family not in out:
            out.append(family)
    return out


def run_configs(dataset: str, families, depths, epochs: int, recipe, settings: dict) -> dict:
    """``{(family, depth): TrainConfig}``, each resolved as ``tinyspike train`` would resolve it
    from ``--dataset --model --recipe --epochs`` and ``settings``."""
    configs = {}
    for family in families:
        for depth in depths:
            explicit = {"dataset": dataset, "model": model_name(family, depth), "recipe": recipe, "epochs": epochs}
            explicit.update(settings)
            configs[(family, depth)] = resolve_config(explicit)
    return configs


# ---------------------------------------------------------------------------------- one run


def run_state(folder: Path, config: TrainConfig) -> str:
    """``"new"`` (nothing there), ``"stale"`` (a run that never finished an epoch), ``"partial"``
    (fewer epochs than ``config.epochs``) or ``"finished"``; a run with other settings raises."""
    folder = Path(folder)
    last = folder / "last.npz"
    if not last.exists():
        return "stale" if (folder / "config.json").exists() else "new"

    meta = read_trainer_checkpoint(last)["meta"]
    saved = TrainConfig.from_dict(meta["config"]).to_dict()
    wanted = config.to_dict()
    differ = [k for k in wanted if k not in _RESUMABLE and saved.get(k) != wanted[k]]
    if differ:
        shown = "; ".join(f"{k} {saved.get(k)!r} there, {wanted[k]!r} asked" for k in differ)
        raise StudyError(f"run folder {str(folder)!r} holds a run with other settings ({shown}); "
                         "use another --out for a different study")
    return "finished" if int(meta["epoch"]) >= config.epochs else "partial"


def remove_stale_run(folder: Path) -> None:
    """A run killed before its first epoch ended leaves config.json (and no checkpoint): remove
    its files so the run can start again in the same folder."""
    for name in RUN_FILES:
        try:
            (Path(folder) / name).unlink()
        except FileNotFoundError:
            pass


def train_one(folder: Path, config: TrainConfig, progress: bool, log: Callable) -> str:
    """Bring the run in ``folder`` to ``config.epochs``: start, resume or skip it. Returns what
    was done: "skipped", "resumed" or "trained"."""
    state = run_state(folder, config)
    if state == "finished":
        return "skipped"
    if state == "partial":
        train(resume=folder, epochs=config.epochs, data_dir=config.data_dir, progress=progress, log=log)
        return "resumed"
    if state == "stale":
        remove_stale_run(folder)
    train(config, out=folder, progress=progress, log=log)
    return "trained"


# ---------------------------------------------------------------------------------- summary


def run_summary(folder: Path, epochs: int) -> dict:
    """What the run folder says about the run after ``epochs`` epochs (None where it has not got there)."""
    folder = Path(folder)
    records = RunDir(folder).read_metrics() if (folder / "metrics.jsonl").exists() else []
    records = [r for r in records if int(r["epoch"]) <= epochs]
    accs = [r.get("test_acc") for r in records]
    done = int(records[-1]["epoch"]) if records else 0
    final = accs[-1] if records and done == epochs else None
    tail = [a for a in accs[-LAST_EPOCHS:] if a is not None]
    seen = [a for a in accs if a is not None]
    return {
        "run_dir": str(folder),
        "epochs_done": done,
        "finished": done >= epochs,
        "final_test_acc": final,
        "best_test_acc": max(seen) if seen else None,
        f"last{LAST_EPOCHS}_mean_test_acc": (sum(tail) / len(tail)) if tail and done == epochs else None,
        "final_train_acc": records[-1].get("train_acc") if records and done == epochs else None,
        "firing_rate": records[-1].get("firing_rate") if records and done == epochs else None,
    }


def build_summary(out_dir: Path, study: str, dataset: str, families, depths, epochs: int, recipe) -> dict:
    """The study's table, read from its run folders."""
    out_dir = Path(out_dir)
    runs, table = [], {}
    for family in families:
        table[family] = {}
        for depth in depths:
            name = model_name(family, depth)
            entry = {"family": family, "depth": depth, "model": name, **run_summary(out_dir / name, epochs)}
            runs.append(entry)
            table[family][str(depth)] = entry["final_test_acc"]
    paper = {}
    if dataset == "cifar10":
        paper = {f: {str(d): v for d, v in values.items()} for f, values in STUDIES[study]["paper"].items()
                 if f in families}
    return {
        "study": study, "dataset": dataset, "recipe": recipe, "epochs": epochs, "families": list(families),
        "depths": list(depths), "folder": str(out_dir), "runs": runs,
        "final_test_acc": table,  # family -> depth -> accuracy (0-1) after `epochs` epochs, None if not there yet
        "paper_test_acc_percent": paper,
    }


def plot_depth_study(summary: dict, title: str):
    """Final test accuracy (%) against depth, one line per family; the paper's values dashed."""
    fig = new_figure(7.5, 4.8, dpi=100)
    ax = fig.subplots()
    colors = {f: f"C{i}" for i, f in enumerate(FAMILIES)}
    for family in summary["families"]:
        points = [(int(d), 100 * a) for d, a in summary["final_test_acc"][family].items() if a is not None]
        label = FAMILIES[family][1] + " (ours)"
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, "o-", color=colors[family], label=label)
        else:
            ax.plot([], [], "o-", color=colors[family], label=label + ": no finished run yet")
    for family, values in summary.get("paper_test_acc_percent", {}).items():
        xs = [int(d) for d in values]
        ax.plot(xs, list(values.values()), "s--", color=colors[family], alpha=0.6, mfc="none",
                label=FAMILIES[family][1] + " (paper, Table II)")
    ax.set_xlabel("depth (layers)")
    ax.set_ylabel(f"test accuracy after {count(summary['epochs'], 'epoch')} (%)")
    ax.set_xticks(summary["depths"])
    if len(summary["depths"]) == 1:  # one depth: keep the points off the frame's edges
        ax.set_xlim(summary["depths"][0] - 1, summary["depths"][0] + 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    # the figure's title, wrapped, above a constrained layout: a long title is never cut off
    fig.suptitle(wrap(title, 110), fontsize=9)
    fig.set_layout_engine("constrained")
    return fig


def write_summary(out_dir: Path, study: str, dataset: str, families, depths, epochs: int, recipe) -> dict:
    """Rebuild ``<out>/<study>.json`` and ``<out>/<study>.png`` from the run folders; returns the summary."""
    out_dir = Path(out_dir)
    summary = build_summary(out_dir, study, dataset, families, depths, epochs, recipe)
    # the folder's name, not its absolute path: the path says nothing to a reader of the figure
    title = (f"{STUDIES[study]['what']}: test accuracy vs depth - {', '.join(families)} on {dataset}"
             f"\nrecipe {recipe or 'dataset defaults'}, {count(epochs, 'epoch')} (run folders in {out_dir.resolve().name}/)")
    json_path, png_path = output_paths(out_dir, study)
    summary = write_json(json_path, summary)
    write_figure(png_path, plot_depth_study(summary, title))
    return summary


# ---------------------------------------------------------------------------------- the runner


def _run_study(study: str, out_dir, *, dataset: str, depths, families, epochs: int, recipe, progress: bool,
               log: Callable | None, **settings) -> dict:
    where = f"run_{study.replace('-', '_')}"
    checks.path(where, "out_dir", out_dir)
    depths = check_depths(where, depths)
    families = check_families(where, STUDIES[study]["families"] if families is None else families)
    epochs = checks.integer(where, "epochs", epochs, low=1)
    progress = checks.boolean(where, "progress", progress)

    recipe = None if recipe is None else checks.choice(where, "recipe", recipe, (*RECIPES, "none"))
    if recipe == "none":  # the dataset's own defaults
        recipe = None
    unknown = sorted(set(settings) - set(RUN_SETTINGS))
    if unknown:
        raise TypeError(f"{where}: unknown setting(s) {unknown}; it takes {sorted(RUN_SETTINGS)}")
    settings = {k: v for k, v in settings.items() if v is not None}
    configs = run_configs(dataset, families, depths, epochs, recipe, settings)  # every setting checked up front
    out_dir = output_dir(where, out_dir)
    for (family, depth), config in configs.items():  # refuse a folder of another study before training anything
        run_state(out_dir / model_name(family, depth), config)
    log = log or (lambda line: None)
    done = {}
    bar = tqdm(list(configs.items()), desc=study, unit="run", disable=not progress)
    for (family, depth), config in bar:
        name = model_name(family, depth)
        bar.set_postfix_str(name)
        done[name] = train_one(out_dir / name, config, progress, log)
        if done[name] != "skipped":
            log(f"{study}: {name} {done[name]}")
        summary = write_summary(out_dir, study, dataset, families, depths, epochs, recipe)
    summary = write_summary(out_dir, study, dataset, families, depths, epochs, recipe)
    summary["actions"] = done
    return summary


def run_depth_study(out_dir, *, dataset: str = "digits", depths=(8, 14, 20, 32, 44, 56), families=None,
                    epochs: int = 100, recipe="depth-study", progress: bool = False, log: Callable | None = None,
                    **settings) -> dict:
    """Train (or resume, or skip) every ``families`` × ``depths`` run under ``out_dir`` and write the
    Table II summary. ``families`` default: plain, vanilla, wolif, ms. ``settings``: any of
    ``RUN_SETTINGS`` (e.g. ``batch_size=32, T=2, model_options={"widths": [4, 8, 8]}``), the same
    for every run. ``recipe="none"`` (or None) uses the dataset's defaults. Returns the summary
    dict, plus ``"actions"``: what was done to each run."""
    return _run_study("depth-study", out_dir, dataset=dataset, depths=depths, families=families, epochs=epochs,
                      recipe=recipe, progress=progress, log=log, **settings)


def run_alternatives(out_dir, *, dataset: str = "digits", depths=(20,), families=None, epochs: int = 100,
                     recipe="alternative", progress: bool = False, log: Callable | None = None, **settings) -> dict:
    """Table VI: the block types SR-A (ms), SR-B (srb), SR-C (src), vanilla and W/O LIF (wolif),
    each at ``depths``, with the ``alternative`` recipe; otherwise as ``run_depth_study``."""
    return _run_study("alternatives", out_dir, dataset=dataset, depths=depths, families=families, epochs=epochs,
                      recipe=recipe, progress=progress, log=log, **settings)
