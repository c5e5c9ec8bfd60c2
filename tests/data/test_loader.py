"""DataLoader: coverage, seeded order, resume, prefetch thread life cycle, layouts."""

import gc
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinyspike.data import transforms as T
from tinyspike.data.dataset import ArrayDataset, stratified_split
from tinyspike.data.loader import DataLoader


def id_dataset(n):
    """Sample i is a 1x1x1 float32 image holding i: the batches tell which samples came."""
    return ArrayDataset(np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1), np.arange(n) % 10, list("abcdefghij"))


def ids(loader):
    return [x.reshape(-1).astype(int).tolist() for x, _ in loader]


def _loader_threads():
    return [t for t in threading.enumerate() if t.name == "tinyspike-DataLoader"]


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 60), batch_size=st.integers(1, 17), drop_last=st.booleans(),
       shuffle=st.booleans(), prefetch=st.integers(0, 3))
def test_every_sample_once_per_epoch(n, batch_size, drop_last, shuffle, prefetch):
    loader = DataLoader(id_dataset(n), batch_size, shuffle=shuffle, drop_last=drop_last, prefetch=prefetch)
    batches = ids(loader)
    assert len(batches) == len(loader)
    flat = [i for b in batches for i in b]
    assert all(len(b) == batch_size for b in batches[: len(batches) - (0 if drop_last else 1)])
    if drop_last:
        assert len(flat) == (n // batch_size) * batch_size and len(set(flat)) == len(flat)
    else:
        assert sorted(flat) == list(range(n))
    if not shuffle:
        assert flat == list(range(len(flat)))


def test_len_and_drop_last():
    ds = id_dataset(10)
    assert len(DataLoader(ds, 3)) == 4 and len(DataLoader(ds, 3, drop_last=True)) == 3
    assert [len(b) for b in ids(DataLoader(ds, 3))] == [3, 3, 3, 1]
    assert [len(b) for b in ids(DataLoader(ds, 3, drop_last=True))] == [3, 3, 3]


def test_order_depends_on_seed_and_epoch_only():
    ds = id_dataset(50)
    a, b = DataLoader(ds, 7, shuffle=True, seed=1), DataLoader(ds, 7, shuffle=True, seed=1)
    e0 = ids(a)
    assert e0 == ids(b)  # same seed, same order
    e1 = ids(a)  # iterating again advances the epoch
    assert e1 != e0 and a.epoch == 2
    assert ids(DataLoader(ds, 7, shuffle=True, seed=2)) != e0
    # Resume: a fresh loader set to epoch 1 repeats epoch 1 exactly, with or without the thread.
    c = DataLoader(ds, 7, shuffle=True, seed=1, prefetch=0)
    c.set_epoch(1)
    assert ids(c) == e1


def test_augmentation_is_reproducible_per_batch():
    x = np.random.default_rng(0).integers(0, 256, (40, 3, 8, 8), dtype=np.uint8)
    ds = ArrayDataset(x, np.zeros(40, np.int64), ["only"])
    aug = T.Compose([T.RandomCrop(8, 2), T.RandomHorizontalFlip(), T.Normalize((0.5,) * 3, (0.25,) * 3)])
    runs = [
        [bx for bx, _ in DataLoader(ds, 8, shuffle=True, seed=3, transform=aug, prefetch=p)]
        for p in (0, 2, 2)
    ]
    for other in runs[1:]:
        for u, v in zip(runs[0], other):
            np.testing.assert_array_equal(u, v)
    assert runs[0][0].dtype == np.float32 and runs[0][0].shape == (8, 3, 8, 8)
    # different batches get different random draws
    plain = DataLoader(ds, 8, seed=3, transform=T.preset("none", (0.5,) * 3, (0.25,) * 3))
    assert not all(np.array_equal(u, v) for u, v in zip(runs[0], plain))


def test_labels_and_static_layout():
    x = np.random.default_rng(0).integers(0, 256, (10, 3, 4, 4), dtype=np.uint8)
    ds = ArrayDataset(x, np.arange(10) % 3, ["a", "b", "c"])
    norm = T.preset("none", (0.5,) * 3, (0.5,) * 3)
    bx, by = next(iter(DataLoader(ds, 4, transform=norm)))
    assert by.dtype == np.int64 and by.tolist() == [0, 1, 2, 0]
    np.testing.assert_allclose(bx, (x[:4] / 255 - 0.5) / 0.5, rtol=1e-5, atol=1e-6)


def test_uint8_images_without_transform_are_refused():
    ds = ArrayDataset(np.zeros((4, 3, 2, 2), np.uint8), np.zeros(4, np.int64), ["a"])
    with pytest.raises(TypeError, match="normalises them to float32"):
        DataLoader(ds, 2)


def test_event_frames_come_time_first():
    counts = np.random.default_rng(0).integers(0, 5, (6, 4, 2, 3, 3)).astype(np.uint16)
    ds = ArrayDataset(counts, np.arange(6) % 2, ["a", "b"], time_steps=4)
    batches = list(DataLoader(ds, 4))
    x, y = batches[0]
    assert x.shape == (4, 4, 2, 3, 3) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_array_equal(x, counts[:4].transpose(1, 0, 2, 3, 4))
    assert batches[1][0].shape == (4, 2, 2, 3, 3)


def test_worker_exception_reaches_the_caller():
    calls = []

    def broken(batch, rng):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("bad sample in batch 2")
        return batch

    loader = DataLoader(id_dataset(40), 5, transform=broken, prefetch=2)
    got = []
    with pytest.raises(RuntimeError, match="bad sample in batch 2"):
        for x, _ in loader:
            got.append(x)
    assert len(got) == 2  # the batches before the failure arrived
    deadline = time.time() + 5  # generous: a loaded CI machine may schedule the thread late
    while _loader_threads() and time.time() < deadline:
        time.sleep(0.01)
    assert _loader_threads() == []


def test_thread_stops_when_the_consumer_breaks():
    ds = id_dataset(1000)
    it = iter(DataLoader(ds, 1, prefetch=2))
    next(it)
    assert len(_loader_threads()) == 1
    del it
    gc.collect()
    deadline = time.time() + 2
    while _loader_threads() and time.time() < deadline:
        time.sleep(0.01)
    assert _loader_threads() == []


def test_prefetch_prepares_the_next_batches_while_the_consumer_works():
    """While the consumer holds batch i, the background thread has started batch i + 1.

    Checked by what the thread did, not by timing: without prefetching, batch i + 1 would be
    made only when the loop asks for it. The wait is a generous bound for a loaded machine.
    """
    started = []

    class Recording(ArrayDataset):
        def get_batch(self, indices):
            started.append(int(indices[0]))
            return super().get_batch(indices)

    ds = Recording(np.zeros((8, 1, 1, 1), np.float32), np.zeros(8, np.int64), ["a"])
    for i, _ in enumerate(DataLoader(ds, 1, prefetch=2)):
        wanted = min(i + 2, len(ds))
        deadline = time.time() + 5
        while len(started) < wanted and time.time() < deadline:
            time.sleep(0.005)
        assert len(started) >= wanted, f"batch {i + 1} was not being prepared while batch {i} was in use"


def test_bad_arguments():
    ds = id_dataset(4)
    for kwargs, err in [({"batch_size": 0}, ValueError), ({"batch_size": 2, "seed": -1}, ValueError),
                        ({"batch_size": 2, "prefetch": -1}, ValueError),
                        ({"batch_size": 2, "transform": 3}, TypeError)]:
        with pytest.raises(err):
            DataLoader(ds, **kwargs)
    with pytest.raises(TypeError, match="get_batch"):
        DataLoader([1, 2, 3], 2)


def test_array_dataset_checks():
    with pytest.raises(TypeError, match="int64"):
        ArrayDataset(np.zeros((2, 1)), np.zeros(2, np.int32), ["a"])
    with pytest.raises(ValueError, match="labels must lie"):
        ArrayDataset(np.zeros((2, 1)), np.array([0, 2]), ["a", "b"])
    with pytest.raises(ValueError, match=r"\[N, T=3"):
        ArrayDataset(np.zeros((2, 4, 2, 1, 1)), np.zeros(2, np.int64), ["a"], time_steps=3)


def test_stratified_split_proportions():
    labels = np.repeat(np.arange(3), [50, 30, 20])
    keep, held = stratified_split(labels, 0.25, seed=0)
    assert len(held) == 25 and len(keep) == 75
    assert np.bincount(labels[held]).tolist() == [13, 7, 5]  # quotas 12.5, 7.5, 5; tie -> lower class
    assert np.intersect1d(keep, held).size == 0
