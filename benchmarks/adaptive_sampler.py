"""``sampler:adaptive-low-density`` scoring: chunked k-NN (``dreamset.toolkit.knn``) vs a dense ``torch.cdist``.

The same seeded features (real: ``--n-real``×``--dim``, synthetic: ``--n-synthetic``×``--dim``,
float32, 10 classes; synthetic = real-like plus a shift) are scored the way the sampler scores them:
the distance from each synthetic sample to its k-th nearest real sample, and per class the outlier
ratio (k-th nearest real sample of its class ÷ a quantile of the real class's own k-NN radii).

- dreamset: ``AdaptiveLowDensitySampler.scores`` — blocks of ``chunk``×``chunk`` distances, never the
  whole matrix (float64).
- baseline: ``torch.cdist`` of the full ``N_s × N_r`` matrix (float32, default compute mode) +
  ``torch.topk``, and the same per-class computation densely. Its matrix alone is ``4·N_s·N_r``
  bytes: 20 GB at 100k × 50k, more than this 24 GiB machine can give it next to everything else, so
  it is skipped above ``--dense-limit-gb`` and its memory shown as that estimate.

Each size runs in a fresh process per method (peak RSS = ``VmHWM``, growth above the RSS after the
features are made; ``--repeats`` scorings after ``--warmup`` untimed ones, the median time printed
with its range). Printed per size: time and peak memory growth of both, the ratios, and the max abs
difference of the two methods' scores.

Run: ``python benchmarks/adaptive_sampler.py [--sizes 20000x10000 100000x50000] [--dim 128] [--k 5]
[--dense-limit-gb 6]``.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import harness

DENSE = "dense torch.cdist"
OURS = "dreamset chunked k-NN"


def make_features(n_synthetic: int, n_real: int, dim: int):
    import torch

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((10, dim)) * 2
    real_labels = rng.integers(0, 10, n_real)
    synthetic_labels = rng.integers(0, 10, n_synthetic)
    real = centres[real_labels] + rng.standard_normal((n_real, dim))
    synthetic = centres[synthetic_labels] + 1.2 * rng.standard_normal((n_synthetic, dim)) + 0.2
    return (torch.from_numpy(real.astype(np.float32)), torch.from_numpy(real_labels),
            torch.from_numpy(synthetic.astype(np.float32)), torch.from_numpy(synthetic_labels))


def dense_scores(real, real_labels, synthetic, synthetic_labels, k: int, quantile: float, scale: float):
    """The sampler's two numbers with whole distance matrices (the baseline)."""
    import torch

    score = torch.topk(torch.cdist(synthetic, real), k, dim=1, largest=False).values[:, -1]
    ratio = torch.zeros(len(synthetic))
    for c in range(10):
        real_c, members = real[real_labels == c], torch.nonzero(synthetic_labels == c).flatten()
        within = torch.cdist(real_c, real_c)
        within.fill_diagonal_(float("inf"))
        radii = torch.topk(within, k, dim=1, largest=False).values[:, -1]
        cutoff = float(torch.quantile(radii.double(), quantile)) * scale
        ratio[members] = torch.topk(torch.cdist(synthetic[members], real_c), k, dim=1, largest=False).values[:, -1] / cutoff
    return score.double().numpy(), ratio.double().numpy()


def score_in_child(method: str, n_synthetic: int, n_real: int, args, scores_dir: Path) -> dict:
    """In a fresh process: score by ``method``; its seconds per repeat and peak memory growth (scores saved)."""
    import torch

    torch.set_num_threads(2)
    import dreamset.registry

    sampler = dreamset.registry.create("sampler:adaptive-low-density", k=args.k)
    features = make_features(n_synthetic, n_real, args.dim)
    o = sampler.options
    scores = []

    def score():
        if method == "dreamset":
            scores[:] = sampler.scores(*features, num_classes=10)
        else:
            scores[:] = dense_scores(*features, k=args.k, quantile=o.outlier_quantile, scale=o.outlier_scale)

    with harness.PeakMemory() as memory:
        timing = harness.measure({method: score}, args.repeats, args.warmup)[method]
    np.save(scores_dir / f"{method}-{n_synthetic}.npy", np.stack(scores))
    return {"seconds": list(timing.seconds), "peak_growth_kib": memory.growth_kib}


def main() -> None:
    parser = harness.parser(__doc__, repeats=1, warmup=0)
    parser.add_argument("--sizes", nargs="+", default=["20000x10000", "100000x50000"], help="N_synthetic x N_real")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--dense-limit-gb", type=float, default=6.0)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        method, n_s, n_r, scores_dir = args.child
        harness.child_result(score_in_child(method, int(n_s), int(n_r), args, Path(scores_dir)))
        return
    results = harness.Results(f"adaptive-low-density scores, D={args.dim}, k={args.k}, 10 classes, 2 threads", vars(args))
    with tempfile.TemporaryDirectory() as scores_dir:
        for size in args.sizes:
            report_size(args, size, Path(scores_dir), results)
    results.emit(args)


def report_size(args, size: str, scores_dir: Path, results: harness.Results) -> None:
    """Run both methods at one ``N_synthetic x N_real`` size (each in a fresh process): a section of ``results``."""
    n_s, n_r = (int(v) for v in size.lower().split("x"))
    dense_gb = 4 * n_s * n_r / 1e9
    rows = {}
    for method in ("dreamset", "dense"):
        if method == "dense" and dense_gb > args.dense_limit_gb:
            continue
        rows[method] = harness.run_child(__file__, "--dim", str(args.dim), "--k", str(args.k), "--repeats", str(args.repeats),
                                         "--warmup", str(args.warmup), "--child", method, str(n_s), str(n_r), str(scores_dir))
    section = results.section(f"{n_s} synthetic x {n_r} real")
    dense = "dense" in rows
    section.time(OURS, harness.Timing(tuple(rows["dreamset"]["seconds"])), baseline=DENSE if dense else None)
    section.memory(f"{OURS}: peak memory growth", rows["dreamset"]["peak_growth_kib"],
                   baseline=f"{DENSE}: peak memory growth" if dense else None)
    if dense:
        section.time(DENSE, harness.Timing(tuple(rows["dense"]["seconds"])))
        section.memory(f"{DENSE}: peak memory growth", rows["dense"]["peak_growth_kib"])
        a, b = np.load(scores_dir / f"dreamset-{n_s}.npy"), np.load(scores_dir / f"dense-{n_s}.npy")
        section.add("max |score difference|", np.abs(a - b).max())
    else:
        section.note(f"{DENSE}: skipped, its distance matrix alone needs {dense_gb:.1f} GB "
                     f"(> --dense-limit-gb {args.dense_limit_gb:g}); ratio peak memory dreamset/dense <= "
                     f"{rows['dreamset']['peak_growth_kib'] * 1024 / (dense_gb * 1e9):.4f}")


if __name__ == "__main__":
    main()
