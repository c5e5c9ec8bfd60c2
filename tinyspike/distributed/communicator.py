"""The one interface every collective goes through, and the two in-process implementations.

A ``Communicator`` is a group of ``size`` processes (ranks 0 … size − 1) that call the same
collectives in the same order. tinyspike needs only three:

    allreduce_sum_(buffer)        buffer ← Σ over ranks of every rank's buffer (in place)
    broadcast_(buffer, root)      buffer ← root's buffer on every rank (in place)
    barrier()                     return only when every rank has reached it

A buffer is a contiguous 1-D array (NumPy, or CuPy for the GPU implementations). Everything
above (gradient buckets, synchronized batch norm, the loader's shards) is written against this
interface alone, so a new transport is one small class.

Hangs. A collective waits for every rank; a rank that died or stopped calling collectives would
make the others wait forever. Every implementation therefore takes a ``timeout`` (seconds) and
raises ``CommunicationTimeoutError`` naming the operation, the rank and the world size when a
collective has not completed in time. The MPI implementation then aborts the whole job at exit
(see ``distributed.mpi``), so that ``mpirun`` ends with a non-zero status instead of hanging.

Implementations:
    SingleProcess       world size 1: every collective is the identity (no MPI needed)
    SimulatedGroup      ``size`` ranks as threads of one process, for tests (gradient checks of
                        synchronized batch norm, equality of a data-parallel step)
    MPICommunicator     ``distributed.mpi``: mpi4py, host arrays (CuPy copied, or CUDA-aware)
    NCCLCommunicator    ``distributed.nccl``: cupy.cuda.nccl, device arrays, one GPU per rank
"""

from __future__ import annotations

import threading

from tinyspike import backend, checks

DEFAULT_TIMEOUT = 300.0  # seconds: far above any collective of a training step, far below "forever"


class CommunicationTimeoutError(RuntimeError):
    """A collective did not complete within the timeout: another rank died, stopped or is stuck."""


def check_timeout(where: str, timeout) -> float:
    return checks.real(where, "timeout", timeout, low=0.0, low_open=True)


def timeout_message(operation: str, rank: int, size: int, timeout: float) -> str:
    return (
        f"distributed: {operation} did not complete within {timeout:g} s on rank {rank} of {size}: "
        "another rank has died, stopped calling collectives or is stuck; stopping this run "
        "(raise the limit with timeout=... if one step really takes that long)"
    )


def check_buffer(where: str, buffer):
    """A collective's buffer must be a contiguous 1-D backend array (views would not be updated)."""
    if not backend.is_array(buffer):
        raise TypeError(f"{where}: buffer must be a NumPy or CuPy array, got {checks.kind_of(buffer)}")
    if buffer.ndim != 1 or not buffer.flags.c_contiguous:
        raise ValueError(f"{where}: buffer must be a contiguous 1-D array, got shape {tuple(buffer.shape)}")
    return buffer


def check_root(where: str, root, size: int) -> int:
    return checks.integer(where, "root", root, 0, size - 1)


class Communicator:
    """The interface (see the module docstring). ``rank``, ``size`` and ``timeout`` are attributes."""

    rank: int = 0
    size: int = 1
    timeout: float = DEFAULT_TIMEOUT
    name: str = "abstract"
    device_arrays: bool = False  # True: buffers must be CuPy arrays (NCCL)

    def allreduce_sum_(self, buffer):  # pragma: no cover - abstract
        raise NotImplementedError

    def broadcast_(self, buffer, root: int = 0):  # pragma: no cover - abstract
        raise NotImplementedError

    def barrier(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def is_root(self) -> bool:
        """Rank 0: the one that prints, writes the run folder and the checkpoints."""
        return self.rank == 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size}, timeout={self.timeout:g})"


