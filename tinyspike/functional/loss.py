"""The classification loss: cross-entropy on logits, with label smoothing.

Reductions: ``"mean"`` (the default) and ``"sum"`` return a 0-d Tensor, ``"none"`` the
per-sample losses. (Mean squared error, which no trainer uses, is in ``tinyspike/extras/loss.py``.)
"""

from __future__ import annotations

from tinyspike import backend, checks, tensor_checks
from tinyspike.autograd import Function


class CrossEntropyFunction(Function):
    """Cross-entropy of softmax(z) against a (smoothed) one-hot target, fused with log-softmax.

    For a sample with logits z ∈ R^K, class y and smoothing ε, the target distribution is
    q_k = (1 − ε)·1[k = y] + ε/K, and with log p = log_softmax(z) (max-shifted, stable):

        ℓ = −Σ_k q_k log p_k = (1 − ε)·(−log p_y) + ε·(−(1/K) Σ_k log p_k)

    (PyTorch's ``label_smoothing``). Backward: ∂(−log p_k)/∂z_j = p_j − δ_kj, and Σ_k q_k = 1, so

        ∂ℓ/∂z_j = Σ_k q_k (p_j − δ_kj) = p_j − q_j.

    The batch loss is Σ_i ℓ_i ("sum") or (1/N) Σ_i ℓ_i ("mean"), so dL/dz_i = g·(p_i − q_i)
    (divided by N for "mean"); for "none", g is a vector and row i is scaled by g_i.
    Saves p = softmax(z) [N, K] and the targets (both small).
    """

    @staticmethod
    def forward(ctx, logits, target, label_smoothing, reduction):
        xp = backend.array_module_of(logits)
        n, k = logits.shape
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_p = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        rows = xp.arange(n)
        losses = -log_p[rows, target]
        if label_smoothing > 0:
            eps = logits.dtype.type(label_smoothing)
            losses = (1 - eps) * losses - (eps / k) * log_p.sum(axis=1)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(xp.exp(log_p), target)
        ctx.label_smoothing, ctx.reduction = label_smoothing, reduction
        if reduction == "none":
            return losses
        total = losses.sum()
        if reduction == "mean":
            total = total / logits.dtype.type(n)
        return xp.asarray(total, dtype=logits.dtype)  # 0-d array (NumPy's sum gives a scalar)

    @staticmethod
    def backward(ctx, grad_loss):
        p, target = ctx.saved_tensors
        xp = backend.array_module_of(p)
        n, k = p.shape
        eps = p.dtype.type(ctx.label_smoothing)
        grad = p - eps / k  # p − q, off the target class
        grad[xp.arange(n), target] -= 1 - eps  # and on it
        if ctx.reduction == "none":
            grad *= grad_loss[:, None]
        else:
            scale = grad_loss / n if ctx.reduction == "mean" else grad_loss
            grad *= scale.astype(p.dtype)
        return grad, None, None, None


def cross_entropy(logits, target, label_smoothing=0.0, reduction="mean"):
    """Cross-entropy of ``logits`` [N, K] against integer class indices ``target`` [N] in [0, K).

    ``label_smoothing`` ε in [0, 1) mixes the one-hot target with the uniform distribution:
    q = (1 − ε)·onehot + ε/K. ``reduction``: "mean" | "sum" | "none".
    """
    fn = "cross_entropy"
    z = tensor_checks.tensor_arg(fn, "logits", logits, ndims=(2,))
    t = tensor_checks.class_targets(fn, target, z)
    label_smoothing = checks.real(fn, "label_smoothing", label_smoothing, 0.0, 1.0, high_open=True)
    reduction = tensor_checks.reduction_arg(fn, reduction)
    return CrossEntropyFunction.apply(logits, t, label_smoothing, reduction)
