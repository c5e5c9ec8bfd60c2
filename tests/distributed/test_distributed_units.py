"""tinyspike.distributed in one process: buckets, sharding, synchronized tdBN with simulated ranks.

Tolerances: sums regrouped over ranks differ from one-process sums by rounding only, so float64
comparisons use 1e-12 relative (absolute 1e-12 where values may be ~0); bucket round trips and
broadcasts move bits and are exact.
"""

import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyspike import distributed, nn
from tinyspike.autograd import Tensor
from tinyspike.distributed.buckets import pack, unpack
from tinyspike.functional.norm import batch_norm

TOL = dict(rtol=1e-12, atol=1e-12)


# ---- buckets ---------------------------------------------------------------------------------
def test_buckets_keep_order_dtype_and_size_and_round_trip_exactly():
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(d) for s, d in [
        ((3, 4), np.float64), ((5,), np.float64), ((300,), np.float64), ((2, 2), np.float32), ((7,), np.float64)]]
    buckets = distributed.plan_buckets(arrays, bucket_bytes=400)
    assert [i for b in buckets for i in b] == list(range(len(arrays)))  # consecutive, all
    for b in buckets:
        assert len({arrays[i].dtype for i in b}) == 1
        assert len(b) == 1 or sum(arrays[i].nbytes for i in b) <= 400
    assert [2] in buckets  # 2400 bytes > 400: a bucket of its own
    for b in buckets:
        like = [arrays[i] for i in b]
        for a, back in zip(like, unpack(pack(like), like)):
            assert back.shape == a.shape and np.array_equal(back, a)


def _params(seed, shapes=((4, 3), (3,), (2, 2, 2))):
    rng = np.random.default_rng(seed)
    return [nn.Parameter(rng.standard_normal(s)) for s in shapes]


def test_gradient_reducer_averages_and_keeps_missing_gradients_missing():
    size = 3
    group = distributed.SimulatedGroup(size, timeout=30)
    grads = [[np.random.default_rng([r, i]).standard_normal(s) for i, s in enumerate([(4, 3), (3,), (2, 2, 2)])]
             for r in range(size)]

    def rank_work(comm):
        params = _params(0)
        params[0].grad = grads[comm.rank][0].copy()
        params[1].grad = grads[comm.rank][1].copy() if comm.rank == 1 else None  # only rank 1 has one
        params[2].grad = None  # no rank has one
        reducer = distributed.GradientReducer(params, comm, bucket_mb=1e-4)  # ~100 bytes: several buckets
        assert len(reducer.buckets) > 1
        reducer.average_()
        return [p.grad for p in params]

    results = group.run(rank_work)
    expected0 = sum(g[0] for g in grads) / size
    for got in results:
        np.testing.assert_allclose(got[0], expected0, **TOL)
        np.testing.assert_allclose(got[1], grads[1][1] / size, **TOL)  # zeros from ranks 0 and 2
        assert got[2] is None
    assert all(np.array_equal(results[0][0], r[0]) for r in results)  # bit-identical on every rank


def test_broadcast_state_copies_rank0_parameters_and_buffers():
    group = distributed.SimulatedGroup(2, timeout=30)

    def rank_work(comm):
        layer = nn.TDBatchNorm(3)
        layer.weight.data[...] = comm.rank + 1.0
        layer.running_mean[...] = 10.0 * (comm.rank + 1)
        distributed.broadcast_state(layer, comm)
        return layer.weight.data.copy(), layer.running_mean.copy()

    for weight, mean in group.run(rank_work):
        assert np.array_equal(weight, np.full(3, 1.0)) and np.array_equal(mean, np.full(3, 10.0))


def test_a_rank_that_never_arrives_times_out_instead_of_hanging():
    group = distributed.SimulatedGroup(2, timeout=0.5)

    def rank_work(comm):
        if comm.rank == 1:
            return None  # "dies": never calls the collective
        comm.allreduce_sum_(np.ones(3))

    start = time.monotonic()
    with pytest.raises(distributed.CommunicationTimeoutError, match=r"allreduce_sum_ did not complete within 0.5 s on rank 0 of 2"):
        group.run(rank_work)
    assert time.monotonic() - start < 10


