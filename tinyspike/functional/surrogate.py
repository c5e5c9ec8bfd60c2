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
- ``binary``: True when ``spike`` returns only 0 and 1;
- the forms the compiled LIF kernels need, written next to ``grad`` so that each formula lives in
  one class: ``constants()`` (the two numbers c0, c1 every form reads, so that all kernels round
  them alike), ``scalar_spike``/``scalar_grad`` (one value at a time, plain Python that Numba
  compiles: ``kernels.numba_cpu.lif``), ``cuda_spike``/``cuda_grad`` (CUDA C bodies, pasted into
  the kernel source by ``kernels.cuda.lif``) and ``mask_window`` (grad is c1 on |d| < c0, else
  0: backward then needs one bit per step, and the LIF saves 1-byte codes).

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
from collections import namedtuple

import numpy as np  # np.tanh in the scalar forms: float32 in, float32 out, in Python and in Numba

from tinyspike import backend, checks

ScalarConstants = namedtuple("ScalarConstants", "c0 c1 zero half one")
ScalarConstants.__doc__ = """What a scalar form reads, every field in d's dtype.

A bare Python float in Numba code is a float64 and would turn float32 arithmetic into float64 (and
break the equality with the reference), so even 0, 1/2 and 1 arrive as typed values."""

FastForms = namedtuple("FastForms", "scalar_spike scalar_grad cuda_spike cuda_grad mask_window")
FastForms.__doc__ = """A surrogate's forms for the compiled LIF kernels (``Surrogate.fast_forms``)."""

HEAVISIDE_CUDA = "return d > (real)0 ? (real)1 : (real)0;"
_SIGMOID_CUDA = "real sig = (real)0.5 * tanh((real)0.5 * (c0 * d)) + (real)0.5;"


def heaviside_scalar(d, const):
    """The strict step, one value: 1 if d > 0 else 0 (u = V_th does not fire)."""
    return const.one if d > const.zero else const.zero


def _sigmoid(z):
    # 0.5·tanh(z/2) + 0.5 equals 1/(1 + e^-z) and never overflows (e^-z does for z < -88 in float32).
    xp = backend.array_module_of(z)
    return 0.5 * xp.tanh(0.5 * z) + 0.5


class Surrogate:
    """Base class: Heaviside forward, ``grad`` supplied by the subclass.

    A surrogate of your own: subclass, set ``name``, ``param_name`` and ``default``, write
    ``grad(d)`` with array code (``backend.array_module_of(d)``, constants in d's dtype). That is
    enough on every backend: the LIF runs it through the reference kernel. For the compiled
    kernels, also write ``constants``, ``scalar_grad`` (plain Python on one value, constants from
    its ``const`` argument, calling only what Numba compiles: arithmetic, ``abs``, ``max``, NumPy's
    scalar functions; no helpers of your own) and ``cuda_grad`` in the same class, as the
    built-ins below do.
    """

    name = "surrogate"
    param_name = "width"
    default = 1.0
    binary = True
    # The compiled forms; None: this surrogate has none (a subclass that sets them sets all four).
    scalar_spike = staticmethod(heaviside_scalar)
    scalar_grad = None
    cuda_spike = HEAVISIDE_CUDA
    cuda_grad = None
    mask_window = False

    def __init__(self, value: float | None = None):
        value = self.default if value is None else value  # a finite real number > 0 (checks.real)
        self.param = checks.real(f"surrogate {self.name!r}", self.param_name, value, low=0.0, low_open=True)

    def spike(self, d):
        """Forward spike value for ``d = u - V_th``: 1 where d > 0 (strict), else 0, in d's dtype."""
        return (d > 0).astype(d.dtype)

    def grad(self, d):  # pragma: no cover - abstract
        raise NotImplementedError

    def constants(self) -> tuple[float, float]:
        """(c0, c1): the numbers ``grad`` and every fast form compute with (see each class)."""
        return self.param, 0.0

    def fast_forms(self) -> FastForms | None:
        """The compiled forms, or None when there are none, or when they would not be this ``grad``.

        A subclass that overrides ``grad`` (or ``spike``) but not the forms inherits forms that
        compute its parent's formula; they are valid only if the class that set them is the one
        that defines ``grad`` and ``spike``, or below it.
        """
        cls = type(self)
        owner = _defining_class(cls, "scalar_grad")
        if cls.scalar_grad is None or cls.cuda_grad is None or not all(
            issubclass(owner, _defining_class(cls, method)) for method in ("grad", "spike")
        ):
            return None
        return FastForms(cls.scalar_spike, cls.scalar_grad, cls.cuda_spike, cls.cuda_grad, cls.mask_window)

    def constants_like(self, d):
        """``constants()`` in d's dtype, so float32 stays float32 and fast kernels can repeat the ops."""
        return tuple(d.dtype.type(value) for value in self.constants())

    def __repr__(self):
        return f"{type(self).__name__}({self.param_name}={self.param!r})"

    def __eq__(self, other):
        return type(self) is type(other) and self.param == other.param

    def __hash__(self):
        return hash((type(self).__name__, self.param))


class _WidthSurrogate(Surrogate):
    """A bump with a finite support, parameterised by its ``width``."""

    param_name = "width"
    width = property(lambda self: self.param)

    def __init__(self, width: float | None = None):
        super().__init__(width)


