"""Surrogate spike functions: what the LIF neuron uses in place of the Heaviside step's derivative.

A spiking neuron fires when its membrane potential u crosses the threshold V_th:
``s = H(u - V_th)``, with H the Heaviside step (strict: ``H(0) = 0``, so u = V_th does not fire).
H has derivative 0 almost everywhere, which would stop every gradient, so backward replaces
``dH/du`` by a *surrogate* ``sg(d)``, a bump centred on the threshold (``d = u - V_th``). Forward
stays exact (binary spikes); only the backward pass is changed.

Every surrogate here is a small object with

- ``name`` and one positive parameter (``width`` for the bumps with a finite support, ``alpha``
  for the slope of the smooth ones), validated when built;
- ``spike(d)``: the forward spike value, ``(d > 0)`` as d's dtype for every surrogate but "smooth";
- ``grad(d)``: the derivative used in backward, in d's dtype;
- ``binary``: True when ``spike`` returns only 0 and 1.

Their formulas (each integrates to 1 over the real line, as dH/du does, except "fast_sigmoid",
kept in its published form):

===============  ==============================================  ==========================
name             grad(d)                                         parameter (default)
===============  ==============================================  ==========================
rectangular      (1/a) · 1[|d| < a/2]  (open interval)            width a (1.0, REFERENCE §1)
triangle         (1/a) · max(0, 1 - |d|/a)                        width a (1.0)
sigmoid          α · σ(αd) · (1 - σ(αd))                          alpha (4.0)
atan             (α/2) / (1 + (π/2 · α · d)²)                     alpha (2.0)
fast_sigmoid     1 / (1 + α|d|)²                                  alpha (10.0)
smooth           α · σ(αd) · (1 - σ(αd)),  and spike(d) = σ(αd)   alpha (4.0)
===============  ==============================================  ==========================

"smooth" is not a surrogate but a test instrument: the forward *also* uses the sigmoid, so the
neuron is an ordinary differentiable function and its BPTT is exact calculus, which central
finite differences can check (DESIGN.md, "The LIF Function"). Its spikes are not binary.

Look one up with ``get("rectangular", width=1.0)``, or build one: ``Rectangular(width=0.5)``.
"""

from __future__ import annotations

import math

from tinyspike import backend, checks


def _positive(where: str, name: str, value) -> float:
    # checks.real: a finite real number (NumPy scalars too; bools, strings, NaN and ±inf refused)
    return checks.real(where, name, value, low=0.0, low_open=True)


def _sigmoid(z):
    # 0.5·tanh(z/2) + 0.5 equals 1/(1 + e^-z) and never overflows (e^-z does for z < -88 in float32).
    xp = backend.array_module_of(z)
    return 0.5 * xp.tanh(0.5 * z) + 0.5


class Surrogate:
    """Base class: Heaviside forward, ``grad`` supplied by the subclass.

    A surrogate of your own: subclass, set ``name``, ``param_name`` and ``default``, write
    ``grad(d)`` with array code (``backend.array_module_of(d)``, constants in d's dtype). The LIF
    kernels run it through the reference kernel (the Numba kernel knows only the built-in names).
    """

    name = "surrogate"
    param_name = "width"
    default = 1.0
    binary = True

    def __init__(self, value: float | None = None):
        self.param = _positive(f"surrogate {self.name!r}", self.param_name, self.default if value is None else value)

    def spike(self, d):
        """Forward spike value for ``d = u - V_th``: 1 where d > 0 (strict), else 0, in d's dtype."""
        return (d > 0).astype(d.dtype)

    def grad(self, d):  # pragma: no cover - abstract
        raise NotImplementedError

    def _const(self, d, value):
        # Constants take d's dtype, so float32 stays float32 and fast kernels can repeat the ops.
        return d.dtype.type(value)

    def __repr__(self):
        return f"{type(self).__name__}({self.param_name}={self.param!r})"

    def __eq__(self, other):
        return type(self) is type(other) and self.param == other.param

    def __hash__(self):
        return hash((type(self).__name__, self.param))


class _WidthSurrogate(Surrogate):
    """A bump with a finite support, parameterised by its ``width``."""

    param_name = "width"

    def __init__(self, width: float | None = None):
        super().__init__(width)

    @property
    def width(self) -> float:
        return self.param


