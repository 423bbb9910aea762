"""``metric:vendi`` — the Vendi Score (Friedman & Dieng 2023, "The Vendi Score: A Diversity
Evaluation Metric for Machine Learning", TMLR, arXiv:2210.02410) of the synthetic store and, for
scale, of the real split — overall and per class.

For ``n`` samples with a similarity kernel ``k`` (``k(x, x) = 1``) and ``K_ij = k(x_i, x_j)``, the
Vendi Score is the exponential of the Shannon entropy of the eigenvalues ``λ_i`` of ``K / n``:
``VS = exp(−Σ λ_i log λ_i)`` (order ``q = 1``), or ``(Σ λ_i^q)^{1/(1−q)}`` for another order
``q`` (Pasarkar & Dieng 2023, arXiv:2310.12952; ``q = inf``: ``1 / max λ``). It is the "effective
number of distinct samples": 1 for ``n`` copies of one image, ``n`` for ``n`` orthogonal ones.

Kernel: cosine similarity of the extractor's features (the linear kernel on L2-normalised features,
as dgm-eval does; Stein et al. 2023, arXiv:2306.04675). Then ``K / n = X Xᵀ / n`` and ``Xᵀ X / n``
(``D×D``) share their non-zero eigenvalues, so the score is computed from the ``D×D`` second moment
accumulated chunk by chunk in float64 (:class:`~dreamset.plugins.metrics.statistics.StreamingMoments`, ``Σ xxᵀ =
scatter + n·μμᵀ``): memory ``O(D²)``, never ``n×n``, time ``O(n·D² + D³)``.

Sets are subsampled (seeded) to at most ``max_samples`` rows, and real and synthetic to the same
``n`` (the Vendi Score grows with ``n``, so only equal-``n`` values compare). Features: ``float32 N×D``
from ``extractor`` (or ``real_features`` / ``synthetic_features`` files); NaN/inf are refused.

Result: ``vendi_synthetic``, ``vendi_real`` (floats in ``[1, min(n, D)]``), ``q``, ``n``,
``extractor``, ``preprocessing``, ``feature_dim``, ``warnings`` and
``tables["per-class Vendi (n = … per class)"]`` (class, n, vendi_real, vendi_synthetic).
Example: ``{key: vendi, options: {q: 1}}``.
"""
from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from dreamset import register
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.headline import Headline
from dreamset.contracts.interfaces import Metric
from dreamset.contracts.lazy import lazy_module
from dreamset.plugins.metrics.fid import FeatureOptions, extractor_report, feature_pair

torch = lazy_module("torch")


def vendi_from_second_moment(second_moment, n: int, q: float = 1.0) -> float:
    """Vendi Score of order ``q`` from ``Σ xxᵀ`` (``D×D``) of ``n`` unit-norm rows."""
    eigenvalues = torch.linalg.eigvalsh(torch.as_tensor(second_moment, dtype=torch.float64) / n).clamp(min=0)
    p = eigenvalues[eigenvalues > 0]
    p = p / p.sum()  # = 1 up to rounding (trace of K/n is 1)
    if q == 1:
        return float(torch.exp(-(p * p.log()).sum()))
    if math.isinf(q):
        return float(1 / p.max())
    return float((p ** q).sum() ** (1 / (1 - q)))


def unit_rows(features) -> "torch.Tensor":
    """``float64`` rows scaled to unit L2 norm (a zero row stays zero); NaN/inf refused."""
    from dreamset.plugins.metrics.statistics import as_feature_matrix

    x = as_feature_matrix(features, "features")
    return x / x.norm(dim=1, keepdim=True).clamp(min=1e-300)


def vendi_score(features, q: float = 1.0, chunk: int = 4096) -> float:
    """Vendi Score (cosine kernel) of ``features`` (``N×D``, torch or numpy), chunked."""
    x = unit_rows(features)
    if x.shape[0] < 1:
        raise BadInputError("features: the Vendi Score needs at least one sample")
    gram = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64)
    for start in range(0, x.shape[0], chunk):
        block = x[start:start + chunk]
        gram += block.T @ block
    return vendi_from_second_moment(gram, x.shape[0], q)


