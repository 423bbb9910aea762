"""``model:wide-resnet`` — the CIFAR Wide Residual Network WRN-``depth``-``width``.

Zagoruyko & Komodakis (2016), "Wide Residual Networks" (BMVC, arXiv:1605.07146): a 3×3 stem conv with 16 channels,
then three groups of ``n = (depth − 4) / 6`` pre-activation basic blocks (BN–act–conv3×3–BN–act–
[dropout]–conv3×3, He et al. 2016's pre-activation order) with ``16·width``, ``32·width`` and
``64·width`` channels at strides 1, 2, 2, a final BN–act, global average pooling and a linear head.
WRN-28-10 (36.5M parameters for 10 classes) is the architecture of the robust-training-with-generated-
data papers — Gowal et al. (2021, "Improving Robustness using Generated Data"), Rebuffi et al. (2021,
"Data Augmentation Can Improve Robustness", who use SiLU: ``activation: silu``) and Wang et al. (2023,
"Better Diffusion Models Further Improve Adversarial Training"); they also train WRN-70-16.

Returns a :class:`dreamset.contracts.nn.Classifier`: input ``float32 N×C×H×W`` in [0,1] (any ``C``; 8×8 digits
and 32×32 CIFAR images alike — the pooling is global), normalised inside with ``mean``/``std``, logits
``N×K``; ``features()`` is the pooled ``N×64·width`` output of the last group.
"""
from __future__ import annotations

import functools
from typing import Literal

from pydantic import Field, field_validator

from dreamset import Options, register
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import Model
from dreamset.contracts.lazy import lazy_module

nn = lazy_module("torch.nn")


class WideResNetOptions(Options):
    depth: int = Field(default=28, ge=10, le=1000, description="number of layers; (depth - 4) must be a multiple of 6")
    width: int = Field(default=10, ge=1, le=64, description="widening factor k (channels 16k, 32k, 64k)")
    activation: Literal["relu", "silu"] = Field(default="relu", description="relu (Zagoruyko & Komodakis) or silu (Rebuffi et al.)")
    dropout: float = Field(default=0.0, ge=0, lt=1, description="dropout between the two convs of each block")
    mean: float = Field(default=0.5, ge=0, le=1, description="normalisation mean (all channels)")
    std: float = Field(default=0.5, gt=0, le=10, description="normalisation std (all channels)")

    @field_validator("depth")
    @classmethod
    def _depth(cls, depth: int) -> int:
        if (depth - 4) % 6:
            raise ValueError("WRN depth must satisfy (depth - 4) % 6 == 0 (10, 16, 22, 28, 34, 40, 70, ...)")
        return depth


@functools.lru_cache(maxsize=None)
def _modules():
    """``(PreActBlock, WideResNetBody)``, defined on first use so importing this plugin (for
    discovery) does not import torch."""
    def activation_layer(name: str):
        return nn.SiLU(inplace=False) if name == "silu" else nn.ReLU(inplace=False)

    class PreActBlock(nn.Module):
        """BN–act–conv(stride)–BN–act–dropout–conv, plus the identity or a 1×1 projection shortcut
        taken from the pre-activated input when the shape changes."""

        def __init__(self, in_channels: int, out_channels: int, stride: int, activation: str, dropout: float) -> None:
            super().__init__()
            self.bn1 = nn.BatchNorm2d(in_channels)
            self.act1 = activation_layer(activation)
            self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(out_channels)
            self.act2 = activation_layer(activation)
            self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
            self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
            self.shortcut = (nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
                             if in_channels != out_channels or stride != 1 else None)

        def forward(self, x):
            pre = self.act1(self.bn1(x))
            out = self.conv1(pre)
            out = self.conv2(self.dropout(self.act2(self.bn2(out))))
            return out + (self.shortcut(pre) if self.shortcut is not None else x)

    class WideResNetBody(nn.Module):
        """Stem, three block groups, final BN–act and global average pooling: ``N×C×H×W → N×64k``."""

        def __init__(self, in_channels: int, depth: int, width: int, activation: str, dropout: float) -> None:
            super().__init__()
            blocks_per_group = (depth - 4) // 6
            channels = [16, 16 * width, 32 * width, 64 * width]
            self.stem = nn.Conv2d(in_channels, channels[0], 3, stride=1, padding=1, bias=False)
            groups = []
            for g, stride in enumerate((1, 2, 2)):
                blocks = [PreActBlock(channels[g] if b == 0 else channels[g + 1], channels[g + 1],
                                       stride if b == 0 else 1, activation, dropout)
                          for b in range(blocks_per_group)]
                groups.append(nn.Sequential(*blocks))
            self.groups = nn.Sequential(*groups)
            self.bn = nn.BatchNorm2d(channels[3])
            self.act = activation_layer(activation)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.num_features = channels[3]
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(module, nn.BatchNorm2d):
                    nn.init.ones_(module.weight)
                    nn.init.zeros_(module.bias)

        def forward(self, x):
            return self.pool(self.act(self.bn(self.groups(self.stem(x))))).flatten(1)

    return PreActBlock, WideResNetBody


@register(description="CIFAR Wide ResNet, pre-activation (Zagoruyko & Komodakis 2016); WRN-28-10 default")
class WideResNet(Model):
    """WRN-depth-width with pre-activation basic blocks (CIFAR variant)."""

    key = "model:wide-resnet"

    Options = WideResNetOptions
    conformance_options = {"depth": 10, "width": 1}

    def build(self, image_shape, num_classes: int):
        from dreamset.contracts.nn import Classifier

        c, h, w = image_shape
        if min(h, w) < 4:
            raise BadInputError(f"model:wide-resnet: images must be at least 4×4, got {h}×{w}")
        o = self.options
        _, body_class = _modules()
        body = body_class(c, o.depth, o.width, o.activation, o.dropout)
        head = nn.Linear(body.num_features, num_classes)
        nn.init.zeros_(head.bias)
        return Classifier(body, head, mean=[o.mean] * c, std=[o.std] * c)
