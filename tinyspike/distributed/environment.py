"""Which process am I? Rank and world size from the launcher's environment, and ``init``.

``mpirun`` (Open MPI, MPICH, Intel MPI), ``srun`` (Slurm with PMI/PMIx) and similar launchers
tell each process its rank and the world size in environment variables. Reading them first lets a
process that was *not* launched that way (world size 1, the usual case) run without importing,
or even having installed, mpi4py.
"""

from __future__ import annotations

import os

from tinyspike import checks
from tinyspike.distributed.communicator import DEFAULT_TIMEOUT, Communicator, SingleProcess, check_timeout

# (world size, rank, local rank) variables of the common launchers, in the order they are tried.
_LAUNCHERS = (
    ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK"),  # Open MPI
    ("PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID"),  # MPICH / Intel MPI (Hydra)
    ("PMIX_SIZE", "PMIX_RANK", "PMIX_LOCAL_RANK"),  # PMIx launchers
    ("SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID"),  # srun
)

BACKENDS = ("auto", "single", "mpi", "nccl")


def launcher_world_size(environ=None) -> int:
    """The world size the launcher announced (1 when no launcher variable is set)."""
    environ = os.environ if environ is None else environ
    for size_var, _, _ in _LAUNCHERS:
        value = environ.get(size_var)
        if value is not None:
            try:
                return max(int(value), 1)
            except ValueError:
                raise ValueError(f"distributed: environment variable {size_var} must be an integer, got {value!r}") from None
    return 1


def launcher_rank(environ=None) -> int:
    """This process's rank as the launcher announced it (0 when no launcher variable is set)."""
    environ = os.environ if environ is None else environ
    for size_var, rank_var, _ in _LAUNCHERS:
        if size_var in environ:
            try:
                return max(int(environ.get(rank_var, "0")), 0)
            except ValueError:
                return 0
    return 0


def launcher_local_rank(environ=None) -> int:
    """This process's rank among those on its node (0 when unknown): which GPU it should use."""
    environ = os.environ if environ is None else environ
    for size_var, rank_var, local_var in _LAUNCHERS:
        if size_var in environ:
            value = environ.get(local_var, environ.get(rank_var, "0"))
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def init(backend_name="auto", timeout=DEFAULT_TIMEOUT, environ=None) -> Communicator:
    """The communicator of this process.

    ``backend_name``:
        "auto"    MPI when a launcher announced a world size > 1, else ``SingleProcess``
                  (then with the CuPy backend the MPI communicator is still the right default:
                  ask for "nccl" explicitly to reduce on the GPUs);
        "single"  ``SingleProcess`` (world size 1), whatever the environment says;
        "mpi"     ``MPICommunicator`` (mpi4py required, even for one process);
        "nccl"    ``NCCLCommunicator`` bootstrapped over MPI (CuPy backend required: a
                  ``ValueError`` on NumPy).
    ``timeout``: seconds a collective may take before ``CommunicationTimeoutError``.
    """
    name = checks.choice("distributed.init", "backend", backend_name, BACKENDS)
    timeout = check_timeout("distributed.init", timeout)
    if name == "nccl":
        from tinyspike.distributed.nccl import NCCLCommunicator, check_cupy_backend

        check_cupy_backend("distributed.init")  # before MPI starts: the message must come first
    if name == "single" or (name == "auto" and launcher_world_size(environ) == 1):
        return SingleProcess(timeout)
    from tinyspike.distributed.mpi import MPICommunicator

    mpi = MPICommunicator(timeout=timeout)
    if name == "nccl":
        return NCCLCommunicator(mpi, launcher_local_rank(environ), timeout)
    return mpi
