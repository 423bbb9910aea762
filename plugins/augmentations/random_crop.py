"""``augmentation:random-crop`` — random crop after zero padding, torchvision ``v2.RandomCrop``.

The standard CIFAR augmentation of every adversarial-training paper dreamset reproduces: pad by 4,
crop back to 32×32 (Madry et al. 2018; Gowal et al. 2021, arXiv:2110.09468; Rebuffi et al. 2021,
arXiv:2103.01946; Wang et al. 2023, arXiv:2302.04638). Per image, ``float32 C×H×W`` in [0,1]; the
output keeps the input's size. Default ``padding: 4``; for 8×8 digits use ``padding: 1``.
Example: ``augment: {real: [{key: random-crop, options: {padding: 4}}]}``.

Applied to the whole batch at once (one pad, one copy per distinct offset) with the very draws ``v2.RandomCrop`` makes
image by image (its top, then its left offset), so the output is ``v2.RandomCrop``'s bit for bit at a
small fraction of its cost. It draws from the ``generator`` it is given (``draws_from_generator``),
never from torch's default one then, so the trainer prepares its batches on the prefetch thread.
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

    draws_from_generator = True

    def transform(self, image_shape):
        from torchvision.transforms import v2

        return v2.RandomCrop(image_shape[1:], padding=self.options.padding, padding_mode=self.options.padding_mode)

    def apply(self, images, labels, num_classes, generator=None):
        import torch
        from torchvision.transforms.v2 import functional as F

        pad = self.options.padding
        if pad == 0 or len(images) == 0:  # v2.RandomCrop draws nothing then: the images as they are
            return images.clamp(0.0, 1.0), labels
        n, _, h, w = images.shape
        # per image (top, left), row by row: the order v2.RandomCrop draws them in, one image after another
        offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
        padded = F.pad(images, [pad], fill=0, padding_mode=self.options.padding_mode)
        out = torch.empty_like(images)
        side = 2 * pad + 1
        place = offsets[:, 0] * side + offsets[:, 1]
        for where in torch.unique(place).tolist():  # one slice per distinct offset (at most side²)
            top, left = divmod(where, side)
            rows = (place == where).nonzero().squeeze(1)
            out[rows] = padded[rows, :, top:top + h, left:left + w]
        return out.clamp_(0.0, 1.0), labels
