"""Evaluation: clean and robust accuracy on the test set and every shifted set.

Accuracies are fractions in [0,1]. Robust accuracy is the accuracy on ``attacker.attack(model, x, y)``
— the worst case the attacker finds (PGD-k with restarts, AutoAttack).
"""
from __future__ import annotations

from typing import Any

import torch

from dreamset.interfaces import Attacker, ImageSource


def accuracy(model: torch.nn.Module, source: ImageSource, device: torch.device | str = "cpu", batch_size: int = 256,
             attacker: Attacker | None = None, max_samples: int | None = None) -> float:
    """Top-1 accuracy of ``model`` on (the first ``max_samples`` of) ``source``, optionally under attack."""
    was_training = model.training
    model.eval()
    n = len(source) if max_samples is None else min(len(source), max_samples)
    correct = 0
    try:
        for start in range(0, n, batch_size):
            x, y = source.get(range(start, min(start + batch_size, n)))
            x, y = x.to(device), y.to(device)
            if attacker is not None:
                x = attacker.attack(model, x, y)
            with torch.no_grad():
                correct += int((model(x).argmax(dim=1) == y).sum())
    finally:
        model.train(was_training)
    return correct / n if n else float("nan")


def evaluate_classifier(context, model: torch.nn.Module, attackers: list[Attacker]) -> dict[str, Any]:
    """``clean_accuracy``, ``robust_accuracy`` (first attacker), ``robust_accuracy_by_attacker``,
    ``shifted`` (clean accuracy per shift) and ``shifted_robust`` (first attacker, per shift)."""
    settings = context.recipe.evaluate
    device = context.device
    result: dict[str, Any] = {
        "clean_accuracy": accuracy(model, context.real_test, device, settings.batch_size),
    }
    if attackers:
        by_attacker = {
            attacker.key: accuracy(model, context.real_test, device, settings.batch_size, attacker, settings.robust_samples)
            for attacker in attackers
        }
        result["robust_accuracy"] = by_attacker[attackers[0].key]
        result["robust_accuracy_by_attacker"] = by_attacker
    result["shifted"] = {label: accuracy(model, source, device, settings.batch_size) for label, source in context.shifted.items()}
    if attackers:
        result["shifted_robust"] = {
            label: accuracy(model, source, device, settings.batch_size, attackers[0], settings.robust_samples)
            for label, source in context.shifted.items()
        }
    return result
