"""The multi-step LIF neuron as one Function: the whole time loop forward, the whole BPTT backward.

A layer of LIF neurons therefore costs two kernel calls per training step, not 3·T small ops on
the tape (DESIGN.md, "The LIF Function"). The kernels are the table ``kernels.LIF``: the readable
``kernels.reference.lif``, ``kernels.numba_cpu.lif`` and ``kernels.cuda.lif``, which must agree.
"""

from __future__ import annotations

import numpy as np  # dtype arithmetic only (saved_bytes_per_neuron_step)

from tinyspike import checks, kernels, tensor_checks
from tinyspike.autograd import Function
from tinyspike.functional import surrogate as surrogates
from tinyspike.kernels.reference.lif import saves_codes


class LIFFunction(Function):
    r"""Leaky integrate-and-fire neurons over T steps with hard reset (REFERENCE.md §1).

    Forward, element-wise over the neurons, x of shape [T, ...]::

        u[0] = x[0]
        u[t] = τ · u[t-1] · (1 - s[t-1]) + x[t]          t ≥ 1
        s[t] = H(u[t] - V_th)                            H(0) = 0: u = V_th does not fire

    u is the membrane *before* reset; leak (τ) and reset (1 - s) act together. The output is s.

    Backward. Write g_s[t] = ∂L/∂s[t] (given) and g_u[t] = ∂L/∂u[t] (total derivative, through
    every later step). u[t] influences the loss in two ways: directly through s[t] = H(u[t] - V_th),
    and through u[t+1] = τ · u[t] · (1 - s[t]) + x[t+1]. The chain rule gives::

        g_u[t] = g_s[t] · ∂s[t]/∂u[t]  +  g_u[t+1] · ∂u[t+1]/∂u[t]

        ∂s[t]/∂u[t]   = H'(u[t] - V_th)  ≈ sg(u[t] - V_th)         (the surrogate)
        ∂u[t+1]/∂u[t] = τ · (1 - s[t])  -  τ · u[t] · ∂s[t]/∂u[t]
                        (leak path)        (reset path, through s[t] in the reset)

    With ``detach_reset=True`` (the default, as MS-ResNet) the reset factor (1 - s[t]) is treated as
    a constant and the reset path is dropped. At t = T-1 there is no u[T], so the second term is 0::

        g_u[T-1] = g_s[T-1] · sg(d[T-1])
        g_u[t]   = g_s[t] · sg(d[t]) + g_u[t+1] · τ · (1 - s[t])  [- g_u[t+1] · τ · u[t] · sg(d[t])]
        ∂L/∂x[t] = g_u[t]                   (u[t] = ... + x[t]: ∂u[t]/∂x[t] = 1)

    with d[t] = u[t] - V_th and the bracket only when ``detach_reset=False``.

    Saved for backward, per neuron and time step:

    - rectangular surrogate, ``detach_reset=True``: 1 byte, a uint8 code ``s + 2·1[|d| < a/2]``;
      backward needs nothing else (s[t] and a 0/1 mask times 1/a);
    - any other surrogate, or ``detach_reset=False``: u[t] in x's dtype (4 bytes in float32),
      because sg(d) is not a 0/1 mask or the reset path needs u's value; s[t] is recomputed
      from u exactly.
    """

    @staticmethod
    def forward(ctx, x, v_th, decay, surrogate, detach_reset):
        ctx.kernels = kernels.LIF.pick()  # once: backward runs the same implementation
        spikes, saved = ctx.kernels.lif_forward(x, v_th, decay, surrogate, detach_reset)
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(saved)
        ctx.params = (v_th, decay, surrogate, detach_reset)
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes):
        (saved,) = ctx.saved_tensors
        v_th, decay, surrogate, detach_reset = ctx.params
        grad_x = ctx.kernels.lif_backward(grad_spikes, saved, v_th, decay, surrogate, detach_reset)
        return grad_x, None, None, None, None


def lif(x, v_th=0.5, decay=0.25, detach_reset=True, surrogate="rectangular"):
    """Spikes of LIF neurons driven by ``x`` over time (see ``LIFFunction`` for the maths).

    x: Tensor or array [T, ...], time first (any trailing shape, e.g. [T, B, C, H, W]), floating.
    v_th: firing threshold V_th > 0 (finite).
    decay: membrane decay τ in [0, 1]: 0 forgets everything between steps, 1 is a non-leaky
        integrate-and-fire neuron; values outside make no physical sense (τ > 1 amplifies u
        exponentially) and are refused.
    detach_reset: no gradient through the reset factor (1 - s) (REFERENCE default True).
    surrogate: a name from ``surrogate.SURROGATES`` (default parameters) or a surrogate object,
        e.g. ``surrogate.get("sigmoid", alpha=4.0)``; "smooth" makes the forward a sigmoid too
        (for gradient checks: spikes are then real numbers in (0, 1)).

    The kernels: the fastest for the active backend, or the reference ones inside
    ``kernels.use("reference")`` (the one way to choose, the same for every op).

    Returns the spikes s[t], shaped and typed like x (0.0/1.0 values). The membrane starts at 0
    on every call: no state survives between calls.
    """
    fn = "lif"
    tensor_checks.time_first(fn, x)
    v_th = checks.real(fn, "v_th", v_th, low=0.0, low_open=True)
    decay = checks.real(fn, "decay", decay, low=0.0, high=1.0)
    detach_reset = checks.boolean(fn, "detach_reset", detach_reset)
    try:
        surrogate = surrogates.get(surrogate)
    except (TypeError, ValueError) as err:
        raise type(err)(f"{fn}: {err}") from None
    return LIFFunction.apply(x, v_th, decay, surrogate, detach_reset)


def saved_bytes_per_neuron_step(dtype, surrogate="rectangular", detach_reset=True) -> int:
    """Bytes the LIF saves for backward per neuron and time step (1 for the default, else itemsize)."""
    return 1 if saves_codes(surrogates.get(surrogate), detach_reset) else np.dtype(dtype).itemsize
