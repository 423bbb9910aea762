"""The trainer's input pipeline: batches prepared on a thread, in order, errors passed on, and the
thread stopped when the consumer leaves early."""
from __future__ import annotations

import threading
import time

import pytest
import torch

from dreamset.training.prefetch import Prefetcher, prefetched


def _batches(n, log=None, fail_at=None):
    for i in range(n):
        if fail_at == i:
            raise ValueError(f"batch {i} is broken")
        if log is not None:
            log.append(i)
        yield torch.full((2, 1), float(i)), torch.tensor([i, i])


def test_batches_come_in_order_and_are_prepared_ahead():
    log = []
    stream = prefetched(_batches(6, log), depth=2)
    first = next(stream)
    deadline = time.monotonic() + 30
    while len(log) < 3 and time.monotonic() < deadline:  # the next two were made while we held the first
        time.sleep(0.01)
    time.sleep(0.2)
    # depth 2 queued, plus at most the one the thread made and is waiting to put: never further ahead
    assert len(log) in (3, 4) and int(first[1][0]) == 0
    assert [int(y[0]) for _, y in stream] == [1, 2, 3, 4, 5]


def test_an_error_in_the_mixer_reaches_the_training_loop():
    with pytest.raises(ValueError, match="batch 2 is broken"):
        for _ in prefetched(_batches(5, fail_at=2)):
            pass


def test_leaving_early_stops_the_thread():
    before = threading.active_count()
    for step, _ in enumerate(prefetched(_batches(1000))):
        if step == 2:
            break  # the generator is closed here (CPython), which stops and joins the thread
    assert threading.active_count() == before
    prefetcher = Prefetcher(_batches(1000), depth=1)
    prefetcher.close()
    assert not prefetcher._thread.is_alive()
