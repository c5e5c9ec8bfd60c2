"""Functional ops outside the readable core: no model, trainer or lesson uses them.

    activation.py   relu, softmax, log_softmax
    pool.py         max_pool2d, adaptive_avg_pool2d
    loss.py         mse_loss

They keep the core's contract (a Function with its backward derived in the docstring, arguments
checked at the public boundary with ``tinyspike.tensor_checks``) and are re-exported by
``tinyspike.functional``, so ``F.relu`` and ``F.max_pool2d`` work as before.
"""

# tinyspike.functional first: it re-exports this package's ops, and importing it from here,
# before any submodule below, makes either import order work (whichever package comes first).
import tinyspike.functional  # noqa: F401, E402
from tinyspike.extras.activation import log_softmax, relu, softmax  # noqa: E402
from tinyspike.extras.loss import mse_loss  # noqa: E402
from tinyspike.extras.pool import adaptive_avg_pool2d, max_pool2d  # noqa: E402

__all__ = ["relu", "softmax", "log_softmax", "max_pool2d", "adaptive_avg_pool2d", "mse_loss"]
