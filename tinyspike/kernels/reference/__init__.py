"""Readable reference kernels: plain array code that runs on any backend (NumPy or CuPy).

They are the specification the fast kernels are tested against; read these first.
"""
