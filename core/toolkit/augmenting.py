"""Bases for augmentations that wrap a ``torchvision.transforms.v2`` transform (``augmentation:*``).

* :class:`TorchvisionImageAugmentation` — per image (``level = "image"``): the subclass returns the
  transform from ``transform(image_shape)``; each image gets its own random parameters. With
  ``uint8 = True`` the transform gets ``uint8`` images and its output is converted back to float.
* :class:`TorchvisionBatchAugmentation` — on the whole batch (``level = "batch"``, CutMix/MixUp):
  ``transform(num_classes)``; the labels come back soft (``float32 B×K`` rows summing to 1).

Images in and out are ``float32 B×C×H×W`` in [0,1]; the trainer seeds every draw
(:mod:`dreamset.training.augmenting`). torch stays lazy here, so plugin modules may subclass these at import.
"""
from __future__ import annotations

from typing import ClassVar

from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import Augmentation
from dreamset.contracts.lazy import lazy_module

torch = lazy_module("torch")


class TorchvisionImageAugmentation(Augmentation):
    """Base of the per-image augmentations wrapping a ``torchvision.transforms.v2`` transform: the
    subclass returns it from :meth:`transform` (given the ``(C, H, W)`` of the images); each image
    gets its own random parameters."""

    level: ClassVar[str] = "image"
    #: feed the transform ``uint8`` images (and convert its output back to float in [0,1])
    uint8: ClassVar[bool] = False

    def transform(self, image_shape: tuple[int, int, int]):  # pragma: no cover - abstract
        raise NotImplementedError

    def apply(self, images, labels, num_classes):
        from dreamset.contracts.data import to_float_images, to_uint8_images

        transform = self.transform(tuple(images.shape[1:]))
        x = to_uint8_images(images) if self.uint8 else images
        out = torch.stack([transform(image) for image in x]) if len(x) else x
        return (to_float_images(out) if self.uint8 else out.clamp(0.0, 1.0)), labels


class TorchvisionBatchAugmentation(Augmentation):
    """Base of the batch-level augmentations (torchvision ``v2.CutMix``/``v2.MixUp``): the
    subclass returns the transform for ``num_classes`` from :meth:`transform`."""

    level: ClassVar[str] = "batch"

    def transform(self, num_classes: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def apply(self, images, labels, num_classes):
        if labels.is_floating_point():
            raise BadInputError(f"{self.key}: the labels are soft already; list one batch augmentation per batch")
        mixed, soft = self.transform(num_classes)(images, labels)
        return mixed, soft.to(torch.float32)
