"""Check a hand-written backward against central finite differences.

For a function f of inputs x₁…x_k we form the scalar L = Σ_outputs ⟨w, f(x)⟩ with fixed random
weights w (a random projection tests every output at once, and a wrong gradient almost surely
changes ⟨w, ·⟩). Then for every element x[j] of every checked input the numerical derivative of
``central_difference`` (its error budget is derived there) and the analytic one, (dL/dx)[j] from
backward(), must agree within ``atol + rtol·|numerical|``. In float64 with ε = 1e-6 both error
terms are around 1e-10, far below the tolerances, so a disagreement means the backward is wrong
(or f is not differentiable at that point: keep inputs away from kinks such as the LIF threshold
or ReLU's 0).
"""

from __future__ import annotations

import numpy as np

from tinyspike import backend, checks, tensor_checks
from tinyspike.autograd import Tensor, no_grad


class GradcheckError(AssertionError):
    """The analytic and numerical gradients disagree (the message says where and by how much)."""


def central_difference(loss, flat, j: int, eps: float) -> float:
    """(L(x + ε·e_j) − L(x − ε·e_j)) / (2ε): dL/dx[j] numerically, perturbing ``flat[j]`` in place.

    ``loss()`` evaluates L at the current x; ``flat`` is a writable flat view of x; x is restored.

    Error budget. Taylor: L(x ± ε·e_j) = L ± ε·L′ + (ε²/2)·L″ ± (ε³/6)·L‴ + ..., the even terms
    cancel in the difference, so the quotient is L′ + (ε²/6)·L‴(ξ) for some ξ within ε of x[j]:

        truncation error   ≈ ε²·|L‴|/6                  O(ε²)
        rounding error     ≈ ε_machine·|L|/ε             O(ε_machine/ε)

    (each evaluation of L is off by about ε_machine·|L|, ε_machine = 2.2e-16 in float64 and 1.2e-7
    in float32, and the quotient divides the difference of two such errors by 2ε). The sum is
    smallest near ε ≈ (3·ε_machine·|L|/|L‴|)^(1/3), about 1e-5 in float64; at the default ε = 1e-6,
    with L and L‴ of order 1, both terms are about 1e-10. In float32 the rounding term alone would
    be about 0.1 at ε = 1e-6: that is why ``gradcheck`` insists on float64.
    """
    original = flat[j].item()
    with no_grad():
        flat[j] = original + eps
        plus = loss()
        flat[j] = original - eps
        minus = loss()
        flat[j] = original
    return (plus - minus) / (2 * eps)


def gradcheck(fn, *inputs, eps: float = 1e-6, atol: float = 1e-6, rtol: float = 1e-4, seed: int = 0) -> bool:
    """Compare ``fn``'s backward with central differences; raise ``GradcheckError`` on mismatch.

    ``inputs``: Tensors (checked when ``requires_grad``), floating arrays (checked: they become
    Tensors that require grad), or anything else (passed to ``fn`` unchanged). Every checked input
    must be float64: float32 rounding (1e-7 relative) swamps finite differences.
    Returns True when every element agrees.
    """
    if not callable(fn):
        raise TypeError(f"gradcheck: fn must be callable, got {checks.kind_of(fn)}")
    eps = checks.real("gradcheck", "eps", eps, low=0.0, low_open=True)
    atol = checks.real("gradcheck", "atol", atol, low=0.0)
    rtol = checks.real("gradcheck", "rtol", rtol, low=0.0)
    seed = checks.integer("gradcheck", "seed", seed, low=0)
    args, checked = tensor_checks.gradcheck_inputs(inputs)

    # the analytic gradient: one backward of L = Σ ⟨w, output⟩
    outputs = tensor_checks.returned_tensors(fn(*args))
    generator = np.random.default_rng(seed)
    weights = [backend.to_device(generator.standard_normal(out.shape)).astype(out.dtype) for out in outputs]
    for _, tensor in checked:
        tensor.grad = None
    terms = [(out * Tensor._wrap(w)).sum() for out, w in zip(outputs, weights) if out.requires_grad]
    if terms:
        sum(terms[1:], terms[0]).backward()

    def projected_loss() -> float:  # L at the current inputs, a Python float
        return float(sum((out.data * w).sum().item() for out, w in zip(tensor_checks.returned_tensors(fn(*args)), weights)))

    # the numerical gradient, element by element, against it
    for position, tensor in checked:
        analytic = tensor.grad if tensor.grad is not None else backend.xp().zeros(tensor.shape, dtype=tensor.dtype)
        analytic = backend.to_numpy(analytic).ravel()
        flat = tensor.data.reshape(-1)  # a view: perturbing it perturbs the input in place
        for j in range(flat.size):
            numerical = central_difference(projected_loss, flat, j, eps)
            if abs(analytic[j] - numerical) > atol + rtol * abs(numerical):
                index = tuple(int(i) for i in np.unravel_index(j, tensor.shape))
                raise GradcheckError(
                    f"gradient mismatch for input {position} (shape {tensor.shape}) at index {index}: "
                    f"analytic {analytic[j]:.10g}, numerical {numerical:.10g} "
                    f"(difference {abs(analytic[j] - numerical):.3g} > atol {atol} + rtol {rtol} * |numerical|)"
                )
    return True
