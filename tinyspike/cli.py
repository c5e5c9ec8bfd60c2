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
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import sys
import threading
import time

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, as a shell reports a process ended by SIGTERM


class UserError(Exception):
    """An error whose message is all the user needs (no traceback)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread: it unwinds exactly as Ctrl-C does (atomic writes remove
    their temporary files, ``last.npz`` keeps the last finished epoch)."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """While training, turn SIGTERM (``kill``, a batch scheduler's time limit) into ``Terminated``."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ------------------------------------------------------------------------------------- parser


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _nonneg_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def _float(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _train_epilog() -> str:
    from tinyspike.data.registry import DATASETS
    from tinyspike.train.config import RECIPE_SUMMARIES

    lines = ["datasets:"]
    lines += [f"  {name:<12} {info.summary}" for name, info in DATASETS.items()]
    lines.append("recipes (--recipe):")
    lines += [f"  {name:<12} {text}" for name, text in RECIPE_SUMMARIES.items()]
    lines.append("examples:")
    lines.append("  tinyspike train                                  # digits, ~1 min on 2 CPU cores")
    lines.append("  tinyspike train --dataset cifar10 --data-dir DIR --recipe alternative")
    lines.append("  tinyspike train --resume runs/<run>               # continue an interrupted run")
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
    from tinyspike import __version__

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
    t.add_argument("--T", "-T", dest="T", type=_positive_int, help="time steps (frames per sample for event data)")
    t.add_argument("--epochs", type=_positive_int)
    t.add_argument("--batch-size", type=_positive_int)
    t.add_argument("--lr", type=_float, help="learning rate")
    t.add_argument("--weight-decay", type=_float)
    t.add_argument("--momentum", type=_float)
    t.add_argument("--optimizer", help="sgd, adam, adamw")
    t.add_argument("--schedule", help="cosine, multistep, constant")
    t.add_argument("--augment", help="none, crop, crop-flip, alternative (static images)")
    t.add_argument("--label-smoothing", type=_float)
    t.add_argument("--recipe", help="depth-study, alternative, recommended, dvs (see below)")
    t.add_argument("--model-opt", action="append", metavar="KEY=VALUE",
                   help="a model option, e.g. widths=[8,16,32] or dropout=0.1 (repeatable)")
    t.add_argument("--data-opt", action="append", metavar="KEY=VALUE",
                   help="a dataset option, e.g. size=64 to bin DVS frames (repeatable)")
    t.add_argument("--backend", help="numpy (CPU, default) or cupy (GPU)")
    t.add_argument("--seed", type=_nonneg_int)
    t.add_argument("--out", help="run folder (default runs/<timestamp>-<dataset>-<model>)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly where it stopped")
    bar = t.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="show a progress bar per epoch (default: when stderr is a terminal)")
    bar.add_argument("--no-progress", dest="progress", action="store_false")

    e = sub.add_parser("eval", help="evaluate a checkpoint: accuracy, firing rates, SyOPs, energy",
                       description="Test accuracy, per-layer firing rates, SyOPs and energy by the paper's "
                                   "method (E_MAC 4.6 pJ, E_AC 0.9 pJ; stem and shortcut projections not counted).")
    e.add_argument("checkpoint", help="a last.npz/best.npz written by tinyspike train (or its run folder)")
    e.add_argument("--data-dir", help="where the dataset now lives (default: as in the run)")
    e.add_argument("--batch-size", type=_positive_int, default=100)
    e.add_argument("--max-batches", type=_positive_int, help="evaluate on the first N batches only")
    e.add_argument("--backend", help="numpy or cupy (default: the backend of the run)")
    e.add_argument("--json", action="store_true", help="print one JSON object instead of tables")

    from tinyspike.analysis.commands import add_analyze_parser  # all of `analyze` lives there

    add_analyze_parser(sub)
    sub.add_parser("info", help="versions, backend, BLAS, Numba, CuPy/GPU and a tiny self-test")
    return parser


# ------------------------------------------------------------------------------------- train


_TRAIN_KEYS = ("dataset", "data_dir", "model", "T", "epochs", "batch_size", "lr", "weight_decay", "momentum",
               "optimizer", "schedule", "augment", "label_smoothing", "recipe", "backend", "seed")


def cmd_train(args) -> int:
    from tinyspike.train import resolve_config, train

    explicit = {k: getattr(args, k) for k in _TRAIN_KEYS}
    explicit["model_options"] = _parse_options(args.model_opt, "--model-opt")
    explicit["dataset_options"] = _parse_options(args.data_opt, "--data-opt")
    progress = sys.stderr.isatty() if args.progress is None else args.progress

    def log(line):
        # tqdm.write keeps the lines clear of an open progress bar
        from tqdm import tqdm

        tqdm.write(line, file=sys.stdout)
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
            _use_backend(explicit["backend"])
        with _sigterm_as_interrupt():
            result = train(resume=args.resume, epochs=args.epochs, data_dir=args.data_dir, progress=progress, log=log)
    else:
        config = resolve_config(explicit)
        _use_backend(config.backend)
        with _sigterm_as_interrupt():
            result = train(config, out=args.out, progress=progress, log=log)
    if result.final_test_acc is None:
        print(f"done: no evaluation set; run folder {result.run_dir}")
    else:
        print(
            f"final test accuracy: {100 * result.final_test_acc:.2f}% "
            f"(best {100 * result.best_test_acc:.2f}% at epoch {result.best_epoch}); "
            f"run folder {result.run_dir}; {result.wall_time_s:.0f} s"
        )
    return 0


def _parse_options(items, flag):
    """``["a=1", "b=[2,3]", "c=text"]`` -> ``{"a": 1, "b": [2, 3], "c": "text"}`` (None if no items)."""
    if not items:
        return None
    options = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise UserError(f"{flag} takes KEY=VALUE, got {item!r}")
        try:
            options[key] = json.loads(text)
        except json.JSONDecodeError:
            options[key] = text
    return options


def _use_backend(name):
    from tinyspike import backend

    try:
        backend.use(name)
    except ValueError:
        raise UserError(f"unknown backend {name!r}; choose numpy or cupy") from None


# ------------------------------------------------------------------------------------- eval


def evaluate_checkpoint(path, data_dir=None, batch_size=100, max_batches=None, backend_name=None) -> dict:
    """Everything ``tinyspike eval`` reports, as a dict (the ``--json`` output)."""
    from pathlib import Path

    from tinyspike import backend
    from tinyspike.analysis.energy import EnergyCounter
    from tinyspike.analysis.firing import FiringRateMonitor
    from tinyspike.autograd import no_grad
    from tinyspike.data.loader import DataLoader
    from tinyspike.functional.loss import cross_entropy
    from tinyspike.train import TrainConfig, build_eval_set, build_model, check_compatible, read_trainer_checkpoint
    from tinyspike.train.finite import batch_is_finite
    from tinyspike.train.setup import make_transforms

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
    _use_backend(config.backend)
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

    model.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    with FiringRateMonitor(model) as monitor, EnergyCounter(model) as counter, no_grad():
        for i, (x, y) in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            if not batch_is_finite(x):  # a LIF would turn NaN pixels into silence, not into an error
                raise UserError(f"the evaluation data ({eval_set.description}) holds NaN or infinite input "
                                f"values in batch {i + 1}; check the dataset's files")
            logits = model(x, time_steps=config.T) if x.ndim == 4 else model(x)
            n = int(y.shape[0])
            loss_sum += float(cross_entropy(logits, y).item()) * n
            correct += int((logits.data.argmax(axis=1) == y).sum())
            seen += n
        report = counter.report(config.T, seen)
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
        "images": seen,
        "accuracy": correct / max(seen, 1),
        "correct": correct,
        "loss": loss_sum / max(seen, 1),
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
    import numpy as np

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
    import numpy as np

    from tinyspike import backend
    from tinyspike.autograd import Tensor

    checks = []

    def check(name, fn):
        try:
            detail = fn()
            checks.append((name, True, detail or ""))
        except Exception as err:  # report, do not crash: info must always print
            checks.append((name, False, f"{type(err).__name__}: {err}"))

    def lif_vector():
        from tinyspike.functional.lif import lif

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
        from tinyspike.functional.conv import conv2d
        from tinyspike.gradcheck import gradcheck

        rng = np.random.default_rng(0)
        x = rng.standard_normal((1, 2, 4, 4))
        w = rng.standard_normal((2, 2, 3, 3))
        with backend.default_dtype_as(np.float64):
            gradcheck(lambda a, b: conv2d(a, b, None, 1, 1), x, w)
        return "float64 central differences"

    def train_step():
        from tinyspike import models, optim
        from tinyspike.functional.loss import cross_entropy

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
    import numba
    import numpy as np

    import tinyspike
    from tinyspike import backend

    print(f"tinyspike {tinyspike.__version__}  (Python {platform.python_version()}, {platform.platform()})")
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
        import cupy

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
    from tinyspike import kernels

    print(f"kernels: {kernels.implementation_for_backend()} (TINYSPIKE_KERNELS=reference forces the reference ones)")
    t0 = time.perf_counter()
    checks = self_test()
    ok = all(passed for _, passed, _ in checks)
    print(f"self-test: {'ok' if ok else 'FAILED'} ({time.perf_counter() - t0:.1f} s)")
    for name, passed, detail in checks:
        print(f"  [{'ok' if passed else 'FAIL'}] {name}: {detail}")
    return 0 if ok else 1


# ------------------------------------------------------------------------------------- main


def _user_error_types():
    from tinyspike.backend import BackendUnavailableError
    from tinyspike.train import ConfigError, NonFiniteError, RunDirError

    return (UserError, ConfigError, RunDirError, NonFiniteError, BackendUnavailableError)


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
    from tinyspike.analysis.commands import cmd_analyze

    commands = {"train": cmd_train, "eval": cmd_eval, "analyze": cmd_analyze, "info": cmd_info}
    debug = os.environ.get("TINYSPIKE_DEBUG", "") not in ("", "0")
    try:
        return commands[args.command](args)
    except KeyboardInterrupt as stop:
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
        if not isinstance(err, _user_error_types() + (ValueError, TypeError, KeyError, OSError)):
            raise
        message = str(err) if not isinstance(err, KeyError) or not err.args else str(err.args[0])
        if isinstance(err, OSError) and (not message or err.filename and err.filename not in message):
            message = f"{err.strerror or message or type(err).__name__}: {err.filename}"
        message = " ".join(message.split())  # one line
        print(f"tinyspike {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