class _SlopeSurrogate(Surrogate):
    """A smooth bump, parameterised by its steepness ``alpha``."""

    param_name = "alpha"
    alpha = property(lambda self: self.param)

    def __init__(self, alpha: float | None = None):
        super().__init__(alpha)


class Rectangular(_WidthSurrogate):
    """``grad(d) = 1/a`` on the open interval ``|d| < a/2``, else 0 (the MS-ResNet surrogate).

    With V_th = 0.5 and a = 1 it is 1 exactly for 0 < u < 1: u = 0 and u = 1 give 0.
    """

    name = "rectangular"
    default = 1.0
    mask_window = True  # grad(d) = c1 · 1[|d| < c0]

    def constants(self):
        return self.param / 2, 1.0 / self.param  # a/2, 1/a

    def grad(self, d):
        xp = backend.array_module_of(d)
        half, inv = self.constants_like(d)
        return (xp.abs(d) < half).astype(d.dtype) * inv

    @staticmethod
    def scalar_grad(d, const):
        return const.c1 if abs(d) < const.c0 else const.zero

    cuda_grad = "return (fabs(d) < c0 ? (real)1 : (real)0) * c1;"


class Triangle(_WidthSurrogate):
    """``grad(d) = (1/a) · max(0, 1 - |d|/a)``: a tent of half-width a and area 1."""

    name = "triangle"
    default = 1.0

    def constants(self):
        return 1.0 / self.param, 0.0  # 1/a

    def grad(self, d):
        xp = backend.array_module_of(d)
        inv, _ = self.constants_like(d)
        return xp.maximum(d.dtype.type(0), 1 - xp.abs(d) * inv) * inv

    @staticmethod
    def scalar_grad(d, const):
        return max(const.zero, const.one - abs(d) * const.c0) * const.c0

    # Not fmax: np.maximum propagates NaN, fmax drops it.
    cuda_grad = "real m = (real)1 - fabs(d) * c0; return (m < (real)0 ? (real)0 : m) * c0;"


class Sigmoid(_SlopeSurrogate):
    """``grad(d) = α σ(αd)(1 - σ(αd))``, the derivative of σ(αd); larger α is closer to a spike."""

    name = "sigmoid"
    default = 4.0

    def constants(self):
        return self.param, 0.0  # α

    def grad(self, d):
        alpha, _ = self.constants_like(d)
        sig = _sigmoid(alpha * d)
        return alpha * sig * (1 - sig)

    @staticmethod
    def scalar_grad(d, const):
        sig = const.half * np.tanh(const.half * (const.c0 * d)) + const.half  # _sigmoid(αd), operation for operation
        return const.c0 * sig * (const.one - sig)

    cuda_grad = _SIGMOID_CUDA + " return c0 * sig * ((real)1 - sig);"


class ATan(_SlopeSurrogate):
    """``grad(d) = (α/2) / (1 + (π/2 · α · d)²)``, the derivative of ``arctan(π/2 · α · d)/π + 1/2``."""

    name = "atan"
    default = 2.0

    def constants(self):
        return math.pi / 2 * self.param, self.param / 2  # π/2·α, α/2

    def grad(self, d):
        slope, height = self.constants_like(d)
        z = slope * d
        return height / (1 + z * z)

    @staticmethod
    def scalar_grad(d, const):
        z = const.c0 * d
        return const.c1 / (const.one + z * z)

    cuda_grad = "real z = c0 * d; return c1 / ((real)1 + z * z);"


class FastSigmoid(_SlopeSurrogate):
    """``grad(d) = 1 / (1 + α|d|)²`` (SuperSpike, Zenke & Ganguli 2018); area 2/α, not 1."""

    name = "fast_sigmoid"
    default = 10.0

    def constants(self):
        return self.param, 0.0  # α

    def grad(self, d):
        xp = backend.array_module_of(d)
        alpha, _ = self.constants_like(d)
        z = 1 + alpha * xp.abs(d)
        return 1 / (z * z)

    @staticmethod
    def scalar_grad(d, const):
        z = const.one + const.c0 * abs(d)
        return const.one / (z * z)

    cuda_grad = "real z = (real)1 + c0 * fabs(d); return (real)1 / (z * z);"


class Smooth(Sigmoid):
    """The sigmoid used in forward too: ``spike(d) = σ(αd)``, ``grad(d) = α σ(αd)(1 - σ(αd))``.

    Spikes are real numbers in (0, 1), not 0/1: a differentiable stand-in neuron whose BPTT is
    exact calculus, so ``gradcheck`` can verify the recurrence. Use it for tests, not training.
    """

    name = "smooth"
    binary = False

    def spike(self, d):
        return _sigmoid(d.dtype.type(self.param) * d)

    @staticmethod
    def scalar_spike(d, const):
        return const.half * np.tanh(const.half * (const.c0 * d)) + const.half

    scalar_grad = staticmethod(Sigmoid.scalar_grad)  # set again here: this class defines spike (see fast_forms)
    cuda_spike = _SIGMOID_CUDA + " return sig;"


def _defining_class(cls, attribute: str) -> type:
    """The first class in ``cls``'s method resolution order whose body sets ``attribute``."""
    return next(klass for klass in cls.__mro__ if attribute in vars(klass))


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
