"""Cross-family use by key goes through declared dependencies (issue 29): a component that creates a
component of another kind names it in an option with a default key and declares it
(``Component.dependencies``); every declared default resolves to a registered component of that kind,
and report.json's ``components`` lists what each component used."""
from __future__ import annotations

import pytest

import dreamset.registry as registry
from dreamset.contracts.interfaces import Component
from dreamset.orchestration.provenance import component_sources
from dreamset.orchestration.recipe import validate_recipe


def _declared():
    """``(key, option, kind, used key)`` of every built-in that declares dependencies (its defaults)."""
    for key in registry.list():
        spec = registry.get(key)
        cls = spec.load()
        if cls.dependencies.__func__ is Component.dependencies.__func__:
            continue
        declared = cls.dependencies(registry.get_registry().validate_options(spec.key, {}))
        for option, (kind, used) in declared.items():
            yield key, option, kind, used


def test_arc_and_effective_robustness_declare_what_they_create():
    edges = {(key, option): (kind, used) for key, option, kind, used in _declared()}
    assert edges[("metric:arc", "attacker")] == ("attacker", "attacker:pgd")
    assert edges[("metric:arc", "mixer")] == ("mixer", "mixer:ratio")
    assert edges[("metric:arc", "discriminator")] == ("model", "model:small-cnn")
    assert edges[("metric:effective-robustness", "mixer")] == ("mixer", "mixer:ratio")
    assert edges[("metric:effective-robustness", "model")] == ("model", None)  # the recipe's train.model


@pytest.mark.parametrize("key,option,kind,used", [e for e in _declared() if e[3] is not None], ids=lambda v: str(v))
def test_every_declared_default_is_a_registered_component_of_its_kind(key, option, kind, used):
    assert registry.get(used, kind).key.startswith(f"{kind}:")


def test_the_report_lists_what_each_component_used():
    recipe = validate_recipe({
        "name": "uses", "data": {"dataset": "digits"}, "arms": {"real": {"real": True}},
        "train": {"model": "small-cnn"},
        "evaluate": {"metrics": [{"key": "arc", "options": {"attacker": {"key": "fgsm"}}}, "effective-robustness"]},
    }, registry.get_registry())
    components = component_sources(recipe, registry.get_registry(), "mixer:ratio")
    arc, er = components["evaluate.metrics.0"], components["evaluate.metrics.1"]
    assert arc["uses"]["attacker"]["key"] == "attacker:fgsm" and arc["uses"]["mixer"]["key"] == "mixer:ratio"
    assert er["uses"]["model"] == {"same_as": "train.model"}
    assert "uses" not in components["train.model"]
