"""FID statistics: streamed float64 moments (``dreamset.plugins.metrics.statistics``) vs a dense numpy version.

Two feature sets (``float32 N×D``: "real" and a shifted, rescaled "synthetic"), produced chunk by
chunk (``--chunk`` rows) from a seeded generator as a feature extractor would, go through

- dreamset: :class:`dreamset.plugins.metrics.statistics.StreamingMoments` per chunk (no feature matrix kept), then
  :func:`dreamset.plugins.metrics.statistics.frechet_distance` (eigenvalues of Σ1Σ2);
- baseline: all chunks kept and concatenated into the ``N×D`` matrix, ``np.mean`` + ``np.cov`` over
  it, then the usual ``scipy.linalg.sqrtm`` Fréchet distance (pytorch-fid's formula).

Each runs in a fresh process (peak RSS = ``VmHWM``; the growth above the RSS after imports is
reported). Printed: statistics throughput (features/s, both sets, generation excluded), time of the
final distance, peak memory, the ratios, and the two FIDs with their difference.

Run: ``python benchmarks/fid_statistics.py [--n 100000] [--dim 512|2048] [--chunk 4096]``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

from memory import rss_kib  # benchmarks/memory.py (this script's folder is on sys.path)



def feature_chunks(n: int, dim: int, chunk: int, synthetic: bool):
    """Seeded ``float32`` feature chunks with correlated columns and a large common offset (as
    post-ReLU features have); the synthetic set is shifted and rescaled."""
    mixing = np.random.default_rng(0).standard_normal((dim, dim)).astype(np.float32) / np.sqrt(dim)
    rng = np.random.default_rng(2 if synthetic else 1)
    for start in range(0, n, chunk):
        x = rng.standard_normal((min(chunk, n - start), dim), dtype=np.float32) @ mixing + 5.0
        yield (x * 1.1 + 0.2) if synthetic else x


def run_streaming(n: int, dim: int, chunk: int) -> dict:
    import torch

    from dreamset.plugins.metrics.statistics import StreamingMoments, frechet_distance

    torch.set_num_threads(2)
    base = rss_kib()
    stats_seconds = 0.0
    moments = []
    for synthetic in (False, True):
        m = StreamingMoments()
        for x in feature_chunks(n, dim, chunk, synthetic):
            start = time.perf_counter()
            m.update(x)
            stats_seconds += time.perf_counter() - start
        moments.append(m)
    start = time.perf_counter()
    fid = frechet_distance(moments[0].mean, moments[0].covariance(warn=False), moments[1].mean, moments[1].covariance(warn=False))
    distance_seconds = time.perf_counter() - start
    return {"fid": fid, "stats_seconds": stats_seconds, "distance_seconds": distance_seconds,
            "peak_growth_kib": rss_kib("VmHWM") - base}


def run_dense(n: int, dim: int, chunk: int) -> dict:
    from scipy import linalg

    base = rss_kib()
    stats_seconds = 0.0
    stats = []
    for synthetic in (False, True):
        chunks = list(feature_chunks(n, dim, chunk, synthetic))
        start = time.perf_counter()
        features = np.concatenate(chunks)
        del chunks
        stats.append((np.mean(features, axis=0, dtype=np.float64), np.cov(features, rowvar=False)))
        stats_seconds += time.perf_counter() - start
        del features
    start = time.perf_counter()
    (mu1, sigma1), (mu2, sigma2) = stats
    covmean, _ = linalg.sqrtm(sigma1 @ sigma2, disp=False)
    fid = float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean.real))
    distance_seconds = time.perf_counter() - start
    return {"fid": fid, "stats_seconds": stats_seconds, "distance_seconds": distance_seconds,
            "peak_growth_kib": rss_kib("VmHWM") - base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="features per set")
    parser.add_argument("--dim", type=int, default=512, help="feature dimension (e.g. 512 or 2048)")
    parser.add_argument("--chunk", type=int, default=4096, help="rows per extractor chunk")
    parser.add_argument("--child", choices=["streaming", "dense"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run = run_streaming if args.child == "streaming" else run_dense
        print(json.dumps(run(args.n, args.dim, args.chunk)))
        return

    rows = {}
    for method in ("streaming", "dense"):
        out = subprocess.run([sys.executable, __file__, "--child", method, "--n", str(args.n), "--dim", str(args.dim),
                              "--chunk", str(args.chunk)], check=True, capture_output=True, text=True)
        rows[method] = json.loads(out.stdout.strip().splitlines()[-1])
    s, d = rows["streaming"], rows["dense"]
    total = 2 * args.n
    print(f"FID statistics of 2 x {args.n} float32 features, D={args.dim}, chunks of {args.chunk}:")
    for name, label in (("streaming", "dreamset StreamingMoments + eigvals"), ("dense", "numpy mean/cov + scipy sqrtm")):
        r = rows[name]
        print(f"  {label:36s}: {total / r['stats_seconds']:12.0f} features/s, distance {r['distance_seconds']:7.2f} s, "
              f"peak memory growth {r['peak_growth_kib'] / 1024:8.1f} MiB, FID {r['fid']:.10g}")
    print(f"  ratio throughput streaming/dense = {d['stats_seconds'] / s['stats_seconds']:.3f}; "
          f"ratio distance time streaming/dense = {s['distance_seconds'] / d['distance_seconds']:.3f}; "
          f"ratio peak memory streaming/dense = {s['peak_growth_kib'] / max(d['peak_growth_kib'], 1):.3f}")
    print(f"  |FID streaming - FID dense| = {abs(s['fid'] - d['fid']):.3g} (relative {abs(s['fid'] - d['fid']) / abs(d['fid']):.3g})")


if __name__ == "__main__":
    main()
