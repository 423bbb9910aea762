"""``metric:fid`` — Fréchet Inception Distance (Heusel, Ramsauer, Unterthiner, Nessler & Hochreiter,
2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium", arXiv:1706.08500) between the
real split (``real``: ``train`` or ``test``) and the synthetic store, overall and per class.

Images (``float32 N×C×H×W`` in [0,1]) are read ``batch_size`` at a time and turned into features
(``float32 B×D``) by the chosen ``extractor`` (:mod:`dreamset.features`: ``reference`` — the run's
real-trained classifier, offline; ``inception-v3`` or ``timm:NAME`` with a local ``weights`` file);
each chunk goes straight into float64 :class:`~dreamset.statistics.StreamingMoments`, so a 1M-image
store never needs its feature matrix in RAM (memory ``O(D²)`` per accumulator; the per-class table
keeps one pair per class, ``2·K·D²·8`` bytes, and is skipped with a warning above
``per_class_memory_mb``). FIDs from different extractors are not comparable; ``extractor`` is reported.

Also home of the helpers the other feature metrics (``metric:kid``, ``metric:prdc``) share: the
extractor options (:class:`FeatureOptions`), the real/synthetic pair (:func:`source_pair`) and
chunked extraction (:func:`iter_feature_chunks`, :func:`features_at`).

Result: ``fid`` (float ≥ 0), ``extractor``, ``real``, ``n_real``, ``n_synthetic``, ``feature_dim``,
``warnings`` (list of one-line strings, e.g. ``n ≤ D``: singular covariance) and
``tables["per-class FID ..."]`` (class, n_real, n_synthetic, fid — ``None`` where a class has < 2
samples on either side). Per-class FID is biased upward for small ``n``: prefer ``metric:kid``.
"""
from __future__ import annotations

from typing import Iterator, Literal

from pydantic import Field, model_validator

from dreamset import Options, hookimpl
from dreamset.errors import BadInputError
from dreamset.interfaces import ImageSource, Metric
from dreamset.lazy import lazy_module

torch = lazy_module("torch")

#: ``reference``, ``inception-v3`` or ``timm:NAME`` (see :mod:`dreamset.features`)
EXTRACTOR_PATTERN = r"^(reference|inception-v3|timm:[A-Za-z0-9_.\-]+)$"


class FeatureOptions(Options):
    """Options shared by the feature-space metrics (FID, KID, PRDC)."""

    extractor: str = Field(default="reference", pattern=EXTRACTOR_PATTERN,
                           description="feature extractor: 'reference' (offline), 'inception-v3' or 'timm:NAME'")
    weights: str | None = Field(default=None, min_length=1,
                                description="local weights file for 'inception-v3' / 'timm:NAME' (never downloaded)")
    real: Literal["train", "test"] = Field(default="train", description="which real split to compare with")
    batch_size: int = Field(default=4096, ge=1, le=1_000_000,
                            description="images per feature-extraction chunk (bounds RAM to batch_size×D features)")

    @model_validator(mode="after")
    def _weights_for_pretrained_extractors(self):
        if self.extractor != "reference" and self.weights is None:
            raise ValueError(f"weights: extractor {self.extractor!r} needs a local weights file "
                             "(randomly initialised features are meaningless)")
        if self.extractor == "reference" and self.weights is not None:
            raise ValueError("weights: the 'reference' extractor takes no weights file")
        return self


def source_pair(context, real: str) -> tuple[ImageSource, ImageSource]:
    """``(real split, synthetic store)`` of ``context``; a missing one raises a one-line error."""
    real_source = context.real_train if real == "train" else context.real_test
    if real_source is None or len(real_source) == 0:
        raise BadInputError(f"real: the run has no real {real} split to compare with")
    if context.synthetic is None or len(context.synthetic) == 0:
        raise BadInputError("synthetic: the run has no synthetic images to compare with")
    return real_source, context.synthetic


def iter_feature_chunks(context, source: ImageSource, indices, options: FeatureOptions) -> "Iterator[torch.Tensor]":
    """Features ``float32 B×D`` (CPU) of ``source`` at ``indices`` (any int sequence), ``batch_size``
    rows at a time, in order."""
    from dreamset.data import as_index_tensor
    from dreamset.features import feature_extractor

    indices = as_index_tensor(indices)
    features = feature_extractor(context, options.extractor, options.weights)  # built once, not per chunk
    for start in range(0, indices.shape[0], options.batch_size):
        chunk = source.subset(indices[start:start + options.batch_size])
        yield features(chunk, batch_size=min(256, options.batch_size))


