"""Differentiable ops the layers need that the engine's elementary ops do not provide.

``broadcast_time(x, T)``: direct encoding (REFERENCE.md §3). The stem's output for a static
image is the same at every time step, so it is computed once, [B, ...], and repeated T times:

    y[t] = x          for t = 0 … T−1                      y: [T, B, ...]
    dL/dx = Σ_t dL/dy[t]                                    (each copy contributed once)

The forward returns a read-only broadcast *view* (stride 0 along T): no T-fold copy is written.
Consumers that need contiguous memory copy it themselves; the rest (the residual add, LIF's
reshape) read it as it is.
"""

from __future__ import annotations

from tinyspike import backend, checks
from tinyspike.autograd import Function, Tensor


class BroadcastTime(Function):
    """y[t] = x for every t (see the module docstring); dL/dx = Σ_t g[t]."""

    @staticmethod
    def forward(ctx, x, time_steps):
        xp = backend.array_module_of(x)
        return xp.broadcast_to(x[None], (time_steps,) + x.shape)

    @staticmethod
    def backward(ctx, grad_y):
        return grad_y.sum(axis=0), None


def broadcast_time(x, time_steps: int):
    """Repeat ``x`` [B, ...] over a new leading time axis: [T, B, ...] (a view; backward sums over T)."""
    if not isinstance(x, Tensor) and not hasattr(x, "shape"):
        raise TypeError(f"broadcast_time: x must be a Tensor or array, got {type(x).__name__}")
    time_steps = checks.integer("broadcast_time", "time_steps", time_steps, low=1)
    return BroadcastTime.apply(x, time_steps)
