"""``metric:memorization`` — how many generated images are (near) copies of real training images.

A generated image is flagged as memorised when its nearest real *training* image is closer than a
threshold calibrated on genuinely unseen real images — the test of dgm-eval's memorisation metrics
(Stein et al. 2023, "Exposing flaws of generative model evaluation metrics and their unfair treatment
of diffusion models", arXiv:2306.04675): authenticity (Alaa et al. 2022, arXiv:2102.08921) and the
C_T data-copying statistic (Meehan, Chaudhuri & Dasgupta 2020, "A Non-Parametric Test to Detect
Data-Copying in Generative Models", arXiv:2004.05675), both of which compare generated-to-training
distances with held-out-to-training distances.

Calibration: ``d_heldout`` = distance from each held-out real image (the test split) to its nearest
training image; threshold ``τ = scale · quantile(d_heldout, quantile)`` (defaults 0.5 and 0.01: twice
as close to a training image as the closest 1% of unseen real images get). Generated image ``g`` is
flagged when ``d(g, nearest training image) < τ``. An exact copy has distance 0; a fresh sample of the
real distribution is flagged with probability well under ``quantile``. ``τ = 0`` (held-out images
duplicated in the training set) flags nothing and warns.

Space: the ``extractor``'s features (default the run's reference classifier; ``pixels: true`` uses
the flattened ``[0,1]`` pixels instead, the space of exact/near pixel copies). Distances are
Euclidean, chunked k-NN (:mod:`dreamset.toolkit.knn`, memory ``O(chunk²)`` plus the ``N×D`` training
features). At most ``max_synthetic`` generated images are checked (seeded subsample).

Result: ``memorized_fraction`` (in [0,1]), ``n_flagged``, ``n_checked``, ``threshold``,
``calibration`` (quantile, scale, n_heldout, heldout distance quantiles), ``nearest_distance``
(quantiles over generated images), ``closest`` (the ``pairs`` closest pairs: synthetic row, training
row, distance, flagged), ``space``, ``warnings``, ``tables["per-class memorization"]`` and the image
grid ``run_dir/memorization_pairs.png`` (top row: generated; bottom row: its nearest training image).
Example: ``{key: memorization, options: {pixels: true}}``.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from dreamset import register
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.headline import Headline
from dreamset.contracts.interfaces import Metric
from dreamset.contracts.lazy import lazy_module
from dreamset.plugins.metrics.fid import FeatureOptions, extractor_report, feature_pair, source_for

torch = lazy_module("torch")

QUANTILES = (0.0, 0.01, 0.1, 0.5, 0.9)


class MemorizationOptions(FeatureOptions):
    real: Literal["train"] = Field(default="train", description="the training split (what could be memorised)")
    pixels: bool = Field(default=False, description="compare flattened pixels instead of extractor features")
    quantile: float = Field(default=0.01, ge=0, le=1, description="quantile of held-out nearest-training distances")
    scale: float = Field(default=0.5, gt=0, le=10, description="threshold = scale x that quantile")
    heldout_features: str | None = Field(default=None, min_length=1,
                                         description="precomputed held-out real features (.npy/.npz) for the calibration")
    max_synthetic: int = Field(default=10_000, ge=1, le=10_000_000, description="generated images checked (seeded subsample)")
    pairs: int = Field(default=16, ge=0, le=256, description="closest pairs reported and drawn")
    seed: int = Field(default=0, ge=0, description="seed of the subsample")
    chunk_size: int = Field(default=1024, ge=1, le=1_000_000, description="k-NN query rows per block (memory bound)")


@register(description="fraction of generated images nearer a training image than a held-out-calibrated threshold (dgm-eval)")
class Memorization(Metric):
    """Fraction of generated images closer to a training image than a held-out-calibrated threshold."""

    key = "metric:memorization"
    scope = "synthetic"  # every synthetic source as one set

    headline = (Headline("memorized_fraction", "memorized fraction", better="lower", group="fidelity", scale=100,
                         unit="%", format="{:.2f}", explain="synthetic images closer to a training image than held-out "
                                                            "real images are (copies)"),)

    Options = MemorizationOptions

    def _sides(self, inputs):
        """``(train, synthetic, heldout, extractor)`` FeatureSets (pixels or features)."""
        from dreamset.toolkit.features import FeatureSet, embedder

        o = self.options
        if o.pixels:
            def flatten(source):
                return source.get(range(len(source)))[0].flatten(1)

            sides = [FeatureSet(source=source_for(inputs, side, "train"), embed=flatten, name=side) for side in ("real", "synthetic")]
            heldout = FeatureSet(source=source_for(inputs, "real", "test"), embed=flatten, name="heldout")
            return sides[0], sides[1], heldout, None
        train, synthetic, extractor = feature_pair(inputs, o)
        if o.heldout_features is not None:
            heldout = FeatureSet.from_file(o.heldout_features, "heldout_features")
        else:
            if extractor is None:
                raise BadInputError("heldout_features: with real_features and synthetic_features files, give held-out features too")
            heldout = FeatureSet(source=source_for(inputs, "real", "test"),
                                 embed=embedder(extractor, inputs.services.device, min(256, o.batch_size)), name="heldout",
                                 context=inputs.services)
        return train, synthetic, heldout, extractor

    def compute(self, inputs) -> dict:
        from dreamset.plugins.metrics.statistics import as_feature_matrix
        from dreamset.contracts.progress import progress
        from dreamset.toolkit.knn import knn_distances

        o = self.options
        train, synthetic, heldout, extractor = self._sides(inputs)
        if len(train) < 1 or len(heldout) < 1:
            raise BadInputError("metric:memorization: needs real training and held-out (test) images")
        rng = np.random.default_rng(o.seed)
        rows = np.arange(len(synthetic))
        if len(rows) > o.max_synthetic:
            rows = np.sort(rng.choice(rows, size=o.max_synthetic, replace=False))
        train_x = as_feature_matrix(train.at(range(len(train)), o.batch_size), "real features")
        synthetic_x = as_feature_matrix(synthetic.at(rows, o.batch_size), "synthetic features")
        heldout_x = as_feature_matrix(heldout.at(range(len(heldout)), o.batch_size), "held-out features")
        chunks = {"query_chunk": o.chunk_size, "reference_chunk": 8 * o.chunk_size}
        with progress(inputs.services, "memorization k-NN", len(heldout_x) + len(synthetic_x), unit="images") as advance:
            d_heldout = knn_distances(heldout_x, train_x, 1, advance=advance, **chunks)[:, 0].numpy()
            d, nearest = knn_distances(synthetic_x, train_x, 1, return_indices=True, advance=advance, **chunks)
        d, nearest = d[:, 0].numpy(), nearest[:, 0].numpy()
        threshold = float(o.scale * np.quantile(d_heldout, o.quantile))
        flagged = d < threshold
        warnings = []
        if threshold == 0:
            warnings.append("threshold: 0 (held-out images have exact duplicates in the training set); nothing can be flagged")
        order = np.argsort(d, kind="stable")[:o.pairs]
        closest = [{"synthetic_row": int(rows[i]), "train_row": int(nearest[i]), "distance": float(d[i]),
                    "flagged": bool(flagged[i])} for i in order]
        labels = synthetic.labels.numpy()[rows]
        table_rows = []
        for c, name in enumerate(synthetic.class_names):
            members = labels == c
            table_rows.append([name, int(members.sum()), int(flagged[members].sum()),
                               float(flagged[members].mean()) if members.any() else None])
        result = {
            "memorized_fraction": float(flagged.mean()),
            "n_flagged": int(flagged.sum()),
            "n_checked": int(len(rows)),
            "threshold": threshold,
            "calibration": {"quantile": o.quantile, "scale": o.scale, "n_heldout": int(len(d_heldout)),
                            "heldout_distance_quantiles": {str(q): float(np.quantile(d_heldout, q)) for q in QUANTILES}},
            "nearest_distance": {str(q): float(np.quantile(d, q)) for q in QUANTILES},
            "closest": closest,
            "space": "pixels" if o.pixels else "features",
            **({"extractor": "pixels", "preprocessing": "flattened [0,1] pixels"} if o.pixels else extractor_report(o, extractor)),
            "warnings": warnings,
            "tables": {"per-class memorization": {"header": ["class", "n_checked", "n_flagged", "fraction"], "rows": table_rows}},
        }
        if closest and train.source is not None and synthetic.source is not None and inputs.services.run_dir:
            self._grid(inputs.services.run_dir / "memorization_pairs.png", synthetic.source, train.source, closest)
            result["figure"] = "memorization_pairs.png"
        return result

    @staticmethod
    def _grid(path, synthetic, train, closest) -> None:
        from dreamset.contracts.data import TensorImageSet
        from dreamset.store.imagefolder import save_sample_grid

        generated, _ = synthetic.get([p["synthetic_row"] for p in closest])
        nearest, _ = train.get([p["train_row"] for p in closest])
        if generated.shape[1:] != nearest.shape[1:]:
            return
        k = len(closest)
        pairs = TensorImageSet(torch.cat([generated, nearest]), torch.tensor([0] * k + [1] * k),
                               ["generated", "nearest training image"], name="memorization pairs")
        path.parent.mkdir(parents=True, exist_ok=True)
        save_sample_grid(pairs, path, per_class=k)
