"""The worker threads every Numba CPU kernel of the training step shares (kernels/numba_cpu/workers.py)."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyspike.kernels.numba_cpu import workers


@pytest.fixture
def worker_count():
    """Set the number of workers for one test, then restore the default."""
    yield workers.set_count
    workers.set_count(None)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 5000), grain=st.integers(1, 700), count=st.integers(1, 4))
def test_ranges_cover_every_item_once_in_ranges_of_at_least_grain(n, grain, count):
    workers.set_count(count)
    try:
        seen = np.zeros(n, np.int64)
        spans, lock = [], threading.Lock()

        def body(lo, hi):
            seen[lo:hi] += 1  # disjoint ranges: no two threads write the same items
            with lock:
                spans.append((lo, hi))

        workers.ranges(n, grain, body, elements=workers.SERIAL_BELOW)  # large enough to share
    finally:
        workers.set_count(None)
    assert (seen == 1).all()
    spans.sort()
    assert spans[0][0] == 0 and spans[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # consecutive, no gap, no overlap
    assert all(hi - lo >= min(grain, n) for lo, hi in spans)  # one range when n < grain
    assert len(spans) <= max(1, workers.RANGES_PER_WORKER * count)


def test_small_work_runs_on_the_calling_thread_in_one_range(worker_count):
    worker_count(2)
    calls = []
    workers.ranges(1000, 1, lambda lo, hi: calls.append((lo, hi, threading.current_thread())),
                   elements=workers.SERIAL_BELOW - 1)
    assert calls == [(0, 1000, threading.main_thread())]


def test_run_uses_the_workers_and_hands_out_each_task_once(worker_count):
    worker_count(2)
    done, names, lock = [], set(), threading.Lock()
    barrier = threading.Barrier(2, timeout=10)  # passes only if two threads work at once

    def work(next_task):
        with lock:
            names.add(threading.current_thread().name)
        barrier.wait()
        while (task := next_task()) is not None:
            with lock:
                done.append(task)
        return task

    results = workers.run(50, work)
    assert sorted(done) == list(range(50)) and len(results) == 2 and len(names) == 2


def test_an_error_in_one_worker_is_raised_after_all_have_finished(worker_count):
    worker_count(2)
    finished = []

    def work(next_task):
        task = next_task()
        if threading.current_thread() is threading.main_thread():
            raise RuntimeError("boom in the calling thread")
        finished.append(task)  # the helper still runs to its end before run() returns
        return task

    with pytest.raises(RuntimeError, match="boom"):
        workers.run(2, work)
    assert len(finished) == 1


def test_set_count_refuses_what_is_not_a_positive_int():
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises((TypeError, ValueError), match="workers"):
            workers.set_count(bad)
    assert workers.count() >= 1


def test_a_training_step_starts_no_openmp_threads():
    # The point of the shared workers: no Numba OpenMP pool, whose spinning threads would take the
    # cores the convolutions need (and whose wait policy another library in the process decides).
    code = (
        "import numpy as np, numba.np.ufunc.parallel as omp\n"
        "from tinyspike import models\n"
        "from tinyspike.autograd import Tensor\n"
        "from tinyspike.functional.loss import cross_entropy\n"
        "m = models.build('ms_resnet8', time_steps=2, seed=0)\n"
        "x = Tensor(np.random.default_rng(0).random((4, 3, 32, 32)).astype(np.float32))\n"
        "cross_entropy(m(x), np.arange(4)).backward()\n"
        "print(omp._is_initialized)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"]


def test_whole_batch_conv_kernels_on_shared_ranges_equal_the_reference(monkeypatch):
    # Small inputs run on one thread; force the shared ranges, so that their bounds are tested too.
    from tinyspike.kernels.numba_cpu import conv as fast
    from tinyspike.kernels.reference import conv as reference

    monkeypatch.setattr(workers, "SERIAL_BELOW", 0)
    monkeypatch.setattr(workers, "count", lambda: 2)
    rng = np.random.default_rng(3)
    x = rng.integers(-3, 4, (7, 3, 6, 5)).astype(np.float64)  # integers: every sum is exact
    cols = reference.im2col(x, 3, 2, (2, 1), (1, 1))
    np.testing.assert_array_equal(fast.im2col(x, 3, 2, (2, 1), (1, 1)), cols)
    d = rng.integers(-3, 4, cols.shape).astype(np.float64)
    np.testing.assert_array_equal(fast.col2im(d, x.shape, 3, 2, (2, 1), (1, 1)),
                                  reference.col2im(d, x.shape, 3, 2, (2, 1), (1, 1)))
    spikes = (rng.random((5, 70_001)) < 0.3).astype(np.float32)
    spikes[2, 12_345] = 0.5
    packed, expected = np.empty(spikes.shape, bool), np.empty(spikes.shape, bool)
    assert fast.pack_spikes(spikes, packed) == reference.pack_spikes(spikes, expected) == 1
    np.testing.assert_array_equal(packed, expected)


def test_results_do_not_depend_on_the_number_of_workers(monkeypatch):
    # Reductions (dW, db, batch-norm sums) are made per chunk or per row and summed in a fixed
    # order, so float results are bit-identical whichever worker ran which part: what makes a
    # resumed run bit-exact, and a 5-D input equal to its folded 4-D form.
    from tinyspike.functional.surrogate import get
    from tinyspike.kernels.numba_cpu import conv, lif, norm

    monkeypatch.setattr(conv, "CHUNK_BYTES", 4096)  # many small chunks
    monkeypatch.setattr(workers, "SERIAL_BELOW", 0)
    rng = np.random.default_rng(4)
    # float64: float32 partial sums added in float64 would be exact in any order and hide it
    x, w, g = rng.standard_normal((9, 3, 7, 6)), rng.standard_normal((5, 3, 3, 3)), rng.standard_normal((9, 5, 7, 6))
    results = []
    for count in (1, 2, 3):
        monkeypatch.setattr(workers, "count", lambda count=count: count)
        y, _ = conv.conv2d_forward(x, w, None, (1, 1), (1, 1))
        grads = conv.conv2d_backward(g, x, w, (1, 1), (1, 1), (True, True, True), x.shape, w.shape)
        stats = norm.bn_stats(x.reshape(9, 3, 42))
        spikes, codes = lif.lif_forward(x.reshape(9, -1), 0.5, 0.25, get("rectangular"))
        results.append([y, *grads, *stats, spikes, codes])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)
