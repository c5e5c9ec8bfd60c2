"""Data pipeline benchmarks: augmentation throughput, DataLoader waiting time (and event parts).

Run ``python benchmarks/bench_data.py [word]``: every ``bench_*`` function (or those whose name
contains ``word``) runs and prints medians.
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


DVS128_DIR = SHARED_DATA / "dvs128"
NMNIST_DIR = SHARED_DATA / "nmnist"


def _largest_dvs128():
    """The largest real DVS128 recording, or None if the shared data is absent."""
    files = sorted(DVS128_DIR.glob("*.aedat"), key=lambda p: p.stat().st_size) if DVS128_DIR.is_dir() else []
    return files[-1] if files else None


def bench_aedat_parse() -> dict:
    """Median time to read the largest DVS128 AEDAT 2.0 file, and all 1,100 N-MNIST samples."""
    from tinyspike.data.aedat import read_aedat2
    from tinyspike.data.nmnist import read_nmnist

    results = {}
    path = _largest_dvs128()
    if path is None:
        print(f"AEDAT parse: no recordings at {DVS128_DIR}, skipped")
    else:
        n = len(read_aedat2(path))
        seconds = _median_time(lambda: read_aedat2(path), repeats=15)
        results["aedat_ms"] = seconds * 1e3
        print(f"AEDAT 2.0 parse, {path.name} ({n:,} events, {path.stat().st_size / 1e6:.1f} MB): "
              f"{seconds * 1e3:.2f} ms ({n / seconds / 1e6:.0f} M events/s)")
    samples = sorted(NMNIST_DIR.glob("*.bs2")) if NMNIST_DIR.is_dir() else []
    if samples:
        seconds = _median_time(lambda: [read_nmnist(p) for p in samples], repeats=5)
        results["nmnist_all_ms"] = seconds * 1e3
        print(f"N-MNIST parse, all {len(samples)} samples: {seconds * 1e3:.0f} ms "
              f"({seconds / len(samples) * 1e6:.0f} µs per sample)")
    return results


def _largest_dvs128_recordings(count: int) -> list:
    """The ``count`` largest real DVS128 recordings (by file size), largest first."""
    if not DVS128_DIR.is_dir():
        return []
    return sorted(DVS128_DIR.glob("*.aedat"), key=lambda p: p.stat().st_size, reverse=True)[:count]


def _spikingjelly_integrate():
    """SpikingJelly's ``integrate_events_by_fixed_frames_number``, or None if it is not installed.

    The function itself is NumPy only, but the module that holds it
    (``spikingjelly/datasets/utils.py``) imports ``torchvision.transforms`` at the top for other
    functions, and the package's ``__init__`` imports every dataset class. Where torchvision is
    missing or broken (no CPU wheel matches the installed torch), that module is loaded on its
    own with an empty stand-in for torchvision during the import only; SpikingJelly's code runs
    unchanged. Benchmark-only: the package and its tests never import SpikingJelly.
    """
    try:
        from spikingjelly.datasets import integrate_events_by_fixed_frames_number
        return integrate_events_by_fixed_frames_number
    except ModuleNotFoundError as error:
        if error.name is not None and error.name.split(".")[0] == "spikingjelly":
            return None
    except Exception:  # a torchvision whose compiled operators do not match torch
        pass
    import importlib.util
    import types

    try:
        package = importlib.util.find_spec("spikingjelly")
    except ImportError:
        return None
    if package is None:
        return None
    utils_path = Path(package.origin).parent / "datasets" / "utils.py"
    stand_in = types.ModuleType("torchvision")
    stand_in.transforms = types.ModuleType("torchvision.transforms")
    names = ("torchvision", "torchvision.transforms")
    saved = {name: sys.modules.get(name) for name in names}
    sys.modules.update({"torchvision": stand_in, "torchvision.transforms": stand_in.transforms})
    try:
        spec = importlib.util.spec_from_file_location("spikingjelly.datasets.utils", utils_path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
    return module.integrate_events_by_fixed_frames_number


def _alternated_medians(fns: dict, repeats: int) -> dict:
    """Median seconds of each function, run in turn (a, b, c, a, b, c, ...) after one warm-up
    each, so that a slow patch of a busy machine hits every side alike."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def bench_frames(T: int = 10, recordings: int = 3, repeats: int = 21) -> dict:
    """Events -> [T, 2, 128, 128] frames by count: tinyspike against SpikingJelly, then tinyspike's
    other splits, sizes and dtypes, on the largest DVS128 recordings.

    What each timed call includes, both starting from the same parsed ``EVENT_DTYPE`` array:

    - tinyspike: ``to_frames(events, T, (128, 128), "number")``, its validation of the events
      (x, y, p ranges: three passes over the columns) and the float32 result;
    - SpikingJelly, "views": building its input dict ``{"t", "x", "y", "p"}`` from the columns of
      that array (views, no copy) and ``integrate_events_by_fixed_frames_number(d, "number", T,
      128, 128)``, which returns float64 frames and validates nothing;
    - SpikingJelly, "copies": the same with contiguous copies of the four columns, the arrays its
      own ``.npz`` loaders hand it.

    Both split N events alike (frame i takes events [i*d, (i+1)*d), d = N // T, and the last
    frame also the N - T*d left over) and both lay frames out [T, p, y, x], so the counts must be
    equal everywhere; the benchmark checks that. Their "time" rules differ (SpikingJelly's is
    tinyspike's ``"time_spikingjelly"``, and it raises where a window is empty), so only
    "number" is compared.
    """
    from tinyspike.data.aedat import read_aedat2
    from tinyspike.data.events import make_events, to_frames

    paths = _largest_dvs128_recordings(recordings)
    if paths:
        streams = [(path.name, read_aedat2(path)) for path in paths]
    else:
        rng = np.random.default_rng(0)
        n = 337_000
        streams = [("random events (no DVS128 recordings found)",
                    make_events(np.sort(rng.integers(0, 10**7, n)), rng.integers(0, 128, n),
                                rng.integers(0, 128, n), rng.integers(0, 2, n)))]
    integrate = _spikingjelly_integrate()
    results = {}
    print(f"events -> frames by count, T = {T}, 128x128, median of {repeats} alternated runs:")
    if integrate is None:
        print("  SpikingJelly not installed (pip install spikingjelly==2.0.0 --no-deps; loguru): "
              "tinyspike alone")
    for name, events in streams:
        sides = {"tinyspike": lambda: to_frames(events, T, (128, 128), "number")}
        if integrate is not None:
            sides["spikingjelly (views)"] = lambda: integrate(
                {key: events[key] for key in "txyp"}, "number", T, 128, 128)
            sides["spikingjelly (copies)"] = lambda: integrate(
                {key: np.ascontiguousarray(events[key]) for key in "txyp"}, "number", T, 128, 128)
            ours, theirs = sides["tinyspike"](), sides["spikingjelly (views)"]()
            same = theirs.shape == ours.shape and np.array_equal(theirs, ours)
            results.setdefault("counts equal", []).append(same)
        # Alternated runs share the slow patches of a busy machine; runs of one side in a row
        # keep the allocator in that side's own steady state (each side's frees decide whether
        # the other's next large allocation is page-faulted afresh), so both are shown.
        results[name] = {"events": len(events)}
        print(f"  {name} ({len(events):,} events)" +
              ("" if integrate is None else f", counts {'equal' if same else 'DIFFER'}") + ":")
        for how, seconds in (("alternated", _alternated_medians(sides, repeats)),
                             ("in a row", {k: _median_time(fn, repeats) for k, fn in sides.items()})):
            line = f"    {how:10s}: tinyspike {seconds['tinyspike'] * 1e3:.2f} ms"
            results[name][how] = {k: v * 1e3 for k, v in seconds.items()}
            if integrate is not None:
                best = min(seconds["spikingjelly (views)"], seconds["spikingjelly (copies)"])
                line += (f", SpikingJelly {seconds['spikingjelly (views)'] * 1e3:.2f} ms (views) / "
                         f"{seconds['spikingjelly (copies)'] * 1e3:.2f} ms (copies), "
                         f"tinyspike / fastest SpikingJelly = {seconds['tinyspike'] / best:.2f}")
                results[name][how]["ratio"] = seconds["tinyspike"] / best
            print(line)

    name, events = streams[0]
    print(f"tinyspike to_frames, other options, T = {T}, {name}:")
    for split_by, size, dtype in (("number", None, np.float32), ("time", None, np.float32),
                                  ("time_spikingjelly", None, np.float32), ("number", None, np.uint16),
                                  ("number", 64, np.float32), ("number", 48, np.float32)):
        seconds = _median_time(lambda: to_frames(events, T, (128, 128), split_by, size=size, dtype=dtype),
                               repeats=repeats)
        label = f"split_by={split_by}, {size or 128}x{size or 128}, {np.dtype(dtype).name}"
        results[label] = seconds * 1e3
        print(f"  {label:50s} {seconds * 1e3:7.2f} ms")
    return results


