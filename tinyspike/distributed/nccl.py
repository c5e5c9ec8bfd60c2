"""The NCCL implementation of ``Communicator``: CuPy device arrays, one GPU per rank.

NCCL (``cupy.cuda.nccl``, from the ``nvidia-nccl-cu12`` wheel) runs the collectives on the GPUs
themselves, over NVLink/PCIe/InfiniBand, without a trip through host memory. It needs a bootstrap
to agree on a *unique id*: rank 0 creates it and MPI broadcasts it (so NCCL runs are still started
with ``mpirun``), then every rank builds its ``NcclCommunicator(size, id, rank)``. Each rank uses
GPU ``local_rank mod device_count`` (``OMPI_COMM_WORLD_LOCAL_RANK``, ...), one GPU per rank.

Streams. NCCL calls are enqueued on the current CuPy stream, after the kernels that produced the
buffer and before the ones that use it, so no host synchronisation is needed for correctness. To
keep the no-hang guarantee, each collective records an event and the host polls it until it
completes or ``timeout`` passes; on a timeout the NCCL communicator is aborted (``abort()``,
which makes the stuck kernels return) and ``CommunicationTimeoutError`` is raised. (This poll
costs one host synchronisation per collective; the gradient buckets make collectives few.)

NCCL asked for on the NumPy backend is a ``ValueError``: NCCL cannot reduce host arrays.
"""

from __future__ import annotations

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


def nccl_dtype(nccl, dtype) -> int:
    """NCCL's code for a NumPy dtype (the dtypes gradients and statistics use)."""
    import numpy as np

    codes = {
        np.dtype(np.float32): nccl.NCCL_FLOAT32,
        np.dtype(np.float64): nccl.NCCL_FLOAT64,
        np.dtype(np.float16): nccl.NCCL_FLOAT16,
        np.dtype(np.int32): nccl.NCCL_INT32,
        np.dtype(np.int64): nccl.NCCL_INT64,
    }
    try:
        return codes[np.dtype(dtype)]
    except KeyError:
        raise ValueError(f"NCCLCommunicator: no NCCL type for dtype {np.dtype(dtype)}") from None


def check_cupy_backend(where: str) -> None:
    if backend.name() != "cupy":
        raise ValueError(
            f"{where}: NCCL reduces GPU arrays and needs the CuPy backend, got backend {backend.name()!r}; "
            "use tinyspike.use('cupy') (--backend cupy), or backend='mpi' for CPU ranks"
        )


def import_nccl():
    try:
        from cupy.cuda import nccl
    except ImportError as err:
        raise ImportError(
            f"distributed: NCCL was asked for but cupy.cuda.nccl cannot be imported ({err}); "
            "install the nvidia-nccl-cu12 wheel beside cupy-cuda12x"
        ) from None
    if not getattr(nccl, "available", True):
        raise ImportError("distributed: CuPy was built without NCCL; install the nvidia-nccl-cu12 wheel")
    return nccl


class NCCLCommunicator(Communicator):
    """``Communicator`` over NCCL, bootstrapped by ``bootstrap`` (an ``MPICommunicator``)."""

    name = "nccl"
    device_arrays = True

    def __init__(self, bootstrap, local_rank: int, timeout=DEFAULT_TIMEOUT):
        check_cupy_backend("NCCLCommunicator")
        self.timeout = check_timeout("NCCLCommunicator", timeout)
        import cupy

        self.cupy, self.nccl = cupy, import_nccl()
        self.rank, self.size = bootstrap.rank, bootstrap.size
        self.device = int(local_rank) % cupy.cuda.runtime.getDeviceCount()
        cupy.cuda.Device(self.device).use()
        unique_id = self.nccl.get_unique_id() if bootstrap.rank == 0 else None
        unique_id = bootstrap.broadcast_object(unique_id, root=0)
        self.comm = self.nccl.NcclCommunicator(self.size, unique_id, self.rank)
        self.bootstrap = bootstrap

    def _check(self, where: str, buffer):
        check_buffer(where, buffer)
        if not backend.is_gpu_array(buffer):
            raise TypeError(f"{where}: NCCL needs a CuPy array, got {type(buffer).__name__}")
        return buffer

    def allreduce_sum_(self, buffer):
        self._check("NCCLCommunicator.allreduce_sum_", buffer)
        stream = self.cupy.cuda.get_current_stream()
        ptr = buffer.data.ptr
        self.comm.allReduce(ptr, ptr, buffer.size, nccl_dtype(self.nccl, buffer.dtype), self.nccl.NCCL_SUM, stream.ptr)
        self._wait(stream, "allreduce_sum_")
        return buffer

    def broadcast_(self, buffer, root=0):
        self._check("NCCLCommunicator.broadcast_", buffer)
        root = check_root("NCCLCommunicator.broadcast_", root, self.size)
        stream = self.cupy.cuda.get_current_stream()
        ptr = buffer.data.ptr
        self.comm.bcast(ptr, buffer.size, nccl_dtype(self.nccl, buffer.dtype), root, stream.ptr)
        self._wait(stream, "broadcast_")
        return buffer

    def barrier(self) -> None:
        # An all-reduce of one number is a barrier on the GPU stream, and the poll makes it one on the host.
        self.allreduce_sum_(self.cupy.zeros(1, dtype=self.cupy.float32))

    def _wait(self, stream, operation: str) -> None:
        event = stream.record()
        deadline = time.monotonic() + self.timeout
        while not event.done:
            if time.monotonic() > deadline:
                self.comm.abort()
                self.bootstrap._abort_at_exit = True  # MPI_Finalize would wait for the dead rank
                raise CommunicationTimeoutError(timeout_message(operation, self.rank, self.size, self.timeout))
            time.sleep(1e-5)
