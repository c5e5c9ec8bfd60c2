"""One worker thread per core, shared by every Numba CPU kernel of tinyspike.

The kernels here (conv, LIF, batch norm) are serial Numba loops compiled with ``nogil=True``;
they run in parallel by being called on a range of the work from several Python threads at once
(the GIL is released inside each call, and inside NumPy's GEMM). Why not Numba's own
``parallel=True``/``prange``: its OpenMP threads spin-wait after every parallel loop by default,
and the convolution's GEMMs need those very cores right after. With one set of threads for every
kernel nothing spins against anything, whatever ``OMP_WAIT_POLICY`` says, and so tinyspike is as
fast beside another OpenMP user in the same process (PyTorch, whose OpenMP runtime is shared)
as alone (benchmarks/README.md, "One pool of workers").

``run(n_tasks, work)`` calls ``work(next_task)`` on every worker (the calling thread is one of them);
``next_task()`` hands out task numbers until none are left, so a core that is faster (the other
one busy with something else) takes more tasks. ``ranges(n, grain, body, elements)`` is the
common case: ``body(lo, hi)`` over [0, n) cut into a few ranges of at least ``grain`` items each
(or one call on the calling thread when the work is too small to share).

The number of workers is ``NUMBA_NUM_THREADS`` (Numba's setting: the environment variable, else
the number of CPUs), or what ``set_count`` chose. Not ``numba.get_num_threads()``: that call
starts Numba's OpenMP threads, which the training step never needs.
"""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numba
import numpy as np

from tinyspike import checks

# Ranges per worker in ``ranges``: more than one, so that a worker slowed down by another process
# leaves work to the others; few, because every range costs a Numba call (a few µs).
RANGES_PER_WORKER = 2
# Below this many elements a memory-bound kernel (LIF, batch norm) runs on the calling thread
# alone: waking a sleeping helper and waiting for it costs 70-90 µs here, more than a second
# core saves on a few MB (measured on the 2-core CI machine, benchmarks/README.md "One pool of
# workers": at 1 M float32 elements one thread was 1.3-1.8x faster, at 3 M two were 2-3x faster).
SERIAL_BELOW = 1 << 21

_pool_lock = threading.Lock()
_pool: dict = {"executor": None, "size": 0, "pid": None, "count": None}
_workspaces = threading.local()  # per worker thread: buffers reused from call to call


def count() -> int:
    """How many workers a call uses: ``set_count``'s choice, else ``NUMBA_NUM_THREADS``."""
    chosen = _pool["count"]
    return chosen if chosen is not None else numba.config.NUMBA_NUM_THREADS


def set_count(workers: int | None) -> None:
    """Use ``workers`` threads from now on (an int >= 1), or the default again (None)."""
    if workers is not None:
        workers = checks.integer("workers.set_count", "workers", workers, low=1)
    _pool["count"] = workers


def _executor(helpers: int) -> ThreadPoolExecutor:
    """The helper threads, started once; started again in a forked child (threads do not survive fork)."""
    with _pool_lock:
        if _pool["size"] < helpers or _pool["pid"] != os.getpid():
            if _pool["executor"] is not None and _pool["pid"] == os.getpid():
                _pool["executor"].shutdown(wait=True)
            _pool["executor"] = ThreadPoolExecutor(helpers, thread_name_prefix="tinyspike-worker")
            _pool["size"], _pool["pid"] = helpers, os.getpid()
        return _pool["executor"]


def run(n_tasks: int, work) -> list:
    """Call ``work(next_task)`` on min(workers, n_tasks) threads; return each call's result.

    ``next_task()`` returns the next task number in 0..n_tasks-1, or None when all are taken.
    """
    workers = max(1, min(count(), n_tasks))
    counter = itertools.count()  # next() on it is atomic under the GIL

    def next_task():
        index = next(counter)
        return index if index < n_tasks else None

    if workers == 1:
        return [work(next_task)]
    futures = [_executor(workers - 1).submit(work, next_task) for _ in range(workers - 1)]
    try:
        mine = work(next_task)
    finally:  # never return (or raise) while another worker still writes into the caller's arrays
        wait(futures)
    return [mine] + [future.result() for future in futures]


def ranges(n: int, grain: int, body, elements: int) -> None:
    """``body(lo, hi)`` for consecutive ranges covering [0, n), each of at least ``grain`` items
    (one range if n < grain), spread over the workers; all on the calling thread, as
    ``body(0, n)``, when the call touches fewer than ``SERIAL_BELOW`` array ``elements``."""
    if elements < SERIAL_BELOW:
        body(0, n)
        return
    n_ranges = max(1, min(RANGES_PER_WORKER * count(), n // grain))
    bounds = np.linspace(0, n, n_ranges + 1).round().astype(np.int64)

    def work(next_task):
        while (task := next_task()) is not None:
            body(int(bounds[task]), int(bounds[task + 1]))

    run(n_ranges, work)


def workspace(name: str, size: int, dtype) -> np.ndarray:
    """A 1-D buffer of at least ``size`` elements owned by the calling thread (grown, never shrunk).

    Reused because a fresh large buffer costs page faults on first touch (DESIGN.md: about 12 ms
    per 216 MiB); the buffers here are a few MiB per thread.
    """
    buffers = getattr(_workspaces, "buffers", None)
    if buffers is None:
        buffers = _workspaces.buffers = {}
    key = (name, np.dtype(dtype))
    buffer = buffers.get(key)
    if buffer is None or buffer.size < size:
        buffer = buffers[key] = np.empty(size, dtype=dtype)
    return buffer[:size]
