"""Where the time of one training step goes, per op type (conv, BN, LIF, add, pool, ...).

    python benchmarks/profile_train_step.py                     # MS-ResNet-20, B=64, T=6
    python benchmarks/profile_train_step.py --batch 16 --steps 2

Every ``Function`` subclass's forward and backward is wrapped with a timer (perf_counter, a few
µs of overhead per call against milliseconds of work), the times are summed per op type, and the
rest of the step is split into the optimizer update and "engine" (the tape walk, gradient
accumulation of the residual stream, zero-filled gradients). Averages over ``--steps`` steps after
one warm-up step.
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np

from tinyspike import models, optim
from tinyspike.autograd import Function, Tensor
from tinyspike.functional.loss import cross_entropy

TIMES = collections.defaultdict(float)
CALLS = collections.Counter()


def all_function_classes():
    found, stack = [], list(Function.__subclasses__())
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found


def instrument(cls, detail=False):
    """Wrap cls.forward/backward with timers; ``detail`` keys them by input shape too."""
    for phase in ("forward", "backward"):
        original = cls.__dict__.get(phase)
        if original is None:
            continue
        fn = original.__func__ if isinstance(original, staticmethod) else original

        def timed(ctx, *args, _fn=fn, _phase=phase):
            if _phase == "forward":
                shapes = [tuple(a.shape) for a in args[:2] if hasattr(a, "shape")]
                ctx.profile_name = f"{cls.__name__} {shapes}" if detail else cls.__name__
            key = (ctx.profile_name, _phase)
            start = time.perf_counter()
            try:
                return _fn(ctx, *args)
            finally:
                TIMES[key] += time.perf_counter() - start
                CALLS[key] += 1

        setattr(cls, phase, staticmethod(timed))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ms_resnet20")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--time-steps", type=int, default=6)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--detail", action="store_true", help="one row per op and input/weight shape")
    args = parser.parse_args(argv)

    model = models.build(args.model, time_steps=args.time_steps, seed=0)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((args.batch, model.in_channels, args.size, args.size)).astype(np.float32))
    y = rng.integers(0, model.num_classes, args.batch)

    def step():
        opt.zero_grad()
        t0 = time.perf_counter()
        loss = cross_entropy(model(x), y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t2

    step()  # warm-up: Numba compilation / cache loading
    for cls in all_function_classes():
        instrument(cls, args.detail)
    phases = np.zeros(3)
    for _ in range(args.steps):
        phases += step()
    phases /= args.steps
    total = phases.sum()

    groups = collections.defaultdict(lambda: [0.0, 0.0])
    for (name, phase), seconds in TIMES.items():
        groups[name][0 if phase == "forward" else 1] += seconds / args.steps
    print(f"{args.model} B={args.batch} T={args.time_steps} {args.size}x{args.size}: "
          f"step {total * 1e3:.0f} ms = forward {phases[0] * 1e3:.0f} + backward {phases[1] * 1e3:.0f} "
          f"+ optimizer {phases[2] * 1e3:.0f} ms")
    width = 60 if args.detail else 28
    print(f"{'op':{width}s} {'forward ms':>11s} {'backward ms':>12s} {'total ms':>9s} {'share':>6s} {'calls/step':>10s}")
    accounted = 0.0
    for name, (fwd, bwd) in sorted(groups.items(), key=lambda item: -sum(item[1])):
        calls = CALLS[(name, "forward")] // args.steps
        accounted += fwd + bwd
        print(f"{name:{width}s} {fwd * 1e3:11.1f} {bwd * 1e3:12.1f} {(fwd + bwd) * 1e3:9.1f} {(fwd + bwd) / total:6.1%} {calls:10d}")
    engine = phases[0] + phases[1] - accounted
    print(f"{'engine (tape, grad sums)':{width}s} {'':11s} {'':12s} {engine * 1e3:9.1f} {engine / total:6.1%}")
    print(f"{'optimizer (SGD)':{width}s} {'':11s} {'':12s} {phases[2] * 1e3:9.1f} {phases[2] / total:6.1%}")


if __name__ == "__main__":
    main()
