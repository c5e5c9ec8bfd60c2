"""``tinyspike analyze NAME``: the paper's analyses from the command line.

    tinyspike analyze NAME CHECKPOINT --out DIR [--opt KEY=VALUE ...]              a trained model
    tinyspike analyze NAME --model M --dataset D --out DIR [--seed S] [--opt ...]  an untrained one
    tinyspike analyze depth-study --dataset D --depths 8,14,20 --families plain,ms --epochs N --out DIR
    tinyspike analyze alternatives --dataset D --depths 20 --epochs N --out DIR

Every analysis writes ``DIR/NAME.png`` and ``DIR/NAME.json``, NAME exactly as typed
(``ANALYSES`` below is the one table of names; ``tinyspike.analysis.outputs`` writes the files):

    depth-study   Table II: accuracy vs depth per block family (trains runs; restart: same command)
    alternatives  Table VI: SR-A/SR-B/SR-C/vanilla/W-O-LIF (trains runs; restart: same command)
    grad-norms    Prop. 1: ‖∂L/∂x_l‖ at every block input and their ratios (block dynamical isometry)
    ssim          Fig. 2b: SSIM (Eq. 11) of firing-rate maps of consecutive blocks
    firing        Fig. 3a: firing rate of every LIF layer
    raster        Fig. 3b: spike raster of a few LIF layers
    landscape     Fig. 4: loss on a filter-normalised plane (Li et al.); restart: same command
    init-study    Fig. 5: accuracy over the (γ₁, γ₂) init grid, loss curves; restart: same command

Every analysis but the two studies looks at one model (an ``AnalysisSource``). Its own options are given as ``--opt KEY=VALUE``
(the value is read as JSON when it parses, else as text) and are checked against the analysis'
run function before anything is computed; ``tinyspike analyze --help`` lists them.

The studies train one run folder per (family, depth) under ``--out`` and can be stopped and
started again with the same command: finished runs are skipped, stopped ones resumed.

This module holds all of the command's logic; ``tinyspike/cli.py`` only registers it.
Errors are one line and exit with status 2, through the CLI's ``UserError``.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from tinyspike.analysis.outputs import output_paths
from tinyspike.analysis.source import AnalysisSource
from tinyspike.command_line import (
    UserError, nonneg_int, parse_options, positive_int, real_number, sigterm_as_interrupt, use_backend,
)
from tinyspike.train.config import RECIPES
from tinyspike.train.run_dir import check_writable


@dataclass(frozen=True)
class Analysis:
    """One entry of ``tinyspike analyze``: where its run function lives and what it shows."""

    module: str
    function: str
    summary: str
    study: bool = False  # trains its own runs (no checkpoint or model to look at)


ANALYSES = {
    "depth-study": Analysis("tinyspike.analysis.depth_study", "run_depth_study",
                            "Table II: train every family x depth, test accuracy vs depth", study=True),
    "alternatives": Analysis("tinyspike.analysis.depth_study", "run_alternatives",
                             "Table VI: SR-A/SR-B/SR-C/vanilla/W-O-LIF blocks with the alternative recipe", study=True),
    "grad-norms": Analysis("tinyspike.analysis.grad_norms", "run_grad_norms", "gradient norm of every block"),
    "ssim": Analysis("tinyspike.analysis.ssim", "run_ssim", "SSIM of block inputs and outputs (identity mapping)"),
    "firing": Analysis("tinyspike.analysis.firing_plots", "run_firing", "firing rate of every LIF layer"),
    "raster": Analysis("tinyspike.analysis.firing_plots", "run_raster", "spike raster of LIF layers"),
    "landscape": Analysis("tinyspike.analysis.landscape", "run_landscape", "loss landscape around the weights"),
    "init-study": Analysis("tinyspike.analysis.init_study", "run_init_study", "signal propagation at initialisation"),
}

#: the run function's own parameters that the command fills in (not --opt options)
_FILLED = {"source", "out_dir"}


class AnalyzeError(ValueError):
    """A one-line user error of ``tinyspike analyze`` (the CLI prints it and exits with status 2).

    A ValueError rather than ``tinyspike.cli.UserError`` so that the CLI recognises it also when
    it runs as ``python -m tinyspike.cli`` (where the CLI's own module is ``__main__``)."""


def _user_error(message: str):
    return AnalyzeError(message)


def load_run_function(name: str):
    """The run function of analysis ``name``; a UserError when its module is not installed."""
    entry = ANALYSES[name]
    try:
        module = importlib.import_module(entry.module)
    except ModuleNotFoundError as err:
        if err.name != entry.module:  # a dependency of the module is missing: a real problem, show it
            raise
        raise _user_error(f"analysis {name!r} is not available in this version of tinyspike "
                          f"({entry.module} is not installed)") from None
    function = getattr(module, entry.function, None)
    if function is None:
        raise _user_error(f"analysis {name!r} is not available in this version of tinyspike "
                          f"({entry.module} has no {entry.function})")
    return function


def option_names(function) -> tuple[list[str], bool]:
    """(the keyword options a run function takes, whether it takes any **options)."""
    params = inspect.signature(function).parameters.values()
    names = [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in _FILLED]
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def _describe_options(function) -> str:
    parts = []
    for p in inspect.signature(function).parameters.values():
        if p.name in _FILLED or p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
            continue
        parts.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return ", ".join(parts) or "none"


# ------------------------------------------------------------------------------------- parser


def analyze_epilog() -> str:
    lines = ["analyses:"]
    for name, entry in ANALYSES.items():
        lines.append(f"  {name:<13} {entry.summary}")
    lines.append("options of each analysis (--opt KEY=VALUE):")
    for name, entry in ANALYSES.items():
        if entry.study:
            continue
        try:
            lines.append(f"  {name:<13} {_describe_options(load_run_function(name))}")
        except Exception as err:  # help must always print: say why this one has none
            lines.append(f"  {name:<13} (unavailable: {' '.join(str(err).split())})")
    lines.append("examples:")
    lines.append("  tinyspike analyze firing runs/<run>/best.npz --out figures/")
    lines.append("  tinyspike analyze grad-norms --model ms_resnet56 --dataset digits --out figures/")
    lines.append("  tinyspike analyze depth-study --dataset cifar10 --data-dir DIR --depths 8,14,20,32,44,56 "
                 "--families plain,vanilla,wolif,ms --epochs 100 --out studies/table2")
    return "\n".join(lines)


_EPILOG_PLACEHOLDER = "<the analyses and their options>"


class _LazyEpilogFormatter(argparse.RawDescriptionHelpFormatter):
    """Builds the epilog only when help is shown: listing the options imports every analysis
    module, which ``tinyspike train`` should not pay for."""

    def add_text(self, text):
        super().add_text(analyze_epilog() if text == _EPILOG_PLACEHOLDER else text)


def add_analyze_parser(sub) -> argparse.ArgumentParser:
    """Register ``tinyspike analyze`` on the CLI's subparsers."""
    a = sub.add_parser(
        "analyze", help="the paper's analyses: depth study, gradient norms, SSIM, firing, landscape, ...",
        epilog=_EPILOG_PLACEHOLDER, formatter_class=_LazyEpilogFormatter,
        description="Analyse a trained checkpoint (or an untrained --model/--dataset) and write NAME.png and "
                    "NAME.json into --out; depth-study and alternatives train their own run folders under --out "
                    "(rerun the same command to continue a stopped study).",
    )
    a.add_argument("name", metavar="NAME", help=", ".join(ANALYSES))
    a.add_argument("checkpoint", nargs="?", help="a best.npz/last.npz written by tinyspike train (or its run folder)")
    a.add_argument("--out", required=True, help="folder for the figure and the numbers (the studies' run folders)")
    a.add_argument("--model", help="an untrained model (with --dataset), or the model the checkpoint must hold")
    a.add_argument("--dataset", help="the dataset of an untrained model; of a study (default digits)")
    a.add_argument("--data-dir", help="where the dataset's files are (default for a checkpoint: as in its run)")
    a.add_argument("--data-opt", action="append", metavar="KEY=VALUE", help="a dataset option (repeatable)")
    a.add_argument("--model-opt", action="append", metavar="KEY=VALUE",
                   help="a model option for an untrained model or a study's runs, e.g. widths=[4,8,8]")
    a.add_argument("--seed", type=nonneg_int, help="weight seed of an untrained model (default 0); a study's seed")
    a.add_argument("--T", "-T", dest="T", type=positive_int, help="time steps of an untrained model or a study")
    a.add_argument("--backend", help="numpy (CPU, default) or cupy (GPU)")
    a.add_argument("--opt", action="append", metavar="KEY=VALUE", help="an option of the analysis (repeatable)")
    study = a.add_argument_group("depth-study and alternatives")
    study.add_argument("--depths", help="comma-separated depths 6n+2, e.g. 8,14,20,32,44,56")
    study.add_argument("--families", help="comma-separated block families: ms, srb, src, vanilla, wolif, plain")
    study.add_argument("--epochs", type=positive_int, help="epochs of every run (default: the recipe's)")
    study.add_argument("--recipe", help="depth-study (default of depth-study), alternative (of alternatives), "
                                        "recommended, or none (the dataset's defaults)")
    study.add_argument("--batch-size", type=positive_int)
    study.add_argument("--lr", type=real_number, help="learning rate")
    study.add_argument("--weight-decay", type=real_number)
    bar = a.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="show progress bars (default: when stderr is a terminal)")
    bar.add_argument("--no-progress", dest="progress", action="store_false")
    return a


