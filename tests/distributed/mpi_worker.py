"""A small data-parallel training run, started by tests/distributed/test_mpirun.py (and the benchmark).

    python mpi_worker.py train OUT.npz STEPS BATCH [no-sync-bn|nccl]   # one process, or under mpirun -n W
    python mpi_worker.py fit OUT_DIR EPOCHS BATCH       # tinyspike.train.train in float64, 1 or W ranks
    python mpi_worker.py die                            # rank 1 leaves before the first collective

``nccl``: the same run on the CuPy backend, one GPU per rank, reduced over NCCL.

``train``: MS-ResNet-8 (widths 4/8/8, T = 2) on 8×8 digits in float64, SGD with momentum, K steps
of global batch B, each rank reading its shard (distributed.ShardedBatches); rank 0 writes every
parameter and buffer to OUT.npz.
"""

import sys

import numpy as np

from tinyspike import backend, distributed, models, optim
from tinyspike.data.digits import Digits
from tinyspike.functional.loss import cross_entropy


def batches(dataset, shards, steps):
    epoch = 0
    while True:
        for idx in shards.batch_indices(epoch):
            x, y = dataset.get_batch(idx)
            yield (x.astype(np.float64) / 255.0 - 0.5), y.astype(np.int64)
            steps -= 1
            if steps == 0:
                return
        epoch += 1


def train(out, steps, batch, sync_bn=True, nccl=False):
    if nccl:
        backend.use("cupy")
    backend.set_default_dtype(np.float64)
    comm = distributed.init("nccl" if nccl else "auto", timeout=120)
    model = models.build("ms_resnet8", time_steps=2, widths=[4, 8, 8], in_channels=1)
    parallel = distributed.DataParallel(model, comm, bucket_mb=0.01, sync_bn=sync_bn)  # small buckets: several per step
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    data = Digits("train", size=8, channels=1)
    shards = distributed.ShardedBatches(len(data), batch, comm.rank, comm.size, seed=1)
    model.train()
    for x, y in batches(data, shards, steps):
        opt.zero_grad()
        loss = cross_entropy(model(backend.to_device(x)), backend.to_device(y))
        loss.backward()
        parallel.average_gradients()
        opt.step()
    if comm.is_root:
        state = {k: backend.to_numpy(v) for k, v in model.state_dict().items()}
        np.savez(out, **state)
    comm.barrier()


FIT_CONFIG = dict(model="ms_resnet8", T=2, batch_size=32, model_options={"widths": [4, 8, 8], "in_channels": 1},
                  dataset_options={"size": 8, "channels": 1})


def fit(out, epochs, batch):
    """The whole training stack of ``tinyspike train`` (loaders, Trainer, checkpoints) in float64."""
    from tinyspike import train as training

    backend.set_default_dtype(np.float64)
    comm = distributed.init(timeout=120)
    training.train(dict(FIT_CONFIG, epochs=epochs, batch_size=batch), out=out, comm=comm)


def die():
    comm = distributed.init(timeout=5)
    if comm.rank == 1:
        sys.exit(0)  # a clean exit, so mpirun does not notice: only the timeout can
    comm.allreduce_sum_(np.ones(4))
    print("rank 0: the all-reduce completed, which it must not", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "fit":
        fit(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "train":
        train(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sync_bn=sys.argv[5:] != ["no-sync-bn"],
              nccl=sys.argv[5:] == ["nccl"])
    else:
        die()
