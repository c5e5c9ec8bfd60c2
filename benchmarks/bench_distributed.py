"""Data-parallel step time on this machine, bytes all-reduced, and a model of scaling to 8 GPUs.

    python benchmarks/bench_distributed.py              # runs both configurations below, prints a table
    python benchmarks/bench_distributed.py --steps 8 --batch 32

Configurations (the same global batch B, the same model, float32):
  1 rank:   one process, Numba with 2 threads (the machine's 2 cores)
  2 ranks:  mpirun -n 2, Numba with 1 thread each, synchronized tdBN, bucketed gradient all-reduce
Per step: the median wall time, the time inside collectives (gradient buckets + the synchronized
BN's per-layer all-reduces, measured by a timing wrapper around the communicator), and the bytes
all-reduced.

The 8-GPU model: a ring all-reduce of S bytes over n GPUs takes S·2(n−1)/n / busBW + α per
collective (busbw as nccl-tests defines it, NVIDIA/nccl-tests doc/PERFORMANCE.md). ``--bus-gbps``
defaults to 230 GB/s, the order of the all_reduce_perf bus bandwidth NVIDIA reports for 8×A100 SXM
with NVSwitch (DGX A100) at large messages; it is an assumption, not measured here: pass your
machine's figure. α (``--latency-us``, default 20 µs) covers NCCL's small-message latency, which
dominates the per-layer sync-BN collectives.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(os.path.abspath(__file__)).parents[1]


def timed(inner):
    """A Communicator with ``inner``'s collectives, counting the seconds and bytes of its all-reduces."""
    from tinyspike.distributed.communicator import Communicator

    class TimedCommunicator(Communicator):
        def __init__(self):
            self.inner, self.rank, self.size, self.timeout = inner, inner.rank, inner.size, inner.timeout
            self.device_arrays = inner.device_arrays
            self.seconds, self.bytes, self.calls = 0.0, 0, 0

        def broadcast_(self, buffer, root=0):
            return self.inner.broadcast_(buffer, root)

        def barrier(self):
            self.inner.barrier()

        allreduce_sum_ = _timed_allreduce

    return TimedCommunicator()


def _timed_allreduce(self, buffer):
    start = time.perf_counter()
    out = self.inner.allreduce_sum_(buffer)
    self.seconds += time.perf_counter() - start
    self.bytes += buffer.nbytes
    self.calls += 1
    return out


def worker(steps: int, batch: int, out: str) -> None:
    from tinyspike import distributed, models, optim
    from tinyspike.data.digits import Digits
    from tinyspike.functional.loss import cross_entropy

    comm = distributed.init(timeout=300)
    timer = timed(comm)
    model = models.build("ms_resnet8", time_steps=4, widths=[8, 16, 32], in_channels=1)
    distributed.broadcast_state(model, comm)
    if comm.size > 1:
        distributed.sync_batch_norm(model, comm)
        for m in model.modules():  # route the sync-BN collectives through the timer
            if getattr(m, "communicator", None) is comm:
                m.communicator = timer
    reducer = distributed.GradientReducer(model.parameters(), comm)
    reducer.comm = timer
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    data = Digits("train", size=16, channels=1)
    shards = distributed.ShardedBatches(len(data), batch, comm.rank, comm.size, seed=0)
    step_times, comm_times, comm_bytes, comm_calls = [], [], [], []
    model.train()
    for i, idx in enumerate(shards.batch_indices(0)[: steps + 2]):
        x, y = data.get_batch(idx)
        x = (x.astype(np.float32) / 255.0 - 0.5)
        timer.seconds, timer.bytes, timer.calls = 0.0, 0, 0
        comm.barrier()
        start = time.perf_counter()
        opt.zero_grad()
        loss = cross_entropy(model(x), y)
        loss.backward()
        reducer.average_()
        opt.step()
        if i >= 2:  # the first two steps compile the Numba kernels
            step_times.append(time.perf_counter() - start)
            comm_times.append(timer.seconds)
            comm_bytes.append(timer.bytes)
            comm_calls.append(timer.calls)
    if comm.is_root:
        Path(out).write_text(json.dumps({
            "ranks": comm.size, "step_s": float(np.median(step_times)), "comm_s": float(np.median(comm_times)),
            "bytes": int(np.median(comm_bytes)) if comm.size > 1 else reducer.bytes_per_step,
            "gradient_bytes": reducer.bytes_per_step, "collectives": int(np.median(comm_calls)) if comm.size > 1 else 0,
            "parameters": model.num_parameters(),
        }))


def run(ranks: int, steps: int, batch: int, out: Path) -> dict:
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               NUMBA_NUM_THREADS=str(2 // ranks), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS=str(2 // ranks))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, __file__, "--worker", "--steps", str(steps), "--batch", str(batch), "--out", str(out)]
    if ranks > 1:
        names = ("PYTHONPATH", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
        cmd = ["mpirun", "-n", str(ranks), "--oversubscribe"] + [a for n in names for a in ("-x", n)] + cmd
    subprocess.run(cmd, env=env, check=True)
    return json.loads(out.read_text())


def ring_seconds(nbytes: float, collectives: int, gpus: int, bus_gbps: float, latency_us: float) -> float:
    return nbytes * 2 * (gpus - 1) / gpus / (bus_gbps * 1e9) + collectives * latency_us * 1e-6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--bus-gbps", type=float, default=230.0)
    parser.add_argument("--latency-us", type=float, default=20.0)
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    if args.worker:
        worker(args.steps, args.batch, args.out)
        return
    if shutil.which("mpirun") is None:
        sys.exit('mpirun not found: pip install -e ".[mpi]"')
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    one = run(1, args.steps, args.batch, tmp / "bench_distributed_1.json")
    two = run(2, args.steps, args.batch, tmp / "bench_distributed_2.json")
    print(f"MS-ResNet-8 (widths 8/16/32, T=4, 16x16 digits), global batch {args.batch}, float32, "
          f"{one['parameters']} parameters")
    print(f"{'config':32s} {'step ms':>9s} {'comm ms':>9s} {'bytes/step':>11s} {'collectives':>11s}")
    print(f"{'1 rank, 2 Numba threads':32s} {1e3 * one['step_s']:9.1f} {0.0:9.2f} {0:11d} {0:11d}")
    print(f"{'2 ranks (MPI), 1 thread each':32s} {1e3 * two['step_s']:9.1f} {1e3 * two['comm_s']:9.2f} "
          f"{two['bytes']:11d} {two['collectives']:11d}")
    print(f"  of which gradient buckets: {two['gradient_bytes']} bytes")
    t8 = ring_seconds(two["bytes"], two["collectives"], 8, args.bus_gbps, args.latency_us)
    print(f"8-GPU model (ring all-reduce, busBW {args.bus_gbps:g} GB/s, {args.latency_us:g} us per collective): "
          f"{1e3 * t8:.3f} ms of communication per step "
          f"({1e6 * (t8 - two['collectives'] * args.latency_us * 1e-6):.2f} us bandwidth, "
          f"{two['collectives'] * args.latency_us:.0f} us latency)")


if __name__ == "__main__":
    main()
