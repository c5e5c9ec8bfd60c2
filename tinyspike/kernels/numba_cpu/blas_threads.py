"""Run a block with the BLAS that NumPy uses limited to one thread, and restore it afterwards.

Why: the convolution (``kernels.numba_cpu.conv``) runs one single-threaded GEMM per chunk of
samples on each of the two cores itself. If OpenBLAS were also multithreaded, every GEMM would
wake its own worker threads, which then spin on cores the other chunk needs. Measured on the
2-core CI machine: a loop of chunk-sized GEMMs ran 1.3-2.4× slower with OpenBLAS's 2 threads
than with 1, and up to 40× slower once Numba's OpenMP threads existed (benchmarks/README.md,
"conv2d").

NumPy has no API for this; ``threadpoolctl`` (the library scikit-learn uses for the same purpose)
finds the BLAS NumPy loaded and sets its thread count. Where it finds no BLAS it can control, the
limit does nothing: the results are the same, only the speed differs.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

_lock = threading.Lock()
_state = {"controller": None, "depth": 0, "limiter": None}


def _controller() -> ThreadpoolController:
    # Built once: it scans the loaded libraries, which takes milliseconds.
    if _state["controller"] is None:
        _state["controller"] = ThreadpoolController()
    return _state["controller"]


def found() -> bool:
    """Whether NumPy's BLAS thread count can be controlled here."""
    with _lock:
        return bool(_controller().select(user_api="blas").lib_controllers)


@contextmanager
def single_threaded_blas():
    """Inside the block, NumPy's BLAS runs every call on the calling thread only.

    Re-entrant and safe to enter from several threads: the first entry limits the BLAS, the last
    exit restores its previous thread count.
    """
    with _lock:
        if _state["depth"] == 0:
            _state["limiter"] = _controller().limit(limits=1, user_api="blas")
        _state["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                _state["limiter"].restore_original_limits()
                _state["limiter"] = None
