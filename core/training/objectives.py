"""Choosing the training objective: the recipe's ``train.objective``, or — for recipes written before
objectives were components — the one the attacker used to imply (docs/migration.md).

Until objectives became a kind, the trainer picked the loss from the attacker: none -> standard
training, ``attacker:trades`` -> the TRADES loss with ``β = train.trades_beta``, any other attacker
-> PGD-AT. :func:`legacy_objective` keeps exactly that mapping, so such recipes train the same
(bit-identical losses, ``tests/test_objectives.py``); it is the only place that names objectives.
Importing this module does not import torch.
"""
from __future__ import annotations

from typing import Any

from dreamset.contracts.errors import BadInputError

#: the objective of arms trained without an attacker (``standard: true``, the reference classifier)
STANDARD_OBJECTIVE = "objective:standard"
_LEGACY_TRADES_ATTACKERS = {"trades", "attacker:trades"}


def legacy_objective(attacker_key: str | None, trades_beta: float | None = None) -> dict[str, Any]:
    """The objective (``{"key": ..., "options": {...}}``) an old recipe's attacker implied."""
    if attacker_key is None:
        return {"key": STANDARD_OBJECTIVE, "options": {}}
    if attacker_key in _LEGACY_TRADES_ATTACKERS:
        return {"key": "objective:trades", "options": {} if trades_beta is None else {"beta": trades_beta}}
    return {"key": "objective:pgd-at", "options": {}}


def objective_for(attacker, settings, registry=None):
    """The objective component to train with: standard without an attacker, else ``settings.objective``
    (``train.objective``), else the legacy choice for ``attacker``."""
    if registry is None:
        import dreamset.registry as registry_module

        registry = registry_module.get_registry()
    if attacker is None:
        return registry.create(STANDARD_OBJECTIVE)
    ref = settings.objective
    if ref is None:
        legacy = legacy_objective(attacker.key, settings.trades_beta)
        return registry.create(legacy["key"], **legacy["options"])
    return registry.create(ref.key, kind="objective", field_path="train.objective.options", **ref.options)


def check_objective(recipe, registry) -> None:
    """An explicit ``train.objective`` and ``train.attacker`` agree: an adversarial objective needs an attacker,
    ``objective:standard`` (``uses_attacker = False``) takes none; an objective that needs hard labels
    (``soft_labels = False``, e.g. ``objective:mart``) is not given soft ones by an arm's batch
    augmentations (CutMix/MixUp)."""
    train = recipe.train
    for name, arm in recipe.arms.items():
        if arm.objective is not None:
            _check_arm_objective(name, arm.objective, train.attacker, registry)
    if train.objective is None:
        return
    spec = registry.get(train.objective.key, "objective")
    if not getattr(spec.load(), "soft_labels", True) and train.attacker is not None:
        for name, arm in recipe.arms.items():
            field, augment = (f"arms.{name}.augment", arm.augment) if arm.augment is not None else ("train.augment", train.augment)
            if not arm.standard and augment is not None and augment.batch:
                mixing = registry.get(augment.batch[0].key, "augmentation").key
                raise BadInputError(
                    f"{field}.batch: {spec.key} needs hard labels, but {mixing} makes soft ones "
                    f"(B×K) for arm {name!r}; drop the batch augmentation or choose objective pgd-at or trades")
    uses = bool(getattr(spec.load(), "uses_attacker", True))
    if uses and train.attacker is None:
        raise BadInputError(f"train.attacker: {spec.key} needs an attacker (e.g. train.attacker: pgd)")
    if not uses and train.attacker is not None:
        raise BadInputError(f"train.attacker: {spec.key} trains without an attacker; set train.attacker: null "
                            "or choose an adversarial objective (pgd-at, trades, mart)")


def _check_arm_objective(name: str, ref, attacker, registry) -> None:
    """An arm's own objective that needs an attacker has ``train.attacker`` to use (the instance's
    ``uses_attacker`` decides: it may follow the objective's options)."""
    objective = registry.create(ref.key, kind="objective", field_path=f"arms.{name}.objective.options", **ref.options)
    if objective.uses_attacker and attacker is None:
        raise BadInputError(f"arms.{name}.objective: {objective.key} needs an attacker (train.attacker)")
