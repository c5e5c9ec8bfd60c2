"""Weight initialisation (REFERENCE.md §2-§3).

- Conv and linear weights: kaiming-uniform with a = √5, PyTorch's default, which comes to
  U(−1/√fan_in, +1/√fan_in) (gain √(2/(1+a²)) = √(1/3), bound = gain·√(3/fan_in)).
  Biases: the same bound.
- Batch norm: γ₀ = α·V_th = 0.5 for tdBN (1 for plain BN), β₀ = 0; the second BN of a residual
  branch may start at γ₀ = 0 (set by the model, see ``tinyspike.models``).

Every initialiser draws from an explicit generator; ``generator=None`` means the backend's global
one (seeded by ``tinyspike.seed``), so a build with the same seed gives the same weights.
"""

from __future__ import annotations

import math
import numbers

from tinyspike import backend


def resolve_generator(generator=None):
    """A random Generator from ``None`` (the global one), an int seed, or a Generator."""
    if generator is None:
        return backend.rng()
    if isinstance(generator, numbers.Integral) and not isinstance(generator, bool):
        if generator < 0:
            raise ValueError(f"generator seed must be >= 0, got {generator}")
        return backend.new_generator(int(generator))
    if hasattr(generator, "random"):
        return generator
    raise TypeError(f"generator must be None, an int seed or a random Generator, got {type(generator).__name__}")


def fan_in(shape) -> int:
    """Inputs feeding one output unit: in_features, or in_channels·kh·kw for a conv weight."""
    if len(shape) < 2:
        raise ValueError(f"fan_in needs a weight of at least 2 dimensions, got shape {tuple(shape)}")
    return int(math.prod(shape[1:]))


def uniform(shape, bound: float, generator=None, dtype=None):
    """A new array of U(−bound, +bound) samples, drawn directly in ``dtype`` (no float64 detour)."""
    rng = resolve_generator(generator)
    dtype = backend.default_dtype() if dtype is None else dtype
    values = rng.random(tuple(shape), dtype=dtype)  # U[0, 1)
    values *= values.dtype.type(2 * bound)
    values -= values.dtype.type(bound)
    return values


def kaiming_uniform(shape, generator=None, dtype=None):
    """PyTorch's default conv/linear weight init: U(±1/√fan_in)."""
    return uniform(shape, 1.0 / math.sqrt(fan_in(shape)), generator, dtype)


def constant(shape, value: float, dtype=None):
    dtype = backend.default_dtype() if dtype is None else dtype
    return backend.xp().full(tuple(shape), value, dtype=dtype)
