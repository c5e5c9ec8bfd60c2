"""Gradient averaging in buckets, and the broadcast of a model's initial state.

Data parallelism in one line: every rank holds the same weights, computes the gradient of the mean
loss over its own shard of the global batch, and the ranks replace their gradients by the average

    g = (1/W) Σ_r g_r        (W ranks, equal shards of B/W samples)

which is exactly the gradient of the mean loss over the whole batch of B samples. After that, the
same optimizer step on every rank keeps the weights identical, with no further communication.

Why buckets. A network has tens to hundreds of parameter arrays, many tiny (γ and β of every batch
norm). One collective per array would pay the latency (microseconds on one node, tens of them over
a network, ~10 µs for NCCL) a hundred times; one collective for everything would need one buffer
the size of the whole model. A bucket is the middle way: the gradients of consecutive parameters
(of one dtype) are packed into one contiguous buffer of at most ``bucket_mb`` MiB, the buffer is
all-reduced, divided by W and unpacked. A parameter larger than the bucket gets a bucket of its own.

Missing gradients. A parameter whose ``grad`` is None on this rank contributes zeros; so that a
parameter unused on every rank keeps ``grad = None`` (as a single process would, and an optimizer
then skips it), each bucket carries one extra slot per parameter counting the ranks that had a
gradient: the reduced gradient is kept where that count is > 0.
"""

from __future__ import annotations

import time

from tinyspike import backend, checks
from tinyspike.distributed.communicator import Communicator

DEFAULT_BUCKET_MB = 25.0  # PyTorch DDP's default bucket size


def check_communicator(where: str, comm) -> Communicator:
    if not isinstance(comm, Communicator):
        raise TypeError(f"{where}: comm must be a distributed Communicator (see distributed.init), got {checks.kind_of(comm)}")
    return comm


def plan_buckets(arrays, bucket_bytes: int) -> list[list[int]]:
    """Group array indices into buckets: consecutive, one dtype per bucket, at most ``bucket_bytes``.

    A single array larger than ``bucket_bytes`` is a bucket of its own. Every rank plans the same
    buckets from the same parameter list, which is what makes the packed buffers line up.
    """
    buckets: list[list[int]] = []
    size = 0
    dtype = None
    for i, a in enumerate(arrays):
        nbytes = a.size * a.dtype.itemsize
        if buckets and a.dtype == dtype and size + nbytes <= bucket_bytes:
            buckets[-1].append(i)
            size += nbytes
        else:
            buckets.append([i])
            size, dtype = nbytes, a.dtype
    return buckets


def pack(arrays, extra: int = 0):
    """One contiguous 1-D buffer holding every array (flattened, in order) and ``extra`` more slots."""
    xp = backend.array_module_of(arrays[0])
    total = sum(a.size for a in arrays)
    buffer = xp.empty(total + extra, dtype=arrays[0].dtype)
    offset = 0
    for a in arrays:
        buffer[offset : offset + a.size] = a.reshape(-1)
        offset += a.size
    return buffer


def unpack(buffer, like) -> list:
    """The arrays of ``pack(like)`` read back from ``buffer`` (copies, shaped as ``like``)."""
    out, offset = [], 0
    for a in like:
        out.append(buffer[offset : offset + a.size].reshape(a.shape).copy())
        offset += a.size
    return out


class GradientReducer:
    """Average the gradients of ``params`` over the ranks of ``comm``, in buckets (see above).

    Usage, after ``loss.backward()`` and before ``optimizer.step()``::

        reducer = GradientReducer(model.parameters(), comm)
        ...
        reducer.average_()

    ``bytes_per_step`` is the number of bytes all-reduced by one ``average_()``, and
    ``seconds`` the wall time the last one took (both for the benchmark).
    """

    def __init__(self, params, comm, bucket_mb=DEFAULT_BUCKET_MB):
        self.comm = check_communicator("GradientReducer", comm)
        bucket_mb = checks.real("GradientReducer", "bucket_mb", bucket_mb, low=0.0, low_open=True)
        self.params = [p for p in params if p.requires_grad]
        self.bucket_bytes = max(int(bucket_mb * 2**20), 1)
        self.buckets = plan_buckets([p.data for p in self.params], self.bucket_bytes)
        self.bytes_per_step = sum(
            (sum(self.params[i].data.size for i in b) + len(b)) * self.params[b[0]].data.dtype.itemsize
            for b in self.buckets
        )
        self.seconds = 0.0

    def average_(self) -> None:
        """grad ← (1/W) Σ_r grad_r for every parameter, in place (None stays None if None everywhere).

        Unequal shards of one global batch of n samples (a remainder batch): scale each rank's
        loss by w_r = W·n_r/n *before* backward (the Trainer does), not the gradients after it:
        synchronized BN's backward mixes the ranks' output gradients, so only a weighted loss makes
        the result the gradient of the mean loss over all n samples.
        """
        size = self.comm.size
        self.seconds = 0.0
        if size == 1 or not self.params:
            return
        start = time.perf_counter()
        for bucket in self.buckets:
            params = [self.params[i] for i in bucket]
            grads = [p.grad for p in params]  # arrays (autograd keeps .grad as a backend array)
            xp = backend.array_module_of(params[0].data)
            like = [g if g is not None else xp.zeros_like(p.data) for g, p in zip(grads, params)]
            buffer = pack(like, extra=len(params))
            buffer[buffer.size - len(params):] = xp.asarray([g is not None for g in grads], dtype=buffer.dtype)
            self.comm.allreduce_sum_(buffer)
            buffer *= buffer.dtype.type(1.0 / size)
            had_grad = backend.to_numpy(buffer[buffer.size - len(params):]) > 0
            for p, g, value, present in zip(params, grads, unpack(buffer, like), had_grad):
                if not present:
                    continue
                if g is None:
                    p.grad = value
                else:
                    g[...] = value
        self.seconds = time.perf_counter() - start


