"""Run a block with the BLAS that NumPy uses limited to one thread, and restore it afterwards.

Why: the convolution (``kernels.numba_cpu.conv``) runs one single-threaded GEMM per chunk of
samples on each of the two cores itself. If OpenBLAS were also multithreaded, every GEMM would
wake its own worker threads, which then spin on cores the other chunk needs. Measured on the
2-core CI machine: a loop of chunk-sized GEMMs ran 1.3-2.4× slower with OpenBLAS's 2 threads
than with 1, and up to 40× slower once Numba's OpenMP threads existed (benchmarks/README.md,
"conv2d").

NumPy has no API for this, so we do what ``threadpoolctl`` does: find the OpenBLAS library NumPy
loaded and call its ``openblas_set_num_threads`` through ctypes. When no OpenBLAS is found
(another BLAS, another platform), ``single_threaded_blas()`` does nothing: the results are the
same, only the speed differs. The setting is process-wide; the previous value is restored on exit.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from contextlib import contextmanager

import numpy as np

# Symbol names across OpenBLAS builds: NumPy >= 2 wheels (scipy-openblas, 64-bit ints, prefixed),
# older wheels (suffix 64_), and a plain system OpenBLAS.
_SETTERS = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads")

_lock = threading.Lock()
_state = {"resolved": False, "get": None, "set": None, "depth": 0, "saved": None}


def _candidate_paths() -> list[str]:
    paths = []
    try:  # the libraries this process has mapped (Linux): exactly the one NumPy loaded
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                if "openblas" in os.path.basename(path).lower() and path not in paths:
                    paths.append(path)
    except OSError:
        pass
    numpy_dir = os.path.dirname(np.__file__)
    for pattern in ("../numpy.libs/*openblas*", ".dylibs/*openblas*", "../numpy.libs/*openblas*.dll"):
        paths += [p for p in glob.glob(os.path.join(numpy_dir, pattern)) if p not in paths]
    return paths


def _resolve() -> None:
    """Find the get/set functions once (under the lock)."""
    _state["resolved"] = True
    for path in _candidate_paths():
        try:
            library = ctypes.CDLL(path)  # already loaded: this returns the same handle
        except OSError:
            continue
        for set_name, get_name in zip(_SETTERS, _GETTERS):
            setter, getter = getattr(library, set_name, None), getattr(library, get_name, None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype = [ctypes.c_int], None
                getter.argtypes, getter.restype = [], ctypes.c_int
                _state["set"], _state["get"] = setter, getter
                return


def found() -> bool:
    """Whether NumPy's BLAS thread count can be controlled here."""
    with _lock:
        if not _state["resolved"]:
            _resolve()
        return _state["set"] is not None


@contextmanager
def single_threaded_blas():
    """Inside the block, NumPy's OpenBLAS runs every call on the calling thread only.

    Re-entrant and safe to enter from several threads: the first entry saves the thread count,
    the last exit restores it.
    """
    with _lock:
        if not _state["resolved"]:
            _resolve()
        if _state["set"] is not None:
            if _state["depth"] == 0:
                _state["saved"] = _state["get"]()
                if _state["saved"] != 1:
                    _state["set"](1)
            _state["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            if _state["set"] is not None:
                _state["depth"] -= 1
                if _state["depth"] == 0 and _state["saved"] != 1:
                    _state["set"](_state["saved"])
