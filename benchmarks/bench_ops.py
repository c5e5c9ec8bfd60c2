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
from contextlib import contextmanager

import numpy as np


def _median_ms(fn, repeats: int = 9) -> float:
    fn()  # warm-up: Numba compilation, page faults of the first allocation
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


@contextmanager
def _kernels(choice: str):
    """Force ``TINYSPIKE_KERNELS`` ("reference" or "fast") for the block."""
    previous = os.environ.get("TINYSPIKE_KERNELS")
    os.environ["TINYSPIKE_KERNELS"] = choice
    try:
        yield
    finally:
        if previous is None:
            del os.environ["TINYSPIKE_KERNELS"]
        else:
            os.environ["TINYSPIKE_KERNELS"] = previous


def bench_batch_norm() -> dict:
    """Training-mode tdBN on the three MS-ResNet-20 stage shapes, [T=6, B=64, C, H, W] float32."""
    from tinyspike.autograd import Tensor
    from tinyspike.functional.norm import batch_norm

    rng = np.random.default_rng(0)
    shapes = [(6, 64, 16, 32, 32), (6, 64, 32, 16, 16), (6, 64, 64, 8, 8)]
    print("batch_norm, training mode, float32, median ms (reference -> numba):")
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
            with _kernels(choice):
                row[choice] = (_median_ms(forward), _median_ms(forward_backward))
        results[shape] = row
        (rf, rfb), (ff, ffb) = row["reference"], row["fast"]
        print(f"  {str(list(shape)):22s} forward {rf:7.2f} -> {ff:6.2f}   "
              f"forward+backward {rfb:7.2f} -> {ffb:6.2f}")
    return results


def main(argv=None) -> None:
    words = (sys.argv[1:] if argv is None else argv) or [""]
    module = sys.modules[__name__]
    for name in sorted(dir(module)):
        if name.startswith("bench_") and any(word in name for word in words):
            getattr(module, name)()


if __name__ == "__main__":
    main()
