"""Inverted dropout: zero each element with probability p in training, and scale the survivors
by 1/(1 − p) so that E[y] = x and evaluation needs no rescaling (it is the identity)."""

from __future__ import annotations

from tinyspike import backend, checks, tensor_checks
from tinyspike.autograd import Function, Tensor

_FN = "dropout"


class DropoutFunction(Function):
    """y = x · m / (1 − p) with a fixed mask m ∈ {0, 1} (drawn before the call).

    Backward: y is linear in x for a given mask, dL/dx = g · m / (1 − p).
    Saves the mask as bool (one byte per element).
    """

    @staticmethod
    def forward(ctx, x, mask, scale):
        y = x * mask
        y *= x.dtype.type(scale)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(mask)
        ctx.scale = scale
        return y

    @staticmethod
    def backward(ctx, grad_y):
        (mask,) = ctx.saved_tensors
        grad = grad_y * mask
        grad *= grad_y.dtype.type(ctx.scale)
        return grad, None, None


def dropout(x, p, training, rng=None):
    """Inverted dropout of ``x`` with drop probability ``p`` in [0, 1).

    ``training=False`` (or p = 0) returns x unchanged. The mask comes from ``rng`` (a
    ``Generator`` of x's backend: ``np.random.default_rng(seed)``, or ``backend.new_generator(seed)``
    for CuPy arrays; a legacy ``RandomState`` is refused) or, when None, from ``backend.rng()``, so a seeded
    run repeats exactly.
    """
    data = tensor_checks.tensor_arg(_FN, "x", x)
    p = checks.real(_FN, "p", p, 0.0, 1.0, high_open=True)
    training = checks.boolean(_FN, "training", training)
    if rng is not None:  # a Generator of x's backend: NumPy's for NumPy arrays, CuPy's for CuPy arrays
        tensor_checks.generator_for(_FN, "rng", rng, data)
    if not training or p == 0.0:
        return x if isinstance(x, Tensor) else Tensor._wrap(data)
    generator = backend.rng() if rng is None else rng
    # Uniforms drawn in x's dtype: half the memory of float64 for float32 activations.
    uniform = generator.random(data.shape, dtype=data.dtype)
    keep = uniform >= p  # P(keep) = 1 − p
    return DropoutFunction.apply(x, keep, 1.0 / (1.0 - p))
