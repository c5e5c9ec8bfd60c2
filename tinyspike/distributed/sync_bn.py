"""Synchronized (threshold-dependent) batch norm: the statistics of the *global* batch.

With data parallelism each rank sees B/W of the B samples. Plain batch norm would normalise each
shard with its own μ and σ², so a W-rank step would differ from a one-process step on the same
batch, and a small shard gives noisy statistics. Synchronized BN all-reduces what the statistics
are made of, so every rank normalises with exactly the mean and variance of the global batch.
The maths is that of ``functional.norm`` (read its docstring first); only the sums change.

Notation: rank r holds n_r of the channel's values (n_r = T·B_r·H·W for tdBN), N = Σ_r n_r.
Σ_all is a sum over every value of every rank, computed as Σ_r (local sum) by one all-reduce.

Forward (training mode). Each rank computes its local mean m_r and biased variance v_r with the
``bn_stats`` kernel, and from them, relative to a shift K (the same on every rank, below),

    s1_r = Σ_local (x − K)   = n_r (m_r − K)
    s2_r = Σ_local (x − K)²  = n_r (v_r + (m_r − K)²)

One all-reduce of the float64 vector [s1 (C values), s2 (C values), n_r] gives S1, S2 and N, and

    μ = K + S1/N        σ² = S2/N − (S1/N)²        (biased: the global batch's own variance)

exactly the μ and σ² of the concatenated global batch. Why the shift: S2/N − (S1/N)² cancels
catastrophically when |μ − K| ≫ σ (relative error ≈ 1e-16·(μ − K)²/σ²). K = the running mean,
which is the same on every rank (broadcast at the start, then updated from the same global
statistics) and tracks μ, keeps the factor O(1) after the first steps; K = 0 when there are no
running statistics. (Any common K gives the same μ and σ² in exact arithmetic.)

Running statistics are updated from the global ones, with Bessel's correction for the global
count: running_var ← (1 − m)·running_var + m·σ²·N/(N − 1).

Backward (training mode). From ``functional.norm``, for every value j of every rank,

    dL/dx_j = γ r ( g_j − (1/N) Σ_all g − x̂_j (1/N) Σ_all g x̂ )

where the sums run over the *global* batch, because μ and r depend on every value of every rank.
The local loss of rank r depends on other ranks' x only through μ and σ², and the sums over the
global batch of g = ∂L/∂y from *all* ranks' losses are exactly what an all-reduce of each rank's
local sums gives. So each rank computes the two local sums (``bn_backward_reduce``, with the
global μ), all-reduces the vector [Σ g (C values), Σ g·(x − μ) (C values)], and applies the
element-wise formula of ``bn_backward_apply`` with N in place of n:

    dx = a·g + b·(x − μ) + c,   a = γr,  b = −γr³·(Σ_all g(x − μ))/N,  c = −γr·(Σ_all g)/N

The gradients of γ and β stay *local* sums (Σ_local g x̂, Σ_local g): the gradient averaging of
``GradientReducer`` adds them over the ranks afterwards, as it does for every other parameter;
all-reducing them here too would count them W times.

Evaluation mode uses the running statistics, which are the same on every rank: no communication
(the layer calls plain ``functional.batch_norm``).

Communication per layer and step: one all-reduce of 2C + 1 float64 values forward, one of 2C
backward (where the input needs a gradient). Every rank must run the same layers in the same
order, as data-parallel training does.
"""

from __future__ import annotations

from tinyspike import backend, checks, kernels, tensor_checks
from tinyspike.autograd import Function
from tinyspike.distributed.buckets import check_communicator
from tinyspike.functional.norm import as_rows, channel_axis, normalize, training_input_gradient, update_running_stats
from tinyspike.nn.layers import BatchNorm2d

_FN = "synchronized_batch_norm"


