"""``tinyspike``: the command line.

    tinyspike train [options]        train (no options: a small MS-ResNet on the built-in digits)
    tinyspike eval CHECKPOINT        accuracy, firing rates, SyOPs and energy of a trained model
    tinyspike analyze NAME ...       the paper's analyses and studies (tinyspike.analysis.commands)
    tinyspike info                   versions, backend, BLAS, Numba, CuPy/GPU and a tiny self-test

A user error (unknown name, impossible combination, missing data, unwritable folder, NaN loss
or NaN weights, out of memory) prints one line to stderr and exits with status 2; set
``TINYSPIKE_DEBUG=1`` to get the traceback. Bugs (any other exception) still raise with their
traceback. Ctrl-C (SIGINT) exits with status 130 and SIGTERM with 143 (128 + 15), each after one
line; ``last.npz`` then holds the last finished epoch.

Options that would be silently ignored are errors, not warnings: ``--data-dir`` with a built-in
dataset (train and eval), ``--momentum`` with Adam/AdamW, a ``--recipe`` written for the other kind
of data (``dvs`` on images), ``--augment`` on event data. A new run that stops before its first
epoch finished removes the files it wrote (and the folder, if it created it), so the same
``--out`` can be used again.

Several processes: ``mpirun -n N tinyspike train ...`` trains data-parallel over N ranks
(``--distributed auto``, the default, reads the launcher's environment; ``mpi`` or ``nccl`` ask
for one; ``single`` ignores it). ``--batch-size`` stays the global batch, split over the ranks.
Only rank 0 prints; an error prints one line there and every rank exits (status 2); a rank that
dies stops the others within ``--timeout`` seconds with a message naming the collective.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tinyspike import __version__, backend, distributed, kernels, models, optim
from tinyspike.analysis.commands import add_analyze_parser, cmd_analyze
from tinyspike.analysis.energy import EnergyCounter
from tinyspike.autograd import Tensor
from tinyspike.backend import BackendUnavailableError
from tinyspike.command_line import (
    Terminated, UserError, nonneg_int, parse_options, positive_int, real_number, sigterm_as_interrupt, use_backend,
)
from tinyspike.data.loader import DataLoader
from tinyspike.data.registry import DATASETS
from tinyspike.functional.conv import conv2d
from tinyspike.functional.lif import lif
from tinyspike.functional.loss import cross_entropy
from tinyspike.gradcheck import gradcheck
from tinyspike.nn.monitor import FiringRateMonitor
from tinyspike import train as training  # called as training.train(...): tests substitute it
from tinyspike.train import (
    ConfigError, NonFiniteError, RunDirError, TrainConfig, build_eval_set, build_model, check_compatible,
    read_trainer_checkpoint,
)
from tinyspike.train.config import RECIPE_SUMMARIES
from tinyspike.train.evaluation import evaluate
from tinyspike.train.finite import batch_is_finite
from tinyspike.train.setup import make_transforms

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, as a shell reports a process ended by SIGTERM


# ------------------------------------------------------------------------------------- parser


def _train_epilog() -> str:
    lines = ["datasets:"]
    lines += [f"  {name:<12} {info.summary}" for name, info in DATASETS.items()]
    lines.append("recipes (--recipe):")
    lines += [f"  {name:<12} {text}" for name, text in RECIPE_SUMMARIES.items()]
    lines.append("examples:")
    lines.append("  tinyspike train                                  # digits, ~1 min on 2 CPU cores")
    lines.append("  tinyspike train --dataset cifar10 --data-dir DIR --recipe alternative")
    lines.append("  tinyspike train --resume runs/<run>               # continue an interrupted run")
    lines.append("  mpirun -n 2 tinyspike train --batch-size 64       # 2 CPU ranks of 32 samples each")
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the full usage is one --help away)."""

    def error(self, message):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tinyspike",
        description="Deep residual spiking neural networks (MS-ResNet) from scratch.",
        epilog="Errors print one line and exit with status 2; TINYSPIKE_DEBUG=1 shows the traceback.",
    )
    parser.add_argument("--version", action="version", version=f"tinyspike {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{train,eval,analyze,info}")

    t = sub.add_parser(
        "train", help="train a network", epilog=_train_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a spiking network. Every option left out takes the dataset's default "
                    "(or the recipe's); the resolved settings are saved in the run folder.",
    )
    t.add_argument("--dataset", help="digits (default), digits-dvs, cifar10, cifar10-dvs, nmnist")
    t.add_argument("--data-dir", help="folder holding the dataset's files (not needed for digits)")
    t.add_argument("--model", help="a model name (tinyspike.models.list_models()); default depends on the dataset")
    t.add_argument("--T", "-T", dest="T", type=positive_int, help="time steps (frames per sample for event data)")
    t.add_argument("--epochs", type=positive_int)
    t.add_argument("--batch-size", type=positive_int)
    t.add_argument("--lr", type=real_number, help="learning rate")
    t.add_argument("--weight-decay", type=real_number)
    t.add_argument("--momentum", type=real_number)
    t.add_argument("--optimizer", help="sgd, adam, adamw")
    t.add_argument("--schedule", help="cosine, multistep, constant")
    t.add_argument("--augment", help="none, crop, crop-flip, alternative (static images)")
    t.add_argument("--label-smoothing", type=real_number)
    t.add_argument("--recipe", help="depth-study, alternative, recommended, dvs (see below)")
    t.add_argument("--model-opt", action="append", metavar="KEY=VALUE",
                   help="a model option, e.g. widths=[8,16,32] or dropout=0.1 (repeatable)")
    t.add_argument("--data-opt", action="append", metavar="KEY=VALUE",
                   help="a dataset option, e.g. size=64 to bin DVS frames (repeatable)")
    t.add_argument("--backend", help="numpy (CPU, default) or cupy (GPU)")
    t.add_argument("--seed", type=nonneg_int)
    t.add_argument("--out", help="run folder (default runs/<timestamp>-<dataset>-<model>)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly where it stopped")
    t.add_argument("--distributed", choices=distributed.environment.BACKENDS, default="auto",
                   help="data parallelism under mpirun: auto (default: MPI when launched by mpirun), single, "
                        "mpi, nccl (GPUs, with --backend cupy)")
    t.add_argument("--timeout", type=real_number, default=distributed.DEFAULT_TIMEOUT,
                   help="seconds a collective may wait for the other ranks before the run stops (default 300)")
    bar = t.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="show a progress bar per epoch (default: when stderr is a terminal)")
    bar.add_argument("--no-progress", dest="progress", action="store_false")

    e = sub.add_parser("eval", help="evaluate a checkpoint: accuracy, firing rates, SyOPs, energy",
                       description="Test accuracy, per-layer firing rates, SyOPs and energy by the paper's "
                                   "method (E_MAC 4.6 pJ, E_AC 0.9 pJ; stem and shortcut projections not counted).")
    e.add_argument("checkpoint", help="a last.npz/best.npz written by tinyspike train (or its run folder)")
    e.add_argument("--data-dir", help="where the dataset now lives (default: as in the run)")
    e.add_argument("--batch-size", type=positive_int, default=100)
    e.add_argument("--max-batches", type=positive_int, help="evaluate on the first N batches only")
    e.add_argument("--backend", help="numpy or cupy (default: the backend of the run)")
    e.add_argument("--json", action="store_true", help="print one JSON object instead of tables")

    add_analyze_parser(sub)  # all of `analyze` lives in tinyspike/analysis/commands.py
    sub.add_parser("info", help="versions, backend, BLAS, Numba, CuPy/GPU and a tiny self-test")
    return parser


