"""``augmentation:mixup`` — MixUp (Zhang, Cisse, Dauphin & Lopez-Paz, 2018, arXiv:1710.09412),
torchvision ``v2.MixUp``; batch level.

Each image becomes ``λ·x + (1−λ)·x'`` with ``x'`` the batch rolled by one, ``λ ~ Beta(alpha,
alpha)``, and its label the same mix of both one-hot labels. Studied for adversarial training by
Rebuffi et al. (2021, arXiv:2103.01946). Input: the mixer's batch ``float32 B×C×H×W`` in [0,1] with
``int64 B`` labels; output: images of the same shape and range, soft labels ``float32 B×K``.
Default ``alpha: 1.0``. Example: ``augment: {batch: [{key: mixup, options: {alpha: 0.2}}]}``.
"""
from __future__ import annotations

from pydantic import Field

from dreamset import Options, register
from dreamset.toolkit.augmenting import TorchvisionBatchAugmentation


class MixUpOptions(Options):
    alpha: float = Field(default=1.0, gt=0, le=100, description="Beta(alpha, alpha) of the mixing weight")


@register(description="MixUp on the batch, soft labels (Zhang et al. 2018; Rebuffi et al. 2021)")
class MixUp(TorchvisionBatchAugmentation):
    """MixUp over the training batch, soft labels."""

    key = "augmentation:mixup"

    Options = MixUpOptions

    def transform(self, num_classes: int):
        from torchvision.transforms import v2

        return v2.MixUp(alpha=self.options.alpha, num_classes=num_classes)
