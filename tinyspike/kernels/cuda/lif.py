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

- float32 and float64, every surrogate with CUDA forms (``fast_forms()``: every built-in one;
  the kernel source is generated with the surrogate's own ``cuda_spike``/``cuda_grad`` bodies),
  both ``detach_reset`` values: CUDA;
- any other dtype (float16, ...) or a surrogate without CUDA forms (a user's class whose ``grad``
  is only Python array code): the reference kernel, which runs on CuPy arrays too.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from tinyspike.kernels.cuda.launch import launch
from tinyspike.kernels.reference import lif as reference
from tinyspike.kernels.reference.lif import MASK_BIT, SPIKE_BIT, saves_codes

COMPILE_OPTIONS = ("--fmad=false",)  # see "Exactness" above
_C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

_TEMPLATE = r"""
typedef __C_TYPE__ real;

#define SPIKE_BIT __SPIKE_BIT__
#define MASK_BIT __MASK_BIT__

// The surrogate's own bodies (its cuda_spike and cuda_grad); c0, c1 = its constants().
__device__ __forceinline__ real spike_fn(real d, real c0, real c1) { __SPIKE__ }
__device__ __forceinline__ real grad_fn(real d, real c0, real c1) { __GRAD__ }

// Forward, rectangular surrogate with detach_reset: saves one uint8 code s + 2*mask per step.
extern "C" __global__ void lif_forward_codes(const real* __restrict__ x, real* __restrict__ spikes,
        unsigned char* __restrict__ codes, long long n, int steps, real tau, real vth, real half) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        real carry = (real)0;  // tau * u[t-1] * (1 - s[t-1]); 0 before the first step
        for (int t = 0; t < steps; ++t) {
            long long at = (long long)t * n + i;  // neuron i at step t
            real u = carry + x[at];
            real d = u - vth;
            bool fire = d > (real)0;  // strict: u == V_th does not fire
            real s = fire ? (real)1 : (real)0;
            spikes[at] = s;
            codes[at] = (unsigned char)((fire ? SPIKE_BIT : 0) + (fabs(d) < half ? MASK_BIT : 0));
            carry = tau * u * ((real)1 - s);
        }
    }
}

// Backward from the codes: s = SPIKE_BIT, surrogate = MASK_BIT times 1/a; the carry is g_u[t+1].
extern "C" __global__ void lif_backward_codes(const real* __restrict__ grad_spikes,
        const unsigned char* __restrict__ codes, real* __restrict__ grad_x, long long n, int steps,
        real tau, real inv_width) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        real g_next = (real)0;  // g_u[t+1]; 0 after the last step
        for (int t = steps - 1; t >= 0; --t) {
            long long at = (long long)t * n + i;  // neuron i at step t
            unsigned char code = codes[at];
            real s = (code & SPIKE_BIT) ? (real)1 : (real)0;
            real sg = (code & MASK_BIT) ? inv_width : (real)0;
            real g_tau = g_next * tau;
            real g = grad_spikes[at] * sg + g_tau * ((real)1 - s);
            grad_x[at] = g;
            g_next = g;
        }
    }
}

// Forward, any surrogate with CUDA forms: saves the membrane u (before reset) itself.
extern "C" __global__ void lif_forward_u(const real* __restrict__ x, real* __restrict__ spikes,
        real* __restrict__ saved_u, long long n, int steps, real tau, real vth, real c0, real c1) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        real carry = (real)0;
        for (int t = 0; t < steps; ++t) {
            long long at = (long long)t * n + i;  // neuron i at step t
            real u = carry + x[at];
            real s = spike_fn(u - vth, c0, c1);
            spikes[at] = s;
            saved_u[at] = u;
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
            long long at = (long long)t * n + i;  // neuron i at step t
            real u = saved_u[at];
            real d = u - vth;
            real s = spike_fn(d, c0, c1);
            real sg = grad_fn(d, c0, c1);
            real g_tau = g_next * tau;
            real g = grad_spikes[at] * sg + g_tau * ((real)1 - s);
            if (!detach_reset) g = g - g_tau * u * sg;
            grad_x[at] = g;
            g_next = g;
        }
    }
}
"""


def lif_source(dtype, surrogate) -> str:
    """The CUDA source of the four LIF kernels for one dtype and one surrogate with CUDA forms."""
    dtype = np.dtype(dtype)
    if dtype not in _C_TYPES:
        raise TypeError(f"CUDA LIF kernels support float32 and float64, got {dtype}")
    forms = surrogate.fast_forms()
    if forms is None:
        raise ValueError(f"no CUDA LIF kernel for surrogate {surrogate!r}: it has no CUDA forms (fast_forms())")
    return _source(dtype, forms.cuda_spike, forms.cuda_grad)


def _source(dtype, cuda_spike: str, cuda_grad: str) -> str:
    return (
        _TEMPLATE.replace("__C_TYPE__", _C_TYPES[np.dtype(dtype)])
        .replace("__SPIKE_BIT__", str(SPIKE_BIT))
        .replace("__MASK_BIT__", str(MASK_BIT))
        .replace("__SPIKE__", cuda_spike)
        .replace("__GRAD__", cuda_grad)
    )


def _constants(surrogate, dtype):
    """(c0, c1) for the surrogate's CUDA bodies, rounded to dtype as the reference rounds them."""
    c0, c1 = surrogate.constants()
    return dtype.type(c0), dtype.type(c1)


@lru_cache(maxsize=None)
def _module(dtype_str: str, cuda_spike: str, cuda_grad: str):
    import cupy  # only on the CuPy backend: this module must import without CuPy (nvcc tests)

    return cupy.RawModule(code=_source(dtype_str, cuda_spike, cuda_grad), options=COMPILE_OPTIONS)


def _function(dtype, surrogate, kernel_name: str):
    """A kernel of the (compiled once per source, cached) module; NVRTC runs on the first call."""
    forms = surrogate.fast_forms()
    # Keyed by the CUDA bodies: every width or α of one surrogate shares one module (c0, c1 are arguments).
    return _module(dtype.str, forms.cuda_spike, forms.cuda_grad).get_function(kernel_name)


def _native(surrogate, dtype) -> bool:
    """True when a CUDA kernel covers this call (else the reference kernel runs, on CuPy arrays)."""
    return surrogate.fast_forms() is not None and np.dtype(dtype) in _C_TYPES


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
    codes = saves_codes(surrogate, detach_reset)
    saved = cupy.empty(x.shape, dtype=cupy.uint8) if codes else cupy.empty_like(x)
    if n == 0:
        return spikes, saved
    c0, c1 = _constants(surrogate, dtype)
    if codes:  # c0 = a/2, the half-width of the window
        launch(_function(dtype, surrogate, "lif_forward_codes"), n,
               (x, spikes, saved, np.int64(n), np.int32(steps), tau, vth, c0))
    else:
        launch(_function(dtype, surrogate, "lif_forward_u"), n,
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
    c0, c1 = _constants(surrogate, dtype)
    if saved.dtype == cupy.uint8:  # c1 = 1/a, the surrogate on the window
        launch(_function(dtype, surrogate, "lif_backward_codes"), n,
               (grad_spikes, saved, grad_x, np.int64(n), np.int32(steps), tau, c1))
    else:
        if saved.dtype != dtype:
            raise TypeError(f"lif_backward: saved u has dtype {saved.dtype}, grad_spikes {dtype}")
        launch(_function(dtype, surrogate, "lif_backward_u"), n,
               (grad_spikes, saved, grad_x, np.int64(n), np.int32(steps), tau, vth, c0, c1,
                np.int32(bool(detach_reset))))
    return grad_x
