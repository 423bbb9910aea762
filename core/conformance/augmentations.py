"""Conformance checks for ``augmentation:*`` components."""
from __future__ import annotations

import torch

from dreamset.training.augmenting import seeded


def check_augmentation(augmentation, images: torch.Tensor | None = None, num_classes: int = 4) -> None:
    """Shape, dtype and [0,1] range kept, deterministic under a fixed seed, labels unchanged (image
    level) or soft rows summing to 1 (batch level), on 1- and 3-channel images."""
    if images is None:
        images = torch.rand(8, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(len(images)) % num_classes
    # an augmentation with a schedule (takes_epoch) is checked at its first epoch and late in training
    epochs = [{"epoch": 0}, {"epoch": 10**6}] if getattr(augmentation, "takes_epoch", False) else [{}]
    for x, extra in ((x, e) for x in (images, images.expand(-1, 3, -1, -1).contiguous()) for e in epochs):
        with seeded(3):
            a, ya = augmentation.apply(x.clone(), labels.clone(), num_classes, **extra)
        with seeded(3):
            b, yb = augmentation.apply(x.clone(), labels.clone(), num_classes, **extra)
        assert a.shape == x.shape and a.dtype == torch.float32, f"{augmentation.key}: shape/dtype changed"
        assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0 and not torch.isnan(a).any()
        assert torch.equal(a, b) and torch.equal(ya, yb), f"{augmentation.key}: not deterministic for a fixed seed"
        if augmentation.level == "batch":
            assert ya.shape == (len(x), num_classes) and ya.dtype == torch.float32
            assert torch.allclose(ya.sum(1), torch.ones(len(x)))
        else:
            assert augmentation.level == "image" and torch.equal(ya, labels), f"{augmentation.key}: labels changed"


def check_default(augmentation) -> None:
    check_augmentation(augmentation)
