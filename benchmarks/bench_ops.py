"""Functional-op benchmarks: each ``bench_*`` function times one op family and prints medians.

Run ``python benchmarks/bench_ops.py`` (every ``bench_*`` in this module) or
``python benchmarks/bench_ops.py batch_norm`` (only those whose name contains the word).
Figures are for information; nothing here is asserted.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np


def _times_ms(fn, repeats: int = 15) -> list[float]:
    fn()  # warm-up: Numba compilation, page faults of the first allocation
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def _median_ms(fn, repeats: int = 15) -> float:
    return statistics.median(_times_ms(fn, repeats))


def _median_and_min_ms(fn, repeats: int = 15) -> tuple[float, float]:
    """Median, and the minimum (what the op costs when nothing else competes for the cores)."""
    times = _times_ms(fn, repeats)
    return statistics.median(times), min(times)


def bench_batch_norm() -> dict:
    """Training-mode tdBN on the three MS-ResNet-20 stage shapes, [T=6, B=64, C, H, W] float32."""
    from tinyspike import kernels
    from tinyspike.autograd import Tensor
    from tinyspike.functional.norm import batch_norm

    rng = np.random.default_rng(0)
    shapes = [(6, 64, 16, 32, 32), (6, 64, 32, 16, 16), (6, 64, 64, 8, 8)]
    print("batch_norm, training mode, float32, ms as median (min), reference -> numba:")
    results = {}
    for shape in shapes:
        c = shape[2]
        x = Tensor(rng.standard_normal(shape, dtype=np.float32) * 2 + 1, requires_grad=True)
        w = Tensor(np.full(c, 0.5, np.float32), requires_grad=True)
        b = Tensor(np.zeros(c, np.float32), requires_grad=True)
        g = rng.standard_normal(shape, dtype=np.float32)
        running_mean, running_var = np.zeros(c, np.float32), np.ones(c, np.float32)

        def forward():
            return batch_norm(x, w, b, running_mean, running_var, training=True)

        def forward_backward():
            forward().backward(g)
            x.grad = w.grad = b.grad = None

        row = {}
        for choice in ("reference", "fast"):
            with kernels.use(choice):
                row[choice] = (_median_and_min_ms(forward), _median_and_min_ms(forward_backward))
        results[shape] = row
        (rf, rfb), (ff, ffb) = row["reference"], row["fast"]
        fmt = lambda t: f"{t[0]:6.2f} ({t[1]:6.2f})"  # noqa: E731
        print(f"  {str(list(shape)):22s} forward {fmt(rf)} -> {fmt(ff)}   "
              f"forward+backward {fmt(rfb)} -> {fmt(ffb)}")
    return results


def bench_lif(repeats: int = 21) -> dict:
    """Multi-step LIF on [T=6, B=64, C=16, H=32, W=32] float32, default mode (rectangular
    surrogate, detach_reset): kernels alone (reference vs numba) and through the autograd Function.

    GB/s counts the bytes a kernel must move: forward reads x (4 B) and writes spikes (4 B) and the
    uint8 code (1 B); backward reads ∂L/∂s (4 B) and the code (1 B) and writes ∂L/∂x (4 B): 9 B per
    neuron-step each. Target (issue 2): numba forward+backward ≤ 10 ms on the 2-core CI machine.
    """
    from tinyspike import kernels
    from tinyspike.autograd import Tensor
    from tinyspike.functional.lif import lif
    from tinyspike.functional.surrogate import get as get_surrogate

    shape = (6, 64, 16, 32, 32)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape, dtype=np.float32) * 0.5 + 0.3).astype(np.float32)
    g = rng.standard_normal(shape, dtype=np.float32)
    sg = get_surrogate("rectangular")
    step_bytes = 9 * x.size
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"lif {list(shape)} float32, rectangular, detach_reset: median ms (min), GB/s at the median"
          f"  [load average {load:.1f}]")
    results = {}
    for impl in ("reference", "numba_cpu"):
        forward = getattr(kernels.LIF, impl).lif_forward
        backward = getattr(kernels.LIF, impl).lif_backward
        _, saved = forward(x, 0.5, 0.25, sg, True)
        cases = {
            "forward": (lambda: forward(x, 0.5, 0.25, sg, True), step_bytes),
            "backward": (lambda: backward(g, saved, 0.5, 0.25, sg, True), step_bytes),
            "forward+backward": (lambda: backward(g, forward(x, 0.5, 0.25, sg, True)[1], 0.5, 0.25, sg, True),
                                 2 * step_bytes),
        }
        for case, (fn, nbytes) in cases.items():
            median, best = _lif_timings_ms(fn, repeats if impl != "reference" else 5)
            results[(impl, case)] = median
            print(f"  {impl:10s} {case:17s} {median:8.2f} ({best:6.2f})  {nbytes / median / 1e6:5.1f} GB/s")

    xt = Tensor(x, requires_grad=True)

    def through_function():
        lif(xt).backward(g)
        xt.grad = None

    median, best = _lif_timings_ms(through_function, repeats)
    results[("Function", "forward+backward")] = median
    print(f"  {'Function':10s} {'forward+backward':17s} {median:8.2f} ({best:6.2f})  (numba + autograd, incl. the leaf's .grad copy)")
    return results


def _lif_timings_ms(fn, repeats: int) -> tuple[float, float]:
    """(median, min) of ``repeats`` timed calls after one warm-up; min shows the machine unloaded."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3, min(times) * 1e3


