"""A third-party plugin written against the 0.1 contracts (every method taking the run context) still
runs for one release, with a DeprecationWarning (docs/migration.md, dreamset.contracts.legacy), and a 0.1
caller handing a new-form metric the run context still gets its result."""
from __future__ import annotations

import warnings

import pytest

import dreamset
import dreamset.registry as registry
from dreamset.conformance.metrics import toy_row_images
from dreamset.orchestration.context import RunContext
from dreamset.contracts.inputs import DistributionInputs

OLD_PLUGIN = '''
import numpy as np

import dreamset
from dreamset.contracts.interfaces import Metric, Sampler, Selection

SEEN = {}


class OldSourceMetric(Metric):
    """0.1 form: a per-source metric reading context.synthetic and context.source_name."""
    per_source = True

    def compute(self, context):
        SEEN.setdefault("sources", []).append(context.source_name)
        return {"n_synthetic": len(context.synthetic), "n_real": len(context.real_train)}


class OldArmMetric(Metric):
    """0.1 form: an arm metric reading context.models and context.arm_results."""

    def compute(self, context):
        return {"arms": sorted(context.models), "seeds": sorted(context.arm_results)}


class OldSampler(Sampler):
    """0.1 form: select(synthetic, real, context, seed), keeping every other image."""

    def select(self, synthetic, real, context, seed):
        SEEN["sampler_device"] = str(context.device)
        return Selection(indices=np.arange(0, len(synthetic), 2, dtype=np.int64))


class StageWatcher:
    """0.1 form of a lifecycle hook: before_stage(stage, context)."""

    @dreamset.hookimpl
    def before_stage(self, stage, context):
        SEEN.setdefault("stages", []).append((stage, context.recipe.name))


@dreamset.hookimpl
def register_metrics(register):
    register("old-source", "old_plugin:OldSourceMetric")
    register("old-arms", "old_plugin:OldArmMetric")


@dreamset.hookimpl
def register_samplers(register):
    register("old-half", "old_plugin:OldSampler")
'''


def _recipe() -> dict:
    """Two named imported sources, one arm on each half, two seeds, one epoch on 200 digits."""
    return {
        "name": "old-plugin-run",
        "seeds": [0, 1],
        "device": "cpu",
        "data": {"dataset": {"key": "digits", "options": {"train_size": 200}}},
        "generate": {"a": {"generator": {"key": "glyphs"}, "count": 40, "batch_size": 20},
                     "b": {"generator": {"key": "glyphs"}, "count": 20, "batch_size": 20}},
        "arms": {"real": {"real": True},
                 "mixed": {"real": True, "synthetic": ["a", "b"], "sampler": "sampler:old-half"}},
        "train": {"model": {"key": "small-cnn", "options": {"width": 4}}, "epochs": 1, "batch_size": 64,
                  "mixed_precision": False},
        "evaluate": {"robust_samples": 30, "attackers": [], "metrics": ["metric:old-source", "metric:old-arms"]},
        "report": {"curve_samples": 0, "html": False},
    }


def test_an_old_form_plugin_runs_with_deprecation_warnings(fake_distribution, tmp_path):
    import sys

    fake_distribution("old-dist", {"old": "old_plugin"}, {"old_plugin": OLD_PLUGIN})
    watcher = sys.modules.setdefault("old_plugin", __import__("old_plugin")).StageWatcher()
    registry.plugin_manager().register(watcher, name="old-stage-watcher")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = dreamset.run(_recipe(), out=tmp_path / "run")
    finally:
        registry.plugin_manager().unregister(watcher)
    seen = sys.modules["old_plugin"].SEEN
    deprecations = " ".join(str(w.message) for w in caught if issubclass(w.category, DeprecationWarning))
    for old in ("compute(context)", "select(synthetic, real, context, seed)", "before_stage hook taking context"):
        assert old in deprecations, old
    assert report["metrics"]["old_source"]["a"] == {"n_synthetic": 40, "n_real": 200}
    assert report["metrics"]["old_source"]["b"] == {"n_synthetic": 20, "n_real": 200}
    assert seen["sources"] == ["a", "b"]
    assert report["metrics"]["old_arms"] == {"arms": ["mixed", "real"], "seeds": [0, 1]}
    assert report["selections"]["mixed"]["0"]["selected"] == 30 and seen["sampler_device"] == "cpu"
    assert ("data", "old-plugin-run") in seen["stages"] and ("report", "old-plugin-run") in seen["stages"]


class OneHotReference:
    """A reference classifier that predicts every image's own label (agreement 1)."""

    def predict(self, source, batch_size=512):
        import torch

        return torch.nn.functional.one_hot(source.labels, source.num_classes).float()


def test_an_old_caller_may_hand_a_new_form_metric_the_run_context(tmp_path):
    import torch

    from dreamset.contracts.inputs import RealData
    from dreamset.contracts.legacy import services_of

    g = torch.Generator().manual_seed(0)
    real, synthetic = toy_row_images(30, 3, 0.0, g), toy_row_images(30, 3, 0.2, g)
    metric = registry.create("metric:label-agreement")
    context = RunContext(recipe=None, run_dir=tmp_path, registry=registry.get_registry(), reference=OneHotReference())
    context.real_train, context.synthetic = real, synthetic
    with pytest.warns(DeprecationWarning, match="calling compute"):
        old = metric.compute(context)
    new = metric.compute(DistributionInputs(RealData(real, None), synthetic, None, services_of(context)))
    assert metric.scope == "source" and old == new and old["agreement"] == 1.0
