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

# No environment variable is set here: the Numba CPU kernels of the training step run on
# tinyspike's own worker threads (kernels/numba_cpu/workers.py), not on Numba's OpenMP threads,
# so OpenMP's wait policy neither helps nor hurts them, and importing tinyspike leaves it (and
# so the speed of any other OpenMP user in the process, PyTorch for one) as the user set it.

from tinyspike.backend import seed, to_numpy, use
from tinyspike.autograd import Function, Tensor, enable_grad, is_grad_enabled, no_grad
from tinyspike.gradcheck import GradcheckError, gradcheck

__version__ = "0.1.0"

__all__ = [
    "use", "seed", "to_numpy", "Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled",
    "gradcheck", "GradcheckError", "__version__",
]
