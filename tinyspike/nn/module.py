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

from tinyspike import backend, checks
from tinyspike.autograd import Tensor


class Parameter(Tensor):
    """A trainable Tensor: a leaf with ``requires_grad=True`` that Modules register automatically.

    ``Parameter(data)`` takes a backend array (kept as is, no copy, dtype unchanged) or anything
    ``Tensor`` accepts.
    """

    def __init__(self, data, requires_grad: bool = True):
        requires_grad = checks.boolean("Parameter", "requires_grad", requires_grad)
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


def _check_name(where: str, name) -> str:
    """A registry name: a non-empty str without '.', which separates the levels of a dotted name."""
    if not isinstance(name, str):
        raise TypeError(f"{where}: name must be a str, got {checks.kind_of(name)} {checks.show(name)}")
    if not name or "." in name:
        raise ValueError(f"{where}: name must be a non-empty string without '.', got {name!r}")
    return name


def _is_backend_array(value) -> bool:
    return isinstance(value, np.ndarray) or backend.is_gpu_array(value)


def _check_buffer(owner: str, name: str, value):
    """A buffer is None or a writeable backend array of numbers or bools.

    Writeable, because layers update buffers in place (batch norm's running statistics) and
    ``load_state_dict`` copies into them: a read-only array (a broadcast view, a memory-mapped
    file, ``arr.flags.writeable = False``) would fail deep inside the next training step.
    """
    if value is None:
        return None
    if isinstance(value, Tensor):
        raise TypeError(f"{owner}: buffer {name!r} must be an array, got a Tensor (assign tensor.data)")
    if not _is_backend_array(value):
        raise TypeError(f"{owner}: buffer {name!r} must be an array or None, got {checks.kind_of(value)} {checks.show(value)}")
    if value.dtype.kind not in "fiub":
        raise TypeError(f"{owner}: buffer {name!r} must hold real numbers or bools, got dtype {value.dtype}")
    if not getattr(getattr(value, "flags", None), "writeable", True):
        raise ValueError(f"{owner}: buffer {name!r} is a read-only array; pass a writeable copy (np.array(value))")
    return value


def check_state_value(where: str, key: str, value, target):
    """``value`` checked for loading into ``target``: same shape, real numbers, no lossy cast, finite.

    Refused, each with a message naming ``key``: objects (``None`` would load as NaN), complex
    numbers (the imaginary part would be dropped), strings, bools into numbers; a dtype that does
    not cast *safely* to the target's (float64 into a float32 model would round every value:
    convert explicitly with ``.astype(np.float32)``; float32 into float64 is exact and accepted);
    NaN or ±inf (a diverged checkpoint must not load silently).
    """
    value = value.data if isinstance(value, Tensor) else value
    if not _is_backend_array(value):
        if isinstance(value, (str, bytes)) or value is None:
            raise TypeError(f"{where}: key {key!r} must be an array of numbers, got {checks.kind_of(value)} {checks.show(value)}")
        try:
            value = np.asarray(value)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{where}: key {key!r} must be an array of numbers, got {checks.show(value)} ({err})") from None
    shape = tuple(value.shape)
    if shape != tuple(target.shape):
        raise ValueError(f"{where}: key {key!r} has shape {shape} in the state but {tuple(target.shape)} in the model")
    kind, target_kind = value.dtype.kind, target.dtype.kind
    if kind not in "fiub" or (kind == "b" and target_kind != "b"):
        raise TypeError(f"{where}: key {key!r} must hold real numbers, got dtype {value.dtype}")
    if not np.can_cast(value.dtype, target.dtype, casting="safe"):
        raise TypeError(
            f"{where}: key {key!r} has dtype {value.dtype} but the model's is {target.dtype}: a lossy cast; "
            f"convert it explicitly (state[{key!r}].astype({target.dtype.name!r}))"
        )
    if kind == "f":
        finite = backend.array_module_of(value).isfinite(value)
        if not finite.all().item():  # .item(): an explicit device sync on CuPy
            bad = int(finite.size - int(finite.sum().item()))
            raise ValueError(f"{where}: key {key!r} holds {bad} NaN or infinite value(s) of {finite.size}")
    return value


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
            self._buffers[name] = _check_buffer(type(self).__name__, name, value)
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
        where = f"{type(self).__name__}.register_buffer"
        _check_name(where, name)
        if name in self._parameters or name in self._modules:
            raise ValueError(f"{where}: {name!r} is already a parameter or sub-module of {type(self).__name__}")
        persistent = checks.boolean(where, "persistent", persistent)
        array = _check_buffer(type(self).__name__, name, array)
        self.__dict__.pop(name, None)
        self._buffers[name] = array
        if persistent:
            self._persistent.add(name)
        else:
            self._persistent.discard(name)

    def register_parameter(self, name: str, param) -> None:
        """Register ``param`` (a Parameter or None) under ``name``, as ``self.<name> = param``."""
        _check_name(f"{type(self).__name__}.register_parameter", name)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"{type(self).__name__}.register_parameter: parameter {name!r} must be a Parameter or None, "
                            f"got {checks.kind_of(param)}")
        if param is None:
            self._parameters[name] = None
        else:
            setattr(self, name, param)

    def add_module(self, name: str, module) -> None:
        """Register ``module`` under ``name`` (what ``self.<name> = module`` does, for computed names)."""
        _check_name(f"{type(self).__name__}.add_module", name)
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}.add_module: module {name!r} must be a Module, got {checks.kind_of(module)}")
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
            raise TypeError(f"{type(self).__name__}.register_forward_hook: hook must be callable, got {checks.kind_of(hook)}")
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
        trainable_only = checks.boolean(f"{type(self).__name__}.num_parameters", "trainable_only", trainable_only)
        return sum(int(p.size) for p in self.parameters() if p.requires_grad or not trainable_only)

    # ---- modes and gradients -----------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Training mode (batch statistics, dropout active) for this module and its descendants."""
        mode = checks.boolean(f"{type(self).__name__}.train", "mode", mode)
        for module in self.modules():
            object.__setattr__(module, "training", mode)
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

        In place so that optimizers, which hold the Parameter objects, keep working. Every value
        must be an array of real numbers of the key's exact shape, finite, and of a dtype that
        casts to the model's without loss: float32 into a float64 model is accepted, float64 into
        a float32 one is refused (convert it explicitly with ``.astype``), as are objects,
        complex numbers, strings, bools and NaN/±inf. With ``strict`` (default), a missing or
        unexpected key raises a ``KeyError`` naming it; every other refusal is a
        ``TypeError``/``ValueError`` naming the key. Nothing is changed unless every key checks out.
        """
        where = f"load_state_dict into {type(self).__name__}"
        if not hasattr(state, "keys") or not hasattr(state, "__getitem__"):
            raise TypeError(f"{where}: state must be a mapping of name -> array, got {checks.kind_of(state)}")
        strict = checks.boolean(where, "strict", strict)
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing key(s): {', '.join(repr(k) for k in missing)}")
            if unexpected:
                parts.append(f"unexpected key(s): {', '.join(repr(k) for k in unexpected)}")
            raise StateDictKeyError(f"{where}: " + "; ".join(parts))
        plan = [(target, check_state_value(where, name, state[name], target)) for name, target in own.items() if name in state]
        for target, value in plan:
            target[...] = backend.to_device(value)  # a safe cast at most (checked above)

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