# ------------------------------------------------------------------------------------- train


_TRAIN_KEYS = ("dataset", "data_dir", "model", "T", "epochs", "batch_size", "lr", "weight_decay", "momentum",
               "optimizer", "schedule", "augment", "label_smoothing", "recipe", "backend", "seed")


def cmd_train(args) -> int:
    explicit = {k: getattr(args, k) for k in _TRAIN_KEYS}
    explicit["model_options"] = parse_options(args.model_opt, "--model-opt")
    explicit["dataset_options"] = parse_options(args.data_opt, "--data-opt")
    progress = sys.stderr.isatty() if args.progress is None else args.progress

    def log(line):
        tqdm.write(line, file=sys.stdout)  # keeps the lines clear of an open progress bar
        sys.stdout.flush()

    if args.resume:
        allowed = {"epochs", "data_dir", "backend"}
        given = sorted(k.replace("_options", "_opt").replace("dataset", "data")
                       for k, v in explicit.items() if v is not None and k not in allowed)
        if args.out:
            given.append("out")
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise UserError(f"--resume continues a run with its saved settings; {flags} cannot be changed "
                            "(only --epochs, --data-dir and --backend)")
        if explicit["backend"]:
            use_backend(explicit["backend"])
        comm = distributed.init(args.distributed, args.timeout)
        with sigterm_as_interrupt():
            result = training.train(resume=args.resume, epochs=args.epochs, data_dir=args.data_dir, progress=progress,
                                    log=log, **_comm_argument(comm))
    else:
        config = training.resolve_config(explicit)
        use_backend(config.backend)
        comm = distributed.init(args.distributed, args.timeout)
        with sigterm_as_interrupt():
            result = training.train(config, out=args.out, progress=progress, log=log, **_comm_argument(comm))
    if not comm.is_root:
        return 0
    if result.final_test_acc is None:
        print(f"done: no evaluation set; run folder {result.run_dir}")
    else:
        print(
            f"final test accuracy: {100 * result.final_test_acc:.2f}% "
            f"(best {100 * result.best_test_acc:.2f}% at epoch {result.best_epoch}); "
            f"run folder {result.run_dir}; {result.wall_time_s:.0f} s"
        )
    return 0


