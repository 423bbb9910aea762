"""Peak memory of the compositing mixers as the number of objects grows (default 10k vs 200k).

For each size a store of random ``uint8`` objects is built (``store_read.build_store``), then a fresh
process opens it, builds ``mixer:cut-paste`` (``repeats: 1``) or ``mixer:biregular``
(``object_degree: 1``, 200 backgrounds) over it and draws ``--batches`` batches of ``--batch``
composites, printing its peak RSS (``VmHWM``). Objects are read from the store batch by batch, so
the two peaks should match (the larger one's ratio to the smaller ≈ 1); what still grows with ``N`` is the epoch's index plan (8 bytes
per placement for cut-paste, 16 per edge for biregular) and the labels (8 bytes per object).
``--mode preload`` first reads every object as float32 (with its mask), as the mixers did before
they streamed, for comparison.

Run: ``nice -n 10 python benchmarks/compositing_memory.py [--sizes 10000 200000] [--batch 256]
[--batches 100] [--mode stream|preload|both]``.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import harness
from store_read import build_store

MIXERS = {"mixer:cut-paste": {"repeats": 1}, "mixer:biregular": {"object_degree": 1, "n_backgrounds": 200}}


def composite_in_child(path: str, key: str, batch: int, batches: int, mode: str) -> dict:
    """In a fresh process: composite ``batches`` batches from the store at ``path``; its RSS figures."""
    import itertools

    import torch

    torch.set_num_threads(1)
    import dreamset.registry as registry
    from dreamset.store.reader import SyntheticStore
    from dreamset.toolkit.masks import object_masks

    store = SyntheticStore.open(path, verify=False)
    mixer = registry.create(key, **MIXERS[key])
    with harness.PeakMemory() as memory:
        held = None
        if mode == "preload":  # what the mixers held before streaming: every object as float32 + its mask
            images, _ = store.get(range(len(store)))
            held = (images, object_masks(images))
        for x, y, mask in itertools.islice(mixer.batches(None, store, batch, 0, 0), batches):
            assert x.shape[0] == len(y) == mask.shape[0]
    return {"n": len(store), "rss_before_kib": memory.before_kib, "peak_kib": memory.peak_kib, "held": held is not None}


def main() -> None:
    parser = harness.parser(__doc__, repeats=None)
    parser.add_argument("--sizes", type=int, nargs=2, default=[10_000, 200_000])
    parser.add_argument("--shape", type=int, nargs=3, default=[3, 16, 16])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--mode", choices=["stream", "preload", "both"], default="stream")
    parser.add_argument("--child", nargs=3, metavar=("STORE", "MIXER", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        harness.child_result(composite_in_child(args.child[0], args.child[1], args.batch, args.batches, args.child[2]))
        return
    modes = ["stream", "preload"] if args.mode == "both" else [args.mode]
    results = harness.Results("peak memory of the compositing mixers as the number of objects grows", vars(args))
    with tempfile.TemporaryDirectory() as tmp:
        stores = {n: build_store(Path(tmp), n, shape=tuple(args.shape)) for n in args.sizes}
        for key in MIXERS:
            for mode in modes:
                section = results.section(f"{key} ({mode}), {args.batches} batches of {args.batch} composites of "
                                          f"{tuple(args.shape)}")
                small = None
                for n, store in stores.items():
                    row = harness.run_child(__file__, "--child", str(store.path), key, mode,
                                            "--batch", str(args.batch), "--batches", str(args.batches))
                    name = f"{row['n']} objects: peak"
                    section.memory(name, row["peak_kib"], baseline=small)
                    small = small or name
    results.emit(args)


if __name__ == "__main__":
    main()
