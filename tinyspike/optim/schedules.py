"""Learning-rate schedules, stepped once per epoch or once per iteration.

A schedule is a function of the (possibly fractional) epoch e. ``steps_per_epoch`` says how many
``step()`` calls make one epoch: 1 (the default) to step after each epoch, ``len(loader)`` to
step after each iteration (then e = iterations / steps_per_epoch and a cosine decays smoothly
within epochs, while a MultiStep drop still happens exactly at the milestone epoch).

Construction sets each group's lr to its value at e = 0; ``step()`` advances and sets it again.
``lr_at(e)`` gives the value at any e without touching the optimizer.

- ``MultiStepLR``: lr = base · γ^(number of milestones ≤ e)      (paper Table VIII: [40, 60, 80] × 0.2)
- ``CosineLR``: linear warm-up from ``warmup_start_factor``·base to base over ``warmup_epochs``,
  then lr = min_lr + (base − min_lr)·(1 + cos(π·(e − w)/(E − w)))/2, reaching min_lr at E.
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from tinyspike import checks
from tinyspike.optim.optimizer import Optimizer


class LRScheduler:
    """Base class: subclasses implement ``lr_for(base_lr, epoch)``."""

    def __init__(self, optimizer: Optimizer, steps_per_epoch: int = 1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: optimizer must be an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.steps_per_epoch = checks.integer(type(self).__name__, "steps_per_epoch", steps_per_epoch, low=1)
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])  # the base a restarted schedule starts from
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_step = 0
        self._apply()

    @property
    def epoch(self) -> float:
        """Where the schedule stands, in epochs (fractional when stepping per iteration)."""
        return self.last_step / self.steps_per_epoch

    def lr_for(self, base_lr: float, epoch: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def lr_at(self, epoch: float) -> list[float]:
        """Each group's learning rate at ``epoch``."""
        epoch = checks.real(f"{type(self).__name__}.lr_at", "epoch", epoch, low=0.0)
        return [self.lr_for(base, epoch) for base in self.base_lrs]

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def step(self) -> None:
        """Advance one step (an epoch, or an iteration when steps_per_epoch > 1) and set the lr."""
        self.last_step += 1
        self._apply()

    def _apply(self) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.lr_at(self.epoch)):
            group["lr"] = lr

    def state_dict(self) -> dict:
        """Flat numbers/arrays, for an .npz checkpoint."""
        return {"last_step": self.last_step, "base_lrs": np.asarray(self.base_lrs, dtype=np.float64)}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()``'s output; the values are checked (finite lrs >= 0, a step count >= 0)."""
        where = f"{type(self).__name__}.load_state_dict"
        if not hasattr(state, "keys") or not {"base_lrs", "last_step"} <= set(state.keys()):
            raise ValueError(f"{where}: state must be a dict with 'base_lrs' and 'last_step', got {checks.show(state)}")
        base = np.atleast_1d(np.asarray(state["base_lrs"])).reshape(-1).tolist()
        if len(base) != len(self.base_lrs):
            raise ValueError(f"{where}: {len(base)} base lr(s) in the state, {len(self.base_lrs)} groups here")
        base = [checks.real(where, f"base_lrs[{i}]", v, low=0.0) for i, v in enumerate(base)]
        last_step = state["last_step"]
        last_step = last_step.item() if hasattr(last_step, "item") else last_step
        self.last_step = checks.integer(where, "last_step", last_step, low=0)
        self.base_lrs = base
        self._apply()


class MultiStepLR(LRScheduler):
    """lr = base · gamma^(number of milestones ≤ epoch); milestones in epochs."""

    def __init__(self, optimizer, milestones, gamma=0.1, steps_per_epoch=1):
        if isinstance(milestones, np.ndarray) and milestones.ndim == 1:
            milestones = milestones.tolist()
        if not isinstance(milestones, (list, tuple, range)):
            raise TypeError(f"MultiStepLR: milestones must be a list of epochs, got {checks.kind_of(milestones)} "
                            f"{checks.show(milestones)}")
        milestones = list(checks.reals("MultiStepLR", "milestones", list(milestones), low=0.0))
        if milestones != sorted(milestones):
            raise ValueError(f"MultiStepLR: milestones must be increasing, got {milestones!r}")
        self.milestones = milestones
        self.gamma = checks.real("MultiStepLR", "gamma", gamma, low=0.0)
        super().__init__(optimizer, steps_per_epoch)

    def lr_for(self, base_lr, epoch):
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, epoch)


class CosineLR(LRScheduler):
    """Cosine decay to ``min_lr`` at ``total_epochs``, after an optional linear warm-up."""

    def __init__(self, optimizer, total_epochs, warmup_epochs=0, min_lr=0.0, warmup_start_factor=0.1, steps_per_epoch=1):
        where = "CosineLR"
        self.total_epochs = checks.real(where, "total_epochs", total_epochs, low=0.0, low_open=True)
        self.warmup_epochs = checks.real(where, "warmup_epochs", warmup_epochs, low=0.0)
        if self.warmup_epochs >= self.total_epochs:
            raise ValueError(f"CosineLR: warmup_epochs ({warmup_epochs}) must be less than total_epochs ({total_epochs})")
        self.min_lr = checks.real(where, "min_lr", min_lr, low=0.0)
        self.warmup_start_factor = checks.real(where, "warmup_start_factor", warmup_start_factor, 0.0, 1.0)
        super().__init__(optimizer, steps_per_epoch)

    def lr_for(self, base_lr, epoch):
        w, total = self.warmup_epochs, self.total_epochs
        if epoch < w:
            start = self.warmup_start_factor
            return base_lr * (start + (1 - start) * epoch / w)
        progress = min(1.0, (epoch - w) / (total - w))
        return self.min_lr + (base_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