def global_statistics(x3, running_mean, comm, ops):
    """μ, σ² (biased) and N of the global batch, from this rank's rows ``x3[M, C, S]``.

    ``ops`` is the norm kernel module (``kernels.NORM.pick()``)."""
    xp = backend.array_module_of(x3)
    channels = x3.shape[1]
    n_local = x3.shape[0] * x3.shape[2]
    shift = running_mean.astype(xp.float64) if running_mean is not None else xp.zeros(channels, xp.float64)
    if n_local:
        mean_l, var_l = ops.bn_stats(x3)
        d = mean_l - shift
    else:  # an empty shard contributes nothing (and bn_stats would divide by zero)
        d = var_l = xp.zeros(channels, xp.float64)
    buffer = xp.empty(2 * channels + 1, dtype=xp.float64)
    buffer[:channels] = n_local * d
    buffer[channels : 2 * channels] = n_local * (var_l + d * d)
    buffer[2 * channels] = n_local
    comm.allreduce_sum_(buffer)
    total = float(buffer[2 * channels])
    if total < 2:
        raise ValueError(
            f"{_FN}: training mode needs more than one value per channel over all ranks to estimate a "
            f"variance, got {int(total)} (local input shape {tuple(x3.shape)})"
        )
    shifted_mean = buffer[:channels] / total
    var = xp.maximum(buffer[channels : 2 * channels] / total - shifted_mean * shifted_mean, 0.0)
    return shift + shifted_mean, var, total


class SyncBatchNormFunction(Function):
    """Training-mode batch norm with the global batch's statistics; see the module docstring."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum, eps, comm, count_out=None):
        axis = channel_axis(x.ndim)
        x3 = as_rows(x, axis)
        ops = kernels.NORM.pick()  # kept for backward: forward and backward use one implementation
        mean, var, total = global_statistics(x3, running_mean, comm, ops)
        if count_out is not None:  # the layer keeps N: the stem's T-copies correction needs it
            count_out[0] = total
        if running_mean is not None:  # unbiased with the global N, as one process would
            update_running_stats(running_mean, running_var, mean, var, total, momentum)
        y3, invstd, gamma = normalize(ops, x3, mean, var, weight, bias, eps)
        ctx.save_for_backward(x3, mean, invstd, gamma)
        ctx.shape, ctx.axis, ctx.total, ctx.comm, ctx.kernels = x.shape, axis, total, comm, ops
        return y3.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad_y):
        x3, mean, invstd, gamma = ctx.saved_tensors
        needs_x, needs_w, needs_b = ctx.needs_input_grad[:3]
        xp = backend.array_module_of(grad_y)
        dtype = grad_y.dtype
        g3 = as_rows(grad_y, ctx.axis)
        channels = g3.shape[1]
        sum_g, sum_g_xc = ctx.kernels.bn_backward_reduce(g3, x3, mean)  # local sums

        grad_x = grad_w = grad_b = None
        if needs_w:
            grad_w = (sum_g_xc * invstd).astype(dtype)  # local Σ g·x̂: the reducer adds the ranks
        if needs_b:
            grad_b = sum_g.astype(dtype)
        if needs_x:
            buffer = xp.empty(2 * channels, dtype=xp.float64)
            buffer[:channels], buffer[channels:] = sum_g, sum_g_xc
            ctx.comm.allreduce_sum_(buffer)
            grad_x = training_input_gradient(ctx.kernels, g3, x3, mean, invstd, gamma,
                                             buffer[:channels], buffer[channels:], ctx.total).reshape(ctx.shape)
        return grad_x, grad_w, grad_b, None, None, None, None, None, None


def synchronized_batch_norm(x, weight, bias, running_mean, running_var, comm, momentum=0.1, eps=1e-5, count_out=None):
    """Training-mode batch norm (tdBN for 5-D input) with the statistics of the global batch.

    The arguments are those of ``functional.batch_norm`` in training mode, plus ``comm``, the
    ``Communicator`` whose ranks together hold the global batch. Every rank must call it, for the
    same layer, in the same order. Returns a Tensor of x's shape and dtype. ``count_out``, a
    one-element list, receives N, the number of values per channel over all ranks.
    """
    comm = check_communicator(_FN, comm)
    data = tensor_checks.tensor_arg(_FN, "x", x, ndims=(2, 3, 4, 5))
    momentum = checks.real(_FN, "momentum", momentum, 0.0, 1.0)
    eps = checks.real(_FN, "eps", eps, 0.0, None, low_open=True)
    channels = data.shape[channel_axis(data.ndim)]
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None:
            param = tensor_checks.tensor_arg(_FN, name, value, ndims=(1,))
            if param.shape != (channels,):
                raise ValueError(f"{_FN}: {name} must have shape ({channels},), got {tuple(param.shape)}")
            checks.same_dtype(_FN, name, param, "x", data)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{_FN}: running_mean and running_var must both be arrays or both be None")
    for name, buf in (("running_mean", running_mean), ("running_var", running_var)):
        if buf is not None and tuple(tensor_checks.array_of(buf).shape) != (channels,):
            raise ValueError(f"{_FN}: {name} must have shape ({channels},), got {tuple(tensor_checks.array_of(buf).shape)}")
    return SyncBatchNormFunction.apply(x, weight, bias, running_mean, running_var, momentum, eps, comm, count_out)


class SyncBatchNormMixin:
    """Replaces a batch-norm layer's training forward by the synchronized one (``communicator``)."""

    communicator = None
    _pooled = None  # N over all ranks / n of this rank, in the last training forward

    @property
    def ranks_in_statistics(self) -> float:
        """How many of this rank's shards the last training statistics pooled: N / n_local (W for
        equal shards; a remainder batch's shards differ by one sample). The stem's T-copies
        correction multiplies its local count by it to get N."""
        return self._pooled if self._pooled is not None else self.communicator.size

    def forward(self, x):
        if not self.training:
            return super().forward(x)  # running statistics: identical on every rank, no communication
        if x.ndim not in (4, 5):
            raise ValueError(f"{type(self).__name__}: input must be [N, C, H, W] or [T, B, C, H, W], got shape {tuple(x.shape)}")
        count = [None]
        out = synchronized_batch_norm(
            x, self.weight, self.bias, self.running_mean, self.running_var, self.communicator, self.momentum, self.eps,
            count_out=count,
        )
        local = x.size // x.shape[1 if x.ndim == 4 else 2]
        self._pooled = count[0] / local if local else None
        return out

    def extra_repr(self):
        return super().extra_repr() + f", synchronized over {self.communicator.size} ranks"


