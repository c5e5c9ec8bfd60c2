"""tinyspike: deep residual spiking neural networks (MS-ResNet), from scratch, to be read and checked.

The layers, each importing only the ones above it (see DESIGN.md):

    backend     numpy | cupy, dtype defaults, seeding         tinyspike.use("cupy")
    autograd    Tensor, Function, backward(), no_grad()        tinyspike.Tensor
    kernels     reference / numba_cpu / cuda hot loops
    functional  conv2d, batch_norm, lif, pools, losses         tinyspike.functional as F
    nn          Module, layers, checkpoints                    tinyspike.nn
    models      MS-ResNet and its comparison family            tinyspike.models.build("ms_resnet20")
    optim       SGD, Adam(W), schedules, clipping              tinyspike.optim
    data        CIFAR-10, CIFAR10-DVS, N-MNIST, digits         tinyspike.data
    train       Trainer, run folders, exact resume             tinyspike.train
    analysis    firing rates, SyOPs and energy                 tinyspike.analysis
    cli         tinyspike train | eval | info
"""

import os

# OpenMP waiting policy for the Numba kernels. By default an OpenMP worker spins after a parallel
# loop, waiting for the next one. On a machine with few cores that spinning steals the core that
# OpenBLAS (the conv GEMMs) or another process needs, and a parallel kernel then waits for a
# scheduler tick to get it back. Passive waiting removed that (the measurements are in
# benchmarks/README.md, "Training step"). Set only if the user has not chosen, and before any
# OpenMP loop has run.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from tinyspike.backend import seed, to_numpy, use  # noqa: E402
from tinyspike.autograd import Function, Tensor, enable_grad, is_grad_enabled, no_grad  # noqa: E402
from tinyspike.gradcheck import GradcheckError, gradcheck  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "use", "seed", "to_numpy", "Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled",
    "gradcheck", "GradcheckError", "__version__",
]
