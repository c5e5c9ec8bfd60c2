"""``Module`` and ``Parameter``: how a network holds its weights, buffers and sub-layers.

A Module registers what is assigned to its attributes:

- a ``Parameter`` (a Tensor that requires grad and is trained by an optimizer),
- a sub-``Module`` (its parameters then appear under ``"<attribute>.<name>"``),
- a buffer, through ``register_buffer`` (a plain backend array that is saved but not trained,
  e.g. batch norm's running statistics).

So ``self.conv1 = Conv2d(...)`` inside a block makes ``"conv1.weight"`` a key of
``block.state_dict()``, and a block stored as ``stages[2][0]`` has keys ``"stages.2.0.conv1.weight"``:
the names are the attribute path, which makes them stable and easy to compare with PyTorch's.

Gradients accumulate in ``Parameter.grad`` across ``backward()`` calls until ``zero_grad()`` (see
``tinyspike.autograd``); an optimizer's ``zero_grad()`` does the same for the parameters it owns.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from tinyspike import backend
from tinyspike.autograd import Tensor


class Parameter(Tensor):
    """A trainable Tensor: a leaf with ``requires_grad=True`` that Modules register automatically.

    ``Parameter(data)`` takes a backend array (kept as is, no copy, dtype unchanged) or anything
    ``Tensor`` accepts.
    """

    def __init__(self, data, requires_grad: bool = True):
        if isinstance(data, Tensor):
            data = data.data
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return f"Parameter(shape={tuple(self.shape)}, dtype={self.dtype})"


class StateDictKeyError(KeyError):
    """A state dict lacks a key the model has, or has one the model lacks (the message names them)."""

    def __str__(self):  # KeyError would print the message inside quotes
        return str(self.args[0]) if self.args else ""


class RemovableHandle:
    """Returned by ``register_forward_hook``; ``handle.remove()`` unregisters the hook."""

    def __init__(self, hooks: dict, key: int):
        self._hooks, self._key = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self._key, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


_next_hook_id = [0]


class Module:
    """Base class of every layer and network (see the module docstring).

    Subclasses call ``super().__init__()`` first, then assign parameters, buffers and sub-modules,
    and define ``forward``. Calling the module runs ``forward`` and then the forward hooks.
    """

    def __init__(self):
        # object.__setattr__: our own __setattr__ needs these dictionaries to exist already
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "training", True)

    # ---- registration ------------------------------------------------------------------------
    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() before assigning {name!r}")
        if isinstance(value, (Parameter, Module)):
            # one name lives in exactly one place; a plain attribute would shadow __getattr__
            self.__dict__.pop(name, None)
            self._buffers.pop(name, None)
            self._persistent.discard(name)
            if isinstance(value, Parameter):
                self._modules.pop(name, None)
                self._parameters[name] = value
            else:
                self._parameters.pop(name, None)
                self._modules[name] = value
        elif name in self._buffers or name in self._parameters or name in self._modules:
            self._assign_plain(name, value)
        else:
            object.__setattr__(self, name, value)

    def _assign_plain(self, name, value):
        """Assigning a non-Parameter to a registered name: a buffer may take an array (or None)."""
        if name in self._buffers:
            self._buffers[name] = value
            return
        if value is not None:
            kind = "parameter" if name in self._parameters else "sub-module"
            raise TypeError(f"cannot assign a {type(value).__name__} to {kind} {name!r}; assign a Parameter/Module or None")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__setattr__(self, name, None)

    def __getattr__(self, name: str):
        # only called when normal lookup fails, i.e. for registered entries
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                self._persistent.discard(name)
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, array, persistent: bool = True) -> None:
        """Register an array that belongs to the module's state but is not trained.

        Persistent buffers are part of ``state_dict()``; others (caches, masks) are not.
        """
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"buffer name must be a non-empty string without '.', got {name!r}")
        if name in self._parameters or name in self._modules:
            raise ValueError(f"{name!r} is already a parameter or sub-module of {type(self).__name__}")
        if array is not None and not (hasattr(array, "shape") and hasattr(array, "dtype")):
            raise TypeError(f"buffer {name!r} must be an array or None, got {type(array).__name__}")
        self.__dict__.pop(name, None)
        self._buffers[name] = array
        if persistent:
            self._persistent.add(name)
        else:
            self._persistent.discard(name)

    def register_parameter(self, name: str, param) -> None:
        """Register ``param`` (a Parameter or None) under ``name``, as ``self.<name> = param``."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"parameter {name!r} must be a Parameter or None, got {type(param).__name__}")
        if param is None:
            self._parameters[name] = None
        else:
            setattr(self, name, param)

    def add_module(self, name: str, module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"module {name!r} must be a Module, got {type(module).__name__}")
        self._modules[name] = module

    # ---- calling -----------------------------------------------------------------------------
    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        output = self.forward(*args, **kwargs)
        if self._forward_hooks:
            for hook in list(self._forward_hooks.values()):
                result = hook(self, args, output)
                if result is not None:
                    output = result
        return output

    def register_forward_hook(self, hook) -> RemovableHandle:
        """Call ``hook(module, inputs, output)`` after every forward of this module.

        For analysis (firing rates, SyOPs, activation statistics) without changing the layer.
        A hook that returns something other than None replaces the output. Returns a handle whose
        ``remove()`` unregisters the hook (also usable as a context manager).
        """
        if not callable(hook):
            raise TypeError(f"hook must be callable, got {type(hook).__name__}")
        _next_hook_id[0] += 1
        self._forward_hooks[_next_hook_id[0]] = hook
        return RemovableHandle(self._forward_hooks, _next_hook_id[0])

    # ---- traversal ---------------------------------------------------------------------------
    def children(self):
        return iter(m for m in self._modules.values() if m is not None)

    def named_children(self):
        return iter((k, m) for k, m in self._modules.items() if m is not None)

    def named_modules(self, prefix: str = ""):
        """Yield ``(name, module)`` for this module (name ``prefix``) and every descendant."""
        stack = [(prefix, self)]
        seen = set()
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{k}" if name else k, m) for k, m in module._modules.items() if m is not None]
            stack.extend(reversed(children))  # reversed: pop() then visits them in order

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_parameters(self, prefix: str = ""):
        """Yield ``(dotted name, Parameter)`` for every parameter, each shared one once."""
        seen = set()
        for module_name, module in self.named_modules(prefix):
            for name, param in module._parameters.items():
                if param is None or id(param) in seen:
                    continue
                seen.add(id(param))
                yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self):
        return (p for _, p in self.named_parameters())

    def named_buffers(self, prefix: str = "", persistent_only: bool = False):
        for module_name, module in self.named_modules(prefix):
            for name, buf in module._buffers.items():
                if buf is None or (persistent_only and name not in module._persistent):
                    continue
                yield (f"{module_name}.{name}" if module_name else name), buf

    def buffers(self):
        return (b for _, b in self.named_buffers())

    def num_parameters(self, trainable_only: bool = False) -> int:
        """The number of parameter elements (running statistics and other buffers not counted)."""
        return sum(int(p.size) for p in self.parameters() if p.requires_grad or not trainable_only)

    # ---- modes and gradients -----------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Training mode (batch statistics, dropout active) for this module and its descendants."""
        if not isinstance(mode, (bool, np.bool_)):
            raise TypeError(f"train(mode): mode must be a bool, got {type(mode).__name__}")
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        """Evaluation mode (running statistics, no dropout); same as ``train(False)``."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Drop every parameter's gradient (they accumulate over backward() calls until this)."""
        for p in self.parameters():
            p.grad = None

    def apply(self, fn) -> "Module":
        """Call ``fn(module)`` on every descendant and on self (children first), as PyTorch."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # ---- state -------------------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, object]":
        """Parameters and persistent buffers by dotted name, as the module's own arrays (no copy).

        The arrays are live: a later training step changes them. Use ``to_numpy_state()`` for a
        snapshot (or to save it).
        """
        state = OrderedDict()
        for name, p in self.named_parameters():
            state[name] = p.data
        for name, b in self.named_buffers(persistent_only=True):
            state[name] = b
        return state

    def to_numpy_state(self) -> "OrderedDict[str, np.ndarray]":
        """A snapshot of ``state_dict()`` as NumPy copies (what a checkpoint file stores)."""
        return OrderedDict((k, np.array(backend.to_numpy(v), copy=True)) for k, v in self.state_dict().items())

    def load_state_dict(self, state, strict: bool = True) -> None:
        """Copy arrays from ``state`` (name -> array) into the parameters and buffers, in place.

        In place so that optimizers, which hold the Parameter objects, keep working. Every key's
        shape must match exactly; values are cast to the parameter's dtype (a float64 file can
        be loaded into a float32 model). With ``strict`` (default), a missing or unexpected key
        raises a ``KeyError`` naming it; a wrong shape always raises a ``ValueError`` naming it.
        Nothing is changed unless every key checks out.
        """
        if not hasattr(state, "keys"):
            raise TypeError(f"state must be a mapping of name -> array, got {type(state).__name__}")
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing key(s): {', '.join(repr(k) for k in missing)}")
            if unexpected:
                parts.append(f"unexpected key(s): {', '.join(repr(k) for k in unexpected)}")
            raise StateDictKeyError(f"load_state_dict into {type(self).__name__}: " + "; ".join(parts))
        plan = []
        for name, target in own.items():
            if name not in state:
                continue
            value = state[name]
            value = value.data if isinstance(value, Tensor) else value
            if not hasattr(value, "shape"):
                value = np.asarray(value)
            shape = tuple(value.shape)
            if shape != tuple(target.shape):
                raise ValueError(
                    f"load_state_dict: key {name!r} has shape {shape} in the state but {tuple(target.shape)} in the model"
                )
            plan.append((name, target, value))
        for _, target, value in plan:
            target[...] = backend.to_device(value)  # casts to the target's dtype

    # ---- printing ----------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        children = list(self.named_children())
        if not children:
            return lines[0] + ")"
        lines[0] = lines[0] if not self.extra_repr() else lines[0] + ","
        for name, child in children:
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"
