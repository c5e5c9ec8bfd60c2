"""The multi-step LIF: REFERENCE.md §1 test vectors, surrogates, numba == reference, BPTT checked
by finite differences (smooth spike) and against the loop unrolled into elementary autograd ops."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinyspike import backend, kernels
from tinyspike.autograd import Function, Tensor
from tinyspike.functional import surrogate as surrogates
from tinyspike.functional.lif import LIFFunction, lif, saved_bytes_per_neuron_step
from tinyspike.gradcheck import gradcheck
from tinyspike.ops import stack

from helpers import dev, host

IMPLEMENTATIONS = ["reference", "numba_cpu"]
ALL_SURROGATES = sorted(surrogates.SURROGATES)
BINARY_SURROGATES = [name for name in ALL_SURROGATES if surrogates.SURROGATES[name].binary]

VECTORS = [
    dict(
        x=[0.3, 0.4, 0.6, 0.1, 0.9, 0.2],
        u=[0.3, 0.475, 0.71875, 0.1, 0.925, 0.2],
        s=[0, 0, 1, 0, 1, 0],
        dx=[1.3125, 1.25, 1.0, 1.25, 1.0, 1.0],
    ),
    dict(
        x=[1.2, -0.3, 0.5, 0.5001, 0.0, 1.0],
        u=[1.2, -0.3, 0.425, 0.60635, 0.0, 1.0],
        s=[1, 0, 0, 1, 0, 1],
        dx=[0.0, 0.3125, 1.25, 1.0, 0.0, 0.0],
    ),
]


def using(implementation):
    """The kernel choice that runs ``implementation`` ("numba_cpu" is the fast one on NumPy)."""
    return kernels.use("reference" if implementation == "reference" else "fast")


def run(x, grad_s=None, implementation="numba_cpu", **kwargs):
    """Spikes and ∂L/∂x of lif for L = Σ grad_s · s (grad_s = 1 by default)."""
    xt = Tensor(dev(x, np.asarray(x).dtype), requires_grad=True)
    with using(implementation):
        s = lif(xt, **kwargs)
        s.backward(dev(np.ones(s.shape) if grad_s is None else grad_s, s.dtype))
    return host(s), host(xt.grad)


def membrane(x, implementation="reference", **kwargs):
    """u[t] from the kernel that saves the membrane (detach_reset=False saves u for any surrogate)."""
    forward = getattr(kernels.LIF, implementation).lif_forward
    _, u = forward(dev(x, np.asarray(x).dtype), 0.5, 0.25, surrogates.get(), False)
    return host(u)


# ---- REFERENCE.md §1 -------------------------------------------------------------------------


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("vector", VECTORS, ids=["vector1", "vector2"])
def test_reference_vectors_float64(vector, implementation):
    x = np.array(vector["x"])[:, None]  # one neuron, T = 6
    s, dx = run(x, implementation=implementation)
    np.testing.assert_array_equal(s[:, 0], vector["s"])
    np.testing.assert_array_equal(dx[:, 0], vector["dx"])  # dyadic numbers: exact
    np.testing.assert_allclose(membrane(x, implementation)[:, 0], vector["u"], rtol=0, atol=1e-15)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("vector", VECTORS, ids=["vector1", "vector2"])
def test_reference_vectors_float32_any_trailing_shape(vector, implementation):
    x = np.broadcast_to(np.array(vector["x"], np.float32)[:, None, None, None], (6, 2, 3, 2)).copy()
    s, dx = run(x, implementation=implementation)
    assert s.dtype == np.float32 and dx.dtype == np.float32
    np.testing.assert_array_equal(s, np.broadcast_to(np.array(vector["s"], np.float32)[:, None, None, None], x.shape))
    np.testing.assert_array_equal(dx, np.broadcast_to(np.array(vector["dx"], np.float32)[:, None, None, None], x.shape))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_threshold_is_strict_and_surrogate_interval_open(implementation):
    # one step per neuron: u = x, so each column probes one membrane value
    x = np.array([[0.5, np.nextafter(0.5, 1.0), 0.0, 1.0, 1e-9, 1.0 - 1e-9, -1e-9, 1.0 + 1e-9]])
    s, dx = run(x, implementation=implementation)
    np.testing.assert_array_equal(s[0], [0, 1, 0, 1, 0, 1, 0, 1])  # u = V_th does not fire
    np.testing.assert_array_equal(dx[0], [1, 1, 0, 0, 1, 1, 0, 0])  # sg = 1 on 0 < u < 1 only


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_no_state_survives_between_calls(implementation):
    x = np.random.default_rng(0).uniform(-0.5, 1.5, (4, 3, 5))
    first, _ = run(x, implementation=implementation)
    second, _ = run(x, implementation=implementation)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(run(x[2:], implementation=implementation)[0][0], x[2] > 0.5)  # u starts at 0


def test_decay_edges():
    x = np.array([[0.3], [0.3], [0.3]])
    np.testing.assert_array_equal(run(x, decay=0.0)[0][:, 0], [0, 0, 0])  # no memory: u = x
    np.testing.assert_array_equal(run(x, decay=1.0)[0][:, 0], [0, 1, 0])  # IF: 0.3, 0.6 fire, reset, 0.3


# ---- surrogates --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_SURROGATES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_surrogate_keeps_dtype_and_spike_is_strict(name, dtype):
    sg = surrogates.get(name)
    d = dev([-1.0, -0.1, 0.0, 0.1, 1.0], dtype)
    assert sg.grad(d).dtype == dtype and sg.spike(d).dtype == dtype
    if sg.binary:
        np.testing.assert_array_equal(host(sg.spike(d)), [0, 0, 0, 1, 1])
    assert np.all(host(sg.grad(d)) >= 0)


@pytest.mark.parametrize("name", ALL_SURROGATES)
def test_surrogate_area(name):
    """Each surrogate stands in for dH/du, a unit impulse: area 1 (fast_sigmoid: 2/α, as published)."""
    sg = surrogates.get(name)
    d = np.linspace(-200.0, 200.0, 4_000_001)
    area = float(np.sum(sg.grad(d)) * (d[1] - d[0]))
    expected = 2 / sg.param if name == "fast_sigmoid" else 1.0
    assert area == pytest.approx(expected, rel=2e-3)


def test_smooth_spike_derivative_is_its_grad():
    sg = surrogates.get("smooth", alpha=3.0)
    d = np.linspace(-2, 2, 41)
    eps = 1e-6
    numerical = (sg.spike(d + eps) - sg.spike(d - eps)) / (2 * eps)
    np.testing.assert_allclose(sg.grad(d), numerical, rtol=1e-7, atol=1e-10)


def test_surrogate_lookup_and_parameters():
    assert surrogates.get() == surrogates.Rectangular(1.0)
    assert surrogates.get("fast-sigmoid", alpha=5).param == 5.0
    obj = surrogates.Triangle(width=0.5)
    assert surrogates.get(obj) is obj
    wide = surrogates.get("rectangular", width=2.0)
    np.testing.assert_array_equal(wide.grad(np.array([-0.99, 0.99, 1.0])), [0.5, 0.5, 0.0])
    with pytest.raises(ValueError, match="alpha"):
        surrogates.get("sigmoid", alpha=0)
    with pytest.raises(ValueError, match="width"):
        surrogates.Rectangular(width=-1.0)
    with pytest.raises(ValueError, match="width"):
        surrogates.get("rectangular", alpha=1.0)
    with pytest.raises(TypeError, match="alpha"):
        surrogates.get("atan", alpha="2")
    with pytest.raises(ValueError, match="surrogate must be one of"):
        surrogates.get("heaviside")
    with pytest.raises(TypeError, match="surrogate"):
        surrogates.get(3)


# ---- numba == reference ------------------------------------------------------------------------

# Values cluster around the interesting points (threshold 0.5, surrogate edges 0 and 1) and include
# them exactly, so ties and open-interval edges are exercised.
values = st.one_of(
    st.floats(-1.5, 2.5, allow_nan=False, width=32),
    st.sampled_from([0.0, 0.5, 1.0, -0.5, 0.375, 0.625]),
)


@st.composite
def lif_inputs(draw):
    t = draw(st.integers(1, 8))
    trailing = draw(st.lists(st.integers(1, 5), min_size=1, max_size=3))
    shape = (t, *trailing)
    n = int(np.prod(shape))
    x = np.array(draw(st.lists(values, min_size=n, max_size=n)), dtype=np.float64).reshape(shape)
    seed = draw(st.integers(0, 2**31 - 1))
    return x, np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("detach_reset", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=25, deadline=None)
@given(data=lif_inputs(), name=st.sampled_from(ALL_SURROGATES), decay=st.sampled_from([0.25, 0.0, 1.0, 0.6]))
def test_numba_equals_reference(data, name, decay, dtype, detach_reset):
    x, g = (a.astype(dtype) for a in data)
    sg = surrogates.get(name)
    results = {}
    for impl in IMPLEMENTATIONS:
        forward = getattr(kernels.LIF, impl).lif_forward
        backward = getattr(kernels.LIF, impl).lif_backward
        spikes, saved = forward(x, 0.5, decay, sg, detach_reset)
        results[impl] = (spikes, saved, backward(g, saved, 0.5, decay, sg, detach_reset))
    (s_ref, saved_ref, g_ref), (s_nb, saved_nb, g_nb) = results["reference"], results["numba_cpu"]
    assert s_nb.dtype == s_ref.dtype == dtype and g_nb.dtype == dtype and saved_nb.dtype == saved_ref.dtype
    if sg.binary:  # the forward is the same float operations in the same order: exact
        np.testing.assert_array_equal(s_nb, s_ref)
        np.testing.assert_array_equal(saved_nb, saved_ref)
    if name == "rectangular":
        np.testing.assert_array_equal(g_nb, g_ref)
    else:  # tanh (numpy's vs LLVM's) may differ in the last bit
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(s_nb, s_ref, rtol=tol, atol=tol)
        np.testing.assert_allclose(g_nb, g_ref, rtol=tol, atol=tol * float(np.abs(g_ref).max(initial=1.0)))


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("name", ["rectangular", "atan"])
def test_numba_equals_reference_many_chunks(name, shared, monkeypatch):
    """More neurons than one Numba chunk, and a remainder, non-contiguous input; ``shared``: the
    chunks split into ranges run by both workers (small work otherwise runs on one thread)."""
    from tinyspike.kernels.numba_cpu import workers

    if shared:
        monkeypatch.setattr(workers, "SERIAL_BELOW", 0)
        monkeypatch.setattr(workers, "count", lambda: 2)
    rng = np.random.default_rng(1)
    x = rng.uniform(-0.5, 1.5, (7, 3, 5 * 4096 + 123)).astype(np.float32).transpose(0, 2, 1)  # [T, N, 3] view
    g = rng.standard_normal(x.shape).astype(np.float32)
    ref = run(x, g, surrogate=name, implementation="reference")
    nb = run(x, g, surrogate=name, implementation="numba_cpu")
    np.testing.assert_array_equal(nb[0], ref[0])
    np.testing.assert_allclose(nb[1], ref[1], rtol=1e-6, atol=1e-6)


def test_user_surrogate_falls_back_to_reference():
    class Bump(surrogates.Surrogate):
        name = "bump"
        param_name = "width"

        def grad(self, d):
            return (abs(d) < self.param).astype(d.dtype) * d.dtype.type(0.5 / self.param)

    x = np.random.default_rng(2).uniform(-0.5, 1.5, (5, 4))
    ref = run(x, surrogate=Bump(0.5), implementation="reference")
    nb = run(x, surrogate=Bump(0.5), implementation="numba_cpu")
    np.testing.assert_array_equal(nb[1], ref[1])


@pytest.mark.parametrize("implementation", ["reference", "numba_cpu"])
def test_a_subclass_of_a_builtin_surrogate_gets_its_own_gradient(implementation):
    """A user subclass keeps the built-in name but overrides grad: no kernel may use the built-in formula."""

    class DoubledRectangular(surrogates.Rectangular):
        def grad(self, d):
            return 2 * super().grad(d)

    x = np.random.default_rng(3).uniform(-0.5, 1.5, (6, 5))
    g = np.ones_like(x)
    spikes, grad_builtin = run(x, g, surrogate="rectangular", implementation=implementation)
    spikes_sub, grad_sub = run(x, g, surrogate=DoubledRectangular(1.0), implementation=implementation)
    np.testing.assert_array_equal(spikes_sub, spikes)
    assert np.abs(grad_builtin).max() > 0
    # g_u[T-1] doubles exactly; earlier steps mix doubled surrogate terms with the leak path
    np.testing.assert_allclose(grad_sub[-1], 2 * grad_builtin[-1])
    assert not np.allclose(grad_sub, grad_builtin)


@pytest.mark.parametrize("name", ALL_SURROGATES)
def test_each_surrogate_forms_compute_its_grad(name):
    """The scalar form (what Numba compiles) gives grad's and spike's values, value by value.

    float64, d around the threshold and on the edges of the windows (|d| = a/2, |d| = a); the
    scalar and array forms do the same operations, so they agree to a few ulps (tanh may differ).
    """
    sg = surrogates.get(name)
    forms = sg.fast_forms()
    assert forms is not None
    d = np.concatenate([np.linspace(-3, 3, 601), [-1.0, -0.5, 0.0, 0.5, 1.0]])
    c0, c1 = sg.constants()
    const = surrogates.ScalarConstants(np.float64(c0), np.float64(c1), np.float64(0), np.float64(0.5), np.float64(1))
    np.testing.assert_allclose([forms.scalar_grad(v, const) for v in d], sg.grad(d), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose([forms.scalar_spike(v, const) for v in d], sg.spike(d), rtol=1e-14, atol=1e-15)


def test_a_subclass_overriding_grad_has_no_fast_forms_unless_it_writes_them():
    class Doubled(surrogates.Rectangular):
        def grad(self, d):
            return 2 * super().grad(d)

    class DoubledWithForms(Doubled):
        @staticmethod
        def scalar_grad(d, const):
            return 2 * const.c1 if abs(d) < const.c0 else const.zero

        cuda_grad = "return (fabs(d) < c0 ? (real)2 : (real)0) * c1;"
        mask_window = False  # 2/a on the window: the 1-byte codes hold 1/a

    assert Doubled().fast_forms() is None
    assert DoubledWithForms().fast_forms().scalar_grad is DoubledWithForms.scalar_grad
    assert surrogates.Smooth().fast_forms().scalar_spike is surrogates.Smooth.scalar_spike
    x = np.random.default_rng(5).uniform(-0.5, 1.5, (6, 5))
    ref = run(x, surrogate=DoubledWithForms(1.0), implementation="reference")
    fast = run(x, surrogate=DoubledWithForms(1.0), implementation="numba_cpu")
    np.testing.assert_array_equal(fast[1], ref[1])
    np.testing.assert_array_equal(ref[1], run(x, surrogate=Doubled(1.0), implementation="reference")[1])


def test_backward_runs_the_implementation_its_forward_ran(monkeypatch):
    """The choice is made once per call: a forward under use("reference") has a reference backward."""
    calls = []
    for table_entry in ("reference", "numba_cpu"):
        module = getattr(kernels.LIF, table_entry)
        original = module.lif_backward
        monkeypatch.setattr(module, "lif_backward",
                            lambda *a, _o=original, _n=table_entry, **k: calls.append(_n) or _o(*a, **k))
    x = Tensor(np.random.default_rng(6).uniform(0, 1, (3, 4)), requires_grad=True)
    with kernels.use("reference"):
        s = lif(x)
    s.sum().backward()
    s = lif(x)
    with kernels.use("reference"):
        s.sum().backward()
    assert calls == ["reference", "numba_cpu"]


def test_kernel_choice_is_checked_and_restored():
    assert kernels.current_choice() == "fast"
    with pytest.raises(ValueError, match="kernels.use: choice must be one of"):
        with kernels.use("numba"):
            pass
    with kernels.use("reference"):
        assert kernels.LIF.pick() is kernels.LIF.reference and kernels.NORM.pick() is kernels.NORM.reference
    assert kernels.current_choice() == "fast" and kernels.LIF.pick() is kernels.LIF.numba_cpu


# ---- BPTT: exact calculus with the smooth spike -----------------------------------------------


def frozen_reset_network(x, reset, v_th, decay, alpha):
    """The smooth LIF with its reset factors (1 - s[t-1]) replaced by the constants ``reset``."""
    sg = surrogates.get("smooth", alpha=alpha)
    u, out = 0.0, np.empty_like(x)
    for t in range(x.shape[0]):
        u = (decay * u * reset[t - 1] if t else 0.0) + x[t]
        out[t] = sg.spike(u - v_th)
    return out


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("decay", [0.25, 0.9])
def test_smooth_bptt_gradcheck_full(implementation, decay):
    """detach_reset=False: the recurrence is the exact derivative of the smooth network."""
    x = np.random.default_rng(3).normal(0.5, 0.6, (6, 2, 3))
    fn = lambda x: lif(x, decay=decay, detach_reset=False, surrogate="smooth")
    with using(implementation):
        assert gradcheck(fn, x, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("decay", [0.25, 0.9])
def test_smooth_bptt_gradcheck_detached(implementation, decay):
    """detach_reset=True is the exact derivative of the network whose reset factors are constants.

    Finite differences of lif itself would move the reset factors too, so the checked function
    takes its *values* from that frozen network (reset factors fixed at x₀) while its backward is
    lif's (the correction added is a constant). At x₀ both networks agree, and the derivative of
    the frozen one is exactly what detach_reset=True claims to compute.
    """
    x0 = np.random.default_rng(4).normal(0.5, 0.6, (6, 2, 3))
    v_th, alpha = 0.5, 4.0
    sg = surrogates.get("smooth", alpha=alpha)
    _, u0 = kernels.LIF.reference.lif_forward(x0, v_th, decay, sg, False)
    reset = 1 - sg.spike(u0 - v_th)

    def fn(x):
        s = lif(x, v_th, decay, detach_reset=True, surrogate=sg)
        frozen = frozen_reset_network(host(x), reset, v_th, decay, alpha)
        return s + Tensor(dev(frozen) - s.data)  # values of the frozen network, gradient of lif

    np.testing.assert_allclose(frozen_reset_network(x0, reset, v_th, decay, alpha), host(lif(x0, surrogate=sg, decay=decay)), atol=1e-15)
    with using(implementation):
        assert gradcheck(fn, x0, atol=1e-7, rtol=1e-6)
    # and the two modes really differ here, so the check could fail
    assert not np.allclose(run(x0, surrogate=sg, decay=decay)[1], run(x0, surrogate=sg, decay=decay, detach_reset=False)[1])


# ---- BPTT: Heaviside spike against the loop unrolled into elementary autograd ops --------------


class Spike(Function):
    """s = H(u - V_th) with the surrogate as derivative: the only non-elementary op of the loop."""

    @staticmethod
    def forward(ctx, u, v_th, sg):
        ctx.save_for_backward(u)
        ctx.v_th, ctx.sg = v_th, sg
        return sg.spike(u - u.dtype.type(v_th))

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        return g * ctx.sg.grad(u - u.dtype.type(ctx.v_th)), None, None


def unrolled_lif(x, v_th, decay, sg, detach_reset):
    out, u = [], None
    for t in range(x.shape[0]):
        u = x[t] if u is None else u * decay * reset + x[t]
        s = Spike.apply(u, v_th, sg)
        reset = 1 - (s.detach() if detach_reset else s)
        out.append(s)
    return stack(out)


@pytest.mark.parametrize("detach_reset", [True, False])
@pytest.mark.parametrize("name", BINARY_SURROGATES)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_heaviside_bptt_equals_unrolled_autograd(name, detach_reset, implementation):
    rng = np.random.default_rng(5)
    x = rng.uniform(-0.5, 1.5, (6, 3, 4))
    g = rng.standard_normal(x.shape)
    sg = surrogates.get(name)
    xt = Tensor(dev(x), requires_grad=True)
    s_unrolled = unrolled_lif(xt, 0.5, 0.25, sg, detach_reset)
    s_unrolled.backward(dev(g))
    s, dx = run(x, g, surrogate=sg, detach_reset=detach_reset, implementation=implementation)
    np.testing.assert_array_equal(s, host(s_unrolled))
    np.testing.assert_allclose(dx, host(xt.grad), rtol=1e-12, atol=1e-14)


# ---- memory, modes and errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, per_step",
    [
        ({}, 1),
        (dict(detach_reset=False), 4),
        (dict(surrogate="sigmoid"), 4),
        (dict(surrogate="smooth", detach_reset=False), 4),
    ],
)
def test_saved_bytes_per_neuron_step(kwargs, per_step):
    x = Tensor(dev(np.random.default_rng(6).uniform(-1, 2, (6, 2, 4, 3, 3)), np.float32), requires_grad=True)
    s = lif(x, **kwargs)
    saved = s.grad_fn.ctx.saved_tensors
    assert sum(a.nbytes for a in saved) == per_step * x.size
    assert saved_bytes_per_neuron_step(np.float32, **kwargs) == per_step
    if not kwargs:
        assert saved[0].dtype == np.uint8  # the codes s + 2·mask, not u
    s.sum().backward()
    assert s.grad_fn.ctx.saved_tensors == ()  # freed after backward


def test_nothing_saved_without_grad():
    s = lif(Tensor(dev(np.ones((3, 2)))))
    assert s.grad_fn is None and not s.requires_grad


@pytest.mark.parametrize(
    "kwargs, error, argument",
    [
        (dict(x=np.ones(4)), ValueError, "x must"),
        (dict(x=np.ones((0, 3))), ValueError, "x must"),
        (dict(x=np.ones((3, 2), dtype=np.int64)), TypeError, "x must"),
        (dict(x=[[0.1, 0.2]]), TypeError, "x must"),
        (dict(v_th=0.0), ValueError, "v_th"),
        (dict(v_th=-1.0), ValueError, "v_th"),
        (dict(v_th=math.inf), ValueError, "v_th"),
        (dict(v_th=math.nan), ValueError, "v_th"),
        (dict(v_th="0.5"), TypeError, "v_th"),
        (dict(decay=-0.1), ValueError, "decay"),
        (dict(decay=1.5), ValueError, "decay"),
        (dict(decay=None), TypeError, "decay"),
        (dict(detach_reset="yes"), TypeError, "detach_reset"),
        (dict(surrogate="relu"), ValueError, "surrogate"),
        (dict(surrogate=1.0), TypeError, "surrogate"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, error, argument):
    kwargs = {"x": np.ones((3, 2)), **kwargs}
    with pytest.raises(error, match=argument):
        lif(**kwargs)


def test_function_is_one_node():
    """The whole time loop is one recorded node (two kernel calls per step), not 3·T small ops."""
    x = Tensor(dev(np.ones((6, 2))), requires_grad=True)
    s = lif(x)
    assert s.grad_fn.function is LIFFunction and all(e is None or e.leaf is x for e in s.grad_fn.inputs)
