"""Conformance checks for ``model:*`` components."""
from __future__ import annotations

import torch

from dreamset.contracts.nn import Classifier


def check_model(factory, image_shape=(1, 8, 8), num_classes: int = 3) -> None:
    """Builds a :class:`~dreamset.contracts.nn.Classifier`: logits ``N×K`` for [0,1] images, penultimate
    ``features`` ``N×D``, gradients reach the input (attacks need them)."""
    model = factory.build(image_shape, num_classes)
    assert isinstance(model, Classifier), "model factories must return dreamset.contracts.nn.Classifier"
    x = torch.rand(2, *image_shape, requires_grad=True)
    logits = model(x)
    assert logits.shape == (2, num_classes)
    assert model.features(x).ndim == 2
    logits.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def check_default(factory) -> None:
    check_model(factory, (1, 8, 8))
    check_model(factory, (3, 32, 32), num_classes=10)
