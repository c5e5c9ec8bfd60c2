"""The CUDA kernel sources compile: every generated variant through ``nvcc -cubin -arch=sm_90``.

Runs wherever ``nvcc`` is on PATH, GPU or not (CuPy compiles the same source with NVRTC at run
time; nvcc's front end and ptxas catch the same syntax and type errors here, before a GPU session).
Also checks the exactness argument of ``kernels.cuda.lif``: with its compile options the PTX of the
LIF kernels holds no fused multiply-add (which would round differently from NumPy).
"""

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tinyspike.functional import surrogate as surrogates
from tinyspike.kernels.cuda import conv as cuda_conv
from tinyspike.kernels.cuda import lif as cuda_lif

NVCC = shutil.which("nvcc")
pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH")

FLOATS = ("float32", "float64")
SURROGATE_NAMES = sorted(surrogates.SURROGATES)  # every built-in one has CUDA forms
LIF_VARIANTS = {f"lif_{dt}_{sg}": cuda_lif.lif_source(dt, surrogates.get(sg)) for dt in FLOATS for sg in SURROGATE_NAMES}
IM2COL_VARIANTS = {
    f"im2col_{src}_{dst}": cuda_conv.im2col_source(src, dst)
    for src in ("float32", "float64", "bool", "uint8")
    for dst in FLOATS + ((src,) if src in ("bool", "uint8") else ())
}
COL2IM_VARIANTS = {f"col2im_{dt}": cuda_conv.col2im_source(dt) for dt in FLOATS}


def nvcc(directory, name, source, options=(), output="cubin"):
    """Compile ``source`` to a cubin (or ptx) for sm_90; return the output path, fail with the log."""
    path = os.path.join(directory, name + ".cu")
    with open(path, "w") as handle:
        handle.write(source)
    target = os.path.join(directory, f"{name}.{output}")
    # nvcc accepts NVRTC's spelling of the options we pass to CuPy ("--fmad=false")
    command = [NVCC, f"-{output}", "-arch=sm_90", "-Werror", "all-warnings", *options, path, "-o", target]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"nvcc failed on {name}:\n{result.stderr}\n--- source ---\n{source}"
    return target


def compile_all(tmp_path, variants, options=()):
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        list(pool.map(lambda item: nvcc(str(tmp_path), item[0], item[1], options), variants.items()))


def test_lif_kernels_compile(tmp_path):
    compile_all(tmp_path, LIF_VARIANTS, cuda_lif.COMPILE_OPTIONS)


def test_im2col_kernels_compile(tmp_path):
    compile_all(tmp_path, IM2COL_VARIANTS)


def test_col2im_kernels_compile(tmp_path):
    compile_all(tmp_path, COL2IM_VARIANTS)


@pytest.mark.parametrize("dtype", FLOATS)
def test_lif_kernels_have_no_fused_multiply_add(tmp_path, dtype):
    """Without --fmad=false nvcc fuses τ·u·(1-s) + x into one FMA (checked: the control case)."""
    source = cuda_lif.lif_source(dtype, surrogates.get("rectangular"))
    exact = open(nvcc(str(tmp_path), "exact", source, cuda_lif.COMPILE_OPTIONS, "ptx")).read()
    assert "fma.rn" not in exact
    contracted = open(nvcc(str(tmp_path), "contracted", source, (), "ptx")).read()
    assert "fma.rn" in contracted  # the check above can see an FMA when there is one


def test_float32_lif_kernels_do_no_double_arithmetic(tmp_path):
    """fabs/tanh must resolve to their float overloads (a double tanh would be slow on a GPU)."""
    import re

    for name in ("sigmoid", "smooth", "triangle"):
        ptx = open(nvcc(str(tmp_path), name, cuda_lif.lif_source("float32", surrogates.get(name)), cuda_lif.COMPILE_OPTIONS, "ptx")).read()
        assert not re.search(r"\.f64\s", ptx), name


def test_every_kernel_function_is_extern_c():
    """CuPy looks kernels up by their unmangled names."""
    for name, source in {**LIF_VARIANTS, **IM2COL_VARIANTS, **COL2IM_VARIANTS}.items():
        kernels = [line for line in source.splitlines() if "__global__" in line]
        assert kernels and all(line.startswith('extern "C" __global__ void') for line in kernels), name


