"""``dreamset evaluate``: distribution metrics between a real and a synthetic source, without a run.

Sources are named the way a user has them: a dataset key (``dataset:digits``, its training split is
the real set and its test split the held-out set), a dreamset store folder, or a ``.npz`` with
``image``/``label`` arrays (the DM-Improves-AT / Rebuffi et al. release format). The metrics get a
:class:`~dreamset.context.RunContext` whose reference classifier (for the offline ``reference``
feature extractor and label agreement) is trained on the real source and cached in ``work_dir``.
Metrics that need trained arms (accuracy, effective robustness) belong in a recipe, not here.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

from dreamset.errors import BadInputError

#: the metrics ``dreamset evaluate`` computes when none is named
DEFAULT_METRICS = ("metric:fid", "metric:kid", "metric:prdc", "metric:label-agreement")
#: metrics that only make sense after a recipe has trained its arms
NEEDS_ARMS = {"metric:accuracy", "metric:robust-accuracy", "metric:effective-robustness"}


def open_source(spec: str, registry, field: str, whole: bool = False):
    """``(train, test)`` ImageSources for a dataset key, a store folder or a ``.npz`` file. With
    ``whole`` (the synthetic side) a ``.npz`` is not split: every image is in the first source."""
    from dreamset.store import SyntheticStore

    path = Path(spec)
    if spec.startswith("dataset:") or (":" not in spec and not path.exists() and spec in {
            k.split(":", 1)[1] for k in registry.list("dataset:*")}):
        dataset = registry.create(spec if spec.startswith("dataset:") else f"dataset:{spec}", kind="dataset",
                                  field_path=field)
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
        from dreamset.verify import require_complete

        store = SyntheticStore.open(path)
        require_complete(store, field)
        return store, store
    raise BadInputError(f"{field}: {spec} is not a dataset key, a dreamset store folder or a .npz file")


def evaluate_sources(real: str, synthetic: str, metrics: Sequence[str] | None = None, registry=None,
                     work_dir: str | Path | None = None, model: str = "model:small-cnn",
                     reference_epochs: int = 20) -> dict[str, Any]:
    """``{metric name: result}`` for ``metrics`` (default FID, KID, PRDC, label agreement) between
    ``real`` and ``synthetic``."""
    import torch

    import dreamset.registry as registry_module
    from dreamset.context import RunContext, resolve_device
    from dreamset.pipeline import metric_report_name
    from dreamset.recipe import Recipe

    registry = registry or registry_module.get_registry()
    keys = [m if m.startswith("metric:") else f"metric:{m}" for m in (metrics or DEFAULT_METRICS)]
    for key in keys:
        if key in NEEDS_ARMS:
            raise BadInputError(f"--metric {key}: needs trained arms; run it in a recipe (evaluate.metrics)")
        registry.get(key)  # unknown key -> error listing close matches, before any work
    real_train, real_test = open_source(real, registry, "real")
    synthetic_source, _ = open_source(synthetic, registry, "synthetic", whole=True)
    if list(synthetic_source.class_names) != list(real_train.class_names):
        raise BadInputError(f"synthetic: class names {list(synthetic_source.class_names)[:5]}... differ from the "
                            f"real source's {list(real_train.class_names)[:5]}...")
    work = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="dreamset-evaluate-"))
    recipe = Recipe(name="evaluate", data={"dataset": "dataset:digits"}, arms={"real": {"real": True}},
                    train={"model": model}, reference={"epochs": reference_epochs})
    context = RunContext(recipe=recipe, run_dir=work, registry=registry, device=resolve_device("auto"))
    context.real_train, context.real_test, context.synthetic = real_train, real_test, synthetic_source
    torch.manual_seed(0)
    results: dict[str, Any] = {}
    for key in keys:
        metric = registry.create(key, kind="metric")
        results[metric_report_name(key)] = metric.compute(context)
    return results


def result_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(metric, quantity, value)`` rows of :func:`evaluate_sources`' scalar results for a table
    (numbers to 4 significant digits; nested tables and bookkeeping lists left to ``--json``)."""
    rows = []
    for name, result in results.items():
        items = result.items() if isinstance(result, dict) else [("value", result)]
        for key, value in items:
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                continue
            rows.append((name, str(key), f"{value:.4g}" if isinstance(value, float) else str(value)))
    return rows