def broadcast_state(model, comm, root: int = 0) -> None:
    """Copy ``root``'s parameters and buffers (running statistics, ...) to every rank, in place.

    Call it once after building the model (and after loading a checkpoint, if only ``root`` read
    it), so that every rank starts from the same weights whatever its random seed. Packed by dtype
    like the gradients, one broadcast per bucket.
    """
    comm = check_communicator("broadcast_state", comm)
    if comm.size == 1:
        return
    arrays = [p.data for p in model.parameters()] + [b for _, b in model.named_buffers()]
    arrays = [a for a in arrays if a is not None and a.size > 0]
    for bucket in plan_buckets(arrays, int(DEFAULT_BUCKET_MB * 2**20)):
        like = [arrays[i] for i in bucket]
        buffer = pack(like)
        comm.broadcast_(buffer, root)
        for target, value in zip(like, unpack(buffer, like)):
            target[...] = value


def allreduce_numbers(values, comm) -> list[float]:
    """Σ over ranks of a few Python numbers (evaluation counts, loss sums), in float64."""
    import numpy as np

    comm = check_communicator("allreduce_numbers", comm)
    values = [float(v) for v in values]
    if comm.size == 1:
        return values
    buffer = np.asarray(values, dtype=np.float64)
    if comm.device_arrays:
        buffer = backend.xp().asarray(buffer)
    comm.allreduce_sum_(buffer)
    return [float(v) for v in backend.to_numpy(buffer)]


class DataParallel:
    """Everything a training loop needs for data parallelism over ``comm``, set up in one call.

    ``DataParallel(model, comm)`` broadcasts rank 0's parameters and buffers, makes the batch norms
    synchronized (``sync_bn=True``; see ``distributed.sync_bn``) and plans the gradient buckets.
    In the loop, call ``average_gradients()`` between ``loss.backward()`` and ``optimizer.step()``.
    """

    def __init__(self, model, comm, bucket_mb=DEFAULT_BUCKET_MB, sync_bn=True):
        from tinyspike.distributed.sync_bn import sync_batch_norm

        self.comm = check_communicator("DataParallel", comm)
        self.model = model
        broadcast_state(model, comm)
        self.synchronized_layers = sync_batch_norm(model, comm) if checks.boolean("DataParallel", "sync_bn", sync_bn) else 0
        self.reducer = GradientReducer(model.parameters(), comm, bucket_mb)

    def average_gradients(self) -> None:
        """See ``GradientReducer.average_``."""
        self.reducer.average_()


def gather_objects(value, comm) -> list:
    """Every rank's JSON-able ``value``, in rank order, on every rank (checkpointed RNG states).

    Built from the one all-reduce of the interface: rank r writes the UTF-8 bytes of its JSON into
    row r of a zero matrix (float64 holds a byte exactly), the sum is every row. First the lengths,
    then the bytes: two small collectives, used once per checkpoint.
    """
    import json

    import numpy as np

    comm = check_communicator("gather_objects", comm)
    data = np.frombuffer(json.dumps(value, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    if comm.size == 1:
        return [json.loads(data.tobytes().decode("utf-8"))]
    lengths = np.zeros(comm.size)
    lengths[comm.rank] = data.size
    lengths = allreduce_numbers(lengths, comm)
    width = int(max(lengths))
    rows = np.zeros((comm.size, width))
    rows[comm.rank, : data.size] = data
    flat = rows.reshape(-1)
    if comm.device_arrays:
        flat = backend.xp().asarray(flat)
    comm.allreduce_sum_(flat)
    rows = backend.to_numpy(flat).reshape(comm.size, width)
    return [json.loads(rows[r, : int(lengths[r])].astype(np.uint8).tobytes().decode("utf-8"))
            for r in range(comm.size)]


class PeerFailedError(RuntimeError):
    """Another rank failed (its message is in this one); this rank stops too."""


def agree_on_failure(error, comm, what: str) -> None:
    """Collective: raise on every rank when any rank failed ``what``; else return.

    Each rank passes the exception it caught (or None). A rank that failed re-raises its own; the
    others raise ``PeerFailedError`` quoting the first failed rank's message, so no rank goes on to
    wait for a collective the failed one will never call.
    """
    comm = check_communicator("agree_on_failure", comm)
    if comm.size == 1:
        if error is not None:
            raise error
        return
    messages = gather_objects(None if error is None else f"{type(error).__name__}: {error}", comm)
    if error is not None:
        raise error
    failed = [(r, m) for r, m in enumerate(messages) if m is not None]
    if failed:
        rank, message = failed[0]
        raise PeerFailedError(f"rank {rank} of {comm.size} failed {what}: {message}")
