"""``augmentation:glyph-warp`` — Jin & Rinard's augmentation of a rendered glyph, with its strength
ramped in over training: random affine map, random perspective, random box blur, then a threshold.

Paper: Charles Jin and Martin Rinard, "Learning From Context-Agnostic Synthetic Data"
(arXiv:2005.14707; NeurIPS 2021 as "Towards Context-Agnostic Learning Using Synthetic Data"). What
it does is read from their code (github.com/charlesjin/synthetic_data at commit e757535,
``mnist/data.py`` ``font_train_transforms`` and ``mnist/train.py``'s ``factor``), rewritten in torch:

* strength ``a = strength · clamp((epoch − ramp_start) / ramp_epochs, 0, 1)`` (the paper: 0 for
  epochs 0–2, then linear to 1 at epoch 52 of 300; ``ramp_epochs: 0`` = full strength at once;
  called without an epoch, as outside the trainer: full strength);
* per image: an affine map (rotation ±``degrees``·a, shift ±``translate``·a of the size, scale in
  [1 − ``scale_down``·a, 1 + ``scale_up``·a], x-shear ±``shear``·a degrees; nearest-neighbour, as
  torchvision's ``RandomAffine`` defaults), then with probability a a perspective warp of
  distortion ``distortion``·a (bilinear), both filling with black; then a box blur whose width and
  height are independently ``2·⌊u·a·blur·5⌋ + 1`` pixels, u ~ U[0,1) (reflected borders, as
  OpenCV's ``blur``); then every pixel above ``threshold`` is set to 1 (``null``: no threshold).
  The paper warps a black-on-white glyph and inverts it afterwards; on dreamset's white-on-black
  glyphs the same maps fill with black, which is the same image.

Per image, ``float32 C×H×W`` in [0,1], labels unchanged. ``takes_epoch``: the trainer passes its
0-based epoch (a dreamset epoch of the ``context-agnostic-mnist`` recipe is the paper's: 20
optimizer steps). Randomness from torch's default generator, which the trainer seeds.

Example: ``train: {augment: {synthetic: [{key: glyph-warp, options: {ramp_start: 2, ramp_epochs: 50}}]}}``.
"""
from __future__ import annotations

from typing import ClassVar

from dreamset import Options, register
from dreamset.contracts.interfaces import Augmentation
from dreamset.contracts.lazy import lazy_module
from pydantic import Field

torch = lazy_module("torch")


class GlyphWarpOptions(Options):
    strength: float = Field(default=1.0, ge=0, le=1, description="the strength a reaches after the ramp")
    ramp_start: float = Field(default=2, ge=0, le=1_000_000, description="epoch at which the ramp starts (strength 0 before)")
    ramp_epochs: float = Field(default=50, ge=0, le=1_000_000, description="epochs from 0 to full strength (0 = no ramp)")
    degrees: float = Field(default=15.0, ge=0, le=180, description="max rotation at full strength")
    translate: float = Field(default=0.15, ge=0, le=1, description="max shift, fraction of the size, at full strength")
    scale_down: float = Field(default=0.25, ge=0, lt=1, description="scale down to 1 − scale_down at full strength")
    scale_up: float = Field(default=0.05, ge=0, le=1, description="scale up to 1 + scale_up at full strength")
    shear: float = Field(default=40.0, ge=0, lt=90, description="max x-shear in degrees at full strength")
    distortion: float = Field(default=0.5, ge=0, le=1, description="perspective distortion scale at full strength")
    blur: float = Field(default=0.45, ge=0, le=10, description="box-blur factor: widths up to 2·⌊a·blur·5⌋ + 1")
    threshold: float | None = Field(default=0.2, ge=0, lt=1, description="pixels above this become 1; null = keep")


@register(description="Jin & Rinard's glyph augmentation: affine, perspective, box blur, threshold, ramped in (arXiv:2005.14707)")
class GlyphWarp(Augmentation):
    """Affine + perspective + box blur + threshold of each glyph, its strength ramped over epochs."""

    key = "augmentation:glyph-warp"
    level: ClassVar[str] = "image"
    takes_epoch: ClassVar[bool] = True

    Options = GlyphWarpOptions

    def strength_at(self, epoch: int | None) -> float:
        """The strength ``a`` at ``epoch`` (full strength when ``epoch`` is ``None``)."""
        o = self.options
        if epoch is None or o.ramp_epochs == 0:
            return o.strength if epoch is None or epoch >= o.ramp_start else 0.0
        return o.strength * min(1.0, max(0.0, (epoch - o.ramp_start) / o.ramp_epochs))

    def apply(self, images, labels, num_classes, epoch: int | None = None):
        import torch.nn.functional as F
        from torchvision.transforms import v2

        o, a = self.options, self.strength_at(epoch)
        out = images.clone()
        if a > 0:
            affine = v2.RandomAffine(degrees=o.degrees * a, translate=(o.translate * a,) * 2,
                                     scale=(1 - o.scale_down * a, 1 + o.scale_up * a), shear=o.shear * a, fill=0)
            perspective = v2.RandomPerspective(distortion_scale=o.distortion * a, p=a, fill=0)
            for i in range(len(out)):
                image = perspective(affine(out[i]))
                kw, kh = (2 * int(float(torch.rand(())) * a * o.blur * 5) + 1 for _ in range(2))
                if kw > 1 or kh > 1:
                    padded = F.pad(image[None], (kw // 2, kw // 2, kh // 2, kh // 2), mode="reflect")
                    image = F.avg_pool2d(padded, (kh, kw), stride=1)[0]
                out[i] = image
        out = out.clamp(0.0, 1.0)
        if o.threshold is not None:
            out = torch.where(out > o.threshold, torch.ones_like(out), out)
        return out, labels
