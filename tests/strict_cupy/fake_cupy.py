"""A strict stand-in for CuPy, backed by NumPy, so that the CuPy code path runs in CI without a GPU.

``install()`` puts a module named ``cupy`` into ``sys.modules``; ``tinyspike.use("cupy")`` then
computes with it. Its arrays are ``cupy.ndarray`` objects that wrap a private NumPy array: the
numbers are NumPy's (so results can be compared with the NumPy backend exactly), while the
*interface* refuses what real CuPy refuses, and a little more, so that any NumPy leaking into a
path that must run on the GPU fails here with a clear TypeError instead of on a user's machine.

What it refuses (each a ``TypeError``), and why:

1. ``numpy.asarray(device)`` / ``numpy.array(device)``: ``__array__`` raises with CuPy's own
   message ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` ...").
   The explicit ways out are ``a.get()``, ``cupy.asnumpy(a)`` and ``a.item()``.
2. ``numpy.<function>(device)``: ``__array_function__`` raises, and ``__array_ufunc__ = None``
   makes every NumPy ufunc (``np.exp``, ``np.add``, ...) raise. Real CuPy forwards these to its
   own implementation *when it has one*; only a subset exists, so library code must call the
   backend module (``xp.exp``), never ``np``. (Stricter than CuPy, on purpose.)
3. A NumPy array mixed with a device array: as operand of ``+ - * / @ ** < == ...`` either side
   (CuPy: "Unsupported type <class 'numpy.ndarray'>"), as argument of a ``cupy.*`` function
   other than ``asarray``/``array`` (CuPy's functions take no host arrays, ``cupy.split``'s
   index list excepted), and as the value of ``device[...] = host`` (stricter than CuPy, which
   copies a host array assigned to a whole slice: here the copy must be explicit). Lists, tuples
   and None are refused as operands, as CuPy does. Python and NumPy *scalars* are fine.
4. Host scalars pulled out silently: ``float(a)``, ``int(a)``, ``bool(a)``, ``operator.index(a)``,
   ``complex(a)`` and ``format(a, ".3f")``. Real CuPy allows them on one-element arrays, with a
   hidden device synchronisation; here a sync must be spelled ``a.item()``. (Stricter than CuPy.)
5. ``ndarray`` methods and ``cupy.*`` names that CuPy does not have (only the lists below exist).

What it mirrors from CuPy besides: reductions and integer indexing give 0-d arrays, not scalars;
``cupy.asarray(host)`` copies (a later change of the host array does not reach the device);
``a.data`` is a ``cupy.cuda.memory.MemoryPointer``, not the numbers; ``cupy.random`` generators
draw a different stream from NumPy's for the same seed, and their ``bit_generator.state`` is a
*method* returning a device pointer (CuPy generator states cannot be saved); ``RawKernel`` and
``RawModule`` exist but cannot compile CUDA (run the reference kernels under the stand-in).
"""

from __future__ import annotations

import numbers
import operator
import sys
import types

import numpy

_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
             "Please use `.get()` to construct a NumPy array explicitly.")


class StrictCupyError(TypeError):
    """Something real CuPy would refuse, or that would hide a host/device transfer or sync."""


# ---- moving between the wrapper and NumPy --------------------------------------------------------


def _wrap(value):
    """NumPy results become device arrays (0-d for scalars, as CuPy); containers are mapped."""
    if isinstance(value, numpy.ndarray):
        return ndarray._of(value)
    if isinstance(value, numpy.generic):
        return ndarray._of(numpy.asarray(value))
    if isinstance(value, (tuple, list)):
        return type(value)(_wrap(v) for v in value)
    return value


def _unwrap(value, where, host_ok=False):
    """Device arrays to their NumPy array; host arrays refused unless ``host_ok``."""
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, numpy.ndarray) and not host_ok:
        raise StrictCupyError(f"{where}: a numpy.ndarray was passed where CuPy needs a cupy.ndarray "
                              "(move it explicitly with cupy.asarray / backend.to_device)")
    if isinstance(value, (tuple, list)):
        return type(value)(_unwrap(v, where, host_ok) for v in value)
    return value


def _operand(value, op):
    """The other side of a binary operator: a device array or a Python/NumPy scalar."""
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, (numbers.Number, numpy.generic)):
        return value
    raise StrictCupyError(f"Unsupported type {type(value)} (operand of {op} with a cupy.ndarray)")


