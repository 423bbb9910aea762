"""Batches prepared ahead: the trainer's input pipeline.

:class:`Prefetcher` runs a mixer's batch generator on a background thread, ``depth`` batches ahead
of the training loop, so reading the next batch from the store (``pread``, which releases the GIL),
compositing it and, on CUDA, copying it into pinned memory overlap with the current step's forward
and backward passes (torch releases the GIL in its kernels). The batches and their order are
exactly the generator's: one thread draws them in sequence, so a run is as deterministic as
without prefetching (built-in mixers draw from their own ``torch.Generator``, never the global one).

Why a thread and not a ``torch.utils.data.DataLoader`` with worker processes: a mixer is one stateful
stream per epoch (its random order, the biregular graph, superimposition chains), not independent
items; the store's reads and torch's compositing kernels do not hold the GIL; and a large store
stays on disk (read by ``pread`` per batch), never copied into workers. Measured overlap on CPU:
``benchmarks/prefetch_overlap.py`` (docs/performance.md).

Usage::

    for x, y, *rest in prefetched(mixer.batches(real, synthetic, batch_size, epoch, seed), pin=device.type == "cuda"):
        ...  # breaking out early stops the thread (the generator is closed)
"""
from __future__ import annotations

import contextvars
import queue
import threading
from typing import Any, Iterable, Iterator

#: batches prepared ahead of the one being trained on
DEPTH = 2

_END = object()


class Prefetcher:
    """Iterate ``source`` on a daemon thread, at most ``depth`` items ahead; exceptions raised by
    ``source`` are re-raised in the consumer. ``pin``: pin the tensors of each batch (for
    ``.to("cuda", non_blocking=True)``)."""

    def __init__(self, source: Iterable[Any], depth: int = DEPTH, pin: bool = False) -> None:
        self._source, self._pin = source, pin
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        # the consumer's context variables (where a plugin's failure happened: stage, arm, seed) go along
        self._thread = threading.Thread(target=contextvars.copy_context().run, args=(self._fill,),
                                        name="dreamset-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self) -> None:
        try:
            for batch in self._source:
                if self._pin:
                    batch = tuple(t.pin_memory() if hasattr(t, "pin_memory") else t for t in batch)
                if not self._put(("batch", batch)):
                    return
            self._put(("end", _END))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._put(("error", exc))
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[Any]:
        try:
            while True:
                kind, item = self._queue.get()
                if kind == "batch":
                    yield item
                elif kind == "error":
                    raise item
                else:
                    return
        finally:  # also when the consumer breaks out (the generator is closed)
            self.close()

    def close(self) -> None:
        """Stop the thread (when the consumer leaves early) and wait for it."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def prefetched(source: Iterable[Any], depth: int = DEPTH, pin: bool = False) -> Iterator[Any]:
    """``source``'s items, prepared ``depth`` ahead on a background thread (see :class:`Prefetcher`)."""
    return iter(Prefetcher(source, depth, pin))
