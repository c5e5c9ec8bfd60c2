"""Containers: ``Sequential`` (run modules in order) and ``ModuleList`` (hold them, indexable).

Children are registered under their position, "0", "1", …, so a parameter of the third layer of
``model.stages[1]`` is named ``"stages.1.2.<name>"``, as in PyTorch.
"""

from __future__ import annotations

from collections import OrderedDict

from tinyspike import checks
from tinyspike.nn.module import Module


class ModuleList(Module):
    """A list of modules whose parameters are registered (a plain Python list would hide them)."""

    def __init__(self, modules=()):
        super().__init__()
        if not hasattr(modules, "__iter__"):
            raise TypeError(f"{type(self).__name__}: modules must be an iterable of Modules, got {checks.kind_of(modules)}")
        for module in modules:
            self.append(module)

    def append(self, module: Module) -> "ModuleList":
        self.add_module(str(len(self._modules)), module)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        values = list(self._modules.values())
        if isinstance(index, slice):
            return type(self)(values[index])
        index = checks.integer(type(self).__name__, "index", index)
        if not -len(values) <= index < len(values):
            raise IndexError(f"index {index} is out of range for {type(self).__name__} of length {len(values)}")
        return values[index]


class Sequential(ModuleList):
    """``Sequential(m0, m1, …)`` computes ``m_k(… m1(m0(x)))``; also ``Sequential(OrderedDict(name=module))``."""

    def __init__(self, *modules):
        Module.__init__(self)
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for module in modules:
                self.append(module)

    def __getitem__(self, index):
        values = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*values[index])
        return ModuleList.__getitem__(self, index)

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x
