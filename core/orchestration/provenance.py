"""What report.json records about where a run's parts came from: ``components`` (every component the
run used — by recipe field — with the plugin, distribution and version that supplied it) and
``selections`` (each arm's sampler choice per seed, with the sampler's ``Selection.info``
diagnostics). Importing this module does not import torch."""
from __future__ import annotations

from typing import Any


def _source(registry, key: str, kind: str) -> dict[str, Any]:
    spec = registry.get(key, kind)
    return {"key": spec.key, "plugin": spec.plugin, "distribution": spec.distribution, "version": spec.version}


def component_sources(recipe, registry, default_mixer: str) -> dict[str, dict[str, Any]]:
    """Recipe field path -> ``{key, plugin, distribution, version}`` for every component the run
    creates: those the recipe names, the default mixer of arms that name none, the training
    objective the recipe implies when it names none (docs/migration.md) and ``objective:standard``
    for arms trained without the attacker."""
    from dreamset.training.objectives import STANDARD_OBJECTIVE, legacy_objective

    sources = {path: _with_uses(registry, ref, kind, path) for path, kind, ref in recipe.component_refs()}
    for name, arm in recipe.arms.items():
        if arm.mixer is None:
            sources[f"arms.{name}.mixer"] = {**_source(registry, default_mixer, "mixer"), "default": True}
        if arm.objective is None and (arm.standard or recipe.train.attacker is None):
            sources[f"arms.{name}.objective"] = {**_source(registry, STANDARD_OBJECTIVE, "objective"), "default": True}
    if recipe.train.objective is None and recipe.train.attacker is not None:
        attacker = registry.get(recipe.train.attacker.key, "attacker").key
        implied = legacy_objective(attacker, recipe.train.trades_beta)["key"]
        sources["train.objective"] = {**_source(registry, implied, "objective"), "implied_by": "train.attacker"}
    return sources


def _with_uses(registry, ref, kind: str, path: str) -> dict[str, Any]:
    """:func:`_source`, plus ``uses``: option -> the source of each component of another kind it
    creates by key (its declared :meth:`~dreamset.contracts.interfaces.Component.dependencies`)."""
    record = _source(registry, ref.key, kind)
    spec = registry.get(ref.key, kind)
    dependencies = getattr(spec.load(), "dependencies", None)  # a plain factory declares none
    declared = dependencies(registry.validate_options(spec.key, ref.options, field_path=f"{path}.options")) \
        if dependencies is not None else {}
    if declared:
        record["uses"] = {option: _source(registry, key, used) if key is not None else {"same_as": f"train.{used}"}
                          for option, (used, key) in declared.items()}
    return record


def selection_record(selection, store_size: int) -> dict[str, Any]:
    """One arm's selection for one seed: how many of the store it kept and the sampler's ``info``."""
    return {"selected": int(len(selection.indices)), "of": int(store_size), "info": dict(selection.info or {})}