def _comm_argument(comm) -> dict:
    """``{"comm": comm}`` for several ranks; nothing for one (tests substitute ``training.train``)."""
    return {"comm": comm} if comm.size > 1 else {}


def _is_root_process() -> bool:
    """Rank 0 of an mpirun job (or a lone process): the one that prints errors."""
    try:
        return distributed.launcher_rank() == 0
    except ValueError:
        return True


# ------------------------------------------------------------------------------------- eval


def evaluate_checkpoint(path, data_dir=None, batch_size=100, max_batches=None, backend_name=None) -> dict:
    """Everything ``tinyspike eval`` reports, as a dict (the ``--json`` output)."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.npz", "last.npz"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise UserError(f"{str(path)!r} holds no best.npz or last.npz checkpoint")
    ckpt = read_trainer_checkpoint(path)
    meta = ckpt["meta"]
    config = TrainConfig.from_dict(meta["config"])
    if data_dir is not None:
        config.data_dir = str(data_dir)
    if backend_name is not None:
        config.backend = backend_name
    config.validate()
    use_backend(config.backend)
    eval_set, note = build_eval_set(config)
    model = build_model(config, eval_set.num_classes)
    try:
        model.load_state_dict(ckpt["model"])
    except (KeyError, ValueError, TypeError) as err:
        message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        raise UserError(f"checkpoint {str(path)!r} does not fit the model its config describes: {message}") from None
    check_compatible(config, model, eval_set)
    _, eval_tf = make_transforms(config, eval_set)
    loader = DataLoader(eval_set, batch_size, shuffle=False, seed=config.seed, transform=eval_tf)

    def check_batch(x, index):
        if not batch_is_finite(x):  # a LIF would turn NaN pixels into silence, not into an error
            raise UserError(f"the evaluation data ({eval_set.description}) holds NaN or infinite input "
                            f"values in batch {index + 1}; check the dataset's files")

    with FiringRateMonitor(model) as monitor, EnergyCounter(model) as counter:
        score = evaluate(model, loader, cross_entropy, time_steps=config.T, check_batch=check_batch,
                         max_batches=max_batches)
        report = counter.report(config.T, score.seen)
        rates = monitor.rates()
        mean_rate = monitor.mean_rate()
    return {
        "checkpoint": str(path),
        "epoch": meta.get("epoch"),
        "model": config.model,
        "dataset": config.dataset,
        "data": eval_set.description + (f" [{note}]" if note else ""),
        "time_steps": config.T,
        "backend": backend.name(),
        "images": score.seen,
        "accuracy": score.accuracy,
        "correct": score.correct,
        "loss": score.loss,
        "firing_rates": dict(rates),
        "mean_firing_rate": mean_rate,
        "energy": report.to_dict(),
        "_report": report,
    }


def cmd_eval(args) -> int:
    result = evaluate_checkpoint(args.checkpoint, args.data_dir, args.batch_size, args.max_batches, args.backend)
    report = result.pop("_report")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"checkpoint: {result['checkpoint']} (epoch {result['epoch']}, {result['model']} on {result['dataset']}, "
          f"T={result['time_steps']}, backend {result['backend']})")
    print(f"data: {result['data']}")
    print(f"test accuracy: {100 * result['accuracy']:.2f}% ({result['correct']}/{result['images']}), "
          f"loss {result['loss']:.4f}")
    print()
    print("firing rates (spikes per neuron per time step, test set):")
    width = max([len(k) for k in result["firing_rates"]] + [5])
    for name, rate in result["firing_rates"].items():
        print(f"  {name:<{width}}  {rate:.4f}")
    print(f"  {'mean':<{width}}  {result['mean_firing_rate']:.4f}")
    print()
    print("operations and energy per image (REFERENCE §8: E_MAC 4.6 pJ, E_AC 0.9 pJ; "
          "stem and shortcut projections not counted):")
    print(report.table())
    return 0


# ------------------------------------------------------------------------------------- info


def _blas_info() -> str:
    try:
        config = np.show_config(mode="dicts")
        blas = config.get("Build Dependencies", {}).get("blas", {})
        name = blas.get("name", "?")
        version = blas.get("version", "")
        extra = ""
        try:
            from threadpoolctl import threadpool_info  # optional

            for pool in threadpool_info():
                if pool.get("user_api") == "blas":
                    extra = f", {pool.get('num_threads')} threads, {pool.get('architecture', '')}"
                    break
        except ImportError:
            pass
        return f"{name} {version}{extra}".strip()
    except Exception:  # older NumPy: no dict form
        return "unknown (numpy.show_config() prints it)"


def self_test() -> list[tuple[str, bool, str]]:
    """A few quick checks that the engine computes what REFERENCE.md says."""
    checks = []

    def check(name, fn):
        try:
            detail = fn()
            checks.append((name, True, detail or ""))
        except Exception as err:  # report, do not crash: info must always print
            checks.append((name, False, f"{type(err).__name__}: {err}"))

    def lif_vector():
        x = Tensor(backend.to_device(np.array([0.3, 0.4, 0.6, 0.1, 0.9, 0.2], np.float32).reshape(6, 1)),
                   requires_grad=True)
        s = lif(x, 0.5, 0.25, True, "rectangular")
        s.sum().backward()
        spikes = backend.to_numpy(s.data).ravel()
        grad = backend.to_numpy(x.grad).ravel()
        assert np.array_equal(spikes, [0, 0, 1, 0, 1, 0]), f"spikes {spikes}"
        assert np.allclose(grad, [1.3125, 1.25, 1.0, 1.25, 1.0, 1.0]), f"grad {grad}"
        return "REFERENCE §1 test vector"

    def conv_gradcheck():
        rng = np.random.default_rng(0)
        x = rng.standard_normal((1, 2, 4, 4))
        w = rng.standard_normal((2, 2, 3, 3))
        with backend.default_dtype_as(np.float64):
            gradcheck(lambda a, b: conv2d(a, b, None, 1, 1), x, w)
        return "float64 central differences"

    def train_step():
        backend.seed(0)
        model = models.build("ms_resnet8", num_classes=3, time_steps=2)
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        rng = np.random.default_rng(0)
        x = backend.to_device(rng.standard_normal((6, 3, 8, 8)).astype(np.float32))
        y = backend.to_device(np.array([0, 1, 2, 0, 1, 2]))
        losses = []
        for _ in range(8):
            opt.zero_grad()
            loss = cross_entropy(model(x, time_steps=2), y)
            loss.backward()
            opt.step()
            losses.append(float(loss.item()))
        assert losses[-1] < losses[0], f"loss did not fall: {losses[0]:.3f} -> {losses[-1]:.3f}"
        return f"MS-ResNet-8, loss {losses[0]:.3f} -> {losses[-1]:.3f} in 8 steps"

    check("LIF forward/BPTT", lif_vector)
    check("conv2d gradient", conv_gradcheck)
    check("training step", train_step)
    return checks


def cmd_info(args) -> int:
    import numba  # only here: importing Numba costs about half a second, which no other command needs

    print(f"tinyspike {__version__}  (Python {platform.python_version()}, {platform.platform()})")
    print(f"numpy {np.__version__}; BLAS: {_blas_info()}")
    print(f"numba {numba.__version__}; threads {numba.config.NUMBA_NUM_THREADS}, "
          f"threading layer {numba.config.THREADING_LAYER}; CPU cores {os.cpu_count()}")
    for name in ("tqdm", "matplotlib"):
        try:
            module = __import__(name)
            print(f"{name} {module.__version__}")
        except ImportError:
            print(f"{name}: not installed")
    try:
        import cupy  # optional: the [gpu] extra

        try:
            count = cupy.cuda.runtime.getDeviceCount()
            names = []
            for i in range(count):
                props = cupy.cuda.runtime.getDeviceProperties(i)
                name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
                names.append(f"{name} ({props['totalGlobalMem'] / 2**30:.0f} GiB)")
            cuda = cupy.cuda.runtime.runtimeGetVersion()
            print(f"cupy {cupy.__version__}; CUDA runtime {cuda // 1000}.{cuda % 1000 // 10}; "
                  f"GPUs: {', '.join(names) if names else 'none'}")
        except Exception as err:
            print(f"cupy {cupy.__version__}; no usable GPU ({type(err).__name__}: {err})")
    except ImportError:
        print("cupy: not installed (GPU backend unavailable; pip install 'tinyspike[gpu]')")
    print(f"backend: {backend.name()} (set with TINYSPIKE_BACKEND or tinyspike.use)")
    print(f"kernels: {kernels.implementation_name(kernels.LIF)} (tinyspike.kernels.use('reference') picks the reference ones)")
    t0 = time.perf_counter()
    checks = self_test()
    ok = all(passed for _, passed, _ in checks)
    print(f"self-test: {'ok' if ok else 'FAILED'} ({time.perf_counter() - t0:.1f} s)")
    for name, passed, detail in checks:
        print(f"  [{'ok' if passed else 'FAIL'}] {name}: {detail}")
    return 0 if ok else 1


# ------------------------------------------------------------------------------------- main


_USER_ERRORS = (UserError, ConfigError, RunDirError, NonFiniteError, BackendUnavailableError,
                distributed.CommunicationTimeoutError, distributed.PeerFailedError)


def _memory_detail(err: MemoryError) -> str:
    # NumPy says how much it wanted: "Unable to allocate 7.6 GiB for an array with shape ..."
    text = " ".join(str(err).split())
    return text or "an allocation failed"


def _memory_hint(args) -> str:
    """What to lower, naming the options and their current values."""
    if args.command == "train":
        T = f" (now {args.T})" if getattr(args, "T", None) else ""
        batch = f" (now {args.batch_size})" if getattr(args, "batch_size", None) else ""
        return (f"the memory of a training step grows with --T{T} and --batch-size{batch}: lower them "
                "or the model's widths (--model-opt widths=[...])")
    if args.command == "eval":
        return f"lower --batch-size (now {args.batch_size})"
    return "close other programs and try again"


def main(argv=None) -> int:
    """Entry point of the ``tinyspike`` command; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, usage errors: argparse has printed the message
        return stop.code if isinstance(stop.code, int) else EXIT_USER_ERROR
    if args.command is None:
        parser.print_help()
        return EXIT_USER_ERROR
    commands = {"train": cmd_train, "eval": cmd_eval, "analyze": cmd_analyze, "info": cmd_info}
    debug = os.environ.get("TINYSPIKE_DEBUG", "") not in ("", "0")
    try:
        return commands[args.command](args)
    except KeyboardInterrupt as stop:
        if not _is_root_process():
            return EXIT_TERMINATED if isinstance(stop, Terminated) else EXIT_INTERRUPTED
        what = "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted"
        hint = ""
        if args.command == "train" and stop.args:
            hint = f"; finished epochs are saved, continue with: tinyspike train --resume {stop.args[0]}"
        elif args.command == "train":
            hint = "; no epoch had finished, so nothing was saved"
        print(f"tinyspike {args.command}: {what}{hint}", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(stop, Terminated) else EXIT_INTERRUPTED
    except MemoryError as err:
        if debug:
            raise
        print(f"tinyspike {args.command}: error: out of memory ({_memory_detail(err)}); "
              f"{_memory_hint(args)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as err:
        if debug:
            raise
        # user errors: ours, and the ValueError/TypeError/KeyError/OSError messages the library
        # writes for bad arguments, missing or corrupt files (anything else is a bug: traceback)
        if not isinstance(err, _USER_ERRORS + (ValueError, TypeError, KeyError, OSError)):
            raise
        message = str(err) if not isinstance(err, KeyError) or not err.args else str(err.args[0])
        if isinstance(err, OSError) and (not message or err.filename and err.filename not in message):
            message = f"{err.strerror or message or type(err).__name__}: {err.filename}"
        message = " ".join(message.split())  # one line
        # under mpirun only rank 0 speaks (every rank meets the same error, or is told of another
        # rank's by PeerFailedError); a timeout is this rank's own news and names it
        if _is_root_process() or isinstance(err, distributed.CommunicationTimeoutError):
            print(f"tinyspike {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