def _defers(other, reflected_name) -> bool:
    """CuPy returns NotImplemented to objects with a higher ``__array_priority__`` (a Tensor)."""
    return (not isinstance(other, (ndarray, numpy.ndarray, numpy.generic))
            and getattr(other, "__array_priority__", 0) > ndarray.__array_priority__
            and hasattr(other, reflected_name))


def _refuse_sync(kind):
    def method(self, *args):
        raise StrictCupyError(f"{kind}() of a cupy array pulls a host scalar with a hidden device "
                              "synchronisation; call .item() where a host value is really needed")
    return method


class MemoryPointer:
    """What ``cupy.ndarray.data`` is: a pointer to device memory (not the numbers)."""

    __module__ = "cupy.cuda.memory"

    def __init__(self, array):
        self.ptr = array._a.__array_interface__["data"][0]


# ---- the array ------------------------------------------------------------------------------------


class ndarray:  # noqa: N801 - CuPy's name
    """A device array: a private NumPy array behind CuPy's interface (see the module docstring)."""

    __module__ = "cupy"  # backend.is_gpu_array checks type(a).__module__.startswith("cupy")
    __slots__ = ("_a",)
    __array_priority__ = 100  # CuPy's value
    __array_ufunc__ = None  # NumPy ufuncs raise; NumPy operators defer to ours (which refuse hosts)
    __hash__ = None

    def __init__(self, shape, dtype=float):
        self._a = numpy.empty(shape, dtype)  # cupy.ndarray(shape, dtype): uninitialised memory

    @classmethod
    def _of(cls, host):
        array = cls.__new__(cls)
        array._a = host
        return array

    def __array__(self, dtype=None, copy=None):
        raise StrictCupyError(_IMPLICIT)

    def __array_function__(self, func, types, args, kwargs):
        raise StrictCupyError(f"numpy.{func.__name__} was called on a cupy array: library code must call "
                              "the backend's module (backend.xp() / array_module_of), not numpy")

    __float__, __int__, __index__ = _refuse_sync("float"), _refuse_sync("int"), _refuse_sync("operator.index")
    __bool__, __complex__ = _refuse_sync("bool"), _refuse_sync("complex")

    def __format__(self, spec):
        if spec:  # f"{a:.3f}" would pull the value to the host
            raise StrictCupyError(f"format(cupy array, {spec!r}) pulls a host scalar; format a.item() instead")
        return str(self)

    # explicit transfers and scalar pulls
    def get(self):
        return self._a.copy()

    def item(self, *args):
        return self._a.item(*args)

    def tolist(self):
        return self._a.tolist()

    def set(self, host):
        self._a[...] = host

    # facts
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray._of(self._a.T))
    data = property(lambda self: MemoryPointer(self))

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (ndarray._of(row) for row in self._a)

    def __repr__(self):
        return repr(self._a)  # CuPy prints the values too (a transfer, for humans only)

    def __str__(self):
        return str(self._a)

    def __getitem__(self, index):
        # CuPy accepts host index arrays and lists (it copies them to the device)
        return _wrap(self._a[_unwrap(index, "indexing", host_ok=True)])

    def __setitem__(self, index, value):
        self._a[_unwrap(index, "indexing", host_ok=True)] = _unwrap(value, "cupy.ndarray.__setitem__")


def _binary(op, name, reflected=False):
    reflected_name = "__r" + name.strip("_") + "__"

    def method(self, other):
        if _defers(other, reflected_name):
            return NotImplemented
        b = _operand(other, name)
        return _wrap(op(b, self._a) if reflected else op(self._a, b))

    return method


def _inplace(op, name):
    def method(self, other):
        self._a = op(self._a, _operand(other, name))  # numpy's in-place op returns the same array
        return self

    return method


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor",
              "lshift", "rshift"):
    _op = getattr(operator, _name + "_" if _name in ("and", "or") else _name)
    setattr(ndarray, f"__{_name}__", _binary(_op, f"__{_name}__"))
    setattr(ndarray, f"__r{_name}__", _binary(_op, f"__{_name}__", reflected=True))
    setattr(ndarray, f"__i{_name}__", _inplace(getattr(operator, "i" + _name), f"__i{_name}__"))
for _name in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(ndarray, f"__{_name}__", _binary(getattr(operator, _name), f"__{_name}__"))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(ndarray, f"__{_name}__", (lambda op: lambda self: _wrap(op(self._a)))(getattr(operator, _name)))

