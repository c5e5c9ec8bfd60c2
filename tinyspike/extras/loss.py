"""Mean squared error: a regression loss no trainer here uses (they classify with
``functional.loss.cross_entropy``). Reductions as there: "mean", "sum" or "none" (per element)."""

from __future__ import annotations

from tinyspike import backend, checks, tensor_checks
from tinyspike.autograd import Function


class MSELossFunction(Function):
    """ℓ = (x − t)² element-wise, reduced by mean or sum (or not).

    Backward: ∂ℓ/∂x = 2(x − t), ∂ℓ/∂t = −2(x − t); times g (and 1/n for "mean", n = x.size).
    Saves the difference x − t.
    """

    @staticmethod
    def forward(ctx, x, target, reduction):
        diff = x - target
        losses = diff * diff
        ctx.save_for_backward(diff)
        ctx.reduction = reduction
        if reduction == "none":
            return losses
        total = losses.sum()
        if reduction == "mean":
            total = total / x.dtype.type(x.size)
        return backend.array_module_of(x).asarray(total, dtype=x.dtype)  # 0-d array, not a scalar

    @staticmethod
    def backward(ctx, grad_loss):
        (diff,) = ctx.saved_tensors
        if ctx.reduction == "none":
            grad = 2 * diff * grad_loss
        else:
            scale = 2 * grad_loss / diff.size if ctx.reduction == "mean" else 2 * grad_loss
            grad = diff * scale.astype(diff.dtype)
        needs_x, needs_t = ctx.needs_input_grad[:2]
        return (grad if needs_x else None), (-grad if needs_t else None), None


def mse_loss(input, target, reduction="mean"):  # noqa: A002 - PyTorch's argument name
    """Mean squared error between ``input`` and ``target`` of the same shape and dtype."""
    fn = "mse_loss"
    x = tensor_checks.tensor_arg(fn, "input", input)
    t = tensor_checks.tensor_arg(fn, "target", target)
    if x.shape != t.shape:
        raise ValueError(f"{fn}: target must have input's shape {tuple(x.shape)}, got {tuple(t.shape)}")
    checks.same_dtype(fn, "target", t, "input", x)
    checks.same_backend(fn, "target", t, "input", x)
    reduction = tensor_checks.reduction_arg(fn, reduction)
    return MSELossFunction.apply(input, target, reduction)
