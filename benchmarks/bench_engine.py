"""Per-op overhead of the autograd engine: small tensors, so the time is the Python around the maths.

Run ``python benchmarks/bench_engine.py``. For each op it prints the median, over 60 rounds, of
the mean time of 200 calls (and the smallest round), on [4, 8] float32 tensors that require grad,
so every call records a node. Figures are for information; nothing here is asserted.
"""

from __future__ import annotations

import statistics
import timeit

import numpy as np

from tinyspike import Tensor


def main() -> None:
    a = Tensor(np.ones((4, 8), np.float32), requires_grad=True)
    b = Tensor(np.ones((4, 8), np.float32), requires_grad=True)
    cases = {
        "a * 2.0": lambda: a * 2.0, "a + b": lambda: a + b, "a - b": lambda: a - b,
        "-a": lambda: -a, "a[1:3]": lambda: a[1:3], "a.sum()": lambda: a.sum(), "a.mean()": lambda: a.mean(),
    }
    for name, op in cases.items():
        rounds = [timeit.timeit(op, number=200) / 200 * 1e6 for _ in range(60)]
        print(f"{name:10s} median {statistics.median(rounds):6.2f} µs   (min {min(rounds):.2f})")


if __name__ == "__main__":
    main()
