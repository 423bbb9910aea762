"""PRDC (Naeem et al., 2020): dreamset's chunked k-NN version vs the reference ``prdc`` package.

The same seeded features (real: ``N×D`` standard normal; fake: ``M×D`` shifted by 0.3 and scaled by
1.1; ``--dtype`` float32 or float64) go through ``dreamset.plugins.metrics.prdc.prdc`` (blocks of
``--chunk`` × ``8·chunk`` distances, float64, exact ``cdist``) and ``prdc.compute_prdc`` (three dense
``N×N``, ``M×M``, ``N×M`` sklearn distance matrices), each in a fresh process (peak RSS = ``VmHWM``;
growth above the RSS after imports and feature generation is reported). Printed: wall time and
peak memory of both, the ratios, and the max abs difference of precision, recall, density, coverage.

``--repeats`` computes it that many times in each process (after ``--warmup`` untimed times; the
median time is printed with its range, the peak memory covers them all).

Run: ``python benchmarks/prdc_vs_package.py [--n 10000] [--m 10000] [--dim 64] [--k 5] [--chunk 1024]``.
"""
from __future__ import annotations

import argparse
import contextlib
import io

import numpy as np

import harness

KEYS = ("precision", "recall", "density", "coverage")
BASELINE = "prdc 0.2 (dense sklearn)"


def features(n: int, m: int, dim: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    real = rng.standard_normal((n, dim)).astype(dtype)
    fake = (rng.standard_normal((m, dim)) * 1.1 + 0.3).astype(dtype)
    return real, fake


def prdc_in_child(method: str, args) -> dict:
    """In a fresh process: PRDC by ``method``; its seconds per repeat, peak memory growth and four numbers."""
    import torch

    torch.set_num_threads(2)
    real, fake = features(args.n, args.m, args.dim, args.dtype)
    if method == "dreamset":
        from dreamset.plugins.metrics.prdc import prdc

        real_t, fake_t = torch.from_numpy(real), torch.from_numpy(fake)
        compute = lambda: prdc(real_t, fake_t, args.k, query_chunk=args.chunk, reference_chunk=8 * args.chunk)  # noqa: E731
    else:
        from prdc import compute_prdc

        def compute():
            with contextlib.redirect_stdout(io.StringIO()):  # it prints the sizes
                return compute_prdc(real, fake, args.k)
    values = {}
    with harness.PeakMemory() as memory:
        timing = harness.measure({method: lambda: values.update(compute())}, args.repeats, args.warmup)[method]
    return {"seconds": list(timing.seconds), "peak_growth_kib": memory.growth_kib, **{key: float(values[key]) for key in KEYS}}


def main() -> None:
    parser = harness.parser(__doc__, repeats=1, warmup=0)
    parser.add_argument("--n", type=int, default=10_000, help="real features")
    parser.add_argument("--m", type=int, default=10_000, help="fake features")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=1024, help="dreamset query rows per block")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--child", choices=["dreamset", "prdc"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        harness.child_result(prdc_in_child(args.child, args))
        return

    common = ["--n", str(args.n), "--m", str(args.m), "--dim", str(args.dim), "--k", str(args.k), "--chunk", str(args.chunk),
              "--dtype", args.dtype, "--repeats", str(args.repeats), "--warmup", str(args.warmup)]
    labels = {"dreamset": f"dreamset chunked (blocks {args.chunk}x{8 * args.chunk})", "prdc": BASELINE}
    rows = {label: harness.run_child(__file__, "--child", method, *common) for method, label in labels.items()}
    results = harness.Results(f"PRDC, {args.n} real x {args.m} fake {args.dtype} features, D={args.dim}, k={args.k}", vars(args))
    section = results.section("wall time and peak memory growth")
    for label, row in rows.items():
        section.time(label, harness.Timing(tuple(row["seconds"])), baseline=None if label == BASELINE else BASELINE)
    for label, row in rows.items():
        section.memory(f"{label}: peak memory growth", row["peak_growth_kib"],
                       baseline=None if label == BASELINE else f"{BASELINE}: peak memory growth")
    section = results.section("the four numbers")
    for label, row in rows.items():
        for key in KEYS:
            section.add(f"{label}: {key}", row[key])
    ours, ref = rows.values()
    section.add("max abs difference of the four numbers", max(abs(ours[key] - ref[key]) for key in KEYS))
    results.emit(args)


if __name__ == "__main__":
    main()
