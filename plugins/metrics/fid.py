"""``metric:fid`` — Fréchet Inception Distance (Heusel, Ramsauer, Unterthiner, Nessler & Hochreiter,
2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium", arXiv:1706.08500) between the
real split (``real``: ``train`` or ``test``) and the synthetic store, overall and per class.

Images (``float32 N×C×H×W`` in [0,1]) are read ``batch_size`` at a time and turned into features
(``float32 B×D``) by the chosen ``extractor`` (:mod:`dreamset.toolkit.features`: ``reference`` — the run's
real-trained classifier, offline; ``inception-v3`` or ``timm:NAME`` with a local ``weights`` file);
each chunk goes straight into float64 :class:`~dreamset.plugins.metrics.statistics.StreamingMoments`, so a 1M-image
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

import re
from typing import Literal

from pydantic import Field, model_validator

from dreamset import Options, register
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.headline import Headline
from dreamset.contracts.interfaces import ImageSource, Metric
from dreamset.contracts.lazy import lazy_module
from dreamset.orchestration.recipe import ComponentRef

torch = lazy_module("torch")

class FeatureOptions(Options):
    """Options shared by the feature-space metrics (FID, KID, PRDC, memorization, Vendi)."""

    extractor: str | ComponentRef = Field(
        default="reference",
        description="feature extractor: a registry key (extractor:reference, extractor:inception-fid, extractor:timm, ...) "
                    "or {key, options}; the pre-registry strings 'reference', 'inception-v3', 'timm:NAME' still work")
    weights: str | None = Field(default=None, min_length=1,
                                description="legacy: local weights file of 'inception-v3' / 'timm:NAME' (never downloaded)")
    real: Literal["train", "test"] = Field(default="train", description="which real split to compare with")
    batch_size: int = Field(default=4096, ge=1, le=1_000_000,
                            description="images per feature-extraction chunk (bounds RAM to batch_size×D features)")
    real_features: str | None = Field(default=None, min_length=1,
                                      description="precomputed real features (.npy matrix, or .npz with features[, labels]) instead of the real split")
    synthetic_features: str | None = Field(default=None, min_length=1,
                                           description="precomputed synthetic features (.npy / .npz) instead of the synthetic store")

    @model_validator(mode="after")
    def _extractor_is_known(self):
        import dreamset.registry as registry_module
        from dreamset.toolkit.features import extractor_ref

        if self.extractor == "reference" and self.weights is not None:
            raise ValueError("weights: the 'reference' extractor takes no weights file")
        if isinstance(self.extractor, str) and not re.match(EXTRACTOR_PATTERN, self.extractor):
            raise ValueError(f"extractor: {self.extractor!r} is not a registry key, 'reference', 'inception-v3' or 'timm:NAME'")
        try:
            ref = extractor_ref(self.extractor, self.weights)
            registry_module.get_registry().validate_options(ref.key, ref.options, kind="extractor", field_path="extractor.options")
        except BadInputError as exc:
            raise ValueError(str(exc)) from None
        return self

    def extractor_name(self) -> str:
        """What reports show as ``extractor``: the string as given, or the key of ``{key, options}``."""
        return self.extractor if isinstance(self.extractor, str) else self.extractor.key


#: a registry key, or a pre-registry string (``reference``, ``inception-v3``, ``timm:NAME``)
EXTRACTOR_PATTERN = r"^(reference|inception-v3|timm:[A-Za-z0-9_.\-]+|(extractor:)?[a-z0-9][a-z0-9._+-]*)$"


def feature_pair(inputs, options: FeatureOptions, *, need_synthetic: bool = True):
    """``(real, synthetic, extractor)`` of :class:`~dreamset.contracts.inputs.DistributionInputs`: the two sides
    as :class:`~dreamset.toolkit.features.FeatureSet` (the real split / synthetic set embedded by
    ``options.extractor`` on ``inputs.services``, or the precomputed
    ``real_features`` / ``synthetic_features`` files) and the extractor (``None`` when both sides are
    files). A missing side raises a one-line error."""
    from dreamset.toolkit.features import FeatureSet, create_extractor, embedder, extractor_ref

    sides, names = [], None
    for field, wanted in (("real", True), ("synthetic", need_synthetic)):
        path = getattr(options, f"{field}_features")
        if path is not None:
            sides.append(("file", path))
            continue
        source = source_for(inputs, field, options.real) if wanted else None
        sides.append(("source", source))
        if source is not None and names is None:
            names = list(source.class_names)
    extractor = None
    if any(kind == "source" and value is not None for kind, value in sides):
        extractor = create_extractor(inputs.services, extractor_ref(options.extractor, options.weights))
    embed = embedder(extractor, inputs.services.device, min(256, options.batch_size)) if extractor else None
    out = []
    for (kind, value), field in zip(sides, ("real", "synthetic")):
        if kind == "file":
            out.append(FeatureSet.from_file(value, f"{field}_features", class_names=names))
        else:
            out.append(FeatureSet(source=value, embed=embed, name=field, context=inputs.services) if value is not None else None)
    return out[0], out[1], extractor


def source_for(inputs, side: str, real: str):
    """The real ``real`` split (``side == "real"``) or the synthetic set of ``inputs``
    (:class:`~dreamset.contracts.inputs.DistributionInputs`); one-line error if missing."""
    if side == "real":
        source = inputs.real.split(real)
        if source is None or len(source) == 0:
            raise BadInputError(f"real: the run has no real {real} split to compare with (or give real_features)")
        return source
    if inputs.synthetic is None or len(inputs.synthetic) == 0:
        raise BadInputError("synthetic: the run has no synthetic images to compare with (or give synthetic_features)")
    return inputs.synthetic


def source_pair(inputs, real: str) -> tuple[ImageSource, ImageSource]:
    """``(real split, synthetic set)`` of ``inputs``; a missing one raises a one-line error."""
    return source_for(inputs, "real", real), source_for(inputs, "synthetic", real)


def extractor_report(options: FeatureOptions, extractor) -> dict:
    """The report fields naming the feature space: ``extractor`` and its ``preprocessing``."""
    return {"extractor": options.extractor_name(),
            "preprocessing": extractor.preprocessing if extractor is not None else "precomputed features"}


class FIDOptions(FeatureOptions):
    per_class: bool = Field(default=True, description="also report a per-class FID table")
    per_class_memory_mb: float = Field(default=4096, gt=0,
                                     description="skip the per-class table when its accumulators (2·K·D²·8 bytes) exceed this")
    cache: bool = Field(default=True, description="reuse cached real statistics (keyed by dataset, split, extractor, preprocessing)")


@register(description="Frechet distance of feature statistics, streamed (Heusel et al. 2017)")
class FrechetInceptionDistance(Metric):
    """FID between real and synthetic features, streamed through float64 moments."""

    key = "metric:fid"

    #: a distribution metric of the synthetic set: run once per named source (dreamset.orchestration.sources)
    scope = "source"

    headline = (Headline("fid", "FID", better="lower", group="fidelity", format="{:.2f}",
                         explain="Fréchet distance of features; lower = closer to real"),)

    Options = FIDOptions

    def _moments(self, side, classes: list[int], per_class: bool, warnings: list[str]):
        """``(overall moments, {class: moments} or None)`` of one :class:`FeatureSet`, one pass."""
        from dreamset.plugins.metrics.statistics import StreamingMoments

        o = self.options
        labels = side.labels
        overall = StreamingMoments()
        by_class = {c: StreamingMoments() for c in classes} if per_class else None
        start = 0
        for features in side.chunks(range(len(side)), o.batch_size):
            if by_class is not None and overall.count == 0:
                need_mb = 2 * len(classes) * features.shape[1] ** 2 * 8 / 2**20
                if need_mb > o.per_class_memory_mb:
                    warnings.append(f"per_class: skipped, {len(classes)} classes x {features.shape[1]}^2 float64 "
                                    f"accumulators need {need_mb:.3g} MB > per_class_memory_mb={o.per_class_memory_mb}")
                    by_class = None
            overall.update(features)
            if by_class is not None:
                chunk_labels = labels[start:start + features.shape[0]]
                for c in chunk_labels.unique().tolist():
                    by_class.setdefault(c, StreamingMoments()).update(features[chunk_labels == c])
            start += features.shape[0]
        return overall, by_class

    def _real_moments(self, real, extractor, classes, per_class, warnings):
        """The real side's moments, from the statistics cache when the extractor allows it."""
        from dreamset.plugins.metrics.statistics import StreamingMoments
        from dreamset.toolkit.features import StatisticsCache, source_fingerprint

        key = None
        if self.options.cache and real.source is not None and extractor is not None:
            key = StatisticsCache.key(source_fingerprint(real.source), self.options.real, extractor, {"per_class": per_class})
        cache = StatisticsCache()
        stored = cache.load(key)
        if stored is not None:
            overall = StreamingMoments.from_state(stored["count"], stored["mean"], stored["scatter"])
            by_class = None
            if per_class and "class_count" in stored:
                by_class = {int(c): StreamingMoments.from_state(n, m, sc) for c, n, m, sc in zip(
                    stored["classes"], stored["class_count"], stored["class_mean"], stored["class_scatter"]) if n > 0}
            return overall, by_class, True
        overall, by_class = self._moments(real, classes, per_class, warnings)
        arrays = dict(zip(("count", "mean", "scatter"), overall.state()))
        if by_class:
            kept = sorted(c for c, m in by_class.items() if m.count > 0)
            states = [by_class[c].state() for c in kept]
            arrays.update(classes=kept, class_count=[st[0] for st in states],
                          class_mean=[st[1] for st in states], class_scatter=[st[2] for st in states])
        if key is not None and overall.count:
            cache.save(key, arrays)
        return overall, by_class, False

    def compute(self, inputs) -> dict:
        from dreamset.plugins.metrics.statistics import frechet_distance, singular_covariance_message

        o = self.options
        real_side, synthetic_side, extractor = feature_pair(inputs, o)
        per_class = o.per_class and real_side.labelled and synthetic_side.labelled
        classes = list(range(len(real_side.class_names)))
        warnings: list[str] = []
        if o.per_class and not per_class:
            warnings.append("per_class: skipped, a feature file without labels")
        real, real_classes, cached = self._real_moments(real_side, extractor, classes, per_class, warnings)
        synthetic, synthetic_classes = self._moments(synthetic_side, classes, per_class, warnings)
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
            **extractor_report(o, extractor),
            "real": o.real,
            "n_real": real.count,
            "n_synthetic": synthetic.count,
            "feature_dim": real.dim,
            "real_statistics": "cache" if cached else "computed",
        }
        if real_classes is not None and synthetic_classes is not None:
            rows, singular = [], 0
            for c, name in enumerate(real_side.class_names):
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
