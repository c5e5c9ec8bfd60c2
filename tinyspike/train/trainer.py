"""The training loop: forward over T, loss, backward, optimizer step, schedule; evaluation and
metrics every epoch; checkpoints that resume exactly.

One epoch::

    loader.set_epoch(e)                     # the batch order and augmentation depend on (seed, e) only
    for x, y in loader:
        optimizer.zero_grad()
        logits = model(x, time_steps=T)     # [B, K]; static x is [B, C, H, W], events [T, B, C, H, W]
        loss = cross_entropy(logits, y)     # stop with NonFiniteLossError if it is NaN/inf
        loss.backward()
        (clip_grad_norm_)
        optimizer.step()
        check parameters and BN statistics  # stop with NonFiniteError naming the first NaN/inf one
        (schedule.step() per iteration)
    (schedule.step() per epoch)
    evaluate on the test (or held-out) set: loss, accuracy, firing rate of every LIF layer

A NaN in a weight or an input does not show in the loss (a LIF turns NaN into "no spike"), so
the loop also checks each input batch, and every parameter and running statistic after every step
(one reduction per array: ``tinyspike/train/finite.py``).

then one record goes to ``history`` (and ``metrics.jsonl``), and ``last.npz`` (and ``best.npz``
when the test accuracy is the best so far) are written. A run interrupted after epoch k and
resumed from ``last.npz`` repeats exactly what the uninterrupted run would have done: the
checkpoint holds the weights and running statistics, the optimizer's momentum buffers, the
schedule's step, every random generator's state, the best accuracy and the history; the data
order is a function of (seed, epoch).

Data parallelism (``comm``, a ``tinyspike.distributed`` Communicator of W > 1 ranks, each with a
DataLoader of its ``rank``): ``DataParallel`` broadcasts rank 0's weights and buffers and makes the
batch norms synchronized; after each ``loss.backward()`` the gradients are averaged in buckets
(on a remainder batch each rank's loss is first weighted by its shard size), *before* clipping, so every rank clips and steps
with the same gradient and the weights stay identical. The loss, correct and seen sums of
training and evaluation and the firing-rate counts are summed over the ranks, so the records are
those of the whole data. The NaN checks agree: a NaN batch or loss on any rank is one all-reduced
flag, and every rank raises (the weights are identical, so the weight checks agree by themselves).
Only rank 0 shows the bar, logs, and writes checkpoints, metrics and the plot; every rank's
generator states are gathered into ``last.npz`` (``meta["rng_ranks"]``), and a write is followed
by a collective that tells the other ranks whether it succeeded (the barrier after a checkpoint).
Resuming with the same W, each rank restores its own states: the run continues exactly. With
another W, ranks below the saved W take their saved states and the others derive theirs from
(seed, epoch, rank); the shards (and, with augmentation or dropout, the random draws) then
differ from the saved run's, so the result differs from an uninterrupted run (without
augmentation and dropout only by rounding: synchronized BN makes the steps those of the global
batch on any W).

No printing here: a tqdm bar per epoch (``progress=True``) and a ``log(line)`` callback that the
caller owns.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from typing import Callable

from tqdm import tqdm

import numpy as np

from tinyspike import atomic, backend, checks, distributed
from tinyspike.functional.loss import cross_entropy
from tinyspike.nn.monitor import FiringRateMonitor
from tinyspike.optim import clip_grad_norm_
from tinyspike.train.evaluation import LossAccuracy, evaluate, forward
from tinyspike.train.finite import NonFiniteError, batch_is_finite, first_non_finite_in_model
from tinyspike.train.plots import plot_metrics
from tinyspike.train.rng import capture_rng_states, restore_rng_states
from tinyspike.train.run_dir import (
    RunDir, read_trainer_checkpoint, reported_write, save_trainer_checkpoint,
)


class NonFiniteLossError(NonFiniteError):
    """The loss became NaN or infinite; training stopped and the last good checkpoint was kept."""


class Trainer:
    """Train ``model`` with ``optimizer`` on ``train_loader``, evaluating on ``eval_loader``.

    Args:
        model: a ``tinyspike.nn.Module`` mapping inputs to logits ``[B, K]``.
        optimizer: a ``tinyspike.optim.Optimizer`` over the model's parameters.
        train_loader, eval_loader: ``tinyspike.data.DataLoader``s (``eval_loader`` may be None).
        epochs: total number of epochs of the run (``fit`` continues up to it).
        time_steps: T for static inputs (passed to the model); event inputs carry their own T.
        schedule: an ``LRScheduler`` (or None), stepped per ``"epoch"`` or per ``"iteration"``.
        label_smoothing: for the cross-entropy.
        grad_clip: clip the global gradient norm to this value (None: no clipping).
        loss_fn: ``f(logits, y) -> 0-d Tensor``; default cross-entropy.
        run_dir: a ``RunDir`` (or path) for checkpoints and metrics; None keeps everything in memory.
        config: a JSON-able dict saved in every checkpoint (what the run was built from).
        progress: show a tqdm bar per epoch (to stderr).
        log: called with one summary line per epoch (and notes); None = silent.
        plot: draw ``curves.png`` into the run folder at the end of ``fit``.
        monitor_firing: count the firing rate of every LIF layer (train and test).
        comm: a ``tinyspike.distributed`` Communicator for data-parallel training (default: one
            process). The loaders must be built with this rank and world size.
    """

    def __init__(
        self,
        model,
        optimizer,
        train_loader,
        eval_loader=None,
        *,
        epochs: int,
        time_steps: int | None = None,
        schedule=None,
        schedule_per: str = "epoch",
        label_smoothing: float = 0.0,
        grad_clip: float | None = None,
        loss_fn: Callable | None = None,
        run_dir=None,
        config: dict | None = None,
        progress: bool = False,
        log: Callable[[str], None] | None = None,
        plot: bool = True,
        monitor_firing: bool = True,
        comm=None,
    ):
        epochs = checks.integer("Trainer", "epochs", epochs, low=1)
        time_steps = checks.optional_integer("Trainer", "time_steps", time_steps, low=1)
        schedule_per = checks.choice("Trainer", "schedule_per", schedule_per, ("epoch", "iteration"))
        label_smoothing = checks.real("Trainer", "label_smoothing", label_smoothing, 0.0, 1.0, high_open=True)
        if grad_clip is not None:
            grad_clip = checks.real("Trainer", "grad_clip", grad_clip, low=0.0, low_open=True)
        progress, plot = checks.boolean("Trainer", "progress", progress), checks.boolean("Trainer", "plot", plot)
        monitor_firing = checks.boolean("Trainer", "monitor_firing", monitor_firing)
        if loss_fn is None:
            def loss_fn(logits, y, _ls=float(label_smoothing)):
                return cross_entropy(logits, y, label_smoothing=_ls)

        comm = distributed.SingleProcess() if comm is None else distributed.buckets.check_communicator("Trainer", comm)
        self.comm = comm
        # broadcast from rank 0 and synchronized BN; with one process nothing changes
        self.parallel = distributed.DataParallel(model, comm) if comm.size > 1 else None
        self.model = model
        self.optimizer = optimizer
        self.train_loader = train_loader
        self.eval_loader = eval_loader
        self.epochs = epochs
        self.time_steps = time_steps
        self.schedule = schedule
        self.schedule_per = schedule_per
        self.grad_clip = grad_clip
        self.loss_fn = loss_fn
        self.run_dir = RunDir(run_dir) if run_dir is not None and not isinstance(run_dir, RunDir) else run_dir
        self.config = dict(config or {})
        self.progress = bool(progress) and comm.is_root
        self.log = (log if comm.is_root else None) or (lambda line: None)
        self.plot = plot
        self.monitor = FiringRateMonitor(model) if monitor_firing else None
        self.epoch = 0  # epochs completed
        self.history: list[dict] = []
        self.best_acc: float | None = None
        self.best_epoch: int | None = None
        if comm.size > 1 and comm.rank > 0:  # rank 0 keeps the single-process stream
            seed_rank_generator(self.config.get("seed", 0), 0, comm.rank)

    # ---- the loop ----------------------------------------------------------------------------
    def fit(self) -> list[dict]:
        """Train from the current epoch up to ``epochs``; returns the history (one dict per epoch)."""
        if self.epoch < self.epochs:
            self.check_model_finite(f"before epoch {self.epoch + 1}")
        try:
            while self.epoch < self.epochs:
                record = self.run_epoch()
                self.log(format_record(record, self.epochs))
        finally:
            if self.plot and self.run_dir is not None and self.history and self.comm.is_root:
                try:
                    plot_metrics(self.history, self.run_dir.plot_path, title=self._title())
                except Exception as err:  # a plotting failure must not lose a finished run
                    self.log(f"note: could not draw {self.run_dir.plot_path}: {type(err).__name__}: {err}")
        return self.history

    def run_epoch(self) -> dict:
        """Train one epoch, evaluate, record, checkpoint. Returns the epoch's record."""
        epoch = self.epoch  # 0-based index of the epoch about to run
        t0 = time.perf_counter()
        lr = self.current_lr()
        train = self.train_one_epoch(epoch)
        t1 = time.perf_counter()
        test = self.evaluate() if self.eval_loader is not None else {}
        t2 = time.perf_counter()
        if test and not math.isfinite(test["loss"]):
            raise NonFiniteLossError(
                f"test loss became {test['loss']} after epoch {epoch + 1}: the weights diverged; "
                + self._kept_message()
            )
        record = OrderedDict(epoch=epoch + 1)
        record["train_loss"] = train["loss"]
        record["train_acc"] = train["acc"]
        record["test_loss"] = test.get("loss")
        record["test_acc"] = test.get("acc")
        record["lr"] = lr
        record["images_per_s"] = train["images"] / max(t1 - t0, 1e-9)
        record["epoch_time_s"] = t2 - t0
        record["train_time_s"] = t1 - t0
        record["eval_time_s"] = t2 - t1
        record["train_firing_rate"] = train.get("firing_rate")
        record["firing_rate"] = test.get("firing_rate")
        record["firing_rates"] = test.get("firing_rates", {})
        improved = record["test_acc"] is not None and (self.best_acc is None or record["test_acc"] > self.best_acc)
        if improved:
            self.best_acc, self.best_epoch = record["test_acc"], epoch + 1
        record["best_test_acc"] = self.best_acc
        self.epoch = epoch + 1
        self.history.append(dict(record))
        if self.run_dir is not None:
            rng_ranks = distributed.gather_objects(capture_rng_states(self.model), self.comm)  # collective
            failure = None
            if self.comm.is_root:
                try:
                    self._write_epoch_files(epoch, improved, rng_ranks)
                except Exception as err:  # told to the other ranks below, then raised here
                    failure = err
            # the barrier after a checkpoint, which also stops every rank when rank 0's write failed
            distributed.agree_on_failure(failure, self.comm, "to write the checkpoint")
        return dict(record)

    def _write_epoch_files(self, epoch: int, improved: bool, rng_ranks: list) -> None:
        # last.npz first: it alone is what --resume reads. If best.npz then fails, last.npz
        # records this epoch as the best and the resume rebuilds best.npz from it.
        kept = f"the previous {self.run_dir.last_path.name} (epoch {epoch}) is kept" if epoch else "nothing was saved"
        with reported_write(self.run_dir.last_path, kept):
            self.save(self.run_dir.last_path, rng_ranks)
        saved = f"{self.run_dir.last_path} (epoch {epoch + 1}) is saved; --resume rewrites it"
        if improved:
            with reported_write(self.run_dir.best_path, saved):
                atomic.copy_file(self.run_dir.last_path, self.run_dir.best_path)
        with reported_write(self.run_dir.metrics_path, saved):
            self.run_dir.write_metrics(self.history)

    def train_one_epoch(self, epoch: int) -> dict:
        """One pass over the training data (epoch index ``epoch``, 0-based)."""
        self.model.train()
        loader = self.train_loader
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        if self.monitor is not None:
            self.monitor.reset()
        score = LossAccuracy()
        weights = self._shard_weights(loader, epoch)
        t_start = last_update = time.perf_counter()
        bar = tqdm(
            total=len(loader), desc=f"epoch {epoch + 1}/{self.epochs}", unit="batch",
            disable=not self.progress, leave=True, dynamic_ncols=True,
        )
        try:
            for b, (x, y) in enumerate(loader):
                where = f"epoch {epoch + 1}, batch {b + 1}/{len(loader)}"
                batch_ok = self.comm.size == 1 or batch_is_finite(x)
                if self.comm.size == 1:
                    self.check_batch_finite(x, loader, "training", where)
                self.optimizer.zero_grad()
                logits = forward(self.model, x, self.time_steps)
                loss = self.loss_fn(logits, y)
                value = float(loss.item())
                self._agree_finite(batch_ok, value, x, loader, where)
                weight = weights[b] if b < len(weights) else 1.0
                # unequal shards (a remainder batch): weigh the loss, so that synchronized BN's backward
                # and the average give the gradient of the global batch's mean loss
                (loss if weight == 1.0 else loss * weight).backward()
                if self.parallel is not None:  # before clipping: every rank clips the same gradient
                    self.parallel.average_gradients()
                if self.grad_clip is not None:
                    clip_grad_norm_(self.model.parameters(), self.grad_clip)
                self.optimizer.step()
                self.check_model_finite(f"after the optimizer step of {where}")
                if self.schedule is not None and self.schedule_per == "iteration":
                    self.schedule.step()
                score.add(value, logits, y)
                bar.update(1)
                now = time.perf_counter()
                if self.progress and (now - last_update > 0.5 or b + 1 == len(loader)):
                    last_update = now
                    postfix = OrderedDict(
                        loss=f"{score.loss:.4f}", acc=f"{100 * score.accuracy:.1f}%",
                        img_s=f"{score.seen / (now - t_start):.0f}", lr=f"{self.current_lr():.4g}",
                    )
                    if self.monitor is not None:
                        postfix["fr"] = f"{self.monitor.mean_rate():.3f}"
                    bar.set_postfix(postfix, refresh=False)
        finally:
            bar.close()
        if self.schedule is not None and self.schedule_per == "epoch":
            self.schedule.step()
        result = self._summed(score).as_dict()
        if self.monitor is not None:
            result["firing_rate"] = _finite_or_none(self._firing()[0])
        return result

    # ---- over the ranks ------------------------------------------------------------------------
    def _shard_weights(self, loader, epoch: int) -> list[float]:
        """Per step, this rank's loss weight W·n_r/n (1 for equal shards; see GradientReducer.average_)."""
        if self.comm.size == 1 or not hasattr(loader, "global_batch_sizes"):
            return []
        return [self.comm.size * len(idx) / total
                for idx, total in zip(loader.batch_indices(epoch), loader.global_batch_sizes(epoch))]

    def _agree_finite(self, batch_ok: bool, value: float, x, loader, where: str) -> None:
        """Raise the NaN errors on every rank when any rank saw a NaN batch or loss (one flag each)."""
        bad_batch, bad_loss = (not batch_ok), (not math.isfinite(value))
        if self.comm.size > 1:
            bad_batch, bad_loss = (v > 0 for v in distributed.allreduce_numbers([bad_batch, bad_loss], self.comm))
            if bad_batch:
                if not batch_ok:
                    self.check_batch_finite(x, loader, "training", where)
                raise NonFiniteError(f"the training data of another rank holds NaN or infinite input values in "
                                     f"{where}; " + self._kept_message())
        if bad_loss:
            shown = value if not math.isfinite(value) else "NaN or infinite on another rank"
            raise NonFiniteLossError(f"loss became {shown} at {where}; " + self._kept_message())

    def _summed(self, score: LossAccuracy) -> LossAccuracy:
        """The loss, correct and seen sums over all ranks (the score of the whole data)."""
        if self.comm.size == 1:
            return score
        total = LossAccuracy()
        total.loss_sum, correct, seen = distributed.allreduce_numbers([score.loss_sum, score.correct, score.seen], self.comm)
        total.correct, total.seen = int(round(correct)), int(round(seen))
        return total

    def _firing(self):
        """(mean rate, {layer: rate}) from the spike counts of all ranks (summed, then divided)."""
        counts = self.monitor.spike_counts()
        if self.comm.size > 1:
            flat = distributed.allreduce_numbers([v for pair in counts.values() for v in pair], self.comm)
            counts = {name: (flat[2 * i], flat[2 * i + 1]) for i, name in enumerate(counts)}
        rates = {name: (s / c if c else float("nan")) for name, (s, c) in counts.items()}
        spikes, total = sum(s for s, _ in counts.values()), sum(c for _, c in counts.values())
        return (spikes / total if total else float("nan")), rates

    def evaluate(self, loader=None) -> dict:
        """Loss, accuracy and firing rates (mean and per LIF layer) on ``loader`` (default: eval)."""
        loader = self.eval_loader if loader is None else loader
        if self.monitor is not None:
            self.monitor.reset()
        self.check_model_finite("before evaluation")

        def check_batch(x, index):
            self.check_batch_finite(x, loader, "evaluation", f"batch {index + 1}/{len(loader)}")

        failure = None
        try:
            # the shards may have different numbers of batches: no collective inside the loop
            score = evaluate(self.model, loader, self.loss_fn, time_steps=self.time_steps, check_batch=check_batch)
        except NonFiniteError as err:
            if self.comm.size == 1:
                raise
            failure, score = err, LossAccuracy()
        distributed.agree_on_failure(failure, self.comm, "the evaluation")
        result = self._summed(score).as_dict()
        if self.monitor is not None:
            mean, rates = self._firing()
            result["firing_rate"] = _finite_or_none(mean)
            result["firing_rates"] = {k: _finite_or_none(v) for k, v in rates.items()}
        return result

    # ---- NaN and infinity --------------------------------------------------------------------
    def check_model_finite(self, when: str) -> None:
        """Raise NonFiniteError naming the first parameter or running statistic holding NaN/inf."""
        bad = first_non_finite_in_model(self.model)
        if bad is None:
            return
        kind = "parameter" if bad in dict(self.model.named_parameters()) else "buffer (running statistic)"
        raise NonFiniteError(f"{kind} {bad!r} of the model holds NaN or infinite values {when}; "
                             + self._kept_message())

    def check_batch_finite(self, x, loader, split: str, where: str) -> None:
        """Raise NonFiniteError, naming the dataset, when an input batch holds NaN/inf."""
        if batch_is_finite(x):
            return
        dataset = getattr(loader, "dataset", None)
        name = getattr(dataset, "description", None) or self.config.get("dataset") or type(dataset).__name__
        raise NonFiniteError(f"the {split} data ({name}) holds NaN or infinite input values in {where}; "
                             "check the dataset's files and transforms; " + self._kept_message())

    # ---- state ---------------------------------------------------------------------------------
    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _title(self) -> str:
        c = self.config
        if not c:
            return ""
        return f"{c.get('model')} on {c.get('dataset')}, T={c.get('T')}"

    def _kept_message(self) -> str:
        if self.run_dir is not None and self.run_dir.last_path.exists():
            return f"stopped; the last good checkpoint {self.run_dir.last_path} (epoch {self.epoch}) is kept"
        if self.run_dir is not None:
            return "stopped before any epoch finished, so there is no checkpoint"
        return "stopped"

    def save(self, path, rng_ranks: list | None = None) -> None:
        """Write the full training state to ``path`` (atomically). ``rng_ranks``: every rank's
        generator states (``gather_objects``); default this process's alone."""
        rng_ranks = [capture_rng_states(self.model)] if rng_ranks is None else list(rng_ranks)
        meta = {
            "epoch": self.epoch,
            "epochs": self.epochs,
            "best_acc": self.best_acc,
            "best_epoch": self.best_epoch,
            "history": self.history,
            "rng": rng_ranks[0],
            "rng_ranks": rng_ranks,
            "world_size": len(rng_ranks),
            "config": self.config,
            "backend": backend.name(),
        }
        schedule_state = self.schedule.state_dict() if self.schedule is not None else None
        save_trainer_checkpoint(path, self.model, optimizer_state=self.optimizer.state_dict(),
                                schedule_state=schedule_state, meta=meta)

    def load(self, path) -> dict:
        """Restore the training state saved by ``save`` (model, optimizer, schedule, generators,
        epoch, best accuracy, history). Returns the checkpoint's meta."""
        ckpt = read_trainer_checkpoint(path)
        # a checkpoint of another model or optimizer fails here: say which file
        for what, target, state in (("model", self.model, ckpt["model"]), ("optimizer", self.optimizer, ckpt["optimizer"]),
                                    ("schedule", self.schedule, ckpt["schedule"])):
            if target is None or (what == "schedule" and not state):
                continue
            try:
                target.load_state_dict(state)
            except (KeyError, ValueError, TypeError) as err:
                message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
                raise type(err)(f"checkpoint {str(path)!r} does not fit this run's {what}: {message}") from None
        meta = ckpt["meta"]
        saved = meta.get("rng_ranks") or [meta.get("rng", {})]
        rank = self.comm.rank
        if rank < len(saved):
            restore_rng_states(self.model, saved[rank])
        else:  # more ranks than the run had: derive this rank's stream (see the module docstring)
            seed_rank_generator(self.config.get("seed", 0), int(meta["epoch"]), rank)
        self.epoch = int(meta["epoch"])
        self.best_acc = meta.get("best_acc")
        self.best_epoch = meta.get("best_epoch")
        self.history = list(meta.get("history", []))
        return meta


