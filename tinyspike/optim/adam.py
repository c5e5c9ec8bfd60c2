"""Adam and AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019), PyTorch's formulation.

With g the gradient and t the step number of this parameter (from 1):

    g ← g + λ·p                        Adam's weight decay (L2, through the gradient)
    p ← p·(1 − lr·λ)                   AdamW's weight decay (decoupled, before the update)
    m ← β₁·m + (1 − β₁)·g              v ← β₂·v + (1 − β₂)·g²
    p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
"""

from __future__ import annotations

import math

from tinyspike import backend, checks
from tinyspike.optim.optimizer import Optimizer


class Adam(Optimizer):
    decoupled_weight_decay = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _check_hyperparameters(self, group):
        """betas: a pair (β₁, β₂), each finite in [0, 1) (β = 1 would never forget, and 1 − βᵗ = 0)."""
        super()._check_hyperparameters(group)
        group["betas"] = checks.reals(type(self).__name__, "betas", group["betas"], length=2, low=0.0, high=1.0,
                                      high_open=True)

    def _update(self, param, grad, group, state):
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        p = param.data
        if wd and self.decoupled_weight_decay:
            p *= 1 - lr * wd
        elif wd:
            grad = grad + wd * p
        if "exp_avg" not in state:
            state["step"] = 0
            state["exp_avg"] = backend.array_module_of(p).zeros_like(p)
            state["exp_avg_sq"] = backend.array_module_of(p).zeros_like(p)
        state["step"] += 1
        m, v, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
        m *= beta1
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * (grad * grad)
        denom = v ** 0.5
        denom /= math.sqrt(1 - beta2**t)
        denom += eps
        p -= (lr / (1 - beta1**t)) * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (default λ = 0.01, as PyTorch)."""

    decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)
