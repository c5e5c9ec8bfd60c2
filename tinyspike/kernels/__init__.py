"""The hot loops, each written up to three ways with the same signatures, and the one table per group.

- ``kernels.reference.<group>``: plain array code, runs on any backend: the specification;
- ``kernels.numba_cpu.<group>``: Numba-compiled, for the NumPy backend;
- ``kernels.cuda.<group>``: CUDA, for the CuPy backend.

Which one runs is decided here, in one place, by one rule (``KernelTable.pick``):

1. inside ``with kernels.use("reference"):`` the reference kernels run, on any backend;
2. otherwise ("fast", the default) the fast version for the active backend (``numba_cpu`` on
   NumPy, ``cuda`` on CuPy), or the reference where the group has none (norm has no CUDA version:
   its reference runs on CuPy arrays too).

A Function picks its kernel module once, in forward, and keeps it on ``ctx`` for backward, so a
forward and its backward always run the same implementation even if the choice changes between
them. The choice is a ``ContextVar``, not an environment variable or a module global: it belongs to
the thread (or asyncio task) that set it, and ``use`` restores the previous value on exit.
Tests that compare implementations directly import the modules (``from tinyspike.kernels.numba_cpu
import lif``) or take them from a table (``kernels.LIF.numba_cpu``).
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

from tinyspike import backend, checks
from tinyspike.kernels.cuda import conv as cuda_conv
from tinyspike.kernels.cuda import lif as cuda_lif
from tinyspike.kernels.reference import conv as reference_conv
from tinyspike.kernels.reference import lif as reference_lif
from tinyspike.kernels.reference import norm as reference_norm

CHOICES = ("reference", "fast")
_choice: ContextVar[str] = ContextVar("tinyspike_kernels", default="fast")


@contextmanager
def use(choice: str):
    """Inside the block, Functions pick the ``"reference"`` kernels, or the ``"fast"`` ones (default)."""
    token = _choice.set(checks.choice("kernels.use", "choice", choice, CHOICES))
    try:
        yield
    finally:
        _choice.reset(token)


def current_choice() -> str:
    """``"reference"`` inside ``use("reference")``, else ``"fast"``."""
    return _choice.get()


class KernelTable:
    """One kernel group's implementations: the reference module, a Numba one, a CUDA one (or None)."""

    def __init__(self, group: str, reference, numba_cpu, cuda):
        self.group, self.reference, self.cuda = group, reference, cuda
        self._load_numba_cpu = numba_cpu  # a function returning the module (a lazy import), or None

    @property
    def numba_cpu(self):
        return self._load_numba_cpu() if self._load_numba_cpu is not None else None

    def pick(self):
        """The module whose kernels run now: the rule of the module docstring."""
        if _choice.get() == "reference":
            return self.reference
        fast = self.cuda if backend.name() == "cupy" else self.numba_cpu
        return self.reference if fast is None else fast

    def __repr__(self):
        return f"KernelTable({self.group!r})"


def _numba_cpu(group: str):
    """The Numba module of ``group``, imported on first use: importing Numba is slow (benchmarks/README.md,
    "Import time"), and the CuPy backend never needs it. (The CUDA modules import only NumPy; they load
    CuPy when they run.) Plain imports, so that jump-to-definition finds each module."""
    from tinyspike.kernels.numba_cpu import conv, lif, norm

    return {"lif": lif, "conv": conv, "norm": norm}[group]


LIF = KernelTable("lif", reference=reference_lif, numba_cpu=lambda: _numba_cpu("lif"), cuda=cuda_lif)
CONV = KernelTable("conv", reference=reference_conv, numba_cpu=lambda: _numba_cpu("conv"), cuda=cuda_conv)
NORM = KernelTable("norm", reference=reference_norm, numba_cpu=lambda: _numba_cpu("norm"), cuda=None)


def implementation_name(table: KernelTable) -> str:
    """Which implementation ``table.pick()`` gives now, by name (for ``tinyspike info`` and lessons)."""
    module = table.pick()
    return module.__name__.split(".")[-2]
