"""Numba LIF kernels: the same maths and float operations as ``kernels.reference.lif``, compiled.

Read the reference first; this file only changes *how* the loops run:

- The neurons are split into chunks of ``CHUNK``, and ranges of chunks shared between the
  cores (``workers.ranges``: the kernels are serial, ``nogil``, called on one range each from the
  worker threads that run the convolutions too). Inside a chunk, time is the outer loop and the neurons of the chunk the inner one:
  every step streams a contiguous slice of x (vectorised), while the state carried from step to
  step (τ·u·(1 - s) forward, g_u backward) stays in a chunk-sized buffer in L1 cache. Measured on
  the 2-core CI machine (benchmarks/README.md): faster than both "time outer, prange over all
  neurons" (the carried state then goes through memory every step) and "prange over neurons,
  time inner" (strided by N at every step).
- The surrogate brings its own formula: ``fast_forms()`` gives plain-Python scalar functions
  (``scalar_spike``, ``scalar_grad``), which ``_membrane_kernels`` compiles into one pair of
  kernels per surrogate class (made once, cached on disk by Numba like the rest). A surrogate
  without them (a user's class with only an array ``grad``) runs the reference kernel.
- Every constant arrives in x's dtype (``ScalarConstants``, and V_th, τ cast on the host): a
  bare Python float in Numba is a float64 and would silently turn float32 arithmetic into
  float64 and break the equality with the reference, which is exact for the rectangular
  surrogate (same operations, same order, no fastmath) and within float rounding for the
  others (``tanh`` may differ in the last bit).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit
from numba.extending import register_jitable

from tinyspike.kernels.numba_cpu import workers
from tinyspike.kernels.reference import lif as _reference
from tinyspike.kernels.reference.lif import MASK_BIT, SPIKE_BIT, saves_codes

CHUNK = 4096  # neurons per task: carried state (4096 × 4 B) stays in L1/L2, enough tasks to balance


def _scalar_constants(dtype, surrogate):
    """``ScalarConstants`` (c0, c1, 0, 1/2, 1) in ``dtype``, as the surrogate's forms read them."""
    from tinyspike.functional.surrogate import ScalarConstants  # the type only; kernels sit below functional

    c0, c1 = surrogate.constants()
    cast = dtype.type
    return ScalarConstants(cast(c0), cast(c1), cast(0.0), cast(0.5), cast(1.0))


# ---- the 1-byte code path (rectangular surrogate, detach_reset): no surrogate call at all -------
# One time step for one chunk of neurons is the inner loop over 1-D contiguous slices (LLVM
# vectorises it); each call runs the chunks first..last-1 (a range from ``workers.ranges``).


@njit(nogil=True, cache=True)
def _forward_codes(x, vth, tau, const, spikes, codes, first, last):
    n = x.shape[1]
    steps = x.shape[0]
    for chunk in range(first, last):
        lo, hi = chunk * CHUNK, min((chunk + 1) * CHUNK, n)
        carry = np.zeros(hi - lo, dtype=x.dtype)  # τ · u[t-1] · (1 - s[t-1]); 0 before t = 0
        for t in range(steps):
            x_t, spikes_t, codes_t = x[t, lo:hi], spikes[t, lo:hi], codes[t, lo:hi]
            for j in range(x_t.size):
                u = carry[j] + x_t[j]
                d = u - vth
                s = const.one if d > const.zero else const.zero
                spikes_t[j] = s
                codes_t[j] = (SPIKE_BIT if d > const.zero else 0) + (MASK_BIT if abs(d) < const.c0 else 0)
                carry[j] = tau * u * (const.one - s)  # τ · u[t] · (1 - s[t]), for the next step


@njit(nogil=True, cache=True)
def _backward_codes(grad_spikes, codes, tau, const, grad_x, first, last):
    steps, n = grad_spikes.shape
    for chunk in range(first, last):
        lo, hi = chunk * CHUNK, min((chunk + 1) * CHUNK, n)
        g_next = np.zeros(hi - lo, dtype=grad_spikes.dtype)  # g_u[t+1]; 0 after the last step
        for t in range(steps - 1, -1, -1):
            g_t, codes_t, grad_x_t = grad_spikes[t, lo:hi], codes[t, lo:hi], grad_x[t, lo:hi]
            for j in range(g_t.size):
                code = codes_t[j]
                s = const.one if code & SPIKE_BIT else const.zero
                sg = const.c1 if code & MASK_BIT else const.zero
                g = g_t[j] * sg + g_next[j] * tau * (const.one - s)
                grad_x_t[j] = g
                g_next[j] = g  # g_u[t], the g_u[t+1] of the step before


# ---- the membrane path: any surrogate with scalar forms, compiled into its own kernels ----------


@lru_cache(maxsize=None)
def _jitable(scalar_function):
    """Let Numba compile calls to ``scalar_function`` (registered once: sigmoid and smooth share one)."""
    return register_jitable(inline="always")(scalar_function)


