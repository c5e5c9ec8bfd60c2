"""CUDA kernels for the CuPy backend (CuPy RawKernel / ElementwiseKernel).

A kernel group that has no CUDA version here falls back to ``kernels.reference``, which runs
on CuPy arrays too (slower, but correct).
"""
