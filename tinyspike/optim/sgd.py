"""Stochastic gradient descent with momentum, Nesterov momentum and (L2) weight decay.

PyTorch's formulation, so results can be compared step by step. With g the gradient:

    g ← g + λ·p                                       (weight_decay λ)
    b ← g                          on the first step   (momentum μ > 0)
    b ← μ·b + (1 − dampening)·g    afterwards
    d ← g + μ·b  (nesterov)   or   d ← b  (classical)   or   d ← g  (μ = 0)
    p ← p − lr·d
"""

from __future__ import annotations

from tinyspike import checks
from tinyspike.optim.optimizer import Optimizer


class SGD(Optimizer):
    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(
            params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)
        )

    def _check_hyperparameters(self, group):
        """momentum μ and dampening in [0, 1], finite; nesterov a flag, and only with μ > 0, dampening 0."""
        super()._check_hyperparameters(group)
        for key in ("momentum", "dampening"):
            group[key] = checks.real("SGD", key, group[key], 0.0, 1.0)
        group["nesterov"] = checks.boolean("SGD", "nesterov", group["nesterov"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: nesterov needs momentum > 0 and dampening = 0, got "
                             f"momentum={group['momentum']}, dampening={group['dampening']}")

    def _update(self, param, grad, group, state):
        lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
        p = param.data
        if wd:
            grad = grad + wd * p
        if mu:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.copy()
            else:
                buf *= mu
                buf += (1 - group["dampening"]) * grad
            grad = grad + mu * buf if group["nesterov"] else buf
        p -= lr * grad
