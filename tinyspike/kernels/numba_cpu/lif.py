"""Numba LIF kernels: the same maths and float operations as ``kernels.reference.lif``, compiled.

Read the reference first; this file only changes *how* the loops run:

- The neurons are split into chunks of ``CHUNK`` and the chunks shared between the cores
  (``prange``). Inside a chunk, time is the outer loop and the neurons of the chunk the inner one:
  every step streams a contiguous slice of x (vectorised), while the state carried from step to
  step (τ·u·(1 - s) forward, g_u backward) stays in a chunk-sized buffer in L1 cache. Measured on
  the 2-core CI machine (benchmarks/README.md): faster than both "time outer, prange over all
  neurons" (the carried state then goes through memory every step) and "prange over neurons,
  time inner" (strided by N at every step).
- Surrogates are numbered (``KINDS``) because compiled code cannot call the Python objects. A
  surrogate this file does not know (a user's own class) falls back to the reference kernel.
- Every constant arrives in x's dtype (the ``Constants`` tuple): a bare Python float in Numba is a
  float64 and would silently turn float32 arithmetic into float64 and break the equality with the
  reference, which is exact for the rectangular surrogate (same operations, same order, no
  fastmath) and within float rounding for the others (``tanh`` may differ in the last bit).
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np
from numba import njit, prange

from tinyspike.kernels.reference import lif as _reference
from tinyspike.kernels.reference.lif import MASK_BIT, SPIKE_BIT, is_builtin_surrogate, saves_codes

CHUNK = 4096  # neurons per task: carried state (4096 × 4 B) stays in L1/L2, enough tasks to balance

KINDS = {"rectangular": 0, "triangle": 1, "sigmoid": 2, "atan": 3, "fast_sigmoid": 4, "smooth": 5}
_RECTANGULAR, _TRIANGLE, _SIGMOID, _ATAN, _FAST_SIGMOID, _SMOOTH = range(6)

Constants = namedtuple("Constants", "vth tau p half_p inv_p atan_k zero half one")


def _constants(dtype, v_th, decay, surrogate) -> Constants:
    p = surrogate.param
    c = dtype.type
    return Constants(c(v_th), c(decay), c(p), c(p / 2), c(1.0 / p), c(math.pi / 2 * p), c(0.0), c(0.5), c(1.0))


@njit(inline="always", cache=True)
def _sigmoid(z, k):
    return k.half * np.tanh(k.half * z) + k.half


@njit(inline="always", cache=True)
def _spike(kind, d, k):
    if kind == _SMOOTH:
        return _sigmoid(k.p * d, k)
    return k.one if d > k.zero else k.zero


@njit(inline="always", cache=True)
def _surrogate_grad(kind, d, k):
    if kind == _RECTANGULAR:
        return k.inv_p if abs(d) < k.half_p else k.zero
    if kind == _TRIANGLE:
        return max(k.zero, k.one - abs(d) * k.inv_p) * k.inv_p
    if kind == _SIGMOID or kind == _SMOOTH:
        sig = _sigmoid(k.p * d, k)
        return k.p * sig * (k.one - sig)
    if kind == _ATAN:
        z = k.atan_k * d
        return k.half_p / (k.one + z * z)
    z = k.one + k.p * abs(d)  # fast_sigmoid
    return k.one / (z * z)


# One time step for one chunk of neurons: 1-D contiguous slices, a loop LLVM vectorises.


@njit(inline="always", cache=True)
def _forward_codes_step(x, carry, spikes, codes, k):
    for j in range(x.size):
        u = carry[j] + x[j]
        d = u - k.vth
        s = k.one if d > k.zero else k.zero
        spikes[j] = s
        codes[j] = (SPIKE_BIT if d > k.zero else 0) + (MASK_BIT if abs(d) < k.half_p else 0)
        carry[j] = k.tau * u * (k.one - s)  # τ · u[t] · (1 - s[t]), for the next step


@njit(inline="always", cache=True)
def _forward_membrane_step(x, carry, spikes, membrane, kind, k):
    for j in range(x.size):
        u = carry[j] + x[j]
        s = _spike(kind, u - k.vth, k)
        spikes[j] = s
        membrane[j] = u
        carry[j] = k.tau * u * (k.one - s)


@njit(inline="always", cache=True)
def _backward_codes_step(grad_spikes, codes, g_next, grad_x, k):
    for j in range(grad_spikes.size):
        code = codes[j]
        s = k.one if code & SPIKE_BIT else k.zero
        sg = k.inv_p if code & MASK_BIT else k.zero
        g = grad_spikes[j] * sg + g_next[j] * k.tau * (k.one - s)
        grad_x[j] = g
        g_next[j] = g  # g_u[t], the g_u[t+1] of the step before


@njit(inline="always", cache=True)
def _backward_membrane_step(grad_spikes, membrane, g_next, grad_x, kind, k, detach_reset):
    for j in range(grad_spikes.size):
        u = membrane[j]
        d = u - k.vth
        s = _spike(kind, d, k)
        sg = _surrogate_grad(kind, d, k)
        g_tau = g_next[j] * k.tau
        g = grad_spikes[j] * sg + g_tau * (k.one - s)
        if not detach_reset:
            g = g - g_tau * u * sg
        grad_x[j] = g
        g_next[j] = g


# The loops over chunks (parallel) and time (sequential, forward or backward in time).


@njit(parallel=True, cache=True)
def _forward_codes(x, k, spikes, codes):
    T, N = x.shape
    for c in prange((N + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min((c + 1) * CHUNK, N)
        carry = np.zeros(hi - lo, dtype=x.dtype)  # τ · u[t-1] · (1 - s[t-1]); 0 before t = 0
        for t in range(T):
            _forward_codes_step(x[t, lo:hi], carry, spikes[t, lo:hi], codes[t, lo:hi], k)


@njit(parallel=True, cache=True)
def _forward_membrane(x, kind, k, spikes, membrane):
    T, N = x.shape
    for c in prange((N + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min((c + 1) * CHUNK, N)
        carry = np.zeros(hi - lo, dtype=x.dtype)
        for t in range(T):
            _forward_membrane_step(x[t, lo:hi], carry, spikes[t, lo:hi], membrane[t, lo:hi], kind, k)


@njit(parallel=True, cache=True)
def _backward_codes(grad_spikes, codes, k, grad_x):
    T, N = grad_spikes.shape
    for c in prange((N + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min((c + 1) * CHUNK, N)
        g_next = np.zeros(hi - lo, dtype=grad_spikes.dtype)  # g_u[t+1]; 0 after the last step
        for t in range(T - 1, -1, -1):
            _backward_codes_step(grad_spikes[t, lo:hi], codes[t, lo:hi], g_next, grad_x[t, lo:hi], k)


@njit(parallel=True, cache=True)
def _backward_membrane(grad_spikes, membrane, kind, k, detach_reset, grad_x):
    T, N = grad_spikes.shape
    for c in prange((N + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min((c + 1) * CHUNK, N)
        g_next = np.zeros(hi - lo, dtype=grad_spikes.dtype)
        for t in range(T - 1, -1, -1):
            _backward_membrane_step(
                grad_spikes[t, lo:hi], membrane[t, lo:hi], g_next, grad_x[t, lo:hi], kind, k, detach_reset
            )


def _compiled(array, surrogate) -> bool:
    return is_builtin_surrogate(surrogate) and surrogate.name in KINDS and array.dtype in (np.float32, np.float64)


def lif_forward(x, v_th: float, decay: float, surrogate, detach_reset: bool = True):
    """As ``reference.lif.lif_forward``: returns ``(spikes, saved)``, ``saved`` uint8 codes or u."""
    if not _compiled(x, surrogate):
        return _reference.lif_forward(x, v_th, decay, surrogate, detach_reset)
    x2 = np.ascontiguousarray(x).reshape(x.shape[0], -1)
    k = _constants(x.dtype, v_th, decay, surrogate)
    spikes = np.empty_like(x2)
    if saves_codes(surrogate, detach_reset):
        saved = np.empty(x2.shape, dtype=np.uint8)
        _forward_codes(x2, k, spikes, saved)
    else:
        saved = np.empty_like(x2)
        _forward_membrane(x2, KINDS[surrogate.name], k, spikes, saved)
    return spikes.reshape(x.shape), saved.reshape(x.shape)


def lif_backward(grad_spikes, saved, v_th: float, decay: float, surrogate, detach_reset: bool = True):
    """As ``reference.lif.lif_backward``: ``∂L/∂x`` from ``∂L/∂s`` and the saved buffer."""
    if not _compiled(grad_spikes, surrogate):
        return _reference.lif_backward(grad_spikes, saved, v_th, decay, surrogate, detach_reset)
    shape = grad_spikes.shape
    g2 = np.ascontiguousarray(grad_spikes).reshape(shape[0], -1)
    s2 = np.ascontiguousarray(saved).reshape(shape[0], -1)
    k = _constants(grad_spikes.dtype, v_th, decay, surrogate)
    grad_x = np.empty_like(g2)
    if saved.dtype == np.uint8:
        _backward_codes(g2, s2, k, grad_x)
    else:
        _backward_membrane(g2, s2, KINDS[surrogate.name], k, bool(detach_reset), grad_x)
    return grad_x.reshape(shape)
