"""``augmentation:random-gamma`` — the worked Augmentation example (docs/kinds/augmentation.md).

Card
----
* Augmentation: each image is raised to a random power ``gamma ~ U[low, high]`` (a photometric
  augmentation in the spirit of the colour jitter of image-classification training since 2012);
  image level, so the trainer applies it per source (``augment.real`` / ``augment.synthetic``).
* Shapes: ``apply(images float32 B×C×H×W in [0,1], labels, num_classes)`` -> images of the same
  shape, dtype and range, the labels unchanged.
* Determinism: draws from torch's default generator, which the trainer forks and seeds per
  ``(seed, epoch, read, source)``, so training stays resumable bit for bit.
* Defaults: ``low=0.7``, ``high=1.4``.

Example::

    train: {model: small-cnn, augment: {real: [{key: random-gamma, options: {low: 0.8}}]}}
"""
from pydantic import Field

import dreamset
from dreamset.contracts.interfaces import Augmentation


class RandomGammaOptions(dreamset.Options):
    low: float = Field(default=0.7, gt=0, le=10, description="smallest gamma")
    high: float = Field(default=1.4, gt=0, le=10, description="largest gamma")


@dreamset.register
class RandomGamma(Augmentation):
    """Raise each image to a random power."""

    key = "augmentation:random-gamma"
    Options = RandomGammaOptions
    level = "image"

    def apply(self, images, labels, num_classes):
        import torch

        low, high = self.options.low, self.options.high
        gamma = low + (high - low) * torch.rand(len(images), 1, 1, 1)
        return images.clamp(0, 1).pow(gamma).to(images.dtype), labels
