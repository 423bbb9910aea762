"""Conformance checks for ``metric:*`` components, and :func:`tiny_run_context`, a run context over
tiny data that metric tests can share (each metric gets the typed inputs of its scope from it).

A metric's ``compute(inputs)`` must return a non-empty dict of strict JSON (a ``None`` value named in
``reasons``: :func:`dreamset.contracts.checks.metric_result_problem`), be deterministic for fixed
inputs (same numbers twice), and leave the models in the train/eval state it found them.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from dreamset.contracts.checks import metric_result_problem
from dreamset.contracts.data import TensorImageSet
from dreamset.contracts.nn import training_modes


def toy_row_images(n: int, classes: int, shift: float, generator: torch.Generator) -> TensorImageSet:
    """``n`` 1×8×8 images in [0,1]: class ``c`` lights up row ``c`` (plus noise), ``shift`` adds
    brightness — a learnable toy problem with a controllable real/synthetic gap."""
    labels = torch.arange(n) % classes
    x = 0.25 * torch.rand(n, 1, 8, 8, generator=generator)
    x[torch.arange(n), 0, labels * (8 // classes)] += 0.6
    x = (x + shift).clamp(0, 1)
    return TensorImageSet(x, labels, [f"c{i}" for i in range(classes)], name=f"blobs+{shift}")


def tiny_run_context(run_dir: Path | None = None, *, classes: int = 3, n_train: int = 60, n_test: int = 45,
                     n_synthetic: int = 60, synthetic_shift: float = 0.1, seed: int = 0):
    """A :class:`RunContext` with real train/test, a shifted test set (``invert``), synthetic images,
    two trained ``model:small-cnn`` arms (``real``, ``real+synthetic``) and their ``arm_results`` —
    enough for any metric to run in a few seconds on CPU."""
    import dreamset.registry as registry_module
    from dreamset.orchestration.context import RunContext
    from dreamset.orchestration.evaluation import evaluate_classifier
    from dreamset.contracts.inputs import RealData
    from dreamset.orchestration.recipe import Recipe
    from dreamset.training.trainer import train_classifier

    run_dir = Path(run_dir) if run_dir is not None else Path(tempfile.mkdtemp(prefix="dreamset-metric-"))
    recipe = Recipe(
        name="tiny-metric-context",
        seeds=[seed],
        device="cpu",
        data={"dataset": "dataset:digits"},
        generate={"generator": "generator:glyphs", "count": n_synthetic},
        arms={"real": {"real": True, "synthetic": False}, "real+synthetic": {"real": True, "synthetic": True}},
        train={"model": {"key": "model:small-cnn", "options": {"width": 4}}, "epochs": 15, "batch_size": 16,
               "optimizer": "adamw", "lr": 0.01, "weight_decay": 0.0, "mixed_precision": False},
        reference={"epochs": 15, "lr": 0.01},
    )
    g = torch.Generator().manual_seed(seed)
    registry = registry_module.get_registry()
    context = RunContext(recipe=recipe, run_dir=run_dir, registry=registry, device=torch.device("cpu"), seed=seed)
    context.real_train = toy_row_images(n_train, classes, 0.0, g)
    context.real_test = toy_row_images(n_test, classes, 0.0, g)
    x, y = context.real_test.get(range(n_test))
    context.shifted = {"invert": TensorImageSet(1 - x, y, context.real_test.class_names, name="invert")}
    context.synthetic = toy_row_images(n_synthetic, classes, synthetic_shift, g)
    for arm, synthetic in (("real", None), ("real+synthetic", context.synthetic)):
        model = registry.create("model:small-cnn", width=4).build((1, 8, 8), classes)
        mixer = registry.create("mixer:ratio", real_fraction=1.0 if synthetic is None else 0.5)
        context.models[arm] = train_classifier(
            context, model, mixer=mixer, real=context.real_train, synthetic=synthetic, attacker=None,
            settings=recipe.train, seed=seed, checkpoint_dir=run_dir / "checkpoints" / arm.replace("+", "_plus_"),
            description=arm)
    real = RealData(context.real_train, context.real_test, context.shifted)
    context.arm_results[seed] = {arm: evaluate_classifier(model, [], real, recipe.evaluate, context.device)
                                 for arm, model in context.models.items()}
    return context


def check_metric(metric, context=None) -> None:
    """JSON-serialisable dict, identical on a second call, model train/eval flags untouched. The
    metric gets the inputs of its scope (``context``'s, :func:`dreamset.contracts.legacy.inputs_from_context`;
    a 0.1 metric, ``compute(context)``, the context itself); a scope it does not declare fails."""
    from dreamset.contracts.legacy import inputs_from_context, takes_context

    context = context or tiny_run_context()
    before = {arm: training_modes(model) for arm, model in context.models.items()}
    if takes_context(metric.compute):
        inputs = context
    else:
        from dreamset.orchestration.stages import metric_scope

        inputs = inputs_from_context(context, metric_scope(metric))
    torch.manual_seed(0)
    first = metric.compute(inputs)
    torch.manual_seed(0)
    second = metric.compute(inputs)
    problem = metric_result_problem(first)  # the check a run makes (dreamset.orchestration.guards)
    assert problem is None, problem  # plain JSON: no tensors, numpy scalars, NaN, infinity, or None without a reason
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True), "not deterministic"
    for arm, model in context.models.items():
        assert training_modes(model) == before[arm], f"compute() changed the train/eval state of {arm!r}"
    check_headline(type(metric), first)


def check_headline(cls, result: dict) -> None:
    """Every value ``cls.headline`` declares (:mod:`dreamset.contracts.headline`) is in ``result`` —
    in at least one ``result["arms"][arm]`` for a ``per_arm`` value — with its ``spread`` and
    ``interval`` keys, so that no reader shows a metric without the number it promised."""
    for h in getattr(cls, "headline", ()):
        places = list((result.get("arms") or {}).values()) if h.per_arm else [result]
        assert places, f"headline {h.key!r} is per arm, but the result has no 'arms'"
        if h.per_arm:  # a per-arm value may apply to some arms only (e.g. the arms with synthetic data)
            places = [place for place in places if h.key in place]
            assert places, f"headline {h.key!r}: no arm of the result has it"
        for place in places:
            for key in (h.key, h.spread, h.interval):
                assert key is None or key in place, f"headline {h.key!r}: the result has no {key!r}"


_SHARED: dict[str, object] = {}


def check_default(metric) -> None:
    if "context" not in _SHARED:  # one tiny context for every built-in metric in a session
        _SHARED["context"] = tiny_run_context()
    check_metric(metric, _SHARED["context"])