def bench_emulator() -> dict:
    """Median time to emulate DVS recordings of all 1,797 built-in digits (34x34, 300 steps)."""
    from tinyspike.data.digits import Digits
    from tinyspike.data.emulator import EmulatorConfig, emulate

    images = Digits("all", size=34, channels=1, interpolation="bilinear").inputs
    config = EmulatorConfig()
    emulate(images[:2], config)  # compile (or load the Numba cache)
    results = {}
    for workers in (1, None):
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            streams = emulate(images, config, workers=workers)
            times.append(time.perf_counter() - t0)
        seconds = statistics.median(times)
        label = "1 thread" if workers == 1 else "all cores"
        results[label] = seconds
        n = sum(len(s) for s in streams)
        print(f"emulator, {len(images)} digits, {config.sensor_size[0]}x{config.sensor_size[1]}, "
              f"{config.n_steps} steps, {label}: {seconds:.2f} s ({n / len(images):,.0f} events per digit)")
    return results


def main(word: str = "") -> None:
    """Run every ``bench_*`` function, or those whose name contains ``word``."""
    module = sys.modules[__name__]
    for name in sorted(n for n in dir(module) if n.startswith("bench_") and word in n):
        getattr(module, name)()
        print()


if __name__ == "__main__":
    main(*sys.argv[1:2])
