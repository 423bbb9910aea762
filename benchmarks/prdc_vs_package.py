"""PRDC (Naeem et al., 2020): dreamset's chunked k-NN version vs the reference ``prdc`` package.

The same seeded features (real: ``N×D`` standard normal; fake: ``M×D`` shifted by 0.3 and scaled by
1.1; ``--dtype`` float32 or float64) go through ``dreamset.plugins.metrics.prdc.prdc`` (blocks of
``--chunk`` × ``8·chunk`` distances, float64, exact ``cdist``) and ``prdc.compute_prdc`` (three dense
``N×N``, ``M×M``, ``N×M`` sklearn distance matrices), each in a fresh process (peak RSS = ``VmHWM``;
growth above the RSS after imports and feature generation is reported). Printed: wall time and
peak memory of both, the ratios, and the max abs difference of precision, recall, density, coverage.

Run: ``python benchmarks/prdc_vs_package.py [--n 10000] [--m 10000] [--dim 64] [--k 5] [--chunk 1024]``.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import time

import numpy as np

from memory import rss_kib  # benchmarks/memory.py (this script's folder is on sys.path)


KEYS = ("precision", "recall", "density", "coverage")



def features(n: int, m: int, dim: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    real = rng.standard_normal((n, dim)).astype(dtype)
    fake = (rng.standard_normal((m, dim)) * 1.1 + 0.3).astype(dtype)
    return real, fake


def run(method: str, n: int, m: int, dim: int, k: int, chunk: int, dtype: str) -> dict:
    import torch

    torch.set_num_threads(2)
    real, fake = features(n, m, dim, dtype)
    if method == "dreamset":
        from dreamset.plugins.metrics.prdc import prdc

        real_t, fake_t = torch.from_numpy(real), torch.from_numpy(fake)
        compute = lambda: prdc(real_t, fake_t, k, query_chunk=chunk, reference_chunk=8 * chunk)  # noqa: E731
    else:
        from prdc import compute_prdc

        def compute():
            with contextlib.redirect_stdout(io.StringIO()):  # it prints the sizes
                return compute_prdc(real, fake, k)
    base = rss_kib()
    start = time.perf_counter()
    values = compute()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_growth_kib": rss_kib("VmHWM") - base, **{key: float(values[key]) for key in KEYS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="real features")
    parser.add_argument("--m", type=int, default=10_000, help="fake features")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=1024, help="dreamset query rows per block")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--child", choices=["dreamset", "prdc"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    common = ["--n", str(args.n), "--m", str(args.m), "--dim", str(args.dim), "--k", str(args.k),
              "--chunk", str(args.chunk), "--dtype", args.dtype]
    if args.child:
        print(json.dumps(run(args.child, args.n, args.m, args.dim, args.k, args.chunk, args.dtype)))
        return

    rows = {}
    for method in ("dreamset", "prdc"):
        out = subprocess.run([sys.executable, __file__, "--child", method, *common], check=True, capture_output=True, text=True)
        rows[method] = json.loads(out.stdout.strip().splitlines()[-1])
    ours, ref = rows["dreamset"], rows["prdc"]
    print(f"PRDC, {args.n} real x {args.m} fake {args.dtype} features, D={args.dim}, k={args.k}:")
    for name, label in (("dreamset", f"dreamset chunked (blocks {args.chunk}x{8 * args.chunk})"), ("prdc", "prdc 0.2 (dense sklearn)")):
        r = rows[name]
        print(f"  {label:40s}: {r['seconds']:8.2f} s, peak memory growth {r['peak_growth_kib'] / 1024:8.1f} MiB, "
              + ", ".join(f"{key} {r[key]:.6f}" for key in KEYS))
    print(f"  ratio time dreamset/prdc = {ours['seconds'] / ref['seconds']:.3f}; "
          f"ratio peak memory dreamset/prdc = {ours['peak_growth_kib'] / max(ref['peak_growth_kib'], 1):.3f}")
    print(f"  max abs difference of the four numbers = {max(abs(ours[key] - ref[key]) for key in KEYS):.3g}")


if __name__ == "__main__":
    main()
