"""The differentiable operations of spiking networks, each a ``Function`` with a hand-derived backward.

    from tinyspike import functional as F
    spikes = F.lif(F.batch_norm(F.conv2d(x, w, padding=1), g, b, rm, rv, training=True))

Each module's docstrings state the forward formula and derive the backward (REFERENCE.md notation);
the heavy loops live in ``tinyspike.kernels``. ``docs/gradients.md`` lists every Function on one page.
"""

from tinyspike.functional.conv import conv2d
from tinyspike.functional.dropout import dropout
from tinyspike.functional.lif import lif
from tinyspike.functional.linear import linear
from tinyspike.functional.loss import cross_entropy
from tinyspike.functional.norm import batch_norm
from tinyspike.functional.pool import avg_pool2d, global_avg_pool2d

# Ops no model, trainer or lesson needs live in tinyspike/extras/, outside the readable core;
# imported last, once the modules above (whose helpers they use) are complete.
from tinyspike.extras.activation import log_softmax, relu, softmax  # noqa: E402
from tinyspike.extras.loss import mse_loss  # noqa: E402
from tinyspike.extras.pool import adaptive_avg_pool2d, max_pool2d  # noqa: E402

__all__ = [
    "conv2d", "batch_norm", "lif", "avg_pool2d", "max_pool2d", "adaptive_avg_pool2d", "global_avg_pool2d",
    "linear", "dropout", "cross_entropy", "mse_loss", "relu", "softmax", "log_softmax",
]
