"""The hot loops, each written three ways with the same signature:

- ``kernels.reference.<group>``: plain array code, runs on any backend: the specification;
- ``kernels.numba_cpu.<group>``: Numba-compiled, for the NumPy backend;
- ``kernels.cuda.<group>``: CUDA, for the CuPy backend.

Functional code asks for a kernel by group and name, ``kernels.get("conv", "im2col")``, and gets
the fastest implementation for the active backend. ``TINYSPIKE_KERNELS=reference`` forces the
reference kernels everywhere (handy to debug a fast kernel, or to time the difference).
"""

from __future__ import annotations

import importlib
import os
from contextlib import contextmanager
from functools import lru_cache

from tinyspike import backend

IMPLEMENTATIONS = ("reference", "numba_cpu", "cuda")


@lru_cache(maxsize=None)
def _lookup(implementation: str, group: str, name: str):
    try:
        module = importlib.import_module(f"tinyspike.kernels.{implementation}.{group}")
    except ModuleNotFoundError as err:
        if err.name != f"tinyspike.kernels.{implementation}.{group}":
            raise  # a real import error inside the kernel module: do not hide it
        return None
    return getattr(module, name, None)


def implementation_for_backend() -> str:
    """Which implementation ``get`` prefers on the active backend (before fallback)."""
    if os.environ.get("TINYSPIKE_KERNELS", "fast") == "reference":
        return "reference"
    return "cuda" if backend.name() == "cupy" else "numba_cpu"


@contextmanager
def forced(choice: str):
    """Inside the block, ``get`` picks ``"reference"`` kernels, or the ``"fast"`` ones for the backend.

    Sets ``TINYSPIKE_KERNELS`` for the block and restores what was there (tests and benchmarks use it
    to run the same Function on both kernel sets).
    """
    if choice not in ("reference", "fast"):
        raise ValueError(f"choice must be 'reference' or 'fast', got {choice!r}")
    previous = os.environ.get("TINYSPIKE_KERNELS")
    os.environ["TINYSPIKE_KERNELS"] = choice
    try:
        yield
    finally:
        if previous is None:
            del os.environ["TINYSPIKE_KERNELS"]
        else:
            os.environ["TINYSPIKE_KERNELS"] = previous


def get(group: str, name: str, implementation: str | None = None):
    """The kernel ``name`` of ``group`` for the active backend, falling back to the reference.

    ``implementation`` forces one of ``IMPLEMENTATIONS`` (tests use it to compare them).
    """
    if implementation is not None:
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
        try:
            kernel = _lookup(implementation, group, name)
        except ModuleNotFoundError as err:  # e.g. "cuda" on a machine without CuPy
            raise ValueError(
                f"implementation {implementation!r} is not available here: its {group} kernels need "
                f"the {err.name!r} module, which is not installed"
            ) from err
        if kernel is None:
            raise LookupError(f"no {implementation} kernel {group}.{name}")
        return kernel
    kernel = _lookup(implementation_for_backend(), group, name)
    if kernel is None:
        kernel = _lookup("reference", group, name)
    if kernel is None:
        raise LookupError(f"no kernel {group}.{name} in any implementation")
    return kernel
