"""NCCL on two GPUs: the GPU twin of test_mpirun.py (``tests/test_gpu.py`` style).

Skipped, with the reason, unless CuPy sees at least two GPUs and mpirun, mpi4py and NCCL
(``cupy.cuda.nccl``, the ``nvidia-nccl-cu12`` wheel) are all there. It has not run yet: no machine
with two GPUs has been available to the project. Tolerance: 1e-6 relative in float64 over 4 SGD
steps against one CPU process with the global batch (the MPI test measures ~1e-13; cuBLAS sums
in another order).
"""

import pytest

from tests.distributed.test_mpirun import _relative_differences, _run, _skip_reason


def _gpu_skip_reason():
    reason = _skip_reason()
    if reason:
        return reason
    try:
        import cupy
        from cupy.cuda import nccl  # noqa: F401
    except ImportError as err:
        return f"CuPy with NCCL is not installed ({err})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # noqa: BLE001 - CuPy raises its own CUDA error types
        return f"CuPy sees no usable GPU ({type(err).__name__}: {err})"
    return None if count >= 2 else f"NCCL needs two GPUs, CuPy sees {count}"


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(_gpu_skip_reason() is not None, reason=str(_gpu_skip_reason()))]


def test_two_gpus_over_nccl_train_like_one_cpu_process_with_the_global_batch(tmp_path):
    steps, batch = 4, 32
    cpu, gpus = tmp_path / "cpu.npz", tmp_path / "gpus.npz"
    for args, ranks, out in (([], None, cpu), (["nccl"], 2, gpus)):
        done = _run(["train", str(out), str(steps), str(batch)] + args, ranks)
        assert done.returncode == 0, done.stdout + done.stderr
    diffs = _relative_differences(cpu, gpus)
    worst = max(diffs, key=diffs.get)
    assert diffs[worst] < 1e-6, f"{worst}: relative difference {diffs[worst]:.3g}"
