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

import numpy as np  # the Generator type only

from tinyspike import backend, checks


def resolve_generator(generator=None, where: str = "resolve_generator", name: str = "generator"):
    """A random Generator from ``None`` (the global one), an int seed >= 0, or a Generator.

    ``where`` and ``name`` say whose argument it is in error messages (a model's ``seed``, a
    layer's ``generator``). A Generator of the active backend (NumPy's, or CuPy's on the GPU) is
    used as is; a legacy ``RandomState`` or any other object is refused.
    """
    if generator is None:
        return backend.rng()
    if checks.is_integer(generator):
        return backend.new_generator(checks.integer(where, name, generator, low=0))
    if isinstance(generator, type(backend.rng())) or isinstance(generator, np.random.Generator):
        return generator
    raise TypeError(f"{where}: {name} must be None, an int seed >= 0 or a random Generator "
                    f"(np.random.default_rng(seed)), got {checks.kind_of(generator)} {checks.show(generator)}")


def fan_in(shape) -> int:
    """Inputs feeding one output unit: in_features, or in_channels·kh·kw for a conv weight."""
    if len(shape) < 2:
        raise ValueError(f"fan_in needs a weight of at least 2 dimensions, got shape {tuple(shape)}")
    return int(math.prod(shape[1:]))


def uniform(shape, bound: float, generator=None, dtype=None):
    """A new array of U(−bound, +bound) samples, drawn directly in ``dtype`` (no float64 detour)."""
    bound = checks.real("uniform", "bound", bound, low=0.0)
    rng = resolve_generator(generator, "uniform", "generator")
    dtype = backend.default_dtype() if dtype is None else checks.float_dtype("uniform", "dtype", dtype)
    values = rng.random(tuple(shape), dtype=dtype)  # U[0, 1)
    values *= values.dtype.type(2 * bound)
    values -= values.dtype.type(bound)
    return values


def kaiming_uniform(shape, generator=None, dtype=None):
    """PyTorch's default conv/linear weight init: U(±1/√fan_in)."""
    return uniform(shape, 1.0 / math.sqrt(fan_in(shape)), generator, dtype)  # fan_in >= 1: layers check sizes


def constant(shape, value: float, dtype=None):
    """A new array of ``shape`` filled with ``value`` (finite), in ``dtype`` (default: the backend's)."""
    value = checks.real("constant", "value", value)
    dtype = backend.default_dtype() if dtype is None else checks.float_dtype("constant", "dtype", dtype)
    return backend.xp().full(tuple(shape), value, dtype=dtype)
