"""Data pipeline benchmarks: augmentation throughput, DataLoader waiting time (and event parts).

Run ``python benchmarks/bench_data.py``: every ``bench_*`` function runs and prints medians.
Figures are for information; nothing here is asserted.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
CIFAR_SUBSET = SHARED_DATA / "cifar10" / "cifar-10-batches-bin-subset"


def _median_time(fn, repeats: int = 7) -> float:
    fn()  # warm-up: Numba compilation, page faults
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _cifar_images():
    """The real 10,000-image subset if it is there, else random images of the same shape."""
    from tinyspike.data.cifar10 import CIFAR10

    if (CIFAR_SUBSET / "data_batch_1.bin").is_file():
        return CIFAR10(CIFAR_SUBSET), "real CIFAR-10 subset"
    from tinyspike.data.dataset import ArrayDataset

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (10_000, 3, 32, 32), dtype=np.uint8)
    ds = ArrayDataset(x, rng.integers(0, 10, 10_000), [str(i) for i in range(10)],
                      mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))
    return ds, "random images (CIFAR-10 subset not found)"


def bench_cifar_augment(batch_size: int = 100) -> dict:
    """Images/s of the CIFAR augmentation pipelines on one core (batches of 100, 32×32×3)."""
    from tinyspike.data import transforms as T

    ds, source = _cifar_images()
    images = ds.inputs
    mean, std = ds.mean, ds.std
    pipelines = {
        "normalize only ('none')": T.preset("none", mean, std),
        "crop+normalize ('depth_study')": T.preset("depth_study", mean, std),
        "crop+flip+normalize": T.Compose([T.RandomCrop(32, 4), T.RandomHorizontalFlip(), T.Normalize(mean, std)]),
        "crop+rot15+flip+normalize ('alternative')": T.preset("alternative", mean, std),
        "  rotation alone, bilinear": T.RandomRotation(15, interpolation="bilinear"),
    }
    print(f"augmentation, {len(images)} images of {source}, batches of {batch_size}, one thread:")
    results = {}
    for name, pipe in pipelines.items():
        rng = np.random.default_rng(0)

        def run():
            for i in range(0, len(images), batch_size):
                pipe(images[i : i + batch_size], rng)

        seconds = _median_time(run, repeats=5)
        results[name] = len(images) / seconds
        print(f"  {name:45s} {results[name]:>10,.0f} images/s")
    return results


def bench_loader(step_seconds: float = 0.2, batches: int = 15) -> dict:
    """Time the training loop waits for data, with a simulated step of ``step_seconds``."""
    from tinyspike.data import transforms as T
    from tinyspike.data.loader import DataLoader

    ds, source = _cifar_images()
    transform = T.preset("alternative", ds.mean, ds.std)
    print(f"DataLoader on {source}, batch 100, 'alternative' augmentation, "
          f"simulated step {step_seconds * 1e3:.0f} ms, {batches} batches:")
    results = {}
    for prefetch in (0, 2):
        loader = DataLoader(ds, 100, shuffle=True, seed=0, transform=transform, prefetch=prefetch)
        next(iter(loader))  # warm-up (compilation)
        waits = []
        it = iter(loader)
        for k in range(batches):
            t0 = time.perf_counter()
            next(it)
            waits.append(time.perf_counter() - t0)
            time.sleep(step_seconds)
        del it
        med = statistics.median(waits[1:])  # the first batch is always waited for
        results[prefetch] = med
        print(f"  prefetch={prefetch}: median wait per batch {med * 1e3:7.3f} ms "
              f"(first batch {waits[0] * 1e3:.2f} ms), {med / step_seconds:.2%} of the step")
    return results


def main() -> None:
    module = sys.modules[__name__]
    for name in sorted(n for n in dir(module) if n.startswith("bench_")):
        getattr(module, name)()
        print()


if __name__ == "__main__":
    main()