# ---- init -------------------------------------------------------------------------------------
def test_single_process_needs_no_mpi_and_nccl_on_numpy_is_a_value_error():
    code = (
        "import sys; from tinyspike import distributed as d; c = d.init(environ={}); "
        "assert (c.rank, c.size) == (0, 1) and 'mpi4py' not in sys.modules, sys.modules.get('mpi4py'); "
        "print(type(c).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "SingleProcess"
    with pytest.raises(ValueError, match="NCCL .* needs the CuPy backend, got backend 'numpy'"):
        distributed.init("nccl")


def test_launcher_environment_is_read():
    assert distributed.launcher_world_size({}) == 1
    assert distributed.launcher_world_size({"OMPI_COMM_WORLD_SIZE": "4"}) == 4
    assert distributed.launcher_world_size({"PMI_SIZE": "3"}) == 3
    assert distributed.launcher_local_rank({"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "2"}) == 2


# ---- sharding ---------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 300), world=st.integers(1, 6), per_rank=st.integers(1, 9), epoch=st.integers(0, 5),
       seed=st.integers(0, 2**31))
def test_shards_are_disjoint_and_together_are_the_single_process_batches(n, world, per_rank, epoch, seed):
    batch = per_rank * world
    per = [distributed.ShardedBatches(n, batch, r, world, seed=seed).batch_indices(epoch) for r in range(world)]
    single = distributed.ShardedBatches(n, batch, 0, 1, seed=seed).batch_indices(epoch)
    order = distributed.epoch_order(n, epoch, seed)
    assert len(single) == n // batch and all(len(p) == n // batch for p in per)
    for k, global_batch in enumerate(single):
        parts = [p[k] for p in per]
        assert all(len(part) == per_rank for part in parts)
        assert np.array_equal(np.concatenate(parts), global_batch)  # same samples, same order
    used = np.concatenate([np.concatenate(p) for p in per]) if n // batch else np.array([], int)
    assert len(np.unique(used)) == len(used)  # disjoint
    assert np.array_equal(np.sort(used), np.sort(order[: (n // batch) * batch]))  # cover the epoch's batches


def test_the_order_is_the_data_loaders():
    from tinyspike.data.loader import DataLoader

    class Fake:
        def __len__(self):
            return 50

        def get_batch(self, idx):
            return np.zeros((len(idx), 1, 2, 2), np.float32), np.zeros(len(idx), np.int64)

    loader = DataLoader(Fake(), 8, shuffle=True, seed=7, drop_last=True)
    mine = distributed.ShardedBatches(50, 8, 0, 1, seed=7).batch_indices(3)
    assert all(np.array_equal(a, b) for a, b in zip(loader.batch_indices(3), mine)) and len(mine) == 6


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 100), world=st.integers(1, 8))
def test_evaluation_ranges_cover_everything_once(n, world):
    ranges = [distributed.shard_range(n, r, world) for r in range(world)]
    assert [i for r in ranges for i in r] == list(range(n))
    assert max(map(len, ranges)) - min(map(len, ranges)) <= 1


def test_a_world_size_that_does_not_divide_the_batch_is_refused():
    with pytest.raises(ValueError, match="global batch size 10 must be divisible by the world size 4"):
        distributed.ShardedBatches(100, 10, 0, 4)


# ---- synchronized tdBN ------------------------------------------------------------------------
def _split(x, world):
    return np.split(x, world, axis=1)  # [T, B, C, H, W]: ranks share the batch axis


def _sync_bn_on_ranks(x, g, gamma, beta, world, running=True):
    """Forward + backward of synchronized BN on ``world`` simulated ranks; results gathered."""
    group = distributed.SimulatedGroup(world, timeout=60)
    xs, gs = _split(x, world), _split(g, world)

    def rank_work(comm):
        xt = Tensor(xs[comm.rank].copy(), requires_grad=True)
        w, b = Tensor(gamma.copy(), requires_grad=True), Tensor(beta.copy(), requires_grad=True)
        rm, rv = (np.full(x.shape[2], 0.3), np.full(x.shape[2], 2.0)) if running else (None, None)
        y = distributed.synchronized_batch_norm(xt, w, b, rm, rv, comm, momentum=0.25, eps=1e-5)
        y.backward(gs[comm.rank])
        return y.data, xt.grad, w.grad, b.grad, rm, rv

    return group.run(rank_work)


def _reference(x, g, gamma, beta):
    xt = Tensor(x.copy(), requires_grad=True)
    w, b = Tensor(gamma.copy(), requires_grad=True), Tensor(beta.copy(), requires_grad=True)
    rm, rv = np.full(x.shape[2], 0.3), np.full(x.shape[2], 2.0)
    y = batch_norm(xt, w, b, rm, rv, True, momentum=0.25, eps=1e-5)
    y.backward(g)
    return y.data, xt.grad, w.grad, b.grad, rm, rv


@pytest.mark.parametrize("world", [2, 3])
def test_sync_bn_equals_bn_of_the_global_batch(world):
    rng = np.random.default_rng(world)
    shape = (3, 2 * world, 4, 3, 2)  # T, B, C, H, W
    x = rng.standard_normal(shape) * 2.0 + 5.0  # |mu| > sigma: the shift matters
    g = rng.standard_normal(shape)
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    ranks = _sync_bn_on_ranks(x, g, gamma, beta, world)
    y, dx, dw, db, rm, rv = _reference(x, g, gamma, beta)
    np.testing.assert_allclose(np.concatenate([r[0] for r in ranks], axis=1), y, **TOL)
    np.testing.assert_allclose(np.concatenate([r[1] for r in ranks], axis=1), dx, **TOL)
    # γ and β: local sums, which the gradient averaging adds (×W/W: the reducer averages the
    # gradients of *mean* losses; here g is a raw seed, so the plain sum is the global one)
    np.testing.assert_allclose(sum(r[2] for r in ranks), dw, **TOL)
    np.testing.assert_allclose(sum(r[3] for r in ranks), db, **TOL)
    for r in ranks:  # running statistics from the global batch (unbiased with the global count)
        np.testing.assert_allclose(r[4], rm, **TOL)
        np.testing.assert_allclose(r[5], rv, **TOL)


def test_sync_bn_gradient_matches_central_differences():
    """gradcheck with the ranks simulated: L(x) = Σ_r <g_r, y_r(x)>, analytic dL/dx vs differences."""
    rng = np.random.default_rng(5)
    world, shape = 2, (2, 4, 2, 2, 1)
    x, g = rng.standard_normal(shape), rng.standard_normal(shape)
    gamma, beta = rng.standard_normal(2), rng.standard_normal(2)
    analytic = np.concatenate([r[1] for r in _sync_bn_on_ranks(x, g, gamma, beta, world, running=False)], axis=1)

    def loss(xv):
        ys = np.concatenate([r[0] for r in _sync_bn_on_ranks(xv, g, gamma, beta, world, running=False)], axis=1)
        return float((ys * g).sum())

    eps = 1e-6
    numeric = np.empty_like(x)
    for i in np.ndindex(shape):
        up, down = x.copy(), x.copy()
        up[i] += eps
        down[i] -= eps
        numeric[i] = (loss(up) - loss(down)) / (2 * eps)
    # central differences: truncation O(eps²) plus rounding ~1e-16/eps ≈ 1e-10
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7)


def test_sync_batch_norm_converts_layers_and_keeps_state_dict_keys():
    group = distributed.SimulatedGroup(2, timeout=30)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.TDBatchNorm(2), nn.BatchNorm2d(2))
    keys = list(model.state_dict())
    assert distributed.sync_batch_norm(model, distributed.SingleProcess()) == 0  # world size 1: unchanged
    assert distributed.sync_batch_norm(model, group.communicators[0]) == 2
    kinds = [type(m).__name__ for m in model.modules()]
    assert "SyncTDBatchNorm" in kinds and "SyncBatchNorm2d" in kinds
    assert isinstance(model[1], nn.TDBatchNorm) and list(model.state_dict()) == keys
