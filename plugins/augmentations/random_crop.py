"""``augmentation:random-crop`` — random crop after zero padding, torchvision ``v2.RandomCrop``.

The standard CIFAR augmentation of every adversarial-training paper dreamset reproduces: pad by 4,
crop back to 32×32 (Madry et al. 2018; Gowal et al. 2021, arXiv:2110.09468; Rebuffi et al. 2021,
arXiv:2103.01946; Wang et al. 2023, arXiv:2302.04638). Per image, ``float32 C×H×W`` in [0,1]; the
output keeps the input's size. Default ``padding: 4``; for 8×8 digits use ``padding: 1``.
Example: ``augment: {real: [{key: random-crop, options: {padding: 4}}]}``.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from dreamset import Options, register
from dreamset.toolkit.augmenting import TorchvisionImageAugmentation


class RandomCropOptions(Options):
    padding: int = Field(default=4, ge=0, le=1024, description="pixels of padding on every side before the crop")
    padding_mode: Literal["constant", "edge", "reflect", "symmetric"] = Field(default="constant", description="how to pad")


@register(description="pad and random-crop to the input size (torchvision v2.RandomCrop)")
class RandomCrop(TorchvisionImageAugmentation):
    """Pad, then crop back to the input size at a random place."""

    key = "augmentation:random-crop"

    Options = RandomCropOptions

    def transform(self, image_shape):
        from torchvision.transforms import v2

        return v2.RandomCrop(image_shape[1:], padding=self.options.padding, padding_mode=self.options.padding_mode)
