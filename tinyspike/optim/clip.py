"""Gradient clipping by global norm: rescale all gradients together when their joint norm is large.

    total = (Σ_p ‖g_p‖^q)^(1/q)        (q = norm_type; q = inf: max |g|)
    g_p ← g_p · max_norm / (total + 1e-6)     only when that factor is < 1

The direction of the full gradient is kept; only its length is capped (PyTorch's
``clip_grad_norm_``, including the 1e-6).
"""

from __future__ import annotations

import math

from tinyspike import backend, checks
from tinyspike.autograd import Tensor
from tinyspike.optim.optimizer import parameter_list


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False) -> float:
    """Clip the gradients of ``parameters`` in place to a joint ``norm_type`` norm ≤ ``max_norm``.

    Returns the total norm *before* clipping (a float; log it to watch for exploding gradients).
    Parameters without a gradient are skipped. With ``error_if_nonfinite``, a NaN/inf norm raises.
    """
    where = "clip_grad_norm_"
    parameters = parameter_list(where, "parameters", parameters)
    for p in parameters:
        if not isinstance(p, Tensor):
            raise TypeError(f"{where}: parameters must be Tensors (model.parameters()), got a {checks.kind_of(p)}")
    max_norm = checks.real(where, "max_norm", max_norm, low=0.0)
    norm_type = checks.real(where, "norm_type", norm_type, low=0.0, low_open=True, finite=False)  # inf: max |g|
    error_if_nonfinite = checks.boolean(where, "error_if_nonfinite", error_if_nonfinite)
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    # One norm per parameter on the device, stacked, then one host-device synchronisation per call
    # (not one per parameter).
    xp = backend.array_module_of(grads[0])
    if math.isinf(norm_type):
        total = float(xp.stack([abs(g).max().astype(xp.float64) for g in grads]).max().item())
    elif norm_type == 2:
        norms = xp.stack([xp.linalg.norm(g.reshape(-1)).astype(xp.float64) for g in grads])  # BLAS nrm2: no overflow
        total = float(xp.linalg.norm(norms).item())
    else:
        parts = xp.stack([(abs(g.astype(xp.float64)) ** norm_type).sum() for g in grads])
        total = math.fsum(backend.to_numpy(parts).tolist()) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise FloatingPointError(f"clip_grad_norm_: the total gradient norm is {total}")
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        for g in grads:
            g *= g.dtype.type(scale)
    return total
