"""``augmentation:horizontal-flip`` — mirror left-right with probability ``p``, torchvision
``v2.RandomHorizontalFlip``.

With random crop, the CIFAR augmentation of the adversarial-training papers (Gowal et al. 2021,
arXiv:2110.09468; Wang et al. 2023, arXiv:2302.04638). Wrong for digits and text (a mirrored 3 is
not a 3): leave it out there. Per image, ``float32 C×H×W`` in [0,1]. Default ``p: 0.5``.
Example: ``augment: {real: [horizontal-flip]}``.
"""
from __future__ import annotations

from pydantic import Field

from dreamset import Options, register
from dreamset.toolkit.augmenting import TorchvisionImageAugmentation


class HorizontalFlipOptions(Options):
    p: float = Field(default=0.5, ge=0, le=1, description="probability of flipping an image")


@register(description="random left-right mirror (torchvision v2.RandomHorizontalFlip)")
class HorizontalFlip(TorchvisionImageAugmentation):
    """Mirror images left-right at random."""

    key = "augmentation:horizontal-flip"

    Options = HorizontalFlipOptions

    def transform(self, image_shape):
        from torchvision.transforms import v2

        return v2.RandomHorizontalFlip(p=self.options.p)
