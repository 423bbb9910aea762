"""``augmentation:cutmix`` — CutMix (Yun et al., 2019, arXiv:1905.04899), torchvision ``v2.CutMix``;
batch level.

A box of each image is replaced by the same box of another image of the batch (the batch rolled by
one); the label becomes the area-weighted mix of both one-hot labels. Rebuffi et al. (2021, "Data
Augmentation Can Improve Robustness", arXiv:2103.01946) found CutMix, combined with weight averaging
(``train.ema_decay``), improves adversarial training, also with generated data. Input: the mixer's
batch ``float32 B×C×H×W`` in [0,1] with ``int64 B`` labels; output: same images shape, soft labels
``float32 B×K``. Default ``alpha: 1.0`` (box area ~ Beta(1, 1)).
Example: ``augment: {batch: [cutmix]}``; ``batch: [cutmix, mixup]`` picks one per batch.
"""
from __future__ import annotations

from pydantic import Field

from dreamset import Options, register
from dreamset.toolkit.augmenting import TorchvisionBatchAugmentation


class CutMixOptions(Options):
    alpha: float = Field(default=1.0, gt=0, le=100, description="Beta(alpha, alpha) of the mixing ratio")


@register(description="CutMix on the batch, soft labels (Yun et al. 2019; Rebuffi et al. 2021)")
class CutMix(TorchvisionBatchAugmentation):
    """CutMix over the training batch, soft labels."""

    key = "augmentation:cutmix"

    Options = CutMixOptions

    def transform(self, num_classes: int):
        from torchvision.transforms import v2

        return v2.CutMix(alpha=self.options.alpha, num_classes=num_classes)
