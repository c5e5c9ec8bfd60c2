"""CUDA LIF kernels: the whole time loop forward and the whole BPTT backward, one thread per neuron.

Same signatures and the same numbers as ``kernels.reference.lif`` (REFERENCE.md §1): strict '>'
for a spike, the open interval ``|d| < a/2`` for the rectangular surrogate, ``detach_reset`` both
ways, and the same uint8 code format ``s + 2·mask`` for the rectangular / detach_reset=True path.

Thread mapping. ``x`` is ``[T, ...]``, C-contiguous; with ``n = x.size / T`` neurons, neuron ``i``
at step ``t`` sits at ``x[t·n + i]``. Thread ``i`` (grid-stride loop) runs the time loop of
neuron ``i`` in registers: u, s and the BPTT carry g_u[t+1] never touch memory, and at each step
the threads of a warp read/write consecutive addresses (coalesced). A layer costs two launches.

Exactness. The kernels repeat the reference's floating-point operations in the reference's order,
with constants computed on the host exactly as the reference computes them (``dtype(1/a)`` etc.).
They are compiled with ``--fmad=false``: otherwise NVRTC contracts ``τ·u·(1-s) + x`` into one
fused multiply-add, which rounds once instead of twice and differs from NumPy in the last bit.
Rectangular, triangle, atan and fast_sigmoid therefore equal the reference bit for bit; sigmoid
and smooth call ``tanh``, whose CUDA and NumPy versions may differ by an ulp or so.

What runs where:

- float32 and float64, every built-in surrogate (rectangular, triangle, sigmoid, atan,
  fast_sigmoid, smooth; the kernel source is generated with the surrogate's formula), both
  ``detach_reset`` values: CUDA;
- any other dtype (float16, ...) or a user-defined surrogate (a subclass living outside
  ``tinyspike.functional.surrogate``, whose ``grad`` is Python array code): the reference kernel,
  which runs on CuPy arrays too.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from tinyspike.kernels.reference import lif as reference
from tinyspike.kernels.reference.lif import is_builtin_surrogate, saves_codes  # noqa: F401 (re-export: same decision)

BLOCK = 256
COMPILE_OPTIONS = ("--fmad=false",)  # see "Exactness" above
_C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

# Per surrogate: (spike(d, c0, c1) body, grad(d, c0, c1) body). c0, c1 are host-computed constants
# (see _constants), so the device code does exactly the reference's arithmetic.
_HEAVISIDE = "return d > (real)0 ? (real)1 : (real)0;"
_SIGMOID = "real sig = (real)0.5 * tanh((real)0.5 * (c0 * d)) + (real)0.5;"
_SURROGATES = {
    # (|d| < a/2) · (1/a); c0 = a/2, c1 = 1/a
    "rectangular": (_HEAVISIDE, "return (fabs(d) < c0 ? (real)1 : (real)0) * c1;"),
    # max(0, 1 - |d|·(1/a)) · (1/a); c0 = 1/a. Not fmax: np.maximum propagates NaN, fmax drops it
    "triangle": (_HEAVISIDE, "real m = (real)1 - fabs(d) * c0; return (m < (real)0 ? (real)0 : m) * c0;"),
    # α σ(αd)(1 - σ(αd)) with σ(z) = 0.5·tanh(z/2) + 0.5; c0 = α
    "sigmoid": (_HEAVISIDE, _SIGMOID + " return c0 * sig * ((real)1 - sig);"),
    # (α/2) / (1 + z²), z = (π/2·α)·d; c0 = π/2·α, c1 = α/2
    "atan": (_HEAVISIDE, "real z = c0 * d; return c1 / ((real)1 + z * z);"),
    # 1 / (1 + α|d|)²; c0 = α
    "fast_sigmoid": (_HEAVISIDE, "real z = (real)1 + c0 * fabs(d); return (real)1 / (z * z);"),
    # spike = σ(αd) too (not binary); c0 = α
    "smooth": (_SIGMOID + " return sig;", _SIGMOID + " return c0 * sig * ((real)1 - sig);"),
}
SURROGATE_NAMES = tuple(_SURROGATES)

_TEMPLATE = r"""
typedef __C_TYPE__ real;

__device__ __forceinline__ real spike_fn(real d, real c0, real c1) { __SPIKE__ }
__device__ __forceinline__ real grad_fn(real d, real c0, real c1) { __GRAD__ }