class VendiOptions(FeatureOptions):
    q: float = Field(default=1.0, ge=0, description="order of the score (1: Shannon entropy; inf: 1/max eigenvalue)")
    max_samples: int = Field(default=10_000, ge=1, le=10_000_000, description="seeded subsample per side (equal n)")
    seed: int = Field(default=0, ge=0, description="seed of the subsample")
    per_class: bool = Field(default=True, description="also report a per-class table (equal n per class)")


@register(description="Vendi Score: exp entropy of the similarity-kernel eigenvalues (Friedman & Dieng 2023)")
class VendiScore(Metric):
    """Effective number of distinct samples (cosine kernel), synthetic and real, overall and per class."""

    key = "metric:vendi"
    scope = "synthetic"  # every synthetic source as one set

    headline = (
        Headline("vendi_synthetic", "Vendi score (synthetic)", better="higher", group="diversity", format="{:.2f}",
                 explain="effective number of distinct samples in the synthetic set"),
        Headline("vendi_real", "Vendi score (real)", group="diversity", format="{:.2f}",
                 explain="the same for the real set (the reference)"),
    )

    Options = VendiOptions

    def compute(self, inputs) -> dict:
        o = self.options
        real, synthetic, extractor = feature_pair(inputs, o)
        rng = np.random.default_rng(o.seed)
        n = min(len(real), len(synthetic), o.max_samples)
        if n < 1:
            raise BadInputError("metric:vendi: needs at least one real and one synthetic sample")

        def draw(pool: np.ndarray, k: int) -> np.ndarray:
            return np.sort(rng.choice(pool, size=k, replace=False)) if k < len(pool) else pool

        groups = [(None, draw(np.arange(len(real)), n), draw(np.arange(len(synthetic)), n))]
        per_class = o.per_class and real.labelled and synthetic.labelled
        per_class_n = None
        if per_class:
            members = [(np.flatnonzero(real.labels.numpy() == c), np.flatnonzero(synthetic.labels.numpy() == c))
                       for c in range(len(real.class_names))]
            usable = [min(len(r), len(s)) for r, s in members if min(len(r), len(s)) > 0]
            per_class_n = min(usable + [o.max_samples]) if usable else None
            for name, (r, s) in zip(real.class_names, members):
                if per_class_n is not None and min(len(r), len(s)) >= per_class_n:
                    groups.append((name, draw(r, per_class_n), draw(s, per_class_n)))
                else:
                    groups.append((name, r[:0], s[:0]))

        def score(side, rows) -> float | None:
            if len(rows) == 0:
                return None
            gram = None
            for block in side.chunks(rows, o.batch_size):
                x = unit_rows(block)
                gram = x.T @ x if gram is None else gram + x.T @ x
            return vendi_from_second_moment(gram, len(rows), o.q)

        result = {"vendi_synthetic": score(synthetic, groups[0][2]), "vendi_real": score(real, groups[0][1]),
                  "q": o.q, "n": int(n), **extractor_report(o, extractor), "real": o.real, "warnings": []}
        first = next(real.chunks(groups[0][1][:1], 1))
        result["feature_dim"] = int(first.shape[1])
        if n < o.max_samples and n < max(len(real), len(synthetic)):
            result["warnings"].append(f"n: both sides use n = {n} (the smaller set); the Vendi Score grows with n")
        if per_class:
            rows = [[name, len(r), score(real, r), score(synthetic, s)] for name, r, s in groups[1:]]
            result["tables"] = {f"per-class Vendi (n = {per_class_n} per class)": {
                "header": ["class", "n", "vendi_real", "vendi_synthetic"], "rows": rows}}
        return result
