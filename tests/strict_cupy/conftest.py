"""The ``strict_cupy`` fixture: the strict CuPy stand-in as ``cupy``, for the tests of this folder only.

While it is active, ``import cupy`` gives ``fake_cupy.module``, ``tinyspike.use("cupy")`` computes
with it, and every Function picks the *reference* kernels (``kernels.use("reference")``): the stand-in is an array library,
it cannot compile the CUDA kernels (``kernels/cuda``), whose sources ``tests/test_cuda_sources.py``
compiles and ``tests/test_gpu.py`` runs on a real GPU. Forcing the reference kernels (rather than
hoping a failed CUDA call falls back) keeps the choice explicit: the NumPy side of every comparison
runs the same reference kernels, so the two backends do the same arithmetic and agree exactly.
Afterwards the real ``cupy`` (or its absence) is put back and the backend is NumPy/float32 again.
"""

import numpy as np
import pytest

import fake_cupy
from tinyspike import backend, kernels


@pytest.fixture(scope="module")
def strict_cupy():
    previous = fake_cupy.install()
    try:
        with kernels.use("reference"):
            yield fake_cupy.module
    finally:
        fake_cupy.uninstall(previous)
        backend.use("numpy")
        backend.set_default_dtype(np.float32)


@pytest.fixture(autouse=True)
def _restore_backend_after_each_test():
    """Tests here switch to the stand-in with ``backend.use("cupy")``; a test that fails half-way
    must not leave the next one (in this module or after it) on the stand-in or in float64."""
    dtype = backend.default_dtype()
    yield
    backend.use("numpy")
    backend.set_default_dtype(dtype)
