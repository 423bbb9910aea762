"""``augmentation:horizontal-flip`` — mirror left-right with probability ``p``, torchvision
``v2.RandomHorizontalFlip``.

With random crop, the CIFAR augmentation of the adversarial-training papers (Gowal et al. 2021,
arXiv:2110.09468; Wang et al. 2023, arXiv:2302.04638). Wrong for digits and text (a mirrored 3 is
not a 3): leave it out there. Per image, ``float32 C×H×W`` in [0,1]. Default ``p: 0.5``.
Example: ``augment: {real: [horizontal-flip]}``.

Applied to the whole batch at once with the draws ``v2.RandomHorizontalFlip`` makes image by image
(one uniform number each, flipped below ``p``): its output bit for bit. It draws from the
``generator`` it is given (``draws_from_generator``), so the trainer prepares its batches on the
prefetch thread.
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

    draws_from_generator = True

    def apply(self, images, labels, num_classes, generator=None):
        import torch

        flipped = torch.rand(len(images), generator=generator) < self.options.p  # one draw per image, as v2
        out = images.clamp(0.0, 1.0)
        if bool(flipped.any()):
            out = torch.where(flipped[:, None, None, None], out.flip(-1), out)
        return out, labels
