"""The classifier wrapper every ``model:*`` component returns.

:class:`Classifier` takes ``float32 N×C×H×W`` images in [0,1], normalises them inside (so attacks
work in pixel space), runs ``body`` to features ``N×D`` and ``head`` to logits ``N×K``.
``features(x)`` exposes the penultimate layer (used for FID, PRDC and the adaptive sampler).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class Classifier(nn.Module):
    def __init__(self, body: nn.Module, head: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.body = body
        self.head = head
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``N×D`` of [0,1] images."""
        return self.body((x - self.mean) / self.std).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def training_modes(model: nn.Module) -> dict[str, bool]:
    """The exact train/eval flag of every submodule (to restore it after an attack)."""
    return {name: module.training for name, module in model.named_modules()}


def restore_training_modes(model: nn.Module, modes: dict[str, bool]) -> None:
    for name, module in model.named_modules():
        if name in modes:
            module.training = modes[name]
