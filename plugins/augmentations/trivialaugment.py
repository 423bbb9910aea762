"""``augmentation:trivialaugment`` — TrivialAugment Wide (Müller & Hutter, 2021, arXiv:2103.10158),
torchvision ``v2.TrivialAugmentWide``.

One operation per image, drawn uniformly, at a magnitude drawn uniformly from ``num_magnitude_bins``.
Per image, on ``uint8`` (as torchvision's reference recipe), returned as ``float32 C×H×W`` in [0,1].
Default: torchvision's 31 bins. Example: ``augment: {real: [trivialaugment]}``.
"""
from __future__ import annotations

from pydantic import Field

from dreamset import Options, register
from dreamset.toolkit.augmenting import TorchvisionImageAugmentation


class TrivialAugmentOptions(Options):
    num_magnitude_bins: int = Field(default=31, ge=2, le=101, description="number of magnitude levels")


@register(description="TrivialAugment Wide (Müller & Hutter 2021; torchvision v2.TrivialAugmentWide)")
class TrivialAugment(TorchvisionImageAugmentation):
    """TrivialAugment Wide."""

    key = "augmentation:trivialaugment"

    Options = TrivialAugmentOptions
    uint8 = True

    def transform(self, image_shape):
        from torchvision.transforms import v2

        return v2.TrivialAugmentWide(num_magnitude_bins=self.options.num_magnitude_bins)
