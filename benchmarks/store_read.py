"""Random-batch reads from the synthetic store.

1. Throughput (images/s) of ``SyntheticStore.get`` (one pread per run of consecutive images,
   float32 out) against the baseline: indexing an in-RAM ``uint8`` tensor holding the same images
   and converting it the same way (``dreamset.contracts.data.to_float_images``). Also shown: reading through
   the shards' memory maps (``np.load(mmap_mode="r")`` + indexing), the alternative the store does
   not use for random reads; and a sequential pass (``dreamset.contracts.data.materialize``) over the store.
2. Peak RSS of a fresh process reading the same number of random batches from a small and a
   large store (default 10k vs 200k tiny images): flat memory means the two peaks match.

Run: ``python benchmarks/store_read.py [--sizes 10000 200000] [--batch 256] [--batches 200]``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from memory import rss_kib  # benchmarks/memory.py (this script's folder is on sys.path)


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



def measure_child(path: str, batch: int, batches: int, mode: str) -> None:
    """In a fresh process: open the store, read ``batches`` random batches, print RSS figures."""
    import torch

    torch.set_num_threads(1)
    from dreamset.store.reader import SyntheticStore

    store = SyntheticStore.open(path, verify=False)
    rng = np.random.default_rng(1)
    read = _mmap_reader(store) if mode == "mmap" else (lambda idx: store.get(idx))
    read(rng.integers(0, len(store), batch))
    before = rss_kib()
    for _ in range(batches):
        read(rng.integers(0, len(store), batch))
    after = rss_kib()
    peak = rss_kib("VmHWM")
    print(json.dumps({"n": len(store), "rss_before_kib": before, "rss_after_kib": after, "peak_kib": peak}))


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


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def throughput(read, n: int, batch: int, batches: int) -> float:
    rng = np.random.default_rng(2)
    read(rng.integers(0, n, batch))
    start = time.perf_counter()
    for _ in range(batches):
        read(rng.integers(0, n, batch))
    return batch * batches / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[10_000, 200_000])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--child", nargs=2, metavar=("STORE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure_child(args.child[0], args.batch, args.batches, args.child[1])
        return

    import torch

    torch.set_num_threads(1)
    from dreamset.contracts.data import TensorImageSet, materialize

    with tempfile.TemporaryDirectory() as tmp:
        stores = {n: build_store(Path(tmp), n) for n in args.sizes}
        large = stores[args.sizes[1]]
        images, labels = large.get_uint8(range(len(large)))
        in_ram = TensorImageSet(torch.from_numpy(images), labels, large.class_names)
        baseline = throughput(in_ram.get, len(large), args.batch, args.batches)
        store_rate = throughput(large.get, len(large), args.batch, args.batches)
        mmap_rate = throughput(_mmap_reader(large), len(large), args.batch, args.batches)
        print(f"random batches of {args.batch} from {len(large)} images {large.image_shape}:")
        print(f"  baseline in-RAM uint8 tensor : {baseline:12.0f} images/s")
        print(f"  SyntheticStore.get (pread)   : {store_rate:12.0f} images/s   ratio store/baseline = {store_rate / baseline:.3f}")
        print(f"  shard memory maps            : {mmap_rate:12.0f} images/s   ratio mmap/baseline  = {mmap_rate / baseline:.3f}")
        seq_base = _seconds(lambda: materialize(in_ram))
        seq_store = _seconds(lambda: materialize(large))
        print(f"sequential pass (dreamset.contracts.data.materialize) over {len(large)} images:")
        print(f"  baseline in-RAM: {len(large) / seq_base:12.0f} images/s; store: {len(large) / seq_store:12.0f} images/s; "
              f"ratio store/baseline = {seq_base / seq_store:.3f}")
        images = in_ram = None  # free them before the memory measurements
        for mode in ("pread", "mmap"):
            rows = []
            for n, store in stores.items():
                out = subprocess.run([sys.executable, __file__, "--child", str(store.path), mode, "--batch", str(args.batch),
                                      "--batches", str(args.batches)], check=True, capture_output=True, text=True)
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            small, big = rows
            print(f"RSS reading {args.batches} random batches of {args.batch} ({'SyntheticStore.get' if mode == 'pread' else 'memory maps'}):")
            for row in rows:
                print(f"  {row['n']:>8} images: peak {row['peak_kib'] / 1024:8.1f} MiB, growth during reads "
                      f"{(row['rss_after_kib'] - row['rss_before_kib']) / 1024:6.2f} MiB")
            print(f"  ratio peak {big['n']}/{small['n']}: {big['peak_kib'] / small['peak_kib']:.3f}")


if __name__ == "__main__":
    main()