@lru_cache(maxsize=None)
def _membrane_kernels(scalar_spike, scalar_grad):
    """(forward, backward) kernels that save u, specialised on one surrogate's scalar functions.

    Made once per pair of functions. They are closures over plain Python functions (registered with
    ``register_jitable``, not jitted dispatchers): Numba keys its disk cache on the pickled closure,
    which is stable for plain functions, so the kernels compile once per machine, not per process.
    A direct call to a known function also inlines, where a first-class function argument would
    not (measured: 3× slower, and never cached).
    """
    spike_fn, grad_fn = _jitable(scalar_spike), _jitable(scalar_grad)

    @njit(nogil=True, cache=True)
    def forward(x, vth, tau, const, spikes, membrane, first, last):
        steps, n = x.shape
        for chunk in range(first, last):
            lo, hi = chunk * CHUNK, min((chunk + 1) * CHUNK, n)
            carry = np.zeros(hi - lo, dtype=x.dtype)
            for t in range(steps):
                x_t, spikes_t, membrane_t = x[t, lo:hi], spikes[t, lo:hi], membrane[t, lo:hi]
                for j in range(x_t.size):
                    u = carry[j] + x_t[j]
                    s = spike_fn(u - vth, const)
                    spikes_t[j] = s
                    membrane_t[j] = u
                    carry[j] = tau * u * (const.one - s)

    @njit(nogil=True, cache=True)
    def backward(grad_spikes, membrane, vth, tau, const, detach_reset, grad_x, first, last):
        steps, n = grad_spikes.shape
        for chunk in range(first, last):
            lo, hi = chunk * CHUNK, min((chunk + 1) * CHUNK, n)
            g_next = np.zeros(hi - lo, dtype=grad_spikes.dtype)
            for t in range(steps - 1, -1, -1):
                g_t, membrane_t, grad_x_t = grad_spikes[t, lo:hi], membrane[t, lo:hi], grad_x[t, lo:hi]
                for j in range(g_t.size):
                    u = membrane_t[j]
                    d = u - vth
                    s = spike_fn(d, const)
                    sg = grad_fn(d, const)
                    g_tau = g_next[j] * tau
                    g = g_t[j] * sg + g_tau * (const.one - s)
                    if not detach_reset:
                        g = g - g_tau * u * sg
                    grad_x_t[j] = g
                    g_next[j] = g

    return forward, backward


def _over_chunks(array2d, body) -> None:
    """``body(first, last)`` on ranges of the chunks of ``array2d``'s neurons (its second axis), on every worker."""
    workers.ranges(-(-array2d.shape[1] // CHUNK), 1, body, array2d.size)


def _compiled(array, surrogate) -> bool:
    return surrogate.fast_forms() is not None and array.dtype in (np.float32, np.float64)


def lif_forward(x, v_th: float, decay: float, surrogate, detach_reset: bool = True):
    """As ``reference.lif.lif_forward``: returns ``(spikes, saved)``, ``saved`` uint8 codes or u."""
    if not _compiled(x, surrogate):
        return _reference.lif_forward(x, v_th, decay, surrogate, detach_reset)
    x2 = np.ascontiguousarray(x).reshape(x.shape[0], -1)
    dtype = x.dtype
    vth, tau, const = dtype.type(v_th), dtype.type(decay), _scalar_constants(dtype, surrogate)
    spikes = np.empty_like(x2)
    if saves_codes(surrogate, detach_reset):
        saved = np.empty(x2.shape, dtype=np.uint8)
        _over_chunks(x2, lambda lo, hi: _forward_codes(x2, vth, tau, const, spikes, saved, lo, hi))
    else:
        forms = surrogate.fast_forms()
        forward = _membrane_kernels(forms.scalar_spike, forms.scalar_grad)[0]
        saved = np.empty_like(x2)
        _over_chunks(x2, lambda lo, hi: forward(x2, vth, tau, const, spikes, saved, lo, hi))
    return spikes.reshape(x.shape), saved.reshape(x.shape)


def lif_backward(grad_spikes, saved, v_th: float, decay: float, surrogate, detach_reset: bool = True):
    """As ``reference.lif.lif_backward``: ``∂L/∂x`` from ``∂L/∂s`` and the saved buffer."""
    if not _compiled(grad_spikes, surrogate):
        return _reference.lif_backward(grad_spikes, saved, v_th, decay, surrogate, detach_reset)
    shape, dtype = grad_spikes.shape, grad_spikes.dtype
    g2 = np.ascontiguousarray(grad_spikes).reshape(shape[0], -1)
    s2 = np.ascontiguousarray(saved).reshape(shape[0], -1)
    vth, tau, const = dtype.type(v_th), dtype.type(decay), _scalar_constants(dtype, surrogate)
    grad_x = np.empty_like(g2)
    if saved.dtype == np.uint8:
        _over_chunks(g2, lambda lo, hi: _backward_codes(g2, s2, tau, const, grad_x, lo, hi))
    else:
        forms, detach = surrogate.fast_forms(), bool(detach_reset)
        backward = _membrane_kernels(forms.scalar_spike, forms.scalar_grad)[1]
        _over_chunks(g2, lambda lo, hi: backward(g2, s2, vth, tau, const, detach, grad_x, lo, hi))
    return grad_x.reshape(shape)
