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

``--repeats`` computes everything that many times in each process (the median is printed, with the
range; the peak memory covers them all).

Run: ``python benchmarks/fid_statistics.py [--n 100000] [--dim 512|2048] [--chunk 4096]``.
"""
from __future__ import annotations

import argparse

import numpy as np

import harness

METHODS = {"streaming": "dreamset StreamingMoments + eigvals", "dense": "numpy mean/cov + scipy sqrtm"}


def feature_chunks(n: int, dim: int, chunk: int, synthetic: bool):
    """Seeded ``float32`` feature chunks with correlated columns and a large common offset (as
    post-ReLU features have); the synthetic set is shifted and rescaled."""
    mixing = np.random.default_rng(0).standard_normal((dim, dim)).astype(np.float32) / np.sqrt(dim)
    rng = np.random.default_rng(2 if synthetic else 1)
    for start in range(0, n, chunk):
        x = rng.standard_normal((min(chunk, n - start), dim), dtype=np.float32) @ mixing + 5.0
        yield (x * 1.1 + 0.2) if synthetic else x


def streaming_fid(n: int, dim: int, chunk: int, statistics: harness.Stopwatch, distance: harness.Stopwatch) -> float:
    from dreamset.plugins.metrics.statistics import StreamingMoments, frechet_distance

    moments = []
    for synthetic in (False, True):
        m = StreamingMoments()
        for x in feature_chunks(n, dim, chunk, synthetic):
            with statistics:
                m.update(x)
        moments.append(m)
    with distance:
        return frechet_distance(moments[0].mean, moments[0].covariance(warn=False), moments[1].mean,
                                moments[1].covariance(warn=False))


def dense_fid(n: int, dim: int, chunk: int, statistics: harness.Stopwatch, distance: harness.Stopwatch) -> float:
    from scipy import linalg

    stats = []
    for synthetic in (False, True):
        chunks = list(feature_chunks(n, dim, chunk, synthetic))
        with statistics:
            features = np.concatenate(chunks)
            del chunks
            stats.append((np.mean(features, axis=0, dtype=np.float64), np.cov(features, rowvar=False)))
        del features
    with distance:
        (mu1, sigma1), (mu2, sigma2) = stats
        covmean, _ = linalg.sqrtm(sigma1 @ sigma2, disp=False)
        return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean.real))


def fid_in_child(method: str, n: int, dim: int, chunk: int, repeats: int) -> dict:
    """In a fresh process: the FID by ``method`` ``repeats`` times; each time's statistics and distance seconds."""
    import torch

    torch.set_num_threads(2)
    if method == "streaming":
        import dreamset.plugins.metrics.statistics  # noqa: F401  (imported before the memory baseline)
    else:
        import scipy.linalg  # noqa: F401
    fid = streaming_fid if method == "streaming" else dense_fid
    out = {"stats_seconds": [], "distance_seconds": []}
    with harness.PeakMemory() as memory:
        for _ in range(repeats):
            statistics, distance = harness.Stopwatch(), harness.Stopwatch()
            out["fid"] = fid(n, dim, chunk, statistics, distance)
            out["stats_seconds"].append(statistics.seconds)
            out["distance_seconds"].append(distance.seconds)
    return {**out, "peak_growth_kib": memory.growth_kib}


def main() -> None:
    parser = harness.parser(__doc__, repeats=1, warmup=0)
    parser.add_argument("--n", type=int, default=100_000, help="features per set")
    parser.add_argument("--dim", type=int, default=512, help="feature dimension (e.g. 512 or 2048)")
    parser.add_argument("--chunk", type=int, default=4096, help="rows per extractor chunk")
    parser.add_argument("--child", choices=list(METHODS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        harness.child_result(fid_in_child(args.child, args.n, args.dim, args.chunk, args.repeats))
        return

    rows = {method: harness.run_child(__file__, "--child", method, "--n", str(args.n), "--dim", str(args.dim),
                                      "--chunk", str(args.chunk), "--repeats", str(args.repeats)) for method in METHODS}
    results = harness.Results("FID statistics: streaming float64 moments vs dense numpy/scipy", vars(args))
    base = METHODS["dense"]
    for title, measure in (("statistics throughput (generation excluded)", "rate"), ("time of the final distance", "time"),
                           ("peak memory growth", "memory"), ("FID", "value")):
        section = results.section(f"{title}, 2 x {args.n} float32 features, D={args.dim}, chunks of {args.chunk}")
        for method, label in METHODS.items():
            row, baseline = rows[method], None if method == "dense" else base
            if measure == "rate":
                section.rate(label, harness.Timing(tuple(row["stats_seconds"])), 2 * args.n, "features/s", baseline)
            elif measure == "time":
                section.time(label, harness.Timing(tuple(row["distance_seconds"])), baseline)
            elif measure == "memory":
                section.memory(label, row["peak_growth_kib"], baseline)
            else:
                section.add(label, row["fid"])
    s, d = rows["streaming"]["fid"], rows["dense"]["fid"]
    section.add("|FID streaming - FID dense|", abs(s - d))
    section.add("relative difference", abs(s - d) / abs(d))
    results.emit(args)


if __name__ == "__main__":
    main()
