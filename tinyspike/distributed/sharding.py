"""Which samples each rank reads: shards of every global batch, and of the evaluation set.

Training. Every rank draws the *same* permutation of the N samples for epoch e (the DataLoader's
``np.random.default_rng([seed, e, 0])``: same seed, same epoch, same order, no communication), cuts
it into global batches of B, and takes its own contiguous slice of B/W samples of each:

    global batch k = order[k·B : (k+1)·B]
    rank r's part  = global batch k [r·B/W : (r+1)·B/W]

So the shards of one step are disjoint and together are exactly the global batch a single process
with batch B would use, in the same order: that is what makes a W-rank step equal to a
one-process step. B must be divisible by W (else a ``ValueError`` names both): unequal shards
would weigh the ranks' mean losses unequally in the gradient average.

The remainder. The last N mod B samples of each epoch's order do not form a full global batch and
are left out of that epoch (``drop_last`` semantics, on every world size, so runs on 1 and W ranks
see the same batches); they differ from epoch to epoch because the order does, so every sample is
still used. Compare with a single-process ``DataLoader(..., drop_last=True)``.

Evaluation. The samples 0 … N−1 (in order, all of them: nothing is dropped) are split into W
contiguous ranges whose sizes differ by at most one; each rank evaluates its range and the counts
(loss sum, correct, seen) are added with ``allreduce_numbers``.
"""

from __future__ import annotations

import numpy as np

from tinyspike import checks


def check_world(where: str, rank, world_size) -> tuple[int, int]:
    world_size = checks.integer(where, "world_size", world_size, low=1)
    rank = checks.integer(where, "rank", rank, 0, world_size - 1)
    return rank, world_size


def local_batch_size(batch_size, world_size, where: str = "distributed") -> int:
    """B/W, or a ValueError naming the batch size and the world size when W does not divide B."""
    batch_size = checks.integer(where, "batch_size", batch_size, low=1)
    world_size = checks.integer(where, "world_size", world_size, low=1)
    if batch_size % world_size:
        raise ValueError(
            f"{where}: the global batch size {batch_size} must be divisible by the world size {world_size} "
            f"(each rank takes batch_size / world_size samples); use a batch size that is a multiple of "
            f"{world_size}, e.g. {batch_size + world_size - batch_size % world_size}"
        )
    return batch_size // world_size


def epoch_order(num_samples, epoch, seed, shuffle=True) -> np.ndarray:
    """The order of epoch ``epoch``: the DataLoader's permutation from ``(seed, epoch)``."""
    num_samples = checks.integer("epoch_order", "num_samples", num_samples, low=0)
    epoch = checks.integer("epoch_order", "epoch", epoch, low=0)
    seed = checks.integer("epoch_order", "seed", seed, low=0)
    if checks.boolean("epoch_order", "shuffle", shuffle):
        return np.random.default_rng([seed, epoch, 0]).permutation(num_samples)
    return np.arange(num_samples)


def shard_batches(order, batch_size, rank, world_size) -> list[np.ndarray]:
    """This rank's part of every full global batch of ``order`` (see the module docstring)."""
    rank, world_size = check_world("shard_batches", rank, world_size)
    local = local_batch_size(batch_size, world_size, "shard_batches")
    order = np.asarray(order)
    full = len(order) // batch_size
    return [
        order[k * batch_size + rank * local : k * batch_size + (rank + 1) * local]
        for k in range(full)
    ]


def shard_range(num_samples, rank, world_size) -> range:
    """Rank ``rank``'s contiguous range of ``range(num_samples)``; sizes differ by at most one."""
    rank, world_size = check_world("shard_range", rank, world_size)
    num_samples = checks.integer("shard_range", "num_samples", num_samples, low=0)
    base, extra = divmod(num_samples, world_size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (1 if rank < extra else 0))


class ShardedBatches:
    """The sample indices of each of this rank's training batches, epoch by epoch.

    ``ShardedBatches(len(dataset), batch_size=B, rank=r, world_size=W, seed=s)`` then
    ``batch_indices(epoch)`` gives the list of index arrays (B/W each) rank r reads in that epoch;
    ``len()`` is the number of steps per epoch (N // B, the same on every rank).
    """

    def __init__(self, num_samples, batch_size, rank, world_size, seed=0, shuffle=True):
        self.rank, self.world_size = check_world("ShardedBatches", rank, world_size)
        self.num_samples = checks.integer("ShardedBatches", "num_samples", num_samples, low=0)
        self.batch_size = checks.integer("ShardedBatches", "batch_size", batch_size, low=1)
        self.local_batch_size = local_batch_size(self.batch_size, self.world_size, "ShardedBatches")
        self.seed = checks.integer("ShardedBatches", "seed", seed, low=0)
        self.shuffle = checks.boolean("ShardedBatches", "shuffle", shuffle)

    def __len__(self) -> int:
        return self.num_samples // self.batch_size

    def batch_indices(self, epoch) -> list[np.ndarray]:
        order = epoch_order(self.num_samples, epoch, self.seed, self.shuffle)
        return shard_batches(order, self.batch_size, self.rank, self.world_size)
