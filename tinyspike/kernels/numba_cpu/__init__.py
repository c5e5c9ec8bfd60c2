"""Fast CPU kernels compiled with Numba; each equals its twin in ``kernels.reference``."""
