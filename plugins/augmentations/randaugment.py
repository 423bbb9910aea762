"""``augmentation:randaugment`` — RandAugment (Cubuk, Zoph, Shlens & Le, 2020, arXiv:1909.13719),
torchvision ``v2.RandAugment``.

``num_ops`` operations drawn uniformly from the AutoAugment list, all at one ``magnitude`` (of
``num_magnitude_bins``). Per image, on ``uint8`` (as torchvision's reference recipe), returned as
``float32 C×H×W`` in [0,1]. Defaults are torchvision's (2 ops, magnitude 9 of 31).
Example: ``augment: {real: [{key: randaugment, options: {magnitude: 9}}]}``.
"""
from __future__ import annotations

from pydantic import Field

from dreamset import Options, register
from dreamset.toolkit.augmenting import TorchvisionImageAugmentation


class RandAugmentOptions(Options):
    num_ops: int = Field(default=2, ge=1, le=16, description="operations per image")
    magnitude: int = Field(default=9, ge=0, le=100, description="magnitude of every operation (< num_magnitude_bins)")
    num_magnitude_bins: int = Field(default=31, ge=2, le=101, description="number of magnitude levels")


@register(description="RandAugment (Cubuk et al. 2020; torchvision v2.RandAugment)")
class RandAugment(TorchvisionImageAugmentation):
    """RandAugment with torchvision's operation list."""

    key = "augmentation:randaugment"

    Options = RandAugmentOptions
    uint8 = True

    def transform(self, image_shape):
        from torchvision.transforms import v2

        o = self.options
        return v2.RandAugment(num_ops=o.num_ops, magnitude=o.magnitude, num_magnitude_bins=o.num_magnitude_bins)
