"""Bad arguments to the public ``tinyspike.distributed`` API give a clear error naming the argument.

Backend names, timeouts, bucket sizes, world sizes against the batch, and sharding arguments
(rank, world size, counts, seeds, epochs); about 120 generated cases.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bad_input import assert_clear
from tinyspike import distributed, nn

NOT_NUMBERS = st.sampled_from(["0.1", "1", None, [1], (1,), {"v": 1}, object(), 0.5j, b"1"])
BOOLS = st.sampled_from([True, False, np.True_])
NON_FINITE = st.sampled_from([float("nan"), float("inf"), float("-inf"), np.float64("nan")])
NON_POSITIVE = st.floats(max_value=0.0, allow_nan=False, allow_infinity=False)
NOT_INTEGERS = st.one_of(NOT_NUMBERS, BOOLS, st.sampled_from([1.5, 2.0, float("nan")]))
BAD_TIMEOUT = st.one_of(NOT_NUMBERS, BOOLS, NON_FINITE, NON_POSITIVE)
SETTINGS = settings(max_examples=12, deadline=None)


@SETTINGS
@given(name=st.one_of(st.text(max_size=8).filter(lambda t: t not in ("auto", "single", "mpi", "nccl")), NOT_NUMBERS))
def test_init_backend_name(name):
    assert_clear("distributed.init backend", lambda: distributed.init(name, environ={}), ["backend"], name)


@SETTINGS
@given(value=BAD_TIMEOUT)
def test_timeouts(value):
    assert_clear("distributed.init timeout", lambda: distributed.init("single", value, environ={}), ["timeout"], value)
    assert_clear("SingleProcess timeout", lambda: distributed.SingleProcess(value), ["timeout"], value)
    assert_clear("SimulatedGroup timeout", lambda: distributed.SimulatedGroup(2, value), ["timeout"], value)


@SETTINGS
@given(value=st.one_of(NOT_NUMBERS, BOOLS, NON_FINITE, NON_POSITIVE))
def test_bucket_size(value):
    params = [nn.Parameter(np.ones(3))]
    assert_clear("GradientReducer bucket_mb",
                 lambda: distributed.GradientReducer(params, distributed.SingleProcess(), value), ["bucket_mb"], value)


@SETTINGS
@given(comm=st.one_of(NOT_NUMBERS, BOOLS))
def test_communicator_argument(comm):
    assert_clear("allreduce_numbers comm", lambda: distributed.allreduce_numbers([1.0], comm), ["comm"], comm)
    assert_clear("GradientReducer comm", lambda: distributed.GradientReducer([], comm), ["comm"], comm)


@SETTINGS
@given(batch=st.integers(1, 400), world=st.integers(2, 9))
def test_world_size_must_divide_the_batch(batch, world):
    if batch % world == 0:
        batch += 1
    assert_clear("local_batch_size", lambda: distributed.local_batch_size(batch, world),
                 ["batch size", "world size"], (batch, world))
    assert_clear("ShardedBatches batch", lambda: distributed.ShardedBatches(100, batch, 0, world), ["world size"], (batch, world))


@SETTINGS
@given(world=st.integers(1, 8), offset=st.integers(0, 5))
def test_rank_out_of_range(world, offset):
    rank = world + offset
    assert_clear("shard_range rank", lambda: distributed.shard_range(10, rank, world), ["rank"], rank)
    assert_clear("shard_batches rank", lambda: distributed.shard_batches(np.arange(8), world, rank, world), ["rank"], rank)
    assert_clear("shard_range negative rank", lambda: distributed.shard_range(10, -1 - offset, world), ["rank"], -1 - offset)


@SETTINGS
@given(value=st.one_of(NOT_INTEGERS, st.integers(max_value=0)))
def test_world_size_and_batch_values(value):
    assert_clear("shard_range world_size", lambda: distributed.shard_range(10, 0, value), ["world_size"], value)
    assert_clear("ShardedBatches batch_size", lambda: distributed.ShardedBatches(10, value, 0, 1), ["batch_size"], value)


@SETTINGS
@given(value=st.one_of(NOT_INTEGERS, st.integers(max_value=-1)))
def test_sharding_counts_seeds_epochs(value):
    assert_clear("epoch_order num_samples", lambda: distributed.epoch_order(value, 0, 0), ["num_samples"], value)
    assert_clear("epoch_order epoch", lambda: distributed.epoch_order(10, value, 0), ["epoch"], value)
    assert_clear("ShardedBatches seed", lambda: distributed.ShardedBatches(10, 2, 0, 1, seed=value), ["seed"], value)


@SETTINGS
@given(value=st.one_of(NOT_NUMBERS, st.integers(2, 9).map(lambda w: (0, w))))
def test_data_loader_world_size_against_batch(value):
    from tinyspike.data.loader import DataLoader

    class Fake:
        def __len__(self):
            return 20

        def get_batch(self, idx):
            return np.zeros((len(idx), 1, 2, 2), np.float32), np.zeros(len(idx), np.int64)

    if isinstance(value, tuple) and len(value) == 2:
        world = value[1]
        assert_clear("DataLoader world size", lambda: DataLoader(Fake(), world * 3 + 1, shuffle=True, rank=0, world_size=world),
                     ["world size"], value)
    else:
        assert_clear("DataLoader world_size", lambda: DataLoader(Fake(), 4, world_size=value), ["world_size"], value)