_SYNC_CLASSES: dict[type, type] = {}


def _sync_class(cls: type) -> type:
    """``Sync<cls>``: a subclass of ``cls`` with the synchronized forward (one per class, cached)."""
    if cls not in _SYNC_CLASSES:
        _SYNC_CLASSES[cls] = type(f"Sync{cls.__name__}", (SyncBatchNormMixin, cls), {"__doc__": cls.__doc__})
    return _SYNC_CLASSES[cls]


def sync_batch_norm(model, comm) -> int:
    """Make every ``BatchNorm2d``/``TDBatchNorm`` (and subclass) of ``model`` synchronized over ``comm``.

    In place: each layer's class becomes ``Sync<Class>`` (a subclass, so ``isinstance`` checks,
    parameters, buffers and ``state_dict`` keys are unchanged and checkpoints load either way).
    With ``comm.size == 1`` nothing changes (the global batch *is* the local one, and the plain
    kernels keep single-process runs bit-identical). Returns the number of layers converted.
    """
    comm = check_communicator("sync_batch_norm", comm)
    if comm.size == 1:
        return 0
    converted = 0
    for module in model.modules():
        if isinstance(module, BatchNorm2d):
            if not isinstance(module, SyncBatchNormMixin):
                module.__class__ = _sync_class(type(module))
            module.communicator = comm
            converted += 1
    return converted