def bench_conv2d(repeats: int = 9) -> dict:
    """conv2d 3×3, stride 1, padding 1, float32, at the three MS-ResNet-20 stage shapes with
    T·B = 384 (C in = C out = C): the forward and backward kernels, reference (full im2col + one
    GEMM per product) vs numba (fused, chunked so that the columns stay in cache), and the numba
    path through the autograd Function (x a leaf, so this includes copying ∂L/∂x into x.grad).

    GFLOP/s counts 2·N·C·OH·OW·C·kh·kw per product (forward 1 product, forward+backward 3).
    Targets (issue 2), numba forward+backward: ≤ 190 / 125 / 100 ms on the 2-core CI machine.
    """
    from tinyspike import kernels
    from tinyspike.autograd import Tensor
    from tinyspike.functional.conv import conv2d

    rng = np.random.default_rng(0)
    cases = [(16, 32, 190.0), (32, 16, 125.0), (64, 8, 100.0)]
    stride = padding = (1, 1)
    print("conv2d 3x3/1/1 float32, N = T*B = 384: median ms (min), GFLOP/s at the median")
    results = {}
    for channels, size, target in cases:
        shape = (384, channels, size, size)
        x = rng.standard_normal(shape, dtype=np.float32)
        w = rng.standard_normal((channels, channels, 3, 3), dtype=np.float32) * 0.1
        g = rng.standard_normal(shape, dtype=np.float32)
        flop = 2.0 * 384 * channels * size * size * channels * 9
        fmt = lambda t, n: f"{t[0]:6.1f} ({t[1]:6.1f}) {n * flop / t[0] / 1e6:4.0f} GF/s"  # noqa: E731
        row = {}
        for impl in ("reference", "numba_cpu"):
            forward = getattr(kernels.CONV, impl).conv2d_forward
            backward = getattr(kernels.CONV, impl).conv2d_backward

            def forward_backward():
                forward(x, w, None, stride, padding)
                backward(g, x, w, stride, padding, (True, True, True), x.shape, w.shape)

            row[impl] = (
                _median_and_min_ms(lambda: forward(x, w, None, stride, padding), repeats),
                _median_and_min_ms(forward_backward, repeats),
            )
        xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)

        def through_function():
            conv2d(xt, wt, None, stride, padding).backward(g)
            xt.grad = wt.grad = None

        with kernels.use("fast"):
            row["Function"] = (None, _median_and_min_ms(through_function, repeats))
        results[shape] = row
        print(f"  {channels:2d} ch {size:2d}x{size:<2d} (target {target:.0f})")
        for impl in ("reference", "numba_cpu"):
            fwd, fwd_bwd = row[impl]
            print(f"    {impl:10s} forward {fmt(fwd, 1)}   forward+backward {fmt(fwd_bwd, 3)}")
        print(f"    {'Function':10s} {'':33s}forward+backward {fmt(row['Function'][1], 3)}")
    return results


def main(argv=None) -> None:
    words = (sys.argv[1:] if argv is None else argv) or [""]
    module = sys.modules[__name__]
    for name in sorted(dir(module)):
        if name.startswith("bench_") and any(word in name for word in words):
            getattr(module, name)()


if __name__ == "__main__":
    main()
