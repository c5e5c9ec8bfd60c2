"""Reference LIF kernels: the whole time loop forward, the whole BPTT backward (REFERENCE.md §1).

Plain array code with the time loop in Python; every step is vectorised over the neurons, so it
runs on NumPy and CuPy alike. The fast kernels (``numba_cpu.lif``) must give the same numbers.

Forward, for each neuron, with d[t] = u[t] - V_th::

    u[0] = x[0]
    u[t] = τ · u[t-1] · (1 - s[t-1]) + x[t]          t ≥ 1
    s[t] = spike(d[t])        (Heaviside, strict '>': u = V_th does not fire)

Backward (BPTT), with g_s[t] = ∂L/∂s[t] and sg = the surrogate's ``grad``::

    g_u[T-1] = g_s[T-1] · sg(d[T-1])
    g_u[t]   = g_s[t] · sg(d[t]) + g_u[t+1] · τ · (1 - s[t])
               [ - g_u[t+1] · τ · u[t] · sg(d[t])      only when detach_reset=False ]
    ∂L/∂x[t] = g_u[t]

What forward saves for backward (one buffer shaped like x):

- rectangular surrogate with binary spikes and ``detach_reset=True``: backward needs only s[t] and
  the mask 1[|d[t]| < a/2]; both fit in one uint8 *code* per neuron-step, ``s + 2·mask``
  (1 byte instead of the 4 of a float32 u);
- otherwise: the membrane u itself, in x's dtype (sg(d) and u·sg(d) need its value; s is
  recomputed from it exactly, since spike(u - V_th) is a pure function of u).

Surrogates are passed as objects with ``binary``, ``constants()``, ``fast_forms()``, ``spike(d)``
and ``grad(d)`` (``tinyspike.functional.surrogate``); this module does not import them, kernels
sit below functional: it asks the object what it is.
"""

from __future__ import annotations

from tinyspike import backend

SPIKE_BIT = 1  # code bit 0: s[t]
MASK_BIT = 2  # code bit 1: the rectangular surrogate is non-zero, |u[t] - V_th| < a/2


def saves_codes(surrogate, detach_reset: bool) -> bool:
    """True when forward saves uint8 codes (s, mask) instead of the float membrane u.

    That needs binary spikes, no reset path (it reads u's value), and a surrogate whose grad is one
    constant on a window and 0 elsewhere (``mask_window``: the rectangular one), so that one bit
    per step says which.
    """
    forms = surrogate.fast_forms()
    return bool(detach_reset) and surrogate.binary and forms is not None and forms.mask_window


def lif_forward(x, v_th: float, decay: float, surrogate, detach_reset: bool = True):
    """Run the LIF neurons over time. ``x``: [T, ...] floating array, time first.

    Returns ``(spikes, saved)``: spikes in x's dtype, and the buffer backward needs (uint8 codes or
    the membrane u, see the module docstring).
    """
    xp = backend.array_module_of(x)
    dtype = x.dtype
    tau, vth = dtype.type(decay), dtype.type(v_th)
    codes = saves_codes(surrogate, detach_reset)
    if codes:
        half = dtype.type(surrogate.constants()[0])  # the window is |d| < c0
    spikes = xp.empty_like(x)
    saved = xp.empty(x.shape, dtype=xp.uint8) if codes else xp.empty_like(x)
    carry = xp.zeros_like(x[0])  # τ · u[t-1] · (1 - s[t-1]); zero before the first step
    for t in range(x.shape[0]):
        u = carry + x[t]
        d = u - vth
        s = surrogate.spike(d)
        spikes[t] = s
        if codes:
            saved[t] = (d > 0).astype(xp.uint8) * SPIKE_BIT + (xp.abs(d) < half).astype(xp.uint8) * MASK_BIT
        else:
            saved[t] = u
        carry = tau * u * (1 - s)
    return spikes, saved


def lif_backward(grad_spikes, saved, v_th: float, decay: float, surrogate, detach_reset: bool = True):
    """BPTT through the whole time loop: ``∂L/∂x`` from ``∂L/∂s`` and forward's ``saved`` buffer."""
    xp = backend.array_module_of(grad_spikes)
    dtype = grad_spikes.dtype
    tau, vth = dtype.type(decay), dtype.type(v_th)
    codes = saved.dtype == xp.uint8
    if codes:
        height = dtype.type(surrogate.constants()[1])  # grad on the window (1/a)
    grad_x = xp.empty_like(grad_spikes)
    g_next = xp.zeros_like(grad_spikes[0])  # g_u[t+1]; zero after the last step
    for t in range(grad_spikes.shape[0] - 1, -1, -1):
        if codes:
            s = (saved[t] & SPIKE_BIT).astype(dtype)
            sg = ((saved[t] & MASK_BIT) != 0).astype(dtype) * height
        else:
            u = saved[t]
            d = u - vth
            s = surrogate.spike(d)
            sg = surrogate.grad(d)
        g_tau = g_next * tau
        g = grad_spikes[t] * sg + g_tau * (1 - s)
        if not detach_reset:
            g = g - g_tau * u * sg
        grad_x[t] = g
        g_next = g
    return grad_x
