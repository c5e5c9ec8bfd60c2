"""Time and peak memory of one training step of a spiking ResNet (default MS-ResNet-20, B=64, T=6).

    python benchmarks/bench_train_step.py                      # the issue's configuration
    python benchmarks/bench_train_step.py --model ms_resnet8 --batch 16 --steps 3

One step = forward on a static [B, 3, H, W] batch (direct encoding over T), cross-entropy,
backward, SGD(momentum 0.9, wd 1e-4) update. The measurement runs in a *fresh subprocess*, so the
peak resident memory (VmHWM from /proc/self/status, or ru_maxrss where /proc is missing) is that
of this training loop alone: tracemalloc would miss the buffers of Numba kernels and BLAS.
Reported: the median and minimum over ``--steps`` timed steps after ``--warmup`` untimed ones
(the first step compiles / loads the Numba kernels), the peak RSS, and the RSS before the model
was built (interpreter + libraries), so the difference is what training itself costs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def memory_kib(field: str) -> int:
    """A VmHWM/VmRSS field of /proc/self/status, in KiB (ru_maxrss as a fallback for the peak)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_child(args) -> dict:
    import numpy as np

    import tinyspike
    from tinyspike import models, optim
    from tinyspike.autograd import Tensor
    from tinyspike.functional.loss import cross_entropy

    baseline = memory_kib("VmRSS")
    tinyspike.seed(0)
    model = models.build(args.model, time_steps=args.time_steps, seed=0)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((args.batch, model.in_channels, args.size, args.size)).astype(np.float32))
    y = rng.integers(0, model.num_classes, args.batch)

    times, losses = [], []
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        opt.zero_grad()
        loss = cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        elapsed = time.perf_counter() - start
        losses.append(loss.item())
        if step >= args.warmup:
            times.append(elapsed)
        del loss
    return {
        "model": args.model, "batch": args.batch, "time_steps": args.time_steps, "size": args.size,
        "steps": args.steps, "median_s": statistics.median(times), "min_s": min(times),
        "times_s": times, "peak_rss_gib": memory_kib("VmHWM") / 2**20, "baseline_rss_gib": baseline / 2**20,
        "losses": losses,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ms_resnet20")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--time-steps", type=int, default=6)
    parser.add_argument("--size", type=int, default=32, help="input height = width")
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (kernel compilation)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_child(args)))
        return
    command = [sys.executable, os.path.abspath(__file__), "--child"] + (argv if argv is not None else sys.argv[1:])
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    print(
        f"{result['model']}  B={result['batch']} T={result['time_steps']} {result['size']}x{result['size']}  "
        f"step median {result['median_s']:.3f} s (min {result['min_s']:.3f} s over {result['steps']})  "
        f"peak RSS {result['peak_rss_gib']:.2f} GiB (before building: {result['baseline_rss_gib']:.2f} GiB)"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
