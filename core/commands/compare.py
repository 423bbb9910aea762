"""``dreamset evaluate``: distribution metrics between a real and a synthetic source, without a run.

Sources are named the way a user has them: a dataset key (``dataset:digits``, its training split is
the real set and its test split the held-out set), a dreamset store folder, a ``.npz`` with
``image``/``label`` arrays (the DM-Improves-AT / Rebuffi et al. release format), or precomputed
features: a ``.npy`` ``N×D`` matrix or a ``.npz`` with ``features`` (and optionally ``labels``). The metrics get
:class:`~dreamset.contracts.inputs.DistributionInputs` whose reference classifier (for the offline ``reference``
feature extractor and label agreement) is trained on the real source and cached in ``work_dir``.
Metrics that need trained arms (accuracy, effective robustness) belong in a recipe, not here.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

from dreamset.contracts.errors import BadInputError

#: the metrics ``dreamset evaluate`` computes when none is named
DEFAULT_METRICS = ("metric:fid", "metric:kid", "metric:prdc", "metric:label-agreement")
#: the defaults when a side is a feature file (label agreement needs images)
DEFAULT_FEATURE_METRICS = ("metric:fid", "metric:kid", "metric:prdc")
#: metrics that only make sense after a recipe has trained its arms
NEEDS_ARMS = {"metric:accuracy", "metric:robust-accuracy", "metric:effective-robustness"}


def open_source(spec: str, registry, field: str, whole: bool = False, options: dict[str, Any] | None = None):
    """``(train, test)`` ImageSources for a dataset key (created with ``options``), a store folder or a
    ``.npz`` file. With ``whole`` (the synthetic side) a ``.npz`` is not split: every image is in the
    first source."""
    from dreamset.store.reader import SyntheticStore

    path = Path(spec)
    if spec.startswith("dataset:") or (":" not in spec and not path.exists() and spec in {
            k.split(":", 1)[1] for k in registry.list("dataset:*")}):
        dataset = registry.create(spec if spec.startswith("dataset:") else f"dataset:{spec}", kind="dataset",
                                  field_path=field, **(options or {}))
        return dataset.load("train"), dataset.load("test")
    if path.suffix == ".npz":
        if not path.is_file():
            raise BadInputError(f"{field}: {path} does not exist")
        if whole:  # no held-out split on the synthetic side: test_path = path makes "test" the whole file
            dataset = registry.create("dataset:npz", path=str(path), test_path=str(path), field_path=field)
            return dataset.load("test"), None
        dataset = registry.create("dataset:npz", path=str(path), test_fraction=0.2, field_path=field)
        return dataset.load("train"), dataset.load("test")
    if (path / "store.json").is_file():
        from dreamset.files.verify import require_complete

        store = SyntheticStore.open(path)
        require_complete(store, field)
        return store, store
    raise BadInputError(f"{field}: {spec} is not a dataset key, a dreamset store folder or a .npz file")


def is_feature_file(spec: str) -> bool:
    """Whether ``spec`` names a feature file (``.npy``, or ``.npz`` holding ``features``; read by
    :func:`dreamset.toolkit.features.load_feature_file`)."""
    import numpy as np

    p = Path(spec)
    if p.suffix == ".npy":
        return True
    if p.suffix == ".npz" and p.is_file():
        with np.load(p, allow_pickle=False) as data:
            return "features" in data.files
    return False


def evaluate_sources(real: str, synthetic: str, metrics: Sequence[str] | None = None, registry=None,
                     work_dir: str | Path | None = None, model: str = "model:small-cnn",
                     reference_epochs: int = 20, extractor: str | None = None,
                     real_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{metric name: result}`` for ``metrics`` (default FID, KID, PRDC, label agreement; with a
    feature file FID, KID, PRDC) between ``real`` and ``synthetic``. Either may be a precomputed
    feature file (``.npy`` matrix, or ``.npz`` with ``features`` [and ``labels``]); ``extractor``
    (a registry key) embeds the image sources of the feature metrics; ``real_options``: the options of
    a real dataset key (e.g. ``{"train_size": 1000}``)."""
    import torch

    import dreamset.registry as registry_module
    from dreamset.orchestration.context import RunContext, resolve_device
    from dreamset.contracts.inputs import DistributionInputs, RealData
    from dreamset.contracts.legacy import services_of
    from dreamset.orchestration.stages import metric_report_name
    from dreamset.orchestration.recipe import Recipe

    registry = registry or registry_module.get_registry()
    files = {side: spec for side, spec in (("real_features", real), ("synthetic_features", synthetic)) if is_feature_file(spec)}
    defaults = DEFAULT_FEATURE_METRICS if files else DEFAULT_METRICS
    keys = [m if m.startswith("metric:") else f"metric:{m}" for m in (metrics or defaults)]
    options: dict[str, Any] = dict(files)
    if extractor is not None:
        options["extractor"] = extractor
    for key in keys:
        if key in NEEDS_ARMS:
            raise BadInputError(f"--metric {key}: needs trained arms; run it in a recipe (evaluate.metrics)")
        fields = registry.get(key).options_model().model_fields  # unknown key -> error listing close matches
        if options and "real_features" not in fields:
            raise BadInputError(f"--metric {key}: takes images, not feature files or --extractor")
    results: dict[str, Any] = {}
    if len(files) == 2:  # nothing to embed: no context, no reference classifier
        for key in keys:
            results[metric_report_name(key)] = registry.create(key, kind="metric", **options).compute(None)
        return results
    real_train, real_test = open_source(real, registry, "real", options=real_options) if "real_features" not in files else (None, None)
    synthetic_source = open_source(synthetic, registry, "synthetic", whole=True)[0] if "synthetic_features" not in files else None
    if real_train is None or synthetic_source is None:
        if "extractor" not in options:
            raise BadInputError("--extractor: with one side a feature file, name the extractor that made it "
                                "(e.g. extractor:inception-fid) so the other side is embedded the same way")
    elif list(synthetic_source.class_names) != list(real_train.class_names):
        raise BadInputError(f"synthetic: class names {list(synthetic_source.class_names)[:5]}... differ from the "
                            f"real source's {list(real_train.class_names)[:5]}...")
    work = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="dreamset-evaluate-"))
    recipe = Recipe(name="evaluate", data={"dataset": "dataset:digits"}, arms={"real": {"real": True}},
                    train={"model": model}, reference={"epochs": reference_epochs})
    context = RunContext(recipe=recipe, run_dir=work, registry=registry, device=resolve_device("auto"))
    context.real_train = real_train  # what the reference classifier trains on
    inputs = DistributionInputs(RealData(real_train, real_test), synthetic_source, None, services_of(context))
    torch.manual_seed(0)
    for key in keys:
        metric = registry.create(key, kind="metric", **options)
        results[metric_report_name(key)] = metric.compute(inputs)
    return results


def result_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(metric, quantity, value)`` rows of :func:`evaluate_sources`' results: each metric's declared
    headline values (:mod:`dreamset.report.headlines`: label, unit, and which way is better), or an
    undeclared metric's numbers; tables and bookkeeping are left to ``--json``."""
    from dreamset.report.headlines import headline_values

    rows = []
    for v in headline_values({"metrics": results}):
        if v.headline is None:
            rows.append((v.metric, v.key, v.text))
            continue
        better = f" ({v.headline.better} is better)" if v.headline.better else ""
        rows.append((v.metric, v.label + better, v.text))
    return rows
