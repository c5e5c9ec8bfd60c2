"""The fully connected layer: y = x · Wᵀ + b, with W stored [out_features, in_features] (as PyTorch)."""

from __future__ import annotations

from tinyspike import tensor_checks
from tinyspike.autograd import Function

_FN = "linear"


class LinearFunction(Function):
    """y[..., o] = Σ_i x[..., i] · W[o, i] + b[o]   (any number of leading dims, flattened to rows).

    Backward, with g = dL/dy and rows r running over all leading positions:

        dL/dx[r, i] = Σ_o g[r, o] · W[o, i]         dx = g · W
        dL/dW[o, i] = Σ_r g[r, o] · x[r, i]         dW = gᵀ · x
        dL/db[o]    = Σ_r g[r, o]

    Saves x only when W's gradient is wanted, and W only when x's is (each is needed only for
    the other's gradient).
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        y = x @ weight.T
        if bias is not None:
            y += bias
        needs_x, needs_w = ctx.needs_input_grad[:2]
        ctx.save_for_backward(x if needs_w else None, weight if needs_x else None)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, weight = ctx.saved_tensors
        needs_x, needs_w, needs_b = ctx.needs_input_grad[:3]
        out_features = grad_y.shape[-1]
        g2 = grad_y.reshape(-1, out_features)
        grad_x = grad_w = grad_b = None
        if needs_x:
            grad_x = grad_y @ weight
        if needs_w:
            grad_w = g2.T @ x.reshape(-1, x.shape[-1])
        if needs_b:
            grad_b = g2.sum(axis=0)
        return grad_x, grad_w, grad_b


def linear(x, weight, bias=None):
    """y = x · Wᵀ + b for x [..., in_features], weight [out_features, in_features], bias [out_features]."""
    tensor_checks.in_features(_FN, x, weight, bias)
    return LinearFunction.apply(x, weight, bias)