def seed_rank_generator(seed, epoch: int, rank: int) -> None:
    """Seed the backend generator of rank ``rank`` > 0 from (seed, epoch, rank), independently of
    the other ranks' (a fresh rank, or one beyond the saved ones on a resume with more ranks)."""
    entropy = np.random.SeedSequence([int(seed), int(epoch), int(rank)]).generate_state(1)[0]
    backend.seed(int(entropy))


def _finite_or_none(v):
    return float(v) if v is not None and math.isfinite(v) else None


def format_record(r: dict, epochs: int | None = None) -> str:
    """One line per epoch, as the CLI prints it."""
    of = f"/{epochs}" if epochs else ""
    parts = [f"epoch {r['epoch']}{of}", f"train loss {r['train_loss']:.4f} acc {100 * r['train_acc']:.2f}%"]
    if r.get("test_acc") is not None:
        parts.append(f"test loss {r['test_loss']:.4f} acc {100 * r['test_acc']:.2f}%")
    parts.append(f"lr {r['lr']:.4g}")
    if r.get("firing_rate") is not None:
        parts.append(f"fr {r['firing_rate']:.3f}")
    parts.append(f"{r['images_per_s']:.0f} img/s")
    parts.append(f"{r['epoch_time_s']:.1f} s")
    return " | ".join(parts)