// Forward, rectangular surrogate with detach_reset: saves one uint8 code s + 2*mask per step.
extern "C" __global__ void lif_forward_codes(const real* __restrict__ x, real* __restrict__ spikes,
        unsigned char* __restrict__ codes, long long n, int steps, real tau, real vth, real half) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        real carry = (real)0;  // tau * u[t-1] * (1 - s[t-1]); 0 before the first step
        for (int t = 0; t < steps; ++t) {
            long long k = (long long)t * n + i;
            real u = carry + x[k];
            real d = u - vth;
            bool fire = d > (real)0;  // strict: u == V_th does not fire
            real s = fire ? (real)1 : (real)0;
            spikes[k] = s;
            codes[k] = (unsigned char)((fire ? 1 : 0) + (fabs(d) < half ? 2 : 0));
            carry = tau * u * ((real)1 - s);
        }
    }
}

// Backward from the codes: s = bit 0, surrogate = bit 1 times 1/a; the carry is g_u[t+1].
extern "C" __global__ void lif_backward_codes(const real* __restrict__ grad_spikes,
        const unsigned char* __restrict__ codes, real* __restrict__ grad_x, long long n, int steps,
        real tau, real inv_width) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        real g_next = (real)0;  // g_u[t+1]; 0 after the last step
        for (int t = steps - 1; t >= 0; --t) {
            long long k = (long long)t * n + i;
            unsigned char code = codes[k];
            real s = (real)(code & 1);
            real sg = (real)(code >> 1) * inv_width;
            real g_tau = g_next * tau;
            real g = grad_spikes[k] * sg + g_tau * ((real)1 - s);
            grad_x[k] = g;
            g_next = g;
        }
    }
}

// Forward, any built-in surrogate: saves the membrane u (before reset) itself.
extern "C" __global__ void lif_forward_u(const real* __restrict__ x, real* __restrict__ spikes,
        real* __restrict__ saved_u, long long n, int steps, real tau, real vth, real c0, real c1) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        real carry = (real)0;
        for (int t = 0; t < steps; ++t) {
            long long k = (long long)t * n + i;
            real u = carry + x[k];
            real s = spike_fn(u - vth, c0, c1);
            spikes[k] = s;
            saved_u[k] = u;
            carry = tau * u * ((real)1 - s);
        }
    }
}

