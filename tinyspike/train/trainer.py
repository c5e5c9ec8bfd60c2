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

No printing here: a tqdm bar per epoch (``progress=True``) and a ``log(line)`` callback that the
caller owns.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from typing import Callable

from tinyspike import backend, checks
from tinyspike.analysis.firing import FiringRateMonitor
from tinyspike.autograd import no_grad
from tinyspike.train.finite import NonFiniteError, batch_is_finite, first_non_finite_in_model
from tinyspike.train.rng import capture_rng_states, restore_rng_states
from tinyspike.train.run_dir import (
    RunDir, atomic_copy, read_trainer_checkpoint, reported_write, save_trainer_checkpoint,
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
            from tinyspike.functional.loss import cross_entropy

            def loss_fn(logits, y, _ls=float(label_smoothing)):
                return cross_entropy(logits, y, label_smoothing=_ls)

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
        self.progress = bool(progress)
        self.log = log or (lambda line: None)
        self.plot = plot
        self.monitor = FiringRateMonitor(model) if monitor_firing else None
        self.epoch = 0  # epochs completed
        self.history: list[dict] = []
        self.best_acc: float | None = None
        self.best_epoch: int | None = None

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
            if self.plot and self.run_dir is not None and self.history:
                from tinyspike.train.plots import plot_metrics

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
            # last.npz first: it alone is what --resume reads. If best.npz then fails, last.npz
            # records this epoch as the best and the resume rebuilds best.npz from it.
            kept = f"the previous {self.run_dir.last_path.name} (epoch {epoch}) is kept" if epoch else "nothing was saved"
            with reported_write(self.run_dir.last_path, kept):
                self.save(self.run_dir.last_path)
            saved = f"{self.run_dir.last_path} (epoch {epoch + 1}) is saved; --resume rewrites it"
            if improved:
                with reported_write(self.run_dir.best_path, saved):
                    atomic_copy(self.run_dir.last_path, self.run_dir.best_path)
            with reported_write(self.run_dir.metrics_path, saved):
                self.run_dir.write_metrics(self.history)
        return dict(record)

    def _forward(self, x):
        if x.ndim == 4 and self.time_steps is not None:
            return self.model(x, time_steps=self.time_steps)
        return self.model(x)

    def train_one_epoch(self, epoch: int) -> dict:
        """One pass over the training data (epoch index ``epoch``, 0-based)."""
        from tqdm import tqdm

        self.model.train()
        loader = self.train_loader
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        if self.monitor is not None:
            self.monitor.reset()
        loss_sum, correct, seen = 0.0, 0, 0
        t_start = last_update = time.perf_counter()
        bar = tqdm(
            total=len(loader), desc=f"epoch {epoch + 1}/{self.epochs}", unit="batch",
            disable=not self.progress, leave=True, dynamic_ncols=True,
        )
        try:
            for b, (x, y) in enumerate(loader):
                where = f"epoch {epoch + 1}, batch {b + 1}/{len(loader)}"
                self.check_batch_finite(x, loader, "training", where)
                self.optimizer.zero_grad()
                logits = self._forward(x)
                loss = self.loss_fn(logits, y)
                value = float(loss.item())
                if not math.isfinite(value):
                    raise NonFiniteLossError(
                        f"loss became {value} at epoch {epoch + 1}, batch {b + 1}/{len(loader)}; "
                        + self._kept_message()
                    )
                loss.backward()
                if self.grad_clip is not None:
                    from tinyspike.optim import clip_grad_norm_

                    clip_grad_norm_(self.model.parameters(), self.grad_clip)
                self.optimizer.step()
                self.check_model_finite(f"after the optimizer step of {where}")
                if self.schedule is not None and self.schedule_per == "iteration":
                    self.schedule.step()
                n = int(y.shape[0])
                loss_sum += value * n
                correct += int((logits.data.argmax(axis=1) == y).sum().item())  # .item(): explicit sync
                seen += n
                bar.update(1)
                now = time.perf_counter()
                if self.progress and (now - last_update > 0.5 or b + 1 == len(loader)):
                    last_update = now
                    postfix = OrderedDict(
                        loss=f"{loss_sum / seen:.4f}", acc=f"{100 * correct / seen:.1f}%",
                        img_s=f"{seen / (now - t_start):.0f}", lr=f"{self.current_lr():.4g}",
                    )
                    if self.monitor is not None:
                        postfix["fr"] = f"{self.monitor.mean_rate():.3f}"
                    bar.set_postfix(postfix, refresh=False)
        finally:
            bar.close()
        if self.schedule is not None and self.schedule_per == "epoch":
            self.schedule.step()
        result = {"loss": loss_sum / max(seen, 1), "acc": correct / max(seen, 1), "images": seen}
        if self.monitor is not None:
            result["firing_rate"] = _finite_or_none(self.monitor.mean_rate())
        return result

    def evaluate(self, loader=None) -> dict:
        """Loss, accuracy and firing rates (mean and per LIF layer) on ``loader`` (default: eval)."""
        loader = self.eval_loader if loader is None else loader
        was_training = self.model.training
        self.model.eval()
        if self.monitor is not None:
            self.monitor.reset()
        loss_sum, correct, seen = 0.0, 0, 0
        self.check_model_finite("before evaluation")
        try:
            with no_grad():
                for b, (x, y) in enumerate(loader):
                    self.check_batch_finite(x, loader, "evaluation", f"batch {b + 1}/{len(loader)}")
                    logits = self._forward(x)
                    n = int(y.shape[0])
                    loss_sum += float(self.loss_fn(logits, y).item()) * n
                    correct += int((logits.data.argmax(axis=1) == y).sum().item())  # .item(): explicit sync
                    seen += n
        finally:
            self.model.train(was_training)
        result = {"loss": loss_sum / max(seen, 1), "acc": correct / max(seen, 1), "images": seen}
        if self.monitor is not None:
            result["firing_rate"] = _finite_or_none(self.monitor.mean_rate())
            result["firing_rates"] = {k: _finite_or_none(v) for k, v in self.monitor.rates().items()}
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

    def save(self, path) -> None:
        """Write the full training state to ``path`` (atomically)."""
        meta = {
            "epoch": self.epoch,
            "epochs": self.epochs,
            "best_acc": self.best_acc,
            "best_epoch": self.best_epoch,
            "history": self.history,
            "rng": capture_rng_states(self.model),
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
        restore_rng_states(self.model, meta.get("rng", {}))
        self.epoch = int(meta["epoch"])
        self.best_acc = meta.get("best_acc")
        self.best_epoch = meta.get("best_epoch")
        self.history = list(meta.get("history", []))
        return meta


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
