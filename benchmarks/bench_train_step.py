"""One training step of MS-ResNet, tinyspike beside PyTorch eager on the CPU: time, ratio, peak memory.

    python benchmarks/bench_train_step.py                        # MS-ResNet-20, B=64, T=6
    python benchmarks/bench_train_step.py --table                # every size of issue 14's table
    python benchmarks/bench_train_step.py --model ms_resnet56 --batch 32 --time-steps 6
    python benchmarks/bench_train_step.py --eval                 # forward under no_grad (bench_eval.py)

One step = forward on a static [B, 3, 32, 32] batch (direct encoding over T), cross-entropy,
backward, SGD(momentum 0.9, wd 1e-4) update; the same network in both (benchmarks/torch_msresnet.py).
``--eval``: the forward alone in evaluation mode (running statistics), under ``no_grad`` /
``torch.no_grad()``.

**Time**: both frameworks in one fresh process, their steps alternated (tinyspike, PyTorch,
tinyspike, ...) after one untimed warm-up each, so that both see the same machine load; the
ratio is taken step pair by step pair and its median reported. **Memory**: each framework alone
in a fresh process, peak resident memory (VmHWM) minus the resident memory after a warm-up step
of the same network on one sample and one time step (libraries, compiled kernels), so the
figure is what the batch itself costs.

Two machine settings decide these figures, and the benchmark prints both:

- The OpenMP wait policy of PyTorch's threads (tinyspike's kernels run on threads of their own,
  kernels/numba_cpu/workers.py, and do not care). ``--wait-policy default`` (the default) leaves
  ``OMP_WAIT_POLICY`` unset: libgomp's threads spin for a while after each parallel region, then
  sleep, which PyTorch's many small regions profit from. ``passive``: they sleep at once (PyTorch
  is then slower at small sizes). ``active``: they spin forever, also on the cores tinyspike's
  step needs while PyTorch waits for its next step: that only measures the interference, not
  either framework, and is offered for that.
- Which kernels OpenBLAS (NumPy's GEMM) runs. Some machines here set ``OPENBLAS_CORETYPE`` (and
  ``OPENBLAS_L2_SIZE``) to work around old OpenBLAS builds; that slows a current NumPy. To time
  what OpenBLAS picks itself, unset both for the benchmark's command alone:
  ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_train_step.py``.
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

# The sizes of issue 14's table, and the headline configuration last.
TABLE = [("ms_resnet20", 32, 2), ("ms_resnet20", 32, 6), ("ms_resnet20", 32, 12), ("ms_resnet56", 32, 6),
         ("ms_resnet110", 16, 6), ("ms_resnet20", 64, 6)]


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


def depth_of(model: str) -> int:
    return int(model.rsplit("resnet", 1)[1])


# ---- the two steps, built in the child process ------------------------------------------------


def tinyspike_step(args):
    import numpy as np

    import tinyspike
    from tinyspike import models, optim
    from tinyspike.autograd import Tensor
    from tinyspike.functional.loss import cross_entropy

    tinyspike.seed(0)
    model = models.build(args.model, time_steps=args.time_steps, seed=0)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((args.batch, 3, args.size, args.size)).astype(np.float32))
    y = rng.integers(0, model.num_classes, args.batch)
    if args.eval:
        model.eval()

        def step():
            with tinyspike.no_grad():
                return float(model(x).data.sum())

        return step
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

    def step():
        opt.zero_grad()
        loss = cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def torch_step(args):
    import torch
    from torch_msresnet import build_torch_model

    torch.manual_seed(0)
    model = build_torch_model(torch, depth_of(args.model), time_steps=args.time_steps)
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 10, (args.batch,))
    if args.eval:
        model.eval()

        def step():
            with torch.no_grad():
                return float(model(x).sum())

        return step
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def blas_kernels() -> str:
    from threadpoolctl import threadpool_info

    return ", ".join(sorted({f"{p['internal_api']} {p.get('architecture')}" for p in threadpool_info()
                             if p.get("user_api") == "blas"}))


def child_time(args) -> dict:
    """Alternate the two frameworks' steps in this process; the times of each and their ratios."""
    steps = {"tinyspike": tinyspike_step(args)}
    if not args.no_torch:
        steps["pytorch"] = torch_step(args)
    for step in steps.values():  # warm-up: Numba compilation / caches, PyTorch's first-call costs
        step()
    times = {name: [] for name in steps}
    for _ in range(args.steps):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    result = {"times_s": times, "blas": blas_kernels(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset")}
    if "pytorch" in times:
        result["ratios"] = [a / b for a, b in zip(times["tinyspike"], times["pytorch"])]
        import torch

        result["torch_threads"] = torch.get_num_threads()
    return result


def child_memory(args) -> dict:
    """Peak resident memory of one framework's steps alone in this process, above its baseline.

    The baseline is the resident memory after one step of the same network on a single sample
    and one time step: the libraries, their compiled kernels (Numba's loaded from its cache,
    oneDNN's generated on first use) and the allocators' first blocks are in it for both
    frameworks, so the difference is what the batch costs, not what loading code costs.
    """
    build = torch_step if args.framework == "pytorch" else tinyspike_step
    build(argparse.Namespace(**{**vars(args), "batch": 1, "time_steps": 1}))()
    baseline = memory_kib("VmRSS")
    step = build(args)
    for _ in range(2):
        step()
    return {"peak_above_baseline_gib": (memory_kib("VmHWM") - baseline) / 2**20, "baseline_gib": baseline / 2**20}


# ---- the parent: one child per measurement ----------------------------------------------------


def run_child(args, mode: str, extra=()) -> dict:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if args.wait_policy != "default":
        env["OMP_WAIT_POLICY"] = args.wait_policy.upper()
    command = [sys.executable, os.path.abspath(__file__), "--child", mode, "--model", args.model,
               "--batch", str(args.batch), "--time-steps", str(args.time_steps), "--size", str(args.size),
               "--steps", str(args.steps), "--wait-policy", args.wait_policy, *extra]
    if args.eval:
        command.append("--eval")
    if args.no_torch:
        command.append("--no-torch")
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=env,
                          cwd=os.path.dirname(os.path.abspath(__file__)))
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(args) -> dict:
    timing = run_child(args, "time")
    result = {"model": args.model, "batch": args.batch, "time_steps": args.time_steps, "eval": args.eval,
              "wait_policy": args.wait_policy, **timing}
    if args.memory:
        frameworks = ["tinyspike"] + ([] if args.no_torch else ["pytorch"])
        result["memory"] = {f: run_child(args, "memory", ("--framework", f)) for f in frameworks}
    return result


def report(result) -> str:
    what = "eval forward" if result["eval"] else "train step"
    t = result["times_s"]
    line = (f"{result['model']:13s} B={result['batch']:<3d} T={result['time_steps']:<2d} {what}: "
            f"tinyspike {statistics.median(t['tinyspike']):.3f} s")
    if "pytorch" in t:
        r = result["ratios"]
        line += (f"  pytorch {statistics.median(t['pytorch']):.3f} s  ratio {statistics.median(r):.2f} "
                 f"(min {min(r):.2f}, max {max(r):.2f}, {len(r)} alternated pairs)")
    if "memory" in result:
        m = result["memory"]
        line += f"  peak memory tinyspike {m['tinyspike']['peak_above_baseline_gib']:.2f} GiB"
        if "pytorch" in m:
            ratio = m["tinyspike"]["peak_above_baseline_gib"] / m["pytorch"]["peak_above_baseline_gib"]
            line += f", pytorch {m['pytorch']['peak_above_baseline_gib']:.2f} GiB (ratio {ratio:.2f})"
    return line


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ms_resnet20")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--time-steps", type=int, default=6)
    parser.add_argument("--size", type=int, default=32, help="input height = width")
    parser.add_argument("--steps", type=int, default=5, help="timed steps of each framework")
    parser.add_argument("--table", action="store_true", help="every size of issue 14's table")
    parser.add_argument("--eval", action="store_true", help="forward under no_grad instead of a training step")
    parser.add_argument("--wait-policy", choices=("default", "passive", "active"), default="default",
                        help="OMP_WAIT_POLICY of the process for PyTorch's threads (default: unset)")
    parser.add_argument("--memory", action="store_true", help="also peak memory, each framework alone")
    parser.add_argument("--no-torch", action="store_true", help="tinyspike alone")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--child", choices=("time", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--framework", choices=("tinyspike", "pytorch"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        print(json.dumps(child_time(args) if args.child == "time" else child_memory(args)))
        return
    if not args.no_torch:
        try:
            import torch  # noqa: F401 - only to know whether it is there
        except ImportError:
            print("PyTorch is not installed: timing tinyspike alone (pip install torch for the comparison)")
            args.no_torch = True
    configs = TABLE if args.table else [(args.model, args.batch, args.time_steps)]
    results = []
    for model, batch, time_steps in configs:
        args.model, args.batch, args.time_steps = model, batch, time_steps
        result = measure(args)
        results.append(result)
        print(report(result), flush=True)
    print(f"(OMP_WAIT_POLICY={args.wait_policy}; BLAS: {results[0]['blas']}; "
          f"PyTorch threads: {results[0].get('torch_threads', '-')})")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=1)


if __name__ == "__main__":
    main()