# cupy.ndarray's methods (a NumPy-only method such as ``ptp`` or ``itemset`` is an AttributeError)
_METHODS = """all any argmax argmin argpartition argsort astype clip conj conjugate copy cumprod cumsum
diagonal dot fill flatten max mean min nonzero partition prod put ravel repeat reshape round sort
squeeze std sum swapaxes take trace transpose var view""".split()


def _method(name):
    def method(self, *args, **kwargs):
        where = f"cupy.ndarray.{name}"
        return _wrap(getattr(self._a, name)(*_unwrap(args, where), **_unwrap(kwargs, where)))

    method.__name__ = name
    return method


for _name in _METHODS:
    setattr(ndarray, _name, _method(_name))


# ---- functions and ufuncs -------------------------------------------------------------------------


def _function(name, host_ok=()):
    """``cupy.<name>``: NumPy's function on the unwrapped arrays. ``host_ok``: argument positions
    (and keyword names) that may be host data, as CuPy takes them (``split``'s indices)."""
    np_function = getattr(numpy, name)

    def function(*args, **kwargs):
        where = f"cupy.{name}"
        args = [_unwrap(a, where, i in host_ok) for i, a in enumerate(args)]
        kwargs = {k: _unwrap(v, where, k in host_ok) for k, v in kwargs.items()}
        return _wrap(np_function(*args, **kwargs))

    function.__name__ = name
    return function


def _host_to_device(obj, dtype=None, ndmin=0):
    """The explicit host -> device copy of ``cupy.asarray`` / ``cupy.array``: always a copy, so a
    later change of the host array does not reach the device (as with real CuPy)."""
    return ndarray._of(numpy.array(_unwrap(obj, "cupy.asarray", host_ok=True), dtype=dtype, ndmin=ndmin))


def asarray(a, dtype=None, order=None):
    if isinstance(a, ndarray):  # no copy unless the dtype changes, as CuPy
        return a if dtype is None or numpy.dtype(dtype) == a.dtype else a.astype(dtype)
    return _host_to_device(a, dtype)


def array(obj, dtype=None, copy=True, order="K", ndmin=0):
    if isinstance(obj, ndarray) and not copy and ndmin <= obj.ndim:
        return asarray(obj, dtype)
    return _host_to_device(obj, dtype, ndmin)


def asnumpy(a):
    """The explicit device -> host copy."""
    return a.get() if isinstance(a, ndarray) else numpy.asarray(a)


def get_array_module(*args):
    return module if any(isinstance(a, ndarray) for a in args) else numpy


class ufunc:  # noqa: N801 - CuPy's name
    """``cupy.add`` etc.: callable, with ``at`` (CuPy >= 12) and ``reduce``."""

    __module__ = "cupy"

    def __init__(self, np_ufunc):
        self._u = np_ufunc
        self.__name__ = np_ufunc.__name__
        self.nin, self.nout = np_ufunc.nin, np_ufunc.nout

    def __call__(self, *args, **kwargs):
        where = f"cupy.{self.__name__}"
        return _wrap(self._u(*_unwrap(args, where), **_unwrap(kwargs, where)))

    def at(self, a, indices, b=None):
        where = f"cupy.{self.__name__}.at"
        if not isinstance(a, ndarray):
            raise StrictCupyError(f"{where}: the target must be a cupy.ndarray, got {type(a).__name__}")
        args = () if b is None else (_unwrap(b, where),)
        self._u.at(a._a, _unwrap(indices, where, host_ok=True), *args)

    def reduce(self, array, *args, **kwargs):
        return _wrap(self._u.reduce(_unwrap(array, f"cupy.{self.__name__}.reduce"), *args, **kwargs))


_FUNCTIONS = """empty empty_like zeros zeros_like ones ones_like full full_like arange linspace eye identity
ascontiguousarray copy concatenate stack vstack hstack split array_split broadcast_to broadcast_arrays
expand_dims squeeze reshape ravel transpose swapaxes moveaxis pad tile repeat flip where clip dot matmul
tensordot einsum outer sum prod mean var std max min amax amin argmax argmin cumsum all any count_nonzero
nonzero sort argsort unique take take_along_axis put_along_axis round around allclose array_equal isclose
nan_to_num diff result_type can_cast isscalar""".split()
_HOST_OK = {"split": {1, "indices_or_sections"}, "array_split": {1, "indices_or_sections"},
            "isscalar": {0}, "result_type": set(range(8)), "can_cast": {0, 1}}
