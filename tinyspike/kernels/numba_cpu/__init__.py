"""Fast CPU kernels compiled with Numba; each equals its twin in ``kernels.reference``.

OpenMP waiting policy: by default an OpenMP worker spins after a parallel loop, waiting for the
next one. On a machine with few cores that spinning steals the core that OpenBLAS (the conv GEMMs)
or another process needs, and a parallel kernel then waits for a scheduler tick (4 ms) to get it
back: batch norm and LIF calls took 4-16 ms instead of 1-2 ms. Passive waiting removed that
(benchmarks/README.md: MS-ResNet-20 training step 1.97 s -> 1.74 s median, same run). It is set
only if the user has not chosen, and only takes effect if no OpenMP loop has run yet in this process.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