def test_unsupported_variants_raise():
    class Mine(surrogates.Surrogate):  # array grad only: no CUDA forms
        def grad(self, d):
            return d * 0

    with pytest.raises(TypeError, match="float32 and float64"):
        cuda_lif.lif_source(np.float16, surrogates.get("rectangular"))
    with pytest.raises(ValueError, match="no CUDA LIF kernel for surrogate"):
        cuda_lif.lif_source(np.float32, Mine())
    with pytest.raises(TypeError, match="col2im"):
        cuda_conv.col2im_source(np.uint8)
    with pytest.raises(TypeError, match="im2col"):
        cuda_conv.im2col_source(np.int64, np.float32)


# ---- the same sources run on the CPU: a one-thread emulation of the CUDA launch -----------------
#
# Every kernel is a grid-stride loop, so one "thread" (blockIdx = threadIdx = 0, blockDim =
# gridDim = 1) runs every element. Compiled as C++ with -ffp-contract=off (no FMA, as --fmad=false)
# the kernels' index arithmetic and floating-point operations can be checked against the reference
# kernels here, without a GPU. What this cannot check: NVRTC itself, launch configuration, memory
# coalescing, and CUDA's tanh (sigmoid/smooth compare to a tolerance for that reason).

GXX = shutil.which("g++")
needs_gxx = pytest.mark.skipif(GXX is None, reason="g++ is not on PATH")

_PRELUDE = r"""
#include <cmath>
using std::fabs; using std::tanh;
#define __global__
#define __device__
#define __forceinline__ inline
struct tinyspike_dim3 { unsigned x, y, z; };
static const tinyspike_dim3 blockIdx = {0, 0, 0}, threadIdx = {0, 0, 0};
static const tinyspike_dim3 blockDim = {1, 1, 1}, gridDim = {1, 1, 1};
"""


