"""``augmentation:autoaugment`` — AutoAugment's learned policies (Cubuk, Zoph, Mané, Vasudevan & Le,
2019, arXiv:1805.09501), torchvision ``v2.AutoAugment``.

``policy``: the sub-policies searched on ``imagenet``, ``cifar10`` or ``svhn``. Per image, on
``uint8`` (as torchvision's reference recipe), returned as ``float32 C×H×W`` in [0,1].
Default ``policy: cifar10``. Example: ``augment: {real: [{key: autoaugment, options: {policy: svhn}}]}``.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from dreamset import Options, register
from dreamset.toolkit.augmenting import TorchvisionImageAugmentation


class AutoAugmentOptions(Options):
    policy: Literal["imagenet", "cifar10", "svhn"] = Field(default="cifar10", description="which learned policy")


@register(description="AutoAugment policies (Cubuk et al. 2019; torchvision v2.AutoAugment)")
class AutoAugment(TorchvisionImageAugmentation):
    """AutoAugment with one of its published policies."""

    key = "augmentation:autoaugment"

    Options = AutoAugmentOptions
    uint8 = True

    def transform(self, image_shape):
        from torchvision.transforms import v2

        policy = {"imagenet": v2.AutoAugmentPolicy.IMAGENET, "cifar10": v2.AutoAugmentPolicy.CIFAR10,
                  "svhn": v2.AutoAugmentPolicy.SVHN}[self.options.policy]
        return v2.AutoAugment(policy=policy)