def features_at(context, source: ImageSource, indices, options: FeatureOptions) -> "torch.Tensor":
    """Features ``float32 len(indices)×D`` of ``source`` at ``indices`` (for bounded subsamples)."""
    chunks = list(iter_feature_chunks(context, source, indices, options))
    return torch.cat(chunks) if chunks else torch.zeros(0, 0)


class FIDOptions(FeatureOptions):
    per_class: bool = Field(default=True, description="also report a per-class FID table")
    per_class_memory_mb: float = Field(default=4096, gt=0,
                                     description="skip the per-class table when its accumulators (2·K·D²·8 bytes) exceed this")


class FrechetInceptionDistance(Metric):
    """FID between real and synthetic features, streamed through float64 moments."""

    key = "metric:fid"

    Options = FIDOptions

    def _moments(self, context, source: ImageSource, warnings: list[str]):
        """``(overall moments, {class: moments} or None)`` of ``source``, one extraction pass."""
        from dreamset.statistics import StreamingMoments

        o = self.options
        labels = source.labels
        classes = sorted(set(labels.tolist()))
        overall, per_class = StreamingMoments(), ({c: StreamingMoments() for c in classes} if o.per_class else None)
        start = 0
        for features in iter_feature_chunks(context, source, range(len(source)), o):
            if per_class is not None and overall.count == 0:
                need_mb = 2 * len(classes) * features.shape[1] ** 2 * 8 / 2**20
                if need_mb > o.per_class_memory_mb:
                    warnings.append(f"per_class: skipped, {len(classes)} classes x {features.shape[1]}^2 float64 "
                                    f"accumulators need {need_mb:.3g} MB > per_class_memory_mb={o.per_class_memory_mb}")
                    per_class = None
            overall.update(features)
            if per_class is not None:
                chunk_labels = labels[start:start + features.shape[0]]
                for c in chunk_labels.unique().tolist():
                    per_class[c].update(features[chunk_labels == c])
            start += features.shape[0]
        return overall, per_class

    def compute(self, context) -> dict:
        from dreamset.statistics import frechet_distance, singular_covariance_message

        o = self.options
        real_source, synthetic_source = source_pair(context, o.real)
        warnings: list[str] = []
        real, real_classes = self._moments(context, real_source, warnings)
        synthetic, synthetic_classes = self._moments(context, synthetic_source, warnings)
        if real.dim != synthetic.dim:
            raise BadInputError(f"extractor: real and synthetic features differ in size ({real.dim} vs {synthetic.dim})")
        if real.count < 2 or synthetic.count < 2:
            raise BadInputError(f"metric:fid: needs at least 2 real and 2 synthetic images, got {real.count} and {synthetic.count}")
        for name, moments in ((f"real {o.real}", real), ("synthetic", synthetic)):
            message = singular_covariance_message(moments.count, moments.dim, name)
            if message:
                warnings.append(message)
        result = {
            "fid": frechet_distance(real.mean, real.covariance(warn=False), synthetic.mean, synthetic.covariance(warn=False)),
            "extractor": o.extractor,
            "real": o.real,
            "n_real": real.count,
            "n_synthetic": synthetic.count,
            "feature_dim": real.dim,
        }
        if real_classes is not None and synthetic_classes is not None:
            rows, singular = [], 0
            for c, name in enumerate(real_source.class_names):
                r, s = real_classes.get(c), synthetic_classes.get(c)
                n_r, n_s = (r.count if r else 0), (s.count if s else 0)
                value = None
                if n_r >= 2 and n_s >= 2:
                    value = frechet_distance(r.mean, r.covariance(warn=False), s.mean, s.covariance(warn=False))
                    singular += min(n_r, n_s) <= real.dim
                rows.append([name, n_r, n_s, value])
            if singular:
                warnings.append(f"per-class FID: {singular} of {len(rows)} classes have n <= {real.dim} (feature dim): "
                                "singular covariances, prefer KID")
            result["tables"] = {"per-class FID (biased upward for small n: prefer KID)": {
                "header": ["class", "n_real", "n_synthetic", "fid"], "rows": rows}}
        result["warnings"] = warnings
        return result


@hookimpl
def register_metrics(register):
    register(FrechetInceptionDistance, description="Frechet distance of feature statistics, streamed (Heusel et al. 2017)")
