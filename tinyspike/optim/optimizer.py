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

import numpy as np

from tinyspike import backend, checks
from tinyspike.autograd import Tensor, no_grad
from tinyspike.nn.module import Module, check_state_value


def parameter_list(where: str, name: str, params) -> list:
    """Parameters (or groups) as a list: one Tensor, or any iterable of them; a Module is refused."""
    if isinstance(params, Tensor):
        return [params]
    if isinstance(params, Module):
        raise TypeError(f"{where}: {name} must be parameters, got the {type(params).__name__} module itself; "
                        "pass model.parameters()")
    if isinstance(params, (str, bytes, dict)) or not hasattr(params, "__iter__"):
        raise TypeError(f"{where}: {name} must be an iterable of Parameters (model.parameters()) or a list of "
                        f"group dicts, got {checks.kind_of(params)} {checks.show(params)}")
    return list(params)


class Optimizer:
    """Base class: subclasses set ``defaults`` and implement ``_update(param, grad, group, state)``."""

    def __init__(self, params, defaults: dict):
        name = type(self).__name__
        self.defaults = dict(defaults)
        params = parameter_list(name, "params", params)
        if not params:
            raise ValueError(f"{name}: params is empty; pass model.parameters() or a list of groups")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups: list[dict] = []
        seen = set()
        for index, group in enumerate(groups):
            if not isinstance(group, dict) or "params" not in group:
                raise TypeError(f"{name}: params must be Parameters or dicts with a 'params' key (group {index})")
            members = parameter_list(name, f"group {index} params", group["params"])
            for p in members:
                if not isinstance(p, Tensor) or not p.requires_grad or not p.is_leaf:
                    raise TypeError(f"{name}: group {index} holds a {checks.kind_of(p)}, not a trainable leaf Tensor")
                if id(p) in seen:
                    raise ValueError(f"{name}: a parameter appears in more than one place (group {index})")
                seen.add(id(p))
            unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
            if unknown:
                raise ValueError(f"{name}: unknown option(s) {sorted(unknown)} in group {index}")
            full = {**self.defaults, **{k: v for k, v in group.items() if k != "params"}, "params": members}
            self._check_hyperparameters(full)
            self.param_groups.append(full)
        self.state: dict = {}  # Parameter -> {buffer name: array or number}

    def _check_hyperparameters(self, group: dict) -> None:
        """Check (and normalise to Python numbers) a group's hyper-parameters; subclasses extend.

        lr, weight_decay: finite, >= 0. eps: finite, > 0 (it keeps Adam's division away from 0/0).
        initial_lr (set by a schedule): finite, >= 0.
        """
        where = type(self).__name__
        for key in ("lr", "weight_decay", "initial_lr"):
            if key in group:
                group[key] = checks.real(where, key, group[key], low=0.0)
        if "eps" in group:
            group["eps"] = checks.real(where, "eps", group["eps"], low=0.0, low_open=True)

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
        """Restore hyper-parameters and buffers from ``state_dict()``'s output (or a checkpoint's).

        Everything is checked before anything changes: the group and parameter counts, each
        buffer (real, finite, the parameter's shape, no lossy cast: the rules of
        ``Module.load_state_dict``) and each hyper-parameter (the constructor's rules), so a
        corrupt or diverged checkpoint fails naming its key instead of poisoning the next step.
        """
        name = type(self).__name__
        where = f"{name}.load_state_dict"
        if not hasattr(flat, "items"):
            raise TypeError(f"{where}: expected a dict, got {checks.kind_of(flat)}")
        groups_in_file = {k.split(".", 1)[0] for k in flat if isinstance(k, str) and k.startswith("group")}
        if len(groups_in_file) != len(self.param_groups):
            raise ValueError(f"{where}: the state has {len(groups_in_file)} group(s), the optimizer {len(self.param_groups)}")
        params = list(self.parameters())
        for i, group in enumerate(self.param_groups):
            count = flat.get(f"group{i}.num_params")
            if count is None or _scalar(count) != len(group["params"]):
                raise ValueError(f"{where}: group {i} holds {count} parameter(s) in the state, {len(group['params'])} here")
        new_state: dict = {}
        for key, value in flat.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: unexpected key {key!r}")
            head, _, field = key.partition(".")
            if head.startswith("param"):
                p = params[self._parameter_index(where, key, head, len(params))]
                if hasattr(value, "shape") and getattr(value, "ndim", 0) > 0:
                    value = backend.to_device(check_state_value(where, key, value, p.data))
                else:
                    value = _scalar(value)
                    if not checks.is_real(value):
                        raise TypeError(f"{where}: key {key!r} must be a number or an array, got {checks.show(value)}")
                    checks.real(where, key, value)
                new_state.setdefault(p, {})[field] = value
            elif not head.startswith("group"):
                raise ValueError(f"{where}: unexpected key {key!r}")
        new_groups = []
        for i, group in enumerate(self.param_groups):
            loaded = dict(group)
            for key in [k for k in group if k != "params"] + ["initial_lr"]:
                if f"group{i}.{key}" not in flat:
                    continue
                value = flat[f"group{i}.{key}"]
                if isinstance(group.get(key), tuple):
                    value = tuple(np.asarray(value).reshape(-1).tolist())
                else:
                    value = _scalar(value)
                loaded[key] = value
            try:
                self._check_hyperparameters(loaded)
            except (TypeError, ValueError) as err:  # say where the bad value came from
                raise type(err)(f"{where}: group{i}: {err}") from None
            new_groups.append(loaded)
        for group, loaded in zip(self.param_groups, new_groups):
            group.update(loaded)  # the same dict objects: schedules hold references to them
        self.state = new_state

    @staticmethod
    def _parameter_index(where, key, head, count) -> int:
        try:
            j = int(head[len("param"):])
        except ValueError:
            raise ValueError(f"{where}: unexpected key {key!r}") from None
        if not 0 <= j < count:
            raise ValueError(f"{where}: key {key!r} refers to parameter {j}, but there are {count}")
        return j


def _scalar(value):
    """A 0-d array or NumPy scalar (as an .npz file gives them) as a Python number; others unchanged."""
    if hasattr(value, "shape") and getattr(value, "ndim", None) == 0:
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value
