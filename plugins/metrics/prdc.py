"""``metric:prdc`` — precision, recall, density and coverage (Naeem, Oh, Uh, Choi & Yoo, 2020,
"Reliable Fidelity and Diversity Metrics for Generative Models", arXiv:2002.09797) of the synthetic store against the
real split (``real``: ``train`` or ``test``), overall and per class.

With ``r_i`` the distance from real feature ``X_i`` to its ``k``-th nearest *other* real feature and
``s_j`` the same within the synthetic features ``Y_j``:

- precision = fraction of ``Y_j`` with some ``‖X_i − Y_j‖ < r_i``;
- recall    = fraction of ``X_i`` with some ``‖X_i − Y_j‖ < s_j``;
- density   = ``(1 / kM) Σ_j #{i : ‖X_i − Y_j‖ < r_i}`` (may exceed 1);
- coverage  = fraction of ``X_i`` whose nearest ``Y_j`` satisfies ``‖X_i − Y_j‖ < r_i``.

Comparisons are strict, as in the reference ``prdc`` package, and every real-vs-synthetic distance
is taken with the real row as the query (the package's ``pairwise_distances(real, fake)``, and the
role the real radii were computed in), so exact copies of the real features give density exactly 1.
:func:`prdc` works on ``float32/float64 N×D`` and ``M×D`` finite feature tensors (any range; NaN/±inf
are refused like FID/KID) through the chunked k-NN primitives of :mod:`dreamset.toolkit.knn` in float64:
memory ``O(chunk · (chunk + k))``, never an ``N×M`` matrix; on the same features it equals
``prdc.compute_prdc`` to 1e-6 (``tests/test_metrics_parity.py``).

The metric extracts features of images (``float32 N×C×H×W`` in [0,1]) with the chosen ``extractor``
for a seeded random subsample of at most ``max_samples`` rows per side. ``equal_n`` (default
``false``) decides what "the same features" means: off, both sides keep ``min(n, max_samples)``
rows, so the numbers equal the ``prdc`` package's on those features; on, the larger side is
subsampled to the smaller ``n`` — the radii, and so all four numbers, depend on ``n``, and on
unequal sets this differs from the package by up to ~30%. (Before 2026-12 the default was ``true``;
see docs/metrics.md.) The per-class table always uses one ``n`` for every class (the smallest class
count, capped at ``max_samples``) so its rows are comparable with each other.

Also accepts precomputed features: ``real``/``synthetic`` features from ``.npy``/``.npz`` files
(see :mod:`dreamset.plugins.metrics.fid`).

Result: ``precision``, ``recall``, ``density``, ``coverage`` (floats; three in [0,1], density ≥ 0),
``k``, ``extractor``, ``real``, ``n_real``, ``n_synthetic``, ``feature_dim``, ``warnings`` and
``tables["per-class PRDC (n = … per class, equalised across classes)"]``.
"""
from __future__ import annotations

import numpy as np
from pydantic import Field

from dreamset import register
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.headline import Headline
from dreamset.contracts.interfaces import Metric
from dreamset.contracts.lazy import lazy_module
from dreamset.contracts.progress import progress
from dreamset.plugins.metrics.fid import FeatureOptions, extractor_report, feature_pair

torch = lazy_module("torch")


def prdc(real_features, fake_features, k: int = 5, *, query_chunk: int = 1024, reference_chunk: int = 8192) -> dict[str, float]:
    """Precision, recall, density, coverage of ``fake_features`` (``M×D``) against ``real_features``
    (``N×D``) with ``k``-NN radii; needs ``N, M > k``; NaN/±inf features are refused. Returns plain
    floats. Every real-vs-fake distance is computed with the real row as the query, as the ``prdc``
    package's ``pairwise_distances(real, fake)`` does and as the real radii were: exact copies of
    real features give density exactly 1.0 (not 1.0013)."""
    from dreamset.plugins.metrics.statistics import as_feature_matrix
    from dreamset.toolkit.knn import cross_radius_statistics, kth_neighbour_radii

    if k < 1:
        raise BadInputError(f"k: must be >= 1, got {k}")
    real, fake = as_feature_matrix(real_features, "real features"), as_feature_matrix(fake_features, "synthetic features")
    if real.shape[1] != fake.shape[1]:
        raise BadInputError(f"features: expected N×D and M×D with the same D, got {tuple(real.shape)} and {tuple(fake.shape)}")
    if min(real.shape[0], fake.shape[0]) <= k:
        raise BadInputError(f"k: needs more than k={k} real and synthetic samples, got {real.shape[0]} and {fake.shape[0]}")
    chunks = {"query_chunk": query_chunk, "reference_chunk": reference_chunk}
    real_radii = kth_neighbour_radii(real, k, **chunks)
    fake_radii = kth_neighbour_radii(fake, k, **chunks)
    # per fake point: how many real balls B(X_i, r_i) contain it (precision, density); per real point:
    # inside some fake ball B(Y_j, s_j)? (recall); and its nearest fake distance (coverage)
    inside_real, inside_fake, nearest_fake = cross_radius_statistics(real, fake, real_radii, fake_radii, **chunks)
    return {
        "precision": float((inside_real > 0).double().mean()),
        "recall": float(inside_fake.double().mean()),
        "density": float(inside_real.double().sum() / (k * fake.shape[0])),
        "coverage": float((nearest_fake < real_radii).double().mean()),
    }


