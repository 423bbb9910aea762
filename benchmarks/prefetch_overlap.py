"""Overlap of batch preparation and training (the trainer's :mod:`dreamset.training.prefetch` thread), on CPU.

A synthetic slow reader yields ``--steps`` batches of ``--batch`` images read at random from a real
on-disk store (``SyntheticStore.get``, one ``pread`` per run of images) plus ``--read-ms`` of waiting
per batch (a slow disk or network file system: ``time.sleep`` releases the GIL like a ``pread``). The
training step is a forward+backward+SGD step of ``model:small-cnn`` on 32×32 RGB images. Timed:

- train alone: the steps on batches already in memory;
- read alone: the reader without training;
- serial: read then train, batch after batch (no prefetching);
- prefetched: ``dreamset.training.prefetch.prefetched(reader)`` feeding the same steps.

Printed: the four wall times and the overlap, ``(serial − prefetched) / min(read, train)`` (1 = the
shorter of the two is completely hidden; ``prefetched / max(read, train)`` near 1 means the step is
as fast as its slower half allows).

Each timing is the median of ``--repeats`` (the four alternate; one untimed training step warms up
first), printed with its range; serial and prefetched also as ratios to train alone. Run:
``nice -n 10 python benchmarks/prefetch_overlap.py [--steps 40] [--batch 128] [--read-ms 30] [--width 32]
[--threads 1] [--repeats 3]``.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import harness
from store_read import build_store


def main() -> None:
    parser = harness.parser(__doc__, repeats=3, warmup=0)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--read-ms", type=float, default=30.0)
    parser.add_argument("--width", type=int, default=32, help="small-cnn width (sets the step's cost)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import dreamset.registry as registry
    from dreamset.training.prefetch import prefetched

    with tempfile.TemporaryDirectory() as tmp:
        store = build_store(Path(tmp), 20_000, shape=(3, 32, 32))
        model = registry.create("model:small-cnn", width=args.width).build((3, 32, 32), 10)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

        def reader():
            rng = np.random.default_rng(0)
            for _ in range(args.steps):
                x, y = store.get(rng.integers(0, len(store), args.batch))
                time.sleep(args.read_ms / 1000)
                yield x, y

        def step(x, y):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()

        batches = list(reader())
        step(*batches[0])  # warm-up
        timings = harness.measure({"train alone": lambda: [step(x, y) for x, y in batches], "read alone": lambda: list(reader()),
                                   "serial": lambda: [step(x, y) for x, y in reader()],
                                   "prefetched": lambda: [step(x, y) for x, y in prefetched(reader())]},
                                  args.repeats, args.warmup)
    results = harness.Results("batch preparation overlapped with training", vars(args))
    section = results.section(f"{args.steps} steps, batches of {args.batch} 3×32×32 images, reader +{args.read_ms:.0f} ms/batch, "
                              f"small-cnn width {args.width}, {args.threads} thread(s)")
    for name, timing in timings.items():
        section.time(name, timing, baseline="train alone" if name in ("serial", "prefetched") else None)
    train, read, serial, overlapped = (timings[name].median for name in ("train alone", "read alone", "serial", "prefetched"))
    section.add("overlap (serial - prefetched) / min(read, train)", (serial - overlapped) / min(read, train))
    section.add("prefetched / max(read, train)", overlapped / max(read, train))
    results.emit(args)


if __name__ == "__main__":
    main()
