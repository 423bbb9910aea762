"""Random-batch reads from the synthetic store.

1. Throughput (images/s) of ``SyntheticStore.get`` (one pread per run of consecutive images,
   float32 out) against the baseline: indexing an in-RAM ``uint8`` tensor holding the same images
   and converting it the same way (``dreamset.contracts.data.to_float_images``). Also shown: reading through
   the shards' memory maps (``np.load(mmap_mode="r")`` + indexing), the alternative the store does
   not use for random reads; and a sequential pass (``dreamset.contracts.data.materialize``) over the store.
2. Peak RSS of a fresh process reading the same number of random batches from a small and a
   large store (default 10k vs 200k tiny images): flat memory means the two peaks match.

Throughputs are the median of ``--repeats`` passes of ``--batches`` batches (after ``--warmup``
untimed passes), with their range and their ratio to the in-RAM baseline.

Run: ``python benchmarks/store_read.py [--sizes 10000 200000] [--batch 256] [--batches 200] [--repeats 1]``.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import harness

IN_RAM = "baseline in-RAM uint8 tensor"


def build_store(root: Path, n: int, shape=(3, 8, 8), shard_size: int = 1024):
    """A store of ``n`` random uint8 images (via the public .npz import)."""
    from dreamset.store.npz import import_npz

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, shape[1], shape[2], shape[0]), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n)
    np.savez(root / f"in-{n}.npz", image=images, label=labels)
    store = import_npz(root / f"in-{n}.npz", root / f"store-{n}", shard_size=shard_size)
    (root / f"in-{n}.npz").unlink()
    return store


def read_in_child(path: str, batch: int, batches: int, mode: str) -> dict:
    """In a fresh process: open the store, read ``batches`` random batches; its RSS figures."""
    import torch

    torch.set_num_threads(1)
    from dreamset.store.reader import SyntheticStore

    store = SyntheticStore.open(path, verify=False)
    rng = np.random.default_rng(1)
    read = _mmap_reader(store) if mode == "mmap" else (lambda idx: store.get(idx))
    read(rng.integers(0, len(store), batch))
    with harness.PeakMemory() as memory:
        for _ in range(batches):
            read(rng.integers(0, len(store), batch))
        after = harness.rss_kib()
    return {"n": len(store), "rss_before_kib": memory.before_kib, "rss_after_kib": after, "peak_kib": memory.peak_kib}


def _mmap_reader(store):
    """Random reads through the shards' memory maps (for comparison only)."""
    import torch

    from dreamset.contracts.data import to_float_images

    arrays = [store.shard_array(p) for p in range(len(store._shards))]
    offsets = store._offsets

    def read(idx):
        idx = np.asarray(idx)
        positions = np.searchsorted(offsets, idx, side="right") - 1
        out = np.stack([arrays[p][i - offsets[p]] for p, i in zip(positions, idx)])
        return to_float_images(torch.from_numpy(out)), store.labels[torch.from_numpy(idx)]

    return read


def random_batches(read, n: int, batch: int, batches: int):
    """A pass of ``batches`` reads of ``batch`` random indices of ``n`` (the same indices every pass)."""
    def run():
        rng = np.random.default_rng(2)
        for _ in range(batches):
            read(rng.integers(0, n, batch))
    return run


def main() -> None:
    parser = harness.parser(__doc__, repeats=1, warmup=1)
    parser.add_argument("--sizes", type=int, nargs=2, default=[10_000, 200_000])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--child", nargs=2, metavar=("STORE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        harness.child_result(read_in_child(args.child[0], args.batch, args.batches, args.child[1]))
        return

    import torch

    torch.set_num_threads(1)
    from dreamset.contracts.data import TensorImageSet, materialize

    results = harness.Results("random-batch reads from the synthetic store", vars(args))
    with tempfile.TemporaryDirectory() as tmp:
        stores = {n: build_store(Path(tmp), n) for n in args.sizes}
        large = stores[args.sizes[1]]
        images, labels = large.get_uint8(range(len(large)))
        in_ram = TensorImageSet(torch.from_numpy(images), labels, large.class_names)
        timings = harness.measure({
            IN_RAM: random_batches(in_ram.get, len(large), args.batch, args.batches),
            "SyntheticStore.get (pread)": random_batches(large.get, len(large), args.batch, args.batches),
            "shard memory maps": random_batches(_mmap_reader(large), len(large), args.batch, args.batches),
        }, args.repeats, args.warmup)
        section = results.section(f"random batches of {args.batch} from {len(large)} images {large.image_shape}")
        for name, timing in timings.items():
            section.rate(name, timing, args.batch * args.batches, "images/s", baseline=None if name == IN_RAM else IN_RAM)
        timings = harness.measure({"baseline in-RAM": lambda: materialize(in_ram), "store": lambda: materialize(large)},
                                  args.repeats, 0)
        section = results.section(f"sequential pass (dreamset.contracts.data.materialize) over {len(large)} images")
        section.rate("baseline in-RAM", timings["baseline in-RAM"], len(large), "images/s")
        section.rate("store", timings["store"], len(large), "images/s", baseline="baseline in-RAM")
        images = in_ram = None  # free them before the memory measurements
        for mode in ("pread", "mmap"):
            section = results.section(f"RSS reading {args.batches} random batches of {args.batch} "
                                      f"({'SyntheticStore.get' if mode == 'pread' else 'memory maps'})")
            small = None
            for n, store in stores.items():
                row = harness.run_child(__file__, "--child", str(store.path), mode, "--batch", str(args.batch),
                                        "--batches", str(args.batches))
                name = f"{n} images: peak"
                section.memory(name, row["peak_kib"], baseline=small)
                section.memory(f"{n} images: growth during reads", row["rss_after_kib"] - row["rss_before_kib"])
                small = small or name
    results.emit(args)


if __name__ == "__main__":
    main()
