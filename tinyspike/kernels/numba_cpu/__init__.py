"""Fast CPU kernels compiled with Numba; each equals its twin in ``kernels.reference``.

(``tinyspike/__init__.py`` sets passive OpenMP waiting for them; it says why.)
"""
