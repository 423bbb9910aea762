"""``sampler:adaptive-low-density`` — prefer synthetic samples from regions the real data covers
poorly, and reject outliers far from their class's real manifold.

Sehwag et al. (ICLR 2022, "Robust Learning Meets Generative Models: Can Proxy Distributions Improve
Adversarial Robustness?", arXiv:2104.09425) leave open *which* synthetic samples help most; their analysis ties the
benefit to how the proxy distribution covers the real one. This sampler makes one answer concrete:
synthetic samples that add coverage where real samples are sparse are worth more than near-copies of
real data, as long as they still lie on the class manifold.

Scoring (features ``f`` from ``extractor``: the run's real-trained reference classifier by default, or
``timm:NAME``; all distances Euclidean in that feature space):

* ``score: knn-distance`` — ``s(x) = d_k(x, R)``, the distance from synthetic ``x`` to its ``k``-th
  nearest real sample: large = poorly covered by real data.
* ``score: density-ratio`` — ``s(x) = log d_k(x, R) − log d_k(x, S∖x)``: the log of the k-NN density
  ratio synthetic/real (up to the dimension factor); large = many synthetic but few real neighbours.

Outliers: ``x`` with intended label ``c`` is rejected when ``d_k(x, R_c)`` (k-th nearest real sample
*of its own class*) exceeds ``outlier_scale`` × the ``outlier_quantile`` of the real class-``c``
samples' own k-NN radii ``{d_k(r, R_c ∖ r)}`` — i.e. it lies farther from its class than almost any
real sample does. Rejected samples are used only if a class has too few inliers for its budget (least
distant first; counted in ``info``).

Selection per class (budget ``count``/``fraction`` split evenly over classes): scores are standardised
within the class; ``mode: softmax`` draws without replacement with probability ∝ ``exp(z/temperature)``
(Gumbel-top-k, seeded; temperature → 0 is top-k, → ∞ is uniform); ``mode: top`` keeps the highest.

Complexity: ``O((N_s·N_r + N_s·N_s[density-ratio]) · D)`` time through :mod:`dreamset.toolkit.knn`'s chunked
k-NN, memory ``O(chunk² + (N_s + N_r)·D)`` — no ``N_s × N_r`` matrix (100k × 50k runs in bounded memory).

Output: a ``Selection`` with sorted ``int64`` indices into the store, ``scores`` ``float64 N_s`` (one per
synthetic sample) and ``info`` (outliers rejected and used), which report.json keeps under
``selections``. Reads ``services.reference.features(...)`` (features ``float32 N×D``). Example::

    arms: {real+synthetic: {real: true, synthetic: true, sampler: {key: adaptive-low-density, options: {fraction: 0.5}}}}
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dreamset import Options, register
from dreamset.contracts.interfaces import Sampler, Selection
from dreamset.plugins.samplers.uniform import budget, per_class_budgets


class AdaptiveLowDensityOptions(Options):
    count: int | None = Field(default=None, ge=1, description="number of samples to keep")
    fraction: float | None = Field(default=0.5, gt=0, le=1, description="fraction of the store to keep")
    extractor: str = Field(default="reference", description="'reference' or 'timm:NAME'")
    k: int = Field(default=5, ge=1, le=1000, description="neighbours of the k-NN estimates")
    score: Literal["knn-distance", "density-ratio"] = "knn-distance"
    mode: Literal["softmax", "top"] = "softmax"
    temperature: float = Field(default=1.0, gt=0, le=1e6, description="softmax temperature on standardised scores")
    outlier_quantile: float = Field(default=0.95, gt=0, le=1, description="quantile of real within-class k-NN radii")
    outlier_scale: float = Field(default=1.5, gt=0, le=100, description="multiplier of that quantile")
    chunk: int = Field(default=2048, ge=16, le=1_000_000, description="rows per k-NN block")

    @model_validator(mode="after")
    def _budget(self):
        if self.count is not None and "fraction" in self.model_fields_set:
            raise ValueError("count, fraction: give one budget, not both")
        return self


@register(description="prefer poorly covered regions, reject class outliers (k-NN, chunked)")
class AdaptiveLowDensitySampler(Sampler):
    """Low-coverage-first selection with outlier rejection (see the module docstring)."""

    key = "sampler:adaptive-low-density"

    Options = AdaptiveLowDensityOptions

    def scores(self, real_features, real_labels, synthetic_features, synthetic_labels, num_classes: int, advance=None):
        """``(score, outlier_distance_ratio)`` per synthetic sample (float64 numpy arrays); ratio > 1 = outlier.
        ``advance(n)``: progress of the k-NN pass against the real set, in synthetic images."""
        import numpy as np
        import torch

        from dreamset.toolkit.knn import knn_distances, kth_neighbour_radii

        o = self.options
        chunks = {"query_chunk": o.chunk, "reference_chunk": o.chunk}
        k_all = min(o.k, len(real_features))
        d_real = knn_distances(synthetic_features, real_features, k_all, advance=advance, **chunks)[:, -1]
        if o.score == "knn-distance":
            score = d_real
        else:
            k_syn = min(o.k, len(synthetic_features) - 1)
            d_syn = knn_distances(synthetic_features, synthetic_features, k_syn, exclude_self=True, **chunks)[:, -1]
            score = torch.log(d_real.clamp_min(1e-12)) - torch.log(d_syn.clamp_min(1e-12))
        ratio = torch.zeros(len(synthetic_features), dtype=torch.float64)
        for c in range(num_classes):
            real_c = real_features[real_labels == c]
            members = torch.nonzero(synthetic_labels == c).flatten()
            if len(members) == 0:
                continue
            if len(real_c) < 2:
                ratio[members] = float("inf")  # no real manifold to compare with
                continue
            k_c = min(o.k, len(real_c) - 1)
            radii = kth_neighbour_radii(real_c, k_c, **chunks)
            cutoff = float(torch.quantile(radii, o.outlier_quantile)) * o.outlier_scale
            d_c = knn_distances(synthetic_features[members], real_c, k_c, **chunks)[:, -1]
            ratio[members] = d_c / max(cutoff, 1e-12)
        return score.numpy().astype(np.float64), ratio.numpy()

    def select(self, synthetic, real, services, seed: int) -> Selection:
        import numpy as np

        from dreamset.contracts.progress import progress
        from dreamset.toolkit.features import extract_features

        o = self.options
        real_features = extract_features(services, real, o.extractor).double()
        synthetic_features = extract_features(services, synthetic, o.extractor).double()
        real_labels, synthetic_labels = real.labels, synthetic.labels
        num_classes = len(synthetic.class_names)
        with progress(services, "k-NN scores", len(synthetic_features), unit="images") as advance:
            score, ratio = self.scores(real_features, real_labels, synthetic_features, synthetic_labels, num_classes, advance)
        total = budget(len(synthetic), o.count, o.fraction if o.count is None else None)
        labels = synthetic_labels.numpy()
        rng = np.random.default_rng(seed)
        chosen, outliers_used = [], 0
        for c, want in per_class_budgets(total, labels).items():
            members = np.flatnonzero(labels == c)
            inliers = members[ratio[members] <= 1.0]
            outliers = members[ratio[members] > 1.0]
            picked = self._pick(inliers, score[inliers], min(want, len(inliers)), rng)
            if len(picked) < want:  # too few inliers: the least distant outliers fill the budget
                extra = outliers[np.argsort(ratio[outliers], kind="stable")][: want - len(picked)]
                outliers_used += len(extra)
                picked = np.concatenate([picked, extra])
            chosen.append(picked)
        indices = np.sort(np.concatenate(chosen)).astype(np.int64)
        return Selection(indices=indices, scores=score, info={
            "outliers": int((ratio > 1).sum()), "outliers_used_to_fill_budget": outliers_used,
            "score": o.score, "extractor": o.extractor, "k": o.k,
        })

    def _pick(self, members, scores, count: int, rng):
        import numpy as np

        if count <= 0:
            return members[:0]
        std = scores.std()
        z = (scores - scores.mean()) / (std if std > 0 else 1.0)
        if self.options.mode == "top":
            order = np.lexsort((members, -z))
        else:  # Gumbel-top-k = sampling without replacement with p ∝ exp(z / T)
            keys = z / self.options.temperature + rng.gumbel(size=len(z))
            order = np.argsort(-keys, kind="stable")
        return members[order[:count]]