class _SlopeSurrogate(Surrogate):
    """A smooth bump, parameterised by its steepness ``alpha``."""

    param_name = "alpha"

    def __init__(self, alpha: float | None = None):
        super().__init__(alpha)

    @property
    def alpha(self) -> float:
        return self.param


class Rectangular(_WidthSurrogate):
    """``grad(d) = 1/a`` on the open interval ``|d| < a/2``, else 0 (the MS-ResNet surrogate).

    With V_th = 0.5 and a = 1 it is 1 exactly for 0 < u < 1: u = 0 and u = 1 give 0.
    """

    name = "rectangular"
    default = 1.0

    def grad(self, d):
        xp = backend.array_module_of(d)
        half, inv = self._const(d, self.param / 2), self._const(d, 1.0 / self.param)
        return (xp.abs(d) < half).astype(d.dtype) * inv


class Triangle(_WidthSurrogate):
    """``grad(d) = (1/a) · max(0, 1 - |d|/a)``: a tent of half-width a and area 1."""

    name = "triangle"
    default = 1.0

    def grad(self, d):
        xp = backend.array_module_of(d)
        inv = self._const(d, 1.0 / self.param)
        return xp.maximum(self._const(d, 0.0), 1 - xp.abs(d) * inv) * inv


class Sigmoid(_SlopeSurrogate):
    """``grad(d) = α σ(αd)(1 - σ(αd))``, the derivative of σ(αd); larger α is closer to a spike."""

    name = "sigmoid"
    default = 4.0

    def grad(self, d):
        alpha = self._const(d, self.param)
        sig = _sigmoid(alpha * d)
        return alpha * sig * (1 - sig)


class ATan(_SlopeSurrogate):
    """``grad(d) = (α/2) / (1 + (π/2 · α · d)²)``, the derivative of ``arctan(π/2 · α · d)/π + 1/2``."""

    name = "atan"
    default = 2.0

    def grad(self, d):
        k = self._const(d, math.pi / 2 * self.param)
        z = k * d
        return self._const(d, self.param / 2) / (1 + z * z)


class FastSigmoid(_SlopeSurrogate):
    """``grad(d) = 1 / (1 + α|d|)²`` (SuperSpike, Zenke & Ganguli 2018); area 2/α, not 1."""

    name = "fast_sigmoid"
    default = 10.0

    def grad(self, d):
        xp = backend.array_module_of(d)
        z = 1 + self._const(d, self.param) * xp.abs(d)
        return 1 / (z * z)


class Smooth(Sigmoid):
    """The sigmoid used in forward too: ``spike(d) = σ(αd)``, ``grad(d) = α σ(αd)(1 - σ(αd))``.

    Spikes are real numbers in (0, 1), not 0/1: a differentiable stand-in neuron whose BPTT is
    exact calculus, so ``gradcheck`` can verify the recurrence. Use it for tests, not training.
    """

    name = "smooth"
    binary = False

    def spike(self, d):
        return _sigmoid(self._const(d, self.param) * d)


SURROGATES = {cls.name: cls for cls in (Rectangular, Triangle, Sigmoid, ATan, FastSigmoid, Smooth)}


def get(surrogate="rectangular", **params) -> Surrogate:
    """A surrogate by name (``get("sigmoid", alpha=4.0)``), or the object itself if one is given.

    The one keyword allowed is the surrogate's parameter: ``width`` for rectangular/triangle,
    ``alpha`` for the others.
    """
    if isinstance(surrogate, Surrogate):
        if params:
            raise ValueError(f"surrogate: parameters {sorted(params)} given with a built object {surrogate!r}")
        return surrogate
    if not isinstance(surrogate, str):
        raise TypeError(
            f"surrogate must be a name in {sorted(SURROGATES)} or a Surrogate object, "
            f"got {type(surrogate).__name__}"
        )
    key = surrogate.lower().replace("-", "_")
    if key not in SURROGATES:
        raise ValueError(f"surrogate must be one of {sorted(SURROGATES)}, got {surrogate!r}")
    cls = SURROGATES[key]
    unknown = set(params) - {cls.param_name}
    if unknown:
        raise ValueError(
            f"surrogate {key!r} takes only the parameter {cls.param_name!r}, got {sorted(unknown)}"
        )
    return cls(params.get(cls.param_name))
