"""``conv_bn``: a convolution followed by a batch norm, in one pass when nothing is learned.

In evaluation mode a batch norm is an affine map per channel with constant coefficients, the
running statistics' ``y = x·scale + shift`` (``tinyspike/functional/norm.py::affine``). So when
it follows a convolution and no gradient is recorded (``no_grad``: evaluation, inference), the
Numba conv kernel can apply it while it moves each chunk of its output to NCHW
(``tinyspike/kernels/numba_cpu/conv.py::_scatter_affine``), with the norm kernel's own expression
and floating-point flags: the same numbers bit for bit, but one pass over the output instead of
three (conv writes, norm reads, norm writes) and one array of its size instead of two. Those
are the largest arrays of a spiking ResNet (a [T, B, 16, 32, 32] float32 activation at T = 6,
B = 100 is 39 MB): an MS-ResNet-20 evaluation forward went 418 → 378 ms (benchmarks/README.md).

Everywhere else the result is plainly ``bn(conv(x))``, through the two layers: while gradients
are recorded, in training mode, for a conv with a bias, for a norm or conv subclass with its own
forward (the synchronized batch norm), with forward hooks on either layer (an analysis that
hooks them sees them run), with the reference or CUDA kernels, and whenever an argument would be
refused (the layers then raise their usual error).
"""

from __future__ import annotations

import numpy as np

from tinyspike import backend, checks, kernels, tensor_checks
from tinyspike.autograd import Tensor, is_grad_enabled
from tinyspike.functional.norm import affine
from tinyspike.nn.layers import BatchNorm2d, Conv2d


def conv_bn(conv: Conv2d, bn: BatchNorm2d, x):
    """``bn(conv(x))``, in one pass of the conv kernel when it can be (see the module docstring).

    Example (the same numbers either way)::

        >>> import numpy as np
        >>> from tinyspike import Tensor, nn, no_grad
        >>> conv, bn = nn.Conv2d(3, 8, 3, padding=1, generator=0), nn.TDBatchNorm(8).eval()
        >>> bn.running_mean[...] = 0.25
        >>> x = Tensor(np.random.default_rng(0).standard_normal((6, 2, 3, 8, 8)).astype(np.float32))
        >>> with no_grad():
        ...     fused = nn.conv_bn(conv, bn, x)
        >>> bool((fused.numpy() == bn(conv(x)).numpy()).all())
        True
    """
    if not isinstance(conv, Conv2d):
        raise TypeError(f"conv_bn: conv must be an nn.Conv2d, got {checks.kind_of(conv)}")
    if not isinstance(bn, BatchNorm2d):
        raise TypeError(f"conv_bn: bn must be an nn.BatchNorm2d or nn.TDBatchNorm, got {checks.kind_of(bn)}")
    if not _fusable(conv, bn, x):
        return bn(conv(x))
    stride, padding = tensor_checks.conv2d_geometry("conv2d", x, conv.weight, None, conv.stride, conv.padding)
    data = x.data
    x4 = data.reshape((-1,) + data.shape[2:]) if data.ndim == 5 else data  # T folds into the batch
    # The statistics as BatchNormFunction takes them in evaluation mode: float64 copies.
    mean, var = bn.running_mean.astype(np.float64), bn.running_var.astype(np.float64)
    weight = bn.weight.data if bn.weight is not None else None
    bias = bn.bias.data if bn.bias is not None else None
    scale, shift, _, _ = affine(mean, var, weight, bias, bn.eps)
    y, _ = kernels.CONV.numba_cpu.conv2d_forward(x4, conv.weight.data, None, stride, padding, None, norm_affine=(scale, shift))
    return Tensor(y.reshape(data.shape[:2] + y.shape[1:]) if data.ndim == 5 else y)


def _fusable(conv, bn, x) -> bool:
    """Whether ``conv_bn`` may take the fused path: every condition of the module docstring."""
    if is_grad_enabled() or bn.training or backend.name() != "numpy":
        return False
    if type(conv).forward is not Conv2d.forward or type(bn).forward is not BatchNorm2d.forward:
        return False
    if conv.bias is not None or conv._forward_hooks or bn._forward_hooks:
        return False
    if kernels.CONV.pick() is not kernels.CONV.numba_cpu or kernels.NORM.pick() is not kernels.NORM.numba_cpu:
        return False
    if not isinstance(x, Tensor) or x.ndim not in (4, 5) or x.dtype != conv.weight.dtype:
        return False
    return _norm_accepts(bn, conv.out_channels, conv.weight.dtype)


def _norm_accepts(bn, channels: int, dtype) -> bool:
    """The evaluation-mode norm's arguments are what ``functional.batch_norm`` accepts: its γ and β
    (or none) [C] of the conv's dtype, running statistics [C], finite, with a variance >= 0."""
    for parameter in (bn.weight, bn.bias):
        if parameter is not None and (parameter.shape != (channels,) or parameter.dtype != dtype):
            return False
    mean, var = bn.running_mean, bn.running_var
    if not all(isinstance(b, np.ndarray) and b.shape == (channels,) for b in (mean, var)):
        return False
    return bool(np.isfinite(mean).all() and np.isfinite(var).all() and (var >= 0).all())
