"""Batches from an in-memory dataset: shuffled from a seed, augmented, prefetched in a thread.

Reproducibility: epoch ``e``'s order comes from ``np.random.default_rng([seed, e, 0])`` and the
augmentation of its batch ``b`` from ``np.random.default_rng([seed, e, 1, b])``, so the stream of
batches depends on (seed, epoch) alone: a run resumed at epoch ``e`` (``loader.set_epoch(e)``)
sees exactly the batches the uninterrupted run saw, and the background thread's timing cannot
change anything.

Several processes (data parallelism, ``tinyspike.distributed``): with ``rank`` and ``world_size``
every rank draws the same epoch order (same seed, no communication) and reads its own part:

* shuffled (training): each global batch of ``batch_size`` samples is split into ``world_size``
  contiguous shards of ``batch_size / world_size`` (``batch_size`` must be divisible by the world
  size: a ValueError names both). The shards of one step are disjoint and together are exactly
  the batch one process would use. The remainder (the last ``N mod batch_size`` samples of the
  epoch's order) is split over the ranks as evenly as possible (``shard_range``: sizes differ by
  at most one) unless ``drop_last``; then ``global_batch_sizes`` tells the trainer how to weigh the
  ranks' losses so that the step is still that of one process. A remainder smaller than the
  world size (some rank would get no sample) is dropped on every rank.
* not shuffled (evaluation): rank r reads the contiguous range ``shard_range(N, r, world_size)``
  in batches of ``batch_size`` (not divided); nothing is dropped, and the trainer adds the counts.

Augmentation of rank r's part of batch b uses ``default_rng([seed, e, 1, b, r])`` (``[seed, e,
1, b]`` on one process), so the shards are augmented independently and reproducibly; an augmented
run on W ranks therefore draws other crops than one on a single process.

Epochs: each ``iter(loader)`` uses the current epoch and then advances it by one, so
``for epoch in range(n): for x, y in loader: ...`` reshuffles every epoch without ceremony.

Prefetch: a daemon thread assembles the next ``prefetch`` batches (indexing, Numba transforms that
release the GIL, layout change) while the caller computes. The thread stops when the iteration ends,
when the iterator is closed or dropped (``break`` out of a for loop), or when it raises; an
exception in the thread is re-raised in the caller with its original traceback. Moving a batch to
the GPU (``backend.to_device``) happens in the caller's thread, on its CUDA stream.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable, Iterator

import numpy as np

from tinyspike import backend, checks
from tinyspike.distributed import sharding

_DONE = object()


class _WorkerError:
    def __init__(self, exc: BaseException):
        self.exc = exc


class DataLoader:
    """Iterate over ``dataset`` in batches of ``(x, y)`` on the active backend.

    Args:
        dataset: an ``ArrayDataset`` (or anything with ``__len__``, ``get_batch(indices)`` and
            ``time_steps``).
        batch_size: samples per batch.
        shuffle: new order each epoch (from ``seed`` and the epoch number); else dataset order.
        seed: non-negative int; the only source of randomness (order and augmentation).
        drop_last: skip the final batch when it is smaller than ``batch_size``.
        transform: ``f(batch, rng) -> batch`` on the NumPy batch as the dataset gives it, e.g.
            ``transforms.preset("depth_study", ds.mean, ds.std)``. Required for uint8 images,
            which must be normalised to float32 (there is no silent uint8 -> float conversion).
        prefetch: batches prepared ahead in a background thread; 0 = no thread (debugging).
        to_device: move batches with ``backend.to_device`` (False: yield NumPy arrays).
        rank, world_size: this process's rank and the number of data-parallel processes (see the
            module docstring); ``batch_size`` stays the *global* batch when shuffled.

    Yields ``x`` float32 ``[B, C, H, W]`` for static images or ``[T, B, C, H, W]`` (time first)
    for event frames, and ``y`` int64 ``[B]``. After an epoch, ``wait_seconds`` is the time the
    caller spent waiting for data in it.
    """

    def __init__(
        self,
        dataset,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        prefetch: int = 2,
        to_device: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ):
        for attr in ("__len__", "get_batch"):
            if not hasattr(dataset, attr):
                raise TypeError(f"DataLoader: dataset must have {attr} (see tinyspike.data.ArrayDataset), got {type(dataset).__name__}")
        where = "DataLoader"
        batch_size = checks.integer(where, "batch_size", batch_size, low=1)
        shuffle = checks.boolean(where, "shuffle", shuffle)
        seed = checks.integer(where, "seed", seed, low=0)
        drop_last = checks.boolean(where, "drop_last", drop_last)
        prefetch = checks.integer(where, "prefetch", prefetch, low=0)
        to_device = checks.boolean(where, "to_device", to_device)
        rank, world_size = sharding.check_world(where, rank, world_size)
        if shuffle:  # training: every global batch is split over the ranks
            self.local_batch_size = sharding.local_batch_size(batch_size, world_size, where)
        else:
            self.local_batch_size = batch_size
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable f(batch, rng) -> batch, got {checks.show(transform)}")
        self.time_steps = getattr(dataset, "time_steps", None)
        inputs = getattr(dataset, "inputs", None)
        if (
            transform is None
            and self.time_steps is None
            and isinstance(inputs, np.ndarray)
            and inputs.dtype == np.uint8
        ):
            raise TypeError(
                "dataset gives uint8 images: pass a transform that normalises them to float32, "
                "e.g. transform=transforms.preset('none', dataset.mean, dataset.std)"
            )
        self.dataset = dataset
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.transform = transform
        self.prefetch, self.to_device = prefetch, to_device
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.wait_seconds = 0.0

    def __len__(self) -> int:
        """Batches per epoch (the same on every rank when shuffled: the number of steps)."""
        return len(self._plan(0)[0])

    def _plan(self, epoch: int) -> tuple[list[np.ndarray], list[int]]:
        """(this rank's index arrays, the global batch size of each) for ``epoch``."""
        n = len(self.dataset)
        if self.world_size > 1 and not self.shuffle:  # evaluation: a contiguous range per rank
            mine = np.asarray(sharding.shard_range(n, self.rank, self.world_size), dtype=np.int64)
            n, order = len(mine), mine
        else:
            order = sharding.epoch_order(n, epoch, self.seed, self.shuffle)
        full = n // self.batch_size
        batches = [order[k * self.batch_size: (k + 1) * self.batch_size] for k in range(full)]
        sizes = [self.batch_size] * full
        remainder = order[full * self.batch_size:]
        if self.world_size > 1 and self.shuffle:
            batches = sharding.shard_batches(order, self.batch_size, self.rank, self.world_size)
            if len(remainder) < self.world_size:  # some rank would get nothing: dropped everywhere
                remainder = remainder[:0]
            part = sharding.shard_range(len(remainder), self.rank, self.world_size)
            remainder_of_rank = remainder[part.start: part.stop]
        else:
            remainder_of_rank = remainder
        if len(remainder) and not self.drop_last:
            batches.append(remainder_of_rank)
            sizes.append(len(remainder))
        return batches, sizes

    def global_batch_sizes(self, epoch: int | None = None) -> list[int]:
        """The size of each step's batch over all ranks (``batch_size`` except a remainder)."""
        epoch = self.epoch if epoch is None else checks.integer("DataLoader.global_batch_sizes", "epoch", epoch, low=0)
        return self._plan(epoch)[1]

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next ``iter(loader)`` uses (to resume a run at that epoch)."""
        self.epoch = checks.integer("DataLoader.set_epoch", "epoch", epoch, low=0)

    def batch_indices(self, epoch: int | None = None) -> list[np.ndarray]:
        """The sample indices of every batch of ``epoch`` (default: the next one), in order."""
        epoch = self.epoch if epoch is None else checks.integer("DataLoader.batch_indices", "epoch", epoch, low=0)
        return self._plan(epoch)[0]

    def _make_batch(self, epoch: int, b: int, indices: np.ndarray):
        x, y = self.dataset.get_batch(indices)
        if self.transform is not None:
            key = [self.seed, epoch, 1, b] + ([self.rank] if self.world_size > 1 else [])
            x = self.transform(x, np.random.default_rng(key))
        if not isinstance(x, np.ndarray):
            raise TypeError(f"the transform must return a numpy array, got {type(x).__name__}")
        if self.time_steps is not None:
            if x.ndim != 5:
                raise ValueError(f"event batch must be [B, T, C, H, W], got shape {x.shape}")
            if not (x.dtype == np.float32 or np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_):
                raise TypeError(f"event frames must be counts (integer) or float32, got {x.dtype}")
            # Time first, as the networks take it; counts are exact in float32 (up to 2**24).
            x = np.ascontiguousarray(x.transpose(1, 0, 2, 3, 4), dtype=np.float32)
        elif x.dtype != np.float32:
            raise TypeError(
                f"batches must be float32 after the transform, got {x.dtype} "
                "(end the transform with transforms.Normalize)"
            )
        y = np.asarray(y)
        if y.dtype != np.int64:
            raise TypeError(f"dataset labels must be int64, got {y.dtype}")
        return x, y

    def __iter__(self) -> Iterator[tuple]:
        epoch = self.epoch
        self.epoch += 1
        batches = self.batch_indices(epoch)
        self.wait_seconds = 0.0
        if self.prefetch == 0:
            return self._iter_sync(epoch, batches)
        return self._iter_threaded(epoch, batches)

    def _deliver(self, x, y):
        if self.to_device:
            return backend.to_device(x), backend.to_device(y)
        return x, y

    def _iter_sync(self, epoch, batches):
        for b, indices in enumerate(batches):
            t0 = time.perf_counter()
            x, y = self._make_batch(epoch, b, indices)
            self.wait_seconds += time.perf_counter() - t0
            yield self._deliver(x, y)

    def _iter_threaded(self, epoch, batches):
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def put(item) -> bool:
            # Poll so that a consumer that went away (stop set) never leaves this thread blocked.
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def work():
            try:
                for b, indices in enumerate(batches):
                    if stop.is_set() or not put(self._make_batch(epoch, b, indices)):
                        return
                put(_DONE)
            except BaseException as exc:  # handed to the consumer, which re-raises it
                put(_WorkerError(exc))

        thread = threading.Thread(target=work, name="tinyspike-DataLoader", daemon=True)
        thread.start()
        try:
            while True:
                t0 = time.perf_counter()
                item = q.get()
                self.wait_seconds += time.perf_counter() - t0
                if item is _DONE:
                    return
                if isinstance(item, _WorkerError):
                    raise item.exc
                yield self._deliver(*item)
        finally:
            # Runs on normal end, on an exception, and when the generator is closed or collected.
            stop.set()
            thread.join(timeout=5.0)

    def __repr__(self) -> str:
        desc = getattr(self.dataset, "description", type(self.dataset).__name__)
        return (
            f"DataLoader({desc}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"seed={self.seed}, drop_last={self.drop_last}, batches={len(self)}"
            + (f", rank={self.rank}/{self.world_size}" if self.world_size > 1 else "") + ")"
        )