class PRDCOptions(FeatureOptions):
    k: int = Field(default=5, ge=1, le=1000, description="nearest neighbours defining the k-NN radii")
    max_samples: int = Field(default=10_000, ge=2, le=10_000_000, description="random subsample per side (seeded)")
    equal_n: bool = Field(default=False, description="subsample the larger side to the smaller n (off: the prdc package's numbers)")
    seed: int = Field(default=0, ge=0, description="seed of the subsample")
    per_class: bool = Field(default=True, description="also report a per-class table (n equalised across classes)")
    chunk_size: int = Field(default=1024, ge=1, le=1_000_000, description="k-NN query rows per block (memory bound)")


@register(description="precision/recall/density/coverage with chunked k-NN (Naeem et al. 2020)")
class PrecisionRecallDensityCoverage(Metric):
    """PRDC on a seeded subsample, overall and per class (equal n per class)."""

    key = "metric:prdc"

    #: a distribution metric of the synthetic set: run once per named source (dreamset.orchestration.sources)
    scope = "source"

    headline = (
        Headline("precision", "precision", better="higher", group="fidelity", scale=100, unit="%", format="{:.1f}",
                 explain="synthetic samples inside the real manifold"),
        Headline("density", "density", better="higher", group="fidelity", format="{:.3f}",
                 explain="how densely synthetic samples sit among real neighbours (1 ≈ real)"),
        Headline("recall", "recall", better="higher", group="diversity", scale=100, unit="%", format="{:.1f}",
                 explain="real samples covered by the synthetic manifold"),
        Headline("coverage", "coverage", better="higher", group="diversity", scale=100, unit="%", format="{:.1f}",
                 explain="real neighbourhoods that hold a synthetic sample"),
    )

    Options = PRDCOptions

    def compute(self, inputs) -> dict:
        o = self.options
        real_source, synthetic_source, extractor = feature_pair(inputs, o)
        per_class = o.per_class and real_source.labelled and synthetic_source.labelled
        real_labels, synthetic_labels = real_source.labels.numpy(), synthetic_source.labels.numpy()
        rng = np.random.default_rng(o.seed)
        n_real, n_synthetic = min(len(real_labels), o.max_samples), min(len(synthetic_labels), o.max_samples)
        if o.equal_n:
            n_real = n_synthetic = min(n_real, n_synthetic)
        if min(n_real, n_synthetic) <= o.k:
            raise BadInputError(f"k: needs more than k={o.k} real and synthetic samples, got {n_real} and {n_synthetic}")

        def draw(pool: np.ndarray, n: int) -> np.ndarray:
            return np.sort(rng.choice(pool, size=n, replace=False)) if n < len(pool) else pool

        # (name, real rows, synthetic rows); the first group is the overall comparison
        groups = [(None, draw(np.arange(len(real_labels)), n_real), draw(np.arange(len(synthetic_labels)), n_synthetic))]
        warnings: list[str] = []
        rows: list[list] = []
        per_class_n = None
        if per_class:
            members = [(np.flatnonzero(real_labels == c), np.flatnonzero(synthetic_labels == c))
                       for c in range(len(real_source.class_names))]
            usable = [min(len(r), len(s)) for r, s in members if min(len(r), len(s)) > o.k]
            per_class_n = min(usable + [o.max_samples]) if usable else None
            for c, (name, (r, s)) in enumerate(zip(real_source.class_names, members)):
                if per_class_n is None or min(len(r), len(s)) < per_class_n:
                    rows.append([name, len(r), len(s), None, None, None, None])
                    continue
                groups.append((name, draw(r, per_class_n), draw(s, per_class_n)))
            skipped = sum(row[3] is None for row in rows)
            if skipped:
                warnings.append(f"per-class PRDC: {skipped} class(es) with <= k={o.k} real or synthetic samples left out")
        real_rows = np.unique(np.concatenate([g[1] for g in groups]))
        synthetic_rows = np.unique(np.concatenate([g[2] for g in groups]))
        real_features = real_source.at(real_rows, o.batch_size)
        synthetic_features = synthetic_source.at(synthetic_rows, o.batch_size)
        chunks = {"query_chunk": o.chunk_size, "reference_chunk": 8 * o.chunk_size}

        def evaluate(r, s):
            return prdc(real_features[torch.from_numpy(np.searchsorted(real_rows, r))],
                        synthetic_features[torch.from_numpy(np.searchsorted(synthetic_rows, s))], o.k, **chunks)

        with progress(getattr(inputs, "services", None), "PRDC k-NN", len(groups), unit="groups") as advance:
            result = evaluate(groups[0][1], groups[0][2])
            advance(1)
            per_class_values = []
            for name, r, s in groups[1:] if per_class else []:
                per_class_values.append((name, r, s, evaluate(r, s)))
                advance(1)
        result.update({"k": o.k, **extractor_report(o, extractor), "real": o.real, "n_real": n_real,
                       "n_synthetic": n_synthetic, "feature_dim": int(real_features.shape[1])})
        if per_class:
            for name, r, s, values in per_class_values:
                rows.append([name, len(r), len(s)] + [values[key] for key in ("precision", "recall", "density", "coverage")])
            order = {name: i for i, name in enumerate(real_source.class_names)}
            rows.sort(key=lambda row: order[row[0]])
            title = (f"per-class PRDC (n = {per_class_n} real and {per_class_n} synthetic per class, equalised across classes)"
                     if per_class_n is not None else "per-class PRDC (no class has more than k samples on both sides)")
            result["tables"] = {title: {"header": ["class", "n_real", "n_synthetic", "precision", "recall", "density",
                                                   "coverage"], "rows": rows}}
        result["warnings"] = warnings
        return result