_PASS_THROUGH = """dtype iinfo finfo bool_ int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32
float64 complex64 complex128 integer floating number generic inf nan pi e newaxis""".split()


def _build_module():
    module = types.ModuleType("cupy", "Strict CuPy stand-in (tests/strict_cupy/fake_cupy.py).")
    module.ndarray, module.ufunc = ndarray, ufunc
    module.asarray, module.array, module.asnumpy = asarray, array, asnumpy
    module.get_array_module = get_array_module
    module.__version__ = "13.0.0+strict-stand-in"
    for name in _PASS_THROUGH:
        setattr(module, name, getattr(numpy, name))
    for name in _FUNCTIONS:
        setattr(module, name, _function(name, _HOST_OK.get(name, ())))
    for name in dir(numpy):  # every NumPy ufunc that CuPy also has as a ufunc (exp, log, maximum, ...)
        value = getattr(numpy, name)
        if isinstance(value, numpy.ufunc) and not name.startswith("_"):
            setattr(module, name, ufunc(value))

    linalg = types.ModuleType("cupy.linalg")
    linalg.norm = lambda x, *args, **kwargs: _wrap(numpy.linalg.norm(_unwrap(x, "cupy.linalg.norm"), *args, **kwargs))
    module.linalg = linalg

    random = types.ModuleType("cupy.random")
    random.XORWOW, random.Generator, random.default_rng = XORWOW, Generator, default_rng
    module.random = random

    cuda = types.ModuleType("cupy.cuda")
    cuda.runtime = types.SimpleNamespace(getDeviceCount=lambda: 1, runtimeGetVersion=lambda: 12040)
    cuda.memory = types.SimpleNamespace(MemoryPointer=MemoryPointer)
    cuda.get_device_id = lambda: 0
    module.cuda = cuda
    module.RawKernel = module.RawModule = module.ElementwiseKernel = _no_cuda
    return module


def _no_cuda(*args, **kwargs):
    raise StrictCupyError("the strict CuPy stand-in compiles no CUDA: run it with the reference kernels "
                          "(with tinyspike.kernels.use('reference'))")


# ---- random ---------------------------------------------------------------------------------------


class XORWOW:
    """CuPy's default bit generator. Its ``state`` is a method (a device pointer), not a dict."""

    __module__ = "cupy.random._bit_generator"

    def __init__(self, seed=None):
        # not NumPy's PCG64: CuPy's stream differs from NumPy's for the same seed, and so does ours
        self._numpy = numpy.random.Generator(numpy.random.Philox(numpy.random.SeedSequence(seed)))

    def state(self):
        return id(self)


class Generator:
    """``cupy.random.Generator``: the methods tinyspike may call, returning device arrays."""

    __module__ = "cupy.random._generator_api"

    def __init__(self, bit_generator):
        self.bit_generator = bit_generator

    def random(self, size=None, dtype=numpy.float64, out=None):
        values = ndarray._of(numpy.asarray(self.bit_generator._numpy.random(size, dtype=dtype)))
        if out is not None:
            out[...] = values
            return out
        return values

    def standard_normal(self, size=None, dtype=numpy.float64, out=None):
        return ndarray._of(numpy.asarray(self.bit_generator._numpy.standard_normal(size, dtype=dtype)))

    def uniform(self, low=0.0, high=1.0, size=None, dtype=numpy.float64):
        return ndarray._of(numpy.asarray(self.bit_generator._numpy.uniform(low, high, size)).astype(dtype))

    def integers(self, low, high=None, size=None, dtype=numpy.int64, endpoint=False):
        return ndarray._of(numpy.asarray(self.bit_generator._numpy.integers(low, high, size, dtype, endpoint)))


def default_rng(seed=None):
    if isinstance(seed, Generator):
        return seed
    return Generator(seed if isinstance(seed, XORWOW) else XORWOW(seed))


# ---- installing -----------------------------------------------------------------------------------

module = _build_module()
_MODULE_NAMES = ("cupy", "cupy.cuda", "cupy.random", "cupy.linalg")


def install() -> dict:
    """Put the stand-in into ``sys.modules``; returns what was there, for ``uninstall``."""
    previous = {name: sys.modules.get(name) for name in _MODULE_NAMES}
    sys.modules.update({"cupy": module, "cupy.cuda": module.cuda, "cupy.random": module.random,
                        "cupy.linalg": module.linalg})
    return previous


def uninstall(previous: dict) -> None:
    for name, value in previous.items():
        if value is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = value