class SingleProcess(Communicator):
    """World size 1: a sum over one rank is the buffer itself, a broadcast from rank 0 is a no-op."""

    name = "single"

    def __init__(self, timeout=DEFAULT_TIMEOUT):
        self.timeout = check_timeout("SingleProcess", timeout)

    def allreduce_sum_(self, buffer):
        return check_buffer("SingleProcess.allreduce_sum_", buffer)

    def broadcast_(self, buffer, root=0):
        check_root("SingleProcess.broadcast_", root, 1)
        return check_buffer("SingleProcess.broadcast_", buffer)

    def barrier(self) -> None:
        return None


class SimulatedGroup:
    """``size`` ranks of one process, run as threads, sharing one exchange area.

    ``SimulatedGroup(2).communicators`` gives one ``Communicator`` per rank; run each rank's code
    in its own thread (``run(fn)`` does that and returns the per-rank results in rank order).
    A collective is two barriers: every rank deposits a copy of its buffer, then each rank sums
    the deposits **in rank order** (so every rank gets bit-identical results, as MPI's reductions
    do), then a second barrier keeps the area until everyone has read it. A rank that never
    arrives breaks the barrier after ``timeout`` and every waiting rank raises
    ``CommunicationTimeoutError``, which is how the tests check the no-hang guarantee in-process.
    """

    def __init__(self, size, timeout=DEFAULT_TIMEOUT):
        self.size = checks.integer("SimulatedGroup", "size", size, low=1)
        self.timeout = check_timeout("SimulatedGroup", timeout)
        self._barrier = threading.Barrier(self.size, timeout=self.timeout)
        self._slots = [None] * self.size
        self.communicators = [SimulatedRank(self, r) for r in range(self.size)]

    def _wait(self, operation: str, rank: int) -> None:
        try:
            self._barrier.wait()
        except threading.BrokenBarrierError:
            raise CommunicationTimeoutError(timeout_message(operation, rank, self.size, self.timeout)) from None

    def run(self, fn):
        """``fn(comm)`` on every rank in its own thread; the results in rank order (errors re-raised)."""
        results, errors = [None] * self.size, [None] * self.size

        def work(r):
            try:
                results[r] = fn(self.communicators[r])
            except BaseException as err:  # noqa: BLE001 - re-raised in the caller below
                errors[r] = err
                self._barrier.abort()  # the other ranks stop waiting for this one

        threads = [threading.Thread(target=work, args=(r,), daemon=True) for r in range(self.size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # The first error that is not a consequence of another rank's failure, else the first.
        first = next((e for e in errors if e is not None and not isinstance(e, CommunicationTimeoutError)), None)
        first = first or next((e for e in errors if e is not None), None)
        if first is not None:
            self._barrier.reset()
            raise first
        return results


class SimulatedRank(Communicator):
    """One rank of a ``SimulatedGroup`` (use it from that rank's thread only)."""

    name = "simulated"

    def __init__(self, group: SimulatedGroup, rank: int):
        self.group, self.rank, self.size, self.timeout = group, rank, group.size, group.timeout

    def allreduce_sum_(self, buffer):
        check_buffer("SimulatedRank.allreduce_sum_", buffer)
        g = self.group
        g._slots[self.rank] = buffer.copy()
        g._wait("allreduce_sum_", self.rank)
        total = g._slots[0].copy()
        for other in g._slots[1:]:
            total += other
        g._wait("allreduce_sum_", self.rank)
        buffer[...] = total
        return buffer

    def broadcast_(self, buffer, root=0):
        check_buffer("SimulatedRank.broadcast_", buffer)
        root = check_root("SimulatedRank.broadcast_", root, self.size)
        g = self.group
        if self.rank == root:
            g._slots[root] = buffer.copy()
        g._wait("broadcast_", self.rank)
        source = g._slots[root]
        if source.shape != buffer.shape or source.dtype != buffer.dtype:
            raise ValueError(
                f"SimulatedRank.broadcast_: rank {self.rank} has a {buffer.dtype} buffer of {buffer.size} "
                f"elements, root {root} sent {source.dtype} × {source.size}"
            )
        if self.rank != root:
            buffer[...] = source
        g._wait("broadcast_", self.rank)
        return buffer

    def barrier(self) -> None:
        self.group._wait("barrier", self.rank)
