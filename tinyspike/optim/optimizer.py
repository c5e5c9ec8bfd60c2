"""The ``Optimizer`` base class: parameter groups, per-parameter state, and a flat state dict.

An optimizer holds the Parameters it updates in *groups*, each with its own hyper-parameters
(``lr``, ``weight_decay``, …): pass Parameters for one group, or a list of dicts
``[{"params": [...], "lr": 0.01}, {"params": [...]}]`` (missing keys take the defaults).
Schedules change ``group["lr"]``.

``step()`` updates every parameter that has a gradient, in place (so a model and its optimizer
keep sharing the same arrays), without recording anything for autograd. ``zero_grad()`` drops
the gradients: they accumulate over ``backward()`` calls until it is called.

``state_dict()`` is a *flat* dict of numbers and NumPy arrays, so it can go straight into an
``.npz`` checkpoint (``tinyspike.nn.save_checkpoint(path, model, optimizer=opt.state_dict())``):

    "group<i>.<hyper-parameter>"   e.g. "group0.lr", "group0.momentum", "group0.betas" (array)
    "group<i>.num_params"          how many parameters the group holds (checked on load)
    "param<j>.<buffer>"            e.g. "param3.momentum_buffer", "param3.exp_avg", "param3.step"

with j counting the parameters across groups in order. ``load_state_dict`` is its inverse.
"""

from __future__ import annotations

import numbers

import numpy as np

from tinyspike import backend
from tinyspike.autograd import Tensor, no_grad


class Optimizer:
    """Base class: subclasses set ``defaults`` and implement ``_update(param, grad, group, state)``."""

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        params = list(params) if not isinstance(params, Tensor) else [params]
        if not params:
            raise ValueError(f"{type(self).__name__}: params is empty; pass model.parameters() or a list of groups")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups: list[dict] = []
        seen = set()
        for index, group in enumerate(groups):
            if not isinstance(group, dict) or "params" not in group:
                raise TypeError(f"{type(self).__name__}: params must be Parameters or dicts with a 'params' key (group {index})")
            members = list(group["params"]) if not isinstance(group["params"], Tensor) else [group["params"]]
            for p in members:
                if not isinstance(p, Tensor) or not p.requires_grad or not p.is_leaf:
                    raise TypeError(f"{type(self).__name__}: group {index} holds something that is not a trainable leaf Tensor")
                if id(p) in seen:
                    raise ValueError(f"{type(self).__name__}: a parameter appears in more than one place (group {index})")
                seen.add(id(p))
            unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
            if unknown:
                raise ValueError(f"{type(self).__name__}: unknown option(s) {sorted(unknown)} in group {index}")
            full = {**self.defaults, **{k: v for k, v in group.items() if k != "params"}, "params": members}
            self._check_hyperparameters(full)
            self.param_groups.append(full)
        self.state: dict = {}  # Parameter -> {buffer name: array or number}

    def _check_hyperparameters(self, group: dict) -> None:
        """Raise a ValueError naming an out-of-range hyper-parameter (subclasses extend)."""
        for key in ("lr", "weight_decay", "eps"):
            if key in group:
                value = group[key]
                if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0:
                    raise ValueError(f"{type(self).__name__}: {key} must be a number >= 0, got {value!r}")

    def parameters(self):
        for group in self.param_groups:
            yield from group["params"]

    def zero_grad(self) -> None:
        """Drop every gradient (``param.grad = None``); gradients accumulate until this is called."""
        for p in self.parameters():
            p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient, in place."""
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    if p.grad.shape != p.shape:
                        raise ValueError(f"{type(self).__name__}: a gradient of shape {p.grad.shape} for a parameter of shape {p.shape}")
                    self._update(p, p.grad, group, self.state.setdefault(p, {}))

    def _update(self, param, grad, group: dict, state: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---- state dict ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        """A flat dict of numbers and NumPy arrays (see the module docstring)."""
        flat = {}
        j = 0
        for i, group in enumerate(self.param_groups):
            flat[f"group{i}.num_params"] = len(group["params"])
            for key, value in group.items():
                if key == "params":
                    continue
                flat[f"group{i}.{key}"] = np.asarray(value, dtype=np.float64) if isinstance(value, tuple) else value
            for p in group["params"]:
                for name, value in self.state.get(p, {}).items():
                    flat[f"param{j}.{name}"] = backend.to_numpy(value).copy() if hasattr(value, "shape") else value
                j += 1
        return flat

    def load_state_dict(self, flat: dict) -> None:
        """Restore hyper-parameters and buffers from ``state_dict()``'s output (or a checkpoint's)."""
        name = type(self).__name__
        if not hasattr(flat, "items"):
            raise TypeError(f"{name}.load_state_dict: expected a dict, got {type(flat).__name__}")
        groups_in_file = {k.split(".", 1)[0] for k in flat if k.startswith("group")}
        if len(groups_in_file) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state has {len(groups_in_file)} group(s), the optimizer {len(self.param_groups)}")
        params = list(self.parameters())
        for i, group in enumerate(self.param_groups):
            count = flat.get(f"group{i}.num_params")
            if count is None or int(count) != len(group["params"]):
                raise ValueError(f"{name}.load_state_dict: group {i} holds {count} parameter(s) in the state, {len(group['params'])} here")
        new_state: dict = {}
        for key, value in flat.items():
            head, _, field = key.partition(".")
            if head.startswith("param"):
                try:
                    j = int(head[len("param"):])
                except ValueError:
                    raise ValueError(f"{name}.load_state_dict: unexpected key {key!r}") from None
                if not 0 <= j < len(params):
                    raise ValueError(f"{name}.load_state_dict: key {key!r} refers to parameter {j}, but there are {len(params)}")
                p = params[j]
                if hasattr(value, "shape") and getattr(value, "ndim", 0) > 0:
                    if tuple(value.shape) != tuple(p.shape):
                        raise ValueError(f"{name}.load_state_dict: key {key!r} has shape {tuple(value.shape)}, the parameter {tuple(p.shape)}")
                    value = backend.to_device(np.asarray(backend.to_numpy(value), dtype=p.dtype))
                elif hasattr(value, "item"):
                    value = value.item()
                new_state.setdefault(p, {})[field] = value
            elif not head.startswith("group"):
                raise ValueError(f"{name}.load_state_dict: unexpected key {key!r}")
        for i, group in enumerate(self.param_groups):
            for key in list(group):
                if key == "params" or f"group{i}.{key}" not in flat:
                    continue
                value = flat[f"group{i}.{key}"]
                if isinstance(group[key], tuple):
                    value = tuple(float(v) for v in np.asarray(value))
                elif hasattr(value, "item"):
                    value = value.item()
                group[key] = value
            if f"group{i}.initial_lr" in flat:
                group["initial_lr"] = float(np.asarray(flat[f"group{i}.initial_lr"]))
        self.state = new_state
