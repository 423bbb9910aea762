"""``metric:subgroups`` — where in feature space each arm's kept synthetic images lie, and how its
classifier does there: metrics for subgroups of the data, not only for the whole distribution.

Sehwag et al. (ICLR 2022, arXiv:2104.09425) and their blog tie the benefit of synthetic data to how the
proxy distribution covers the real one, and ask for samples from regions the real data covers poorly;
a sampler that claims to find such samples should show *where* its kept images lie. This metric bins
the real training data by its own k-NN density and reports, per arm:

* Density: features ``f`` (``extractor``, default the run's real-trained reference classifier; any
  ``extractor:*``); the k-NN radius of a real training image is the distance to its ``k``-th nearest
  other real training image (:func:`dreamset.toolkit.knn.kth_neighbour_radii`) — large = sparse. The
  ``bins`` quantiles of those radii split feature space into subgroups, bin 0 the densest, the last
  the sparsest (each holds ``1/bins`` of the real training data).
* Any other image (a kept synthetic one, a real test one) falls into the bin of its own k-NN radius to
  the real training set (the ``k``-th nearest real training image).
* Per arm that trained on synthetic data (``ArmInputs.synthetic``, the last seed's kept images): the
  share of its kept images in each bin — a uniform subset of a faithful generator puts about
  ``1/bins`` in each; a low-density sampler shifts weight to the sparse bins.
* Per arm: clean accuracy, and robust accuracy under ``attacker`` (optional; default none) of its
  classifier (last seed) on the real test images of each bin (the run's evaluation subset when there
  is one), with each bin's image count.

Inputs: images ``float32 N×C×H×W`` in [0,1]; features ``float32 N×D``. Memory ``O(chunk² + N·D)``
(chunked k-NN). Result: ``edges`` (``bins − 1`` radius quantiles), ``k``, ``bins``, ``test_counts`` per
bin, ``arms`` (arm -> ``kept_share`` list (synthetic arms), ``clean_accuracy`` and ``robust_accuracy``
lists per bin, ``sparse_share``: the share of kept images in the sparsest bin), ``tables``.

Example::

    evaluate: {metrics: [{key: subgroups, options: {bins: 4, attacker: {key: pgd, options: {eps: 0.15, steps: 10}}}}]}
"""
from __future__ import annotations

from typing import Any

from pydantic import Field

from dreamset import register
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.headline import Headline
from dreamset.contracts.interfaces import Metric
from dreamset.orchestration.recipe import ComponentRef
from dreamset.plugins.metrics.fid import FeatureOptions


class SubgroupOptions(FeatureOptions):
    k: int = Field(default=5, ge=1, le=1000, description="neighbours of the k-NN radius")
    bins: int = Field(default=4, ge=2, le=100, description="density quantile bins of the real training data")
    attacker: ComponentRef | None = Field(default=None, description="attacker (key or {key, options}) of the per-bin robust "
                                                                    "accuracy; null = clean accuracy only")
    seed: int = Field(default=0, ge=0, description="seed of the attack's random starts")


@register(description="k-NN density subgroups: where each arm's kept images lie, and per-bin accuracy")
class SubgroupMetric(Metric):
    """Share of each arm's kept synthetic images per real-density bin, and per-bin test accuracy."""

    key = "metric:subgroups"
    scope = "arms"

    headline = (Headline("sparse_share", "kept images in the sparsest real-density bin", group="diversity", scale=100,
                         unit="%", format="{:.1f}", per_arm=True,
                         explain="share of the arm's kept synthetic images where real data is sparsest (1/bins for a "
                                 "uniform draw of a faithful generator)"),)

    Options = SubgroupOptions
    conformance_options = {"bins": 2, "k": 2}

    def compute(self, inputs) -> dict[str, Any]:
        import numpy as np
        import torch

        from dreamset.orchestration.evaluation import correct
        from dreamset.orchestration.seeding import forked_rng
        from dreamset.toolkit.features import create_extractor, embedder, extractor_ref
        from dreamset.toolkit.knn import knn_distances, kth_neighbour_radii

        o = self.options
        services = inputs.services
        train, test = inputs.real.train, inputs.real.test
        if train is None or test is None or len(train) <= o.k:
            raise BadInputError(f"real_train: metric:subgroups needs the real train split with more than k = {o.k} images, and the test split")
        extractor = create_extractor(services, extractor_ref(o.extractor, o.weights))
        embed = embedder(extractor, services.device, min(256, o.batch_size))
        real = embed(train)
        radii = kth_neighbour_radii(real, o.k).numpy()
        edges = np.quantile(radii, np.arange(1, o.bins) / o.bins)

        def bins_of(source) -> np.ndarray:
            d = knn_distances(embed(source), real, o.k)[:, o.k - 1].numpy()
            return np.searchsorted(edges, d, side="right")

        if inputs.real.evaluation_subset is not None:
            test = test.subset(np.asarray(inputs.real.evaluation_subset))
        test_bins = bins_of(test)
        test_counts = np.bincount(test_bins, minlength=o.bins)
        attacker = None
        if o.attacker is not None:
            attacker = services.registry.create(o.attacker.key, kind="attacker", field_path="attacker.options", **o.attacker.options)
        arms: dict[str, Any] = {}
        for arm, model in inputs.models.items():
            entry: dict[str, Any] = {}
            kept = inputs.synthetic.get(arm)
            if kept is not None and len(kept):
                counts = np.bincount(bins_of(kept), minlength=o.bins)
                entry["kept_share"] = [float(c / counts.sum()) for c in counts]
                entry["sparse_share"] = entry["kept_share"][-1]
                entry["kept"] = int(counts.sum())
            hits = correct(model, test, services.device, 256).numpy()
            entry["clean_accuracy"] = [float(hits[test_bins == b].mean()) if test_counts[b] else None for b in range(o.bins)]
            if attacker is not None:
                with forked_rng(services.device, o.seed):
                    robust = correct(model, test, services.device, 256, attacker).numpy()
                entry["robust_accuracy"] = [float(robust[test_bins == b].mean()) if test_counts[b] else None for b in range(o.bins)]
            arms[arm] = entry
        names = [f"bin {b}" + (" (densest)" if b == 0 else " (sparsest)" if b == o.bins - 1 else "") for b in range(o.bins)]

        def pct(values):
            return ["–" if v is None else f"{100 * v:.1f}" for v in values]
        tables = {"kept synthetic images per real-density bin (%)": {
            "header": ["arm", *names, "kept"],
            "rows": [[arm, *pct(e["kept_share"]), e["kept"]] for arm, e in arms.items() if "kept_share" in e]}}
        for quantity in ("clean_accuracy", "robust_accuracy"):
            if any(quantity in e for e in arms.values()):
                tables[f"{quantity.replace('_', ' ')} per real-density bin (%), last seed"] = {
                    "header": ["arm", *names],
                    "rows": [["test images", *(str(int(c)) for c in test_counts)]]
                    + [[arm, *pct(e[quantity])] for arm, e in arms.items() if quantity in e]}
        return {"edges": [float(e) for e in edges], "k": o.k, "bins": o.bins, "density": "k-NN radius to the real training set, "
                "quantile bins of the real training data's own radii (bin 0 densest)", "test_counts": [int(c) for c in test_counts],
                "extractor": o.extractor_name(), "arms": arms, "tables": tables}