def emulate(tmp_path, name, source):
    """The CUDA source compiled for the CPU as a shared library (ctypes)."""
    import ctypes

    path = tmp_path / f"{name}.cpp"
    path.write_text(_PRELUDE + source)
    library = tmp_path / f"{name}.so"
    command = [GXX, "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-x", "c++", str(path), "-o", str(library)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return ctypes.CDLL(str(library))


def _args(*values):
    """ctypes arguments: arrays as pointers, numpy scalars with their C type."""
    import ctypes

    kinds = {np.dtype(np.float32): ctypes.c_float, np.dtype(np.float64): ctypes.c_double,
             np.dtype(np.int32): ctypes.c_int, np.dtype(np.int64): ctypes.c_longlong}
    out = []
    for value in values:
        if isinstance(value, np.ndarray):
            assert value.flags.c_contiguous
            out.append(ctypes.c_void_p(value.ctypes.data))
        else:
            out.append(kinds[np.dtype(type(value))](value))
    return out


def emulated_lif(tmp_path, x, surrogate, detach_reset, grad_spikes):
    """(spikes, saved, grad_x) from the emulated kernels, launched as kernels.cuda.lif launches them."""
    lib = emulate(tmp_path, f"lif_{x.dtype}_{surrogate.name}", cuda_lif.lif_source(x.dtype, surrogate))
    dtype, steps = x.dtype, x.shape[0]
    n = np.int64(x.size // steps)
    tau, vth = dtype.type(0.25), dtype.type(0.5)
    spikes, grad_x = np.empty_like(x), np.empty_like(x)
    c0, c1 = cuda_lif._constants(surrogate, dtype)
    if cuda_lif.saves_codes(surrogate, detach_reset):
        saved = np.empty(x.shape, np.uint8)
        lib.lif_forward_codes(*_args(x, spikes, saved, n, np.int32(steps), tau, vth, c0))
        lib.lif_backward_codes(*_args(grad_spikes, saved, grad_x, n, np.int32(steps), tau, c1))
    else:
        saved = np.empty_like(x)
        lib.lif_forward_u(*_args(x, spikes, saved, n, np.int32(steps), tau, vth, c0, c1))
        lib.lif_backward_u(*_args(grad_spikes, saved, grad_x, n, np.int32(steps), tau, vth, c0, c1, np.int32(detach_reset)))
    return spikes, saved, grad_x


@needs_gxx
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", SURROGATE_NAMES)
@pytest.mark.parametrize("detach_reset", [True, False])
def test_emulated_lif_kernels_equal_reference(tmp_path, dtype, name, detach_reset):
    from tinyspike.kernels.reference import lif as ref

    sg = surrogates.get(name)
    rng = np.random.default_rng(0)
    x = rng.normal(0.5, 0.6, (6, 4, 9)).astype(dtype)
    x[0, 0, :4] = [0.5, 0.0, 1.0, -0.0]  # on the threshold and on the surrogate interval's ends
    x[:, 1, 0] = 0.5
    g = rng.standard_normal(x.shape).astype(dtype)
    spikes, saved = ref.lif_forward(x, 0.5, 0.25, sg, detach_reset)
    grad = ref.lif_backward(g, saved, 0.5, 0.25, sg, detach_reset)
    got = emulated_lif(tmp_path, x, sg, detach_reset, g)
    for value, want in zip(got, (spikes, saved, grad)):
        assert value.dtype == want.dtype
        if name in ("sigmoid", "smooth"):  # libm's tanh is not NumPy's
            np.testing.assert_allclose(value, want, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-6 if dtype == "float32" else 1e-13)
        else:
            np.testing.assert_array_equal(value, want)


GEOMETRIES = [  # (N, C, H, W, kh, kw, stride, padding)
    (2, 3, 8, 8, 3, 3, (1, 1), (1, 1)),
    (3, 4, 9, 7, 3, 3, (2, 2), (1, 1)),
    (2, 5, 8, 8, 1, 1, (2, 2), (0, 0)),
    (1, 2, 7, 10, 2, 3, (1, 2), (0, 1)),
    (2, 3, 12, 12, 7, 7, (2, 2), (3, 3)),
    (1, 1, 5, 5, 5, 5, (3, 1), (2, 0)),
]


@needs_gxx
@pytest.mark.parametrize("dtype", FLOATS)
def test_emulated_im2col_col2im_equal_reference(tmp_path, dtype):
    from tinyspike.kernels.reference import conv as ref

    dtype = np.dtype(dtype)
    im2col = emulate(tmp_path, f"im2col_{dtype}", cuda_conv.im2col_source(dtype, dtype)).im2col
    im2col_bool = emulate(tmp_path, f"im2col_bool_{dtype}", cuda_conv.im2col_source(np.bool_, dtype)).im2col
    col2im = emulate(tmp_path, f"col2im_{dtype}", cuda_conv.col2im_source(dtype)).col2im
    rng = np.random.default_rng(0)
    for n, c, h, w, kh, kw, stride, padding in GEOMETRIES:
        oh, ow = cuda_conv.output_size(h, kh, stride[0], padding[0]), cuda_conv.output_size(w, kw, stride[1], padding[1])
        geometry = cuda_conv._geometry(n, c, h, w, kh, kw, stride, padding, oh, ow)
        x = rng.standard_normal((n, c, h, w)).astype(dtype)
        cols = np.empty((c * kh * kw, n * oh * ow), dtype)
        im2col(*_args(x, cols, *geometry))
        np.testing.assert_array_equal(cols, ref.im2col(x, kh, kw, stride, padding))
        spikes = rng.random(x.shape) < 0.3
        im2col_bool(*_args(spikes, cols, *geometry))
        np.testing.assert_array_equal(cols, ref.im2col(spikes.astype(dtype), kh, kw, stride, padding))
        dcols = rng.standard_normal(cols.shape).astype(dtype)
        dx = np.empty(x.shape, dtype)
        col2im(*_args(dcols, dx, *geometry))
        # the gather adds the taps in the reference's order: equal bit for bit, not just close
        np.testing.assert_array_equal(dx, ref.col2im(dcols, x.shape, kh, kw, stride, padding))