// Backward from u: s and sg recomputed from u; detach_reset == 0 adds the reset path.
extern "C" __global__ void lif_backward_u(const real* __restrict__ grad_spikes,
        const real* __restrict__ saved_u, real* __restrict__ grad_x, long long n, int steps,
        real tau, real vth, real c0, real c1, int detach_reset) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        real g_next = (real)0;
        for (int t = steps - 1; t >= 0; --t) {
            long long k = (long long)t * n + i;
            real u = saved_u[k];
            real d = u - vth;
            real s = spike_fn(d, c0, c1);
            real sg = grad_fn(d, c0, c1);
            real g_tau = g_next * tau;
            real g = grad_spikes[k] * sg + g_tau * ((real)1 - s);
            if (!detach_reset) g = g - g_tau * u * sg;
            grad_x[k] = g;
            g_next = g;
        }
    }
}
"""


def lif_source(dtype, surrogate_name: str) -> str:
    """The CUDA source of the four LIF kernels for one dtype and one built-in surrogate."""
    dtype = np.dtype(dtype)
    if dtype not in _C_TYPES:
        raise TypeError(f"CUDA LIF kernels support float32 and float64, got {dtype}")
    if surrogate_name not in _SURROGATES:
        raise ValueError(f"no CUDA LIF kernel for surrogate {surrogate_name!r}; known: {SURROGATE_NAMES}")
    spike_body, grad_body = _SURROGATES[surrogate_name]
    return (
        _TEMPLATE.replace("__C_TYPE__", _C_TYPES[dtype])
        .replace("__SPIKE__", spike_body)
        .replace("__GRAD__", grad_body)
    )


def _constants(surrogate, dtype):
    """(c0, c1) for the generated grad/spike functions, rounded to dtype as the reference does."""
    p, cast = surrogate.param, dtype.type
    if surrogate.name == "rectangular":
        return cast(p / 2), cast(1.0 / p)
    if surrogate.name == "triangle":
        return cast(1.0 / p), cast(0)
    if surrogate.name == "atan":
        return cast(math.pi / 2 * p), cast(p / 2)
    return cast(p), cast(0)  # sigmoid, fast_sigmoid, smooth: α


@lru_cache(maxsize=None)
def _module(dtype_str: str, surrogate_name: str):
    import cupy  # only on the CuPy backend: this module must import without CuPy (nvcc tests)

    return cupy.RawModule(code=lif_source(dtype_str, surrogate_name), options=COMPILE_OPTIONS)


@lru_cache(maxsize=None)
def _function(dtype_str: str, surrogate_name: str, kernel_name: str):
    """A kernel of the (compiled once, cached) module; NVRTC runs on the first call per source."""
    return _module(dtype_str, surrogate_name).get_function(kernel_name)


def _native(surrogate, dtype) -> bool:
    """True when a CUDA kernel covers this call (else the reference kernel runs, on CuPy arrays)."""
    return is_builtin_surrogate(surrogate) and surrogate.name in _SURROGATES and np.dtype(dtype) in _C_TYPES


def _launch(kernel, n: int, args) -> None:
    blocks = max(1, min((n + BLOCK - 1) // BLOCK, 65535 * 8))  # grid-stride loop covers the rest
    kernel((blocks,), (BLOCK,), args)


def lif_forward(x, v_th: float, decay: float, surrogate, detach_reset: bool = True):
    """``(spikes, saved)`` of LIF neurons over ``x [T, ...]``; see ``kernels.reference.lif``."""
    if not _native(surrogate, x.dtype):
        return reference.lif_forward(x, v_th, decay, surrogate, detach_reset)
    import cupy

    x = cupy.ascontiguousarray(x)
    dtype = x.dtype
    steps = int(x.shape[0])
    n = x.size // steps if steps else 0
    spikes = cupy.empty_like(x)
    tau, vth = dtype.type(decay), dtype.type(v_th)
    if n == 0:
        saved = cupy.empty(x.shape, dtype=cupy.uint8 if saves_codes(surrogate, detach_reset) else dtype)
        return spikes, saved
    if saves_codes(surrogate, detach_reset):
        saved = cupy.empty(x.shape, dtype=cupy.uint8)
        half = dtype.type(surrogate.param / 2)
        _launch(_function(dtype.str, surrogate.name, "lif_forward_codes"), n,
                (x, spikes, saved, np.int64(n), np.int32(steps), tau, vth, half))
    else:
        saved = cupy.empty_like(x)
        c0, c1 = _constants(surrogate, dtype)
        _launch(_function(dtype.str, surrogate.name, "lif_forward_u"), n,
                (x, spikes, saved, np.int64(n), np.int32(steps), tau, vth, c0, c1))
    return spikes, saved


def lif_backward(grad_spikes, saved, v_th: float, decay: float, surrogate, detach_reset: bool = True):
    """BPTT: ``∂L/∂x`` from ``∂L/∂s`` and forward's ``saved`` (uint8 codes or u)."""
    if not _native(surrogate, grad_spikes.dtype):
        return reference.lif_backward(grad_spikes, saved, v_th, decay, surrogate, detach_reset)
    import cupy

    grad_spikes = cupy.ascontiguousarray(grad_spikes)
    saved = cupy.ascontiguousarray(saved)
    if saved.shape != grad_spikes.shape:
        raise ValueError(f"lif_backward: saved has shape {saved.shape}, grad_spikes {grad_spikes.shape}")
    dtype = grad_spikes.dtype
    steps = int(grad_spikes.shape[0])
    n = grad_spikes.size // steps if steps else 0
    grad_x = cupy.empty_like(grad_spikes)
    if n == 0:
        return grad_x
    tau, vth = dtype.type(decay), dtype.type(v_th)
    if saved.dtype == cupy.uint8:
        inv_width = dtype.type(1.0 / surrogate.param)
        _launch(_function(dtype.str, surrogate.name, "lif_backward_codes"), n,
                (grad_spikes, saved, grad_x, np.int64(n), np.int32(steps), tau, inv_width))
    else:
        if saved.dtype != dtype:
            raise TypeError(f"lif_backward: saved u has dtype {saved.dtype}, grad_spikes {dtype}")
        c0, c1 = _constants(surrogate, dtype)
        _launch(_function(dtype.str, surrogate.name, "lif_backward_u"), n,
                (grad_spikes, saved, grad_x, np.int64(n), np.int32(steps), tau, vth, c0, c1,
                 np.int32(bool(detach_reset))))
    return grad_x
