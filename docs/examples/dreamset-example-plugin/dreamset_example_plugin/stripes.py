"""``generator:stripes`` — the worked Generator example (docs/kinds/generator.md).

Card
----
* Method: procedural class-conditional images, no paper: class ``k`` of ``K`` is a sine grating at
  angle ``k·π/K`` with ``frequency`` stripes per image and a phase drawn from the image's own seed.
  A sanity-check generator (a classifier should learn it perfectly).
* Shapes: ``generate(labels int64 B, seeds B, class_names)`` -> ``GeneratedBatch`` with images
  ``float32 B×channels×size×size`` in [0,1], the labels echoed, one provenance record per image.
* Determinism: image ``i`` depends only on ``labels[i]``, ``seeds[i]`` and the options.
* Defaults: ``size=8``, ``channels=1``, ``frequency=2.0``; nothing to fit.

Example::

    generate: {generator: {key: stripes, options: {size: 8}}, count: 1000}
"""
from __future__ import annotations

import math

from pydantic import Field

import dreamset
from dreamset.contracts.interfaces import GeneratedBatch, Generator


class StripesOptions(dreamset.Options):
    size: int = Field(default=8, ge=4, le=512, description="image height and width")
    channels: int = Field(default=1, ge=1, le=3)
    frequency: float = Field(default=2.0, gt=0, le=64, description="stripes per image")


@dreamset.register(description="procedural class-conditional stripes")
class StripesGenerator(Generator):
    """Class k = stripes at angle k·π/K; the phase comes from each image's seed.
    Output: float32 B×C×size×size in [0,1]."""

    key = "generator:stripes"

    Options = StripesOptions

    def image_shape(self, real=None):
        return (self.options.channels, self.options.size, self.options.size)

    def generate(self, labels, seeds, class_names):
        import torch

        n, size = len(seeds), self.options.size
        coords = torch.linspace(0, 1, size)
        yy, xx = torch.meshgrid(coords, coords, indexing="ij")
        images = []
        for label, seed in zip(labels.tolist(), seeds):
            phase = torch.rand(1, generator=torch.Generator().manual_seed(int(seed))).item() * 2 * math.pi
            angle = label * math.pi / max(len(class_names), 1)
            wave = torch.sin(2 * math.pi * self.options.frequency * (xx * math.cos(angle) + yy * math.sin(angle)) + phase)
            images.append(((wave + 1) / 2).expand(self.options.channels, size, size))
        provenance = [
            {"generator": self.key, "label": int(l), "class_name": class_names[int(l)], "prompt": None, "seed": int(s),
             "steps": None, "guidance": None, "scheduler": None, "width": size, "height": size}
            for l, s in zip(labels.tolist(), seeds)
        ]
        return GeneratedBatch(torch.stack(images).float() if n else torch.zeros(0, *self.image_shape()),
                              labels.clone(), provenance)