# ------------------------------------------------------------------------------------- command


def _split_list(text, flag, convert=str):
    items = [item.strip() for item in str(text).split(",") if item.strip()]
    if not items:
        raise _user_error(f"{flag} takes a comma-separated list, got {text!r}")
    try:
        return [convert(item) for item in items]
    except ValueError:
        raise _user_error(f"{flag} takes a comma-separated list of integers, got {text!r}") from None


def _refuse(args, flags, why):
    given = [f for f in flags if getattr(args, f.lstrip("-").replace("-", "_")) is not None]
    if given:
        raise _user_error(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply {why}")


def _log(line):
    tqdm.write(line, file=sys.stdout)
    sys.stdout.flush()


def run_study(args, run) -> dict:
    if args.checkpoint is not None:
        raise _user_error(f"{args.name} trains its own runs: it takes no CHECKPOINT (got {args.checkpoint!r})")
    _refuse(args, ["--model", "--opt"], f"to {args.name} (it builds one model per family and depth)")
    if args.depths is None:
        raise _user_error(f"{args.name} needs --depths, e.g. --depths 8,14,20")
    depths = _split_list(args.depths, "--depths", int)
    families = _split_list(args.families, "--families") if args.families is not None else None
    study_defaults = inspect.signature(run).parameters
    recipe = args.recipe if args.recipe is not None else study_defaults["recipe"].default
    if recipe not in (*RECIPES, "none"):
        raise _user_error(f"unknown --recipe {recipe!r}; choose one of: {', '.join(RECIPES)}, none")
    epochs = args.epochs
    if epochs is None:
        if recipe == "none":
            raise _user_error("--recipe none needs --epochs")
        epochs = RECIPES[recipe]["epochs"]
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    settings = dict(T=args.T, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                    seed=args.seed, data_dir=args.data_dir, backend=args.backend,
                    model_options=parse_options(args.model_opt, "--model-opt"),
                    dataset_options=parse_options(args.data_opt, "--data-opt"))
    try:
        with sigterm_as_interrupt():
            return run(args.out, dataset=args.dataset or "digits", depths=depths, families=families, epochs=epochs,
                       recipe=recipe, progress=progress, log=_log, **settings)
    except KeyboardInterrupt:
        print(f"tinyspike analyze: finished runs are kept under {args.out}; run the same command again to continue",
              file=sys.stderr)
        raise


def analysis_options(name: str, run, items) -> dict:
    """The ``--opt KEY=VALUE`` items as keyword arguments of ``run``, unknown names refused."""
    options = parse_options(items, "--opt") or {}
    names, any_name = option_names(run)
    unknown = sorted(k for k in options if k not in names)
    if unknown and not any_name:
        raise _user_error(f"analysis {name!r} has no option(s) {unknown}; it takes: {', '.join(names) or 'none'}")
    return options


def make_source(args):
    """The AnalysisSource that ``args`` describe: a checkpoint, or an untrained --model/--dataset."""
    data_opts = parse_options(args.data_opt, "--data-opt")
    if args.checkpoint is not None:
        _refuse(args, ["--dataset", "--model-opt", "--seed", "--T"],
                "to a checkpoint (its model, dataset and T are stored in it)")
        _refuse(args, ["--depths", "--families", "--epochs", "--recipe", "--batch-size", "--lr", "--weight-decay"],
                f"to {args.name} (they are options of depth-study and alternatives)")
        return AnalysisSource.from_checkpoint(args.checkpoint, data_dir=args.data_dir, data_opts=data_opts,
                                              expect_model=args.model)
    if args.model is None or args.dataset is None:
        raise _user_error(f"{args.name} needs a CHECKPOINT, or --model and --dataset for an untrained model")
    _refuse(args, ["--depths", "--families", "--epochs", "--recipe", "--batch-size", "--lr", "--weight-decay"],
            f"to {args.name} (they are options of depth-study and alternatives)")
    return AnalysisSource.from_model(args.model, args.dataset, data_dir=args.data_dir,
                                     model_opts=parse_options(args.model_opt, "--model-opt"), data_opts=data_opts,
                                     seed=0 if args.seed is None else args.seed, time_steps=args.T)


def cmd_analyze(args) -> int:
    """``tinyspike analyze``: run one analysis, print where its files are."""
    try:
        return _analyze(args)
    except UserError as err:  # the CLI helpers' errors (--opt, --backend), seen as ours
        raise AnalyzeError(str(err)) from None


def _analyze(args) -> int:
    if args.name not in ANALYSES:
        raise _user_error(f"unknown analysis {args.name!r}; choose one of: {', '.join(ANALYSES)}")
    entry = ANALYSES[args.name]
    run = load_run_function(args.name)
    out = Path(args.out)
    check_writable(out)
    if entry.study:
        summary = run_study(args, run)
        json_path, png_path = output_paths(out, args.name)
        print(f"{args.name}: {len(summary['runs'])} runs under {out}; table {json_path}, figure {png_path}")
        for family, row in summary["final_test_acc"].items():
            cells = ", ".join(f"{d}: {'-' if a is None else f'{100 * a:.2f}%'}" for d, a in row.items())
            print(f"  {family:<8} {cells}")
        return 0
    options = analysis_options(args.name, run, args.opt)
    if args.backend:
        use_backend(args.backend)
    source = make_source(args)
    run(source, out, **options)
    json_path, png_path = output_paths(out, args.name)
    print(f"{args.name}: {source.title(args.name)}; wrote {png_path}, {json_path}")
    return 0
