"""The one launch rule of the CUDA kernels here: 1-D blocks of ``BLOCK`` threads, grid-stride loops.

Every kernel in ``kernels.cuda`` loops ``for (i = blockIdx.x·blockDim.x + threadIdx.x; i < total;
i += gridDim.x·blockDim.x)``, so any grid covers any size; the grid is capped at ``MAX_BLOCKS``
(well inside CUDA's limit of 2³¹ - 1 blocks in x) and the loop does the rest.
"""

from __future__ import annotations

BLOCK = 256  # threads per block: 8 warps, a common choice for memory-bound kernels
MAX_BLOCKS = 65535 * 8


def launch(kernel, total: int, args) -> None:
    """Run ``kernel(args)`` with enough blocks of ``BLOCK`` threads for ``total`` items (at most ``MAX_BLOCKS``)."""
    blocks = max(1, min((total + BLOCK - 1) // BLOCK, MAX_BLOCKS))
    kernel((blocks,), (BLOCK,), args)
