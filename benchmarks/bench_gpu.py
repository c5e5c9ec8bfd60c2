"""GPU benchmark: MS-ResNet training steps on CuPy, the fused LIF kernels' bandwidth, and PyTorch.

    python benchmarks/bench_gpu.py                          # MS-ResNet-20 and -56, B=128, T=6
    python benchmarks/bench_gpu.py --models ms_resnet20 --steps 5 --json out.json

One step = forward on a static [B, 3, 32, 32] batch (direct encoding over T), cross-entropy,
backward, SGD(momentum 0.9, wd 1e-4) update, then a device synchronisation. Reported per model:
median and minimum step time over ``--steps`` after ``--warmup`` (the first steps compile the
RawKernels and fill the memory pool), images/s (B / median), and peak GPU memory: the CuPy memory
pool's ``total_bytes()`` after the timed steps (the pool keeps every block it ever allocated, and
it is emptied before each model, so this is the high-water mark of that model's training, with the
pool's rounding), beside ``used_bytes()`` at that moment.

LIF bandwidth: ``kernels.cuda.lif`` forward (reads x, writes spikes and uint8 codes: 9 bytes per
neuron-step in float32) and backward (reads ∂L/∂s and codes, writes ∂L/∂x: 9 bytes) on an MS-ResNet
stage-1 sized tensor [T, B, 16, 32, 32], timed with CUDA events; GB/s = bytes / time.

PyTorch (when ``torch`` imports; it is not a tinyspike dependency): the same MS-ResNet built from
``torch.nn`` in eager mode (conv3×3 no bias → BN → LIF as a Python loop over T with a rectangular
surrogate ``autograd.Function`` and a detached reset, REFERENCE §4 block order, the same widths,
strides, projection shortcuts and stem computed once for all T), TF32 off in cuBLAS and cuDNN
like tinyspike, ``cudnn.benchmark`` on. Its peak memory is ``torch.cuda.max_memory_allocated``.
The table prints the ratio tinyspike / PyTorch of the median step times (> 1: tinyspike slower).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from torch_msresnet import build_torch_model


# ---- tinyspike on CuPy ---------------------------------------------------------------------------


def bench_tinyspike(name, batch, time_steps, warmup, steps):
    import cupy
    import numpy as np

    from tinyspike import backend, models, optim
    from tinyspike.autograd import Tensor
    from tinyspike.functional.loss import cross_entropy

    backend.use("cupy")
    pool = cupy.get_default_memory_pool()
    pool.free_all_blocks()
    model = models.build(name, time_steps=time_steps, seed=0)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    x = Tensor(cupy.asarray(rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)))
    y = cupy.asarray(rng.integers(0, 10, batch))
    times, loss_value = [], None
    for step in range(warmup + steps):
        cupy.cuda.Device().synchronize()
        start = time.perf_counter()
        opt.zero_grad()
        loss = cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        cupy.cuda.Device().synchronize()
        if step >= warmup:
            times.append(time.perf_counter() - start)
        loss_value = float(loss.item())
    result = dict(
        framework="tinyspike", model=name, batch=batch, time_steps=time_steps,
        median_ms=1e3 * statistics.median(times), min_ms=1e3 * min(times),
        images_per_s=batch / statistics.median(times),
        peak_pool_total_mib=pool.total_bytes() / 2**20, pool_used_mib=pool.used_bytes() / 2**20,
        last_loss=loss_value, steps=steps,
    )
    del model, opt, x, y, loss
    pool.free_all_blocks()
    return result


def bench_lif_bandwidth(batch, time_steps, repeats=20):
    import cupy
    import numpy as np

    from tinyspike import backend
    from tinyspike.functional import surrogate as surrogates
    from tinyspike.kernels.cuda import lif as cuda_lif

    backend.use("cupy")
    shape = (time_steps, batch, 16, 32, 32)
    rng = cupy.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32) * 0.6 + 0.5
    g = rng.standard_normal(shape, dtype=np.float32)
    sg = surrogates.get("rectangular")
    spikes, codes = cuda_lif.lif_forward(x, 0.5, 0.25, sg)  # compile, warm up
    cuda_lif.lif_backward(g, codes, 0.5, 0.25, sg)

    def timed(fn):
        begin, end = cupy.cuda.Event(), cupy.cuda.Event()
        begin.record()
        for _ in range(repeats):
            fn()
        end.record()
        end.synchronize()
        return cupy.cuda.get_elapsed_time(begin, end) / repeats / 1e3  # seconds per call

    forward_s = timed(lambda: cuda_lif.lif_forward(x, 0.5, 0.25, sg))
    backward_s = timed(lambda: cuda_lif.lif_backward(g, codes, 0.5, 0.25, sg))
    steps = x.size
    bytes_fwd = steps * (4 + 4 + 1)  # x in, spikes out, codes out
    bytes_bwd = steps * (4 + 1 + 4)  # grad_spikes in, codes in, grad_x out
    return dict(
        shape=list(shape), neuron_steps=int(steps),
        forward_us=forward_s * 1e6, backward_us=backward_s * 1e6,
        forward_gb_s=bytes_fwd / forward_s / 1e9, backward_gb_s=bytes_bwd / backward_s / 1e9,
    )


# ---- the same network in PyTorch eager (benchmarks/torch_msresnet.py) ----------------------------


def bench_torch(name, batch, time_steps, warmup, steps):
    import torch

    depth = int(name.replace("ms_resnet", ""))
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    device = torch.device("cuda")
    model = build_torch_model(torch, depth, time_steps=time_steps).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(warmup + steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        torch.cuda.synchronize()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    result = dict(
        framework="pytorch", model=name, batch=batch, time_steps=time_steps,
        median_ms=1e3 * statistics.median(times), min_ms=1e3 * min(times),
        images_per_s=batch / statistics.median(times),
        peak_allocated_mib=torch.cuda.max_memory_allocated() / 2**20, last_loss=float(loss.item()),
        steps=steps, torch_version=torch.__version__,
    )
    del model, opt, x, y, loss
    torch.cuda.empty_cache()
    return result


# ---- driver --------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["ms_resnet20", "ms_resnet56"])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--time-steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    try:
        import cupy

        device = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"].decode()
    except Exception as err:  # no CuPy, or no GPU: nothing to measure
        print(f"bench_gpu: needs CuPy and a GPU ({type(err).__name__}: {err})", file=sys.stderr)
        return 2
    report = dict(device=device, cupy_version=cupy.__version__, config=vars(args), runs=[], errors=[])

    def attempt(label, fn, *fn_args):
        try:
            return fn(*fn_args)
        except Exception as err:  # keep going: one failing part should not hide the others' numbers
            report["errors"].append(f"{label}: {type(err).__name__}: {err}")
            print(f"bench_gpu: {label} failed: {type(err).__name__}: {err}", file=sys.stderr)
            return None

    report["lif_bandwidth"] = attempt("lif bandwidth", bench_lif_bandwidth, args.batch, args.time_steps)
    torch_ok = False
    if not args.no_torch:
        try:
            import torch

            torch_ok = torch.cuda.is_available()
        except ImportError:
            pass
    for name in args.models:
        ours = attempt(f"tinyspike {name}", bench_tinyspike, name, args.batch, args.time_steps, args.warmup, args.steps)
        theirs = attempt(f"pytorch {name}", bench_torch, name, args.batch, args.time_steps, args.warmup, args.steps) if torch_ok else None
        if ours and theirs:
            ours["ratio_to_pytorch"] = ours["median_ms"] / theirs["median_ms"]
        report["runs"] += [r for r in (ours, theirs) if r]

    print(f"device: {device}, CuPy {cupy.__version__}, B={args.batch}, T={args.time_steps}, "
          f"{args.steps} timed steps after {args.warmup}")
    header = f"{'framework':<10} {'model':<12} {'median ms':>10} {'min ms':>9} {'images/s':>9} {'peak MiB':>9} {'ts/pt':>6}"
    print(header)
    print("-" * len(header))
    for r in report["runs"]:
        peak = r.get("peak_pool_total_mib", r.get("peak_allocated_mib", float("nan")))
        ratio = f"{r['ratio_to_pytorch']:.2f}" if "ratio_to_pytorch" in r else ""
        print(f"{r['framework']:<10} {r['model']:<12} {r['median_ms']:>10.1f} {r['min_ms']:>9.1f} "
              f"{r['images_per_s']:>9.0f} {peak:>9.0f} {ratio:>6}")
    lif = report["lif_bandwidth"]
    if lif:
        print(f"LIF {lif['shape']}: forward {lif['forward_us']:.0f} us = {lif['forward_gb_s']:.0f} GB/s, "
              f"backward {lif['backward_us']:.0f} us = {lif['backward_gb_s']:.0f} GB/s")
    if not torch_ok and not args.no_torch:
        print("PyTorch with CUDA not available: no comparison")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
