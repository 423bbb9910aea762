"""``metric:kid`` — Kernel Inception Distance (Bińkowski, Sutherland, Arbel & Gretton, 2018,
"Demystifying MMD GANs", arXiv:1801.01401) between the real split (``real``: ``train`` or ``test``) and the synthetic
store, overall and per class.

KID is the unbiased MMD² under the cubic polynomial kernel ``k(x, y) = (xᵀy / d + 1)³`` on features
(``float32 N×D``, any range) of the images (``float32 N×C×H×W`` in [0,1]) from the chosen
``extractor`` (``reference`` — offline, default; ``inception-v3`` / ``timm:NAME`` with a local
``weights`` file), averaged over ``num_subsets`` seeded random subset pairs of
``min(subset_size, n_real, n_synthetic)`` rows (per class: ``min(subset_size, smallest n of that
class)``). Unlike FID it is unbiased, so small per-class sets are fine; values may be slightly
negative. Only the rows some subset reads are passed through the extractor (``batch_size`` images at
a time), so memory is ``O(#distinct sampled rows · D)``, not ``O(N · D)``.

Result: ``kid_mean``, ``kid_std`` (population std over subsets), ``subset_size``, ``num_subsets``,
``extractor``, ``real``, ``n_real``, ``n_synthetic``, ``feature_dim``, ``warnings`` and
``tables["per-class KID"]`` (class, n_real, n_synthetic, subset_size, kid_mean, kid_std — ``None``
where a class has < 2 samples on either side).
"""
from __future__ import annotations

import numpy as np
from pydantic import Field

from dreamset import register
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.headline import Headline
from dreamset.contracts.interfaces import Metric
from dreamset.contracts.lazy import lazy_module
from dreamset.plugins.metrics.fid import FeatureOptions, extractor_report, feature_pair

torch = lazy_module("torch")


class KIDOptions(FeatureOptions):
    subset_size: int = Field(default=1000, ge=2, le=1_000_000, description="rows per random subset (capped at the smaller n)")
    num_subsets: int = Field(default=100, ge=1, le=100_000, description="number of random subset pairs averaged")
    seed: int = Field(default=0, ge=0, description="seed of the subset draws")
    per_class: bool = Field(default=True, description="also report a per-class KID table")


@register(description="kernel inception distance, unbiased polynomial MMD over subsets (Binkowski et al. 2018)")
class KernelInceptionDistance(Metric):
    """KID mean and std over seeded subsets, overall and per class."""

    key = "metric:kid"

    #: a distribution metric of the synthetic set: run once per named source (dreamset.orchestration.sources)
    scope = "source"

    headline = (Headline("kid_mean", "KID", better="lower", group="fidelity", format="{:.4f}", spread="kid_std",
                         explain="kernel inception distance (unbiased, ± std over subsets); lower = closer"),)

    Options = KIDOptions

    def compute(self, inputs) -> dict:
        from dreamset.plugins.metrics.statistics import kid_subset_indices, mean_and_std, polynomial_mmd

        o = self.options
        real_source, synthetic_source, extractor = feature_pair(inputs, o)
        per_class = o.per_class and real_source.labelled and synthetic_source.labelled
        real_labels, synthetic_labels = real_source.labels.numpy(), synthetic_source.labels.numpy()
        n_real, n_synthetic = len(real_labels), len(synthetic_labels)
        if min(n_real, n_synthetic) < 2:
            raise BadInputError(f"metric:kid: needs at least 2 real and 2 synthetic images, got {n_real} and {n_synthetic}")
        # groups: (name, real rows, synthetic rows, subset size, seed); None = overall
        groups = [(None, np.arange(n_real), np.arange(n_synthetic), min(o.subset_size, n_real, n_synthetic), o.seed)]
        rows: list[list] = []
        if per_class:
            for c, name in enumerate(real_source.class_names):
                r, s = np.flatnonzero(real_labels == c), np.flatnonzero(synthetic_labels == c)
                if min(len(r), len(s)) < 2:
                    rows.append([name, len(r), len(s), None, None, None])
                    continue
                groups.append((name, r, s, min(o.subset_size, len(r), len(s)), o.seed + 1 + c))
        # draw every subset first, then extract features once for the union of the rows drawn
        draws = [[(r[i], s[j]) for i, j in kid_subset_indices(len(r), len(s), size, o.num_subsets, seed)]
                 for _, r, s, size, seed in groups]
        real_rows = np.unique(np.concatenate([i for d in draws for i, _ in d]))
        synthetic_rows = np.unique(np.concatenate([j for d in draws for _, j in d]))
        real_features = real_source.at(real_rows, o.batch_size)
        synthetic_features = synthetic_source.at(synthetic_rows, o.batch_size)

        def estimate(draw):
            return mean_and_std([
                polynomial_mmd(real_features[torch.from_numpy(np.searchsorted(real_rows, i))],
                               synthetic_features[torch.from_numpy(np.searchsorted(synthetic_rows, j))])
                for i, j in draw])

        kid_mean, kid_std = estimate(draws[0])
        for (name, r, s, size, _), draw in zip(groups[1:], draws[1:]):
            mean, std = estimate(draw)
            rows.append([name, len(r), len(s), size, mean, std])
        feature_dim = int(real_features.shape[1])
        result = {
            "kid_mean": kid_mean,
            "kid_std": kid_std,
            "subset_size": groups[0][3],
            "num_subsets": o.num_subsets,
            **extractor_report(o, extractor),
            "real": o.real,
            "n_real": n_real,
            "n_synthetic": n_synthetic,
            "feature_dim": feature_dim,
            "warnings": [],
        }
        if groups[0][3] < o.subset_size:
            result["warnings"].append(f"subset_size: only {groups[0][3]} rows available (asked {o.subset_size}); "
                                      "KID stays unbiased but its std grows")
        if per_class:
            order = {name: i for i, name in enumerate(real_source.class_names)}
            rows.sort(key=lambda row: order[row[0]])
            result["tables"] = {"per-class KID": {
                "header": ["class", "n_real", "n_synthetic", "subset_size", "kid_mean", "kid_std"], "rows": rows}}
        return result
