"""Helpers shared by test files: ``from helpers import dev, host``.

Not in ``conftest.py``: ``tests/strict_cupy`` has a conftest of its own, and ``import conftest``
from a test file finds whichever conftest comes first on ``sys.path`` when the whole suite runs.
"""

import numpy as np

from tinyspike import backend
from tinyspike.autograd import Tensor


def dev(a, dtype=None):
    """``a`` (an array or nested list) as an array on the current backend's device (of ``dtype``,
    if given; else ``a``'s own)."""
    return backend.to_device(np.asarray(a, dtype=dtype))


def host(a):
    """A NumPy copy of a Tensor's or array's data."""
    return backend.to_numpy(a.data if isinstance(a, Tensor) else a)
