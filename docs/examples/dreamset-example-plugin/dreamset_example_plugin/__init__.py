"""A worked third-party dreamset plugin.

- ``generator:stripes`` — procedural class-conditional images: class ``k`` is a pattern of stripes at
  angle ``k·180°/K`` with a seeded phase. Useful as a sanity-check generator (a classifier should
  learn it perfectly) and as the smallest possible example of the Generator contract.
- ``attacker:uniform-noise`` — random noise uniformly drawn in the L∞ ball of radius ``eps``: the
  weakest baseline attack (any real attack should beat it), and the smallest Attacker example.

Both keep the registration lazy ("module:Object" strings) and import torch only inside methods, so
``dreamset plugins`` stays fast.
"""
from __future__ import annotations

import math

from pydantic import Field

import dreamset
from dreamset.interfaces import Attacker, GeneratedBatch, Generator


class StripesOptions(dreamset.Options):
    size: int = Field(default=8, ge=4, le=512, description="image height and width")
    channels: int = Field(default=1, ge=1, le=3)
    frequency: float = Field(default=2.0, gt=0, le=64, description="stripes per image")


class StripesGenerator(Generator):
    """Class k = stripes at angle k·π/K; the phase comes from each image's seed.
    Output: float32 B×C×size×size in [0,1]."""

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


class UniformNoiseOptions(dreamset.Options):
    eps: float = Field(default=8 / 255, gt=0, le=1, description="L-inf radius in [0,1] pixel units")
    seed: int = Field(default=0, ge=0)


class UniformNoiseAttacker(Attacker):
    """x_adv = clip(x + U(-eps, eps), 0, 1). Inputs float32 N×C×H×W in [0,1]; the model is not called,
    so its train/eval state is untouched and the device comes from ``x``."""

    Options = UniformNoiseOptions

    def attack(self, model, x, y):
        import torch

        generator = torch.Generator(device=x.device).manual_seed(self.options.seed)
        noise = (torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1) * self.options.eps
        return (x + noise).clamp(0, 1)


@dreamset.hookimpl
def register_generators(register):
    register("stripes", "dreamset_example_plugin:StripesGenerator", description="procedural class-conditional stripes")


@dreamset.hookimpl
def register_attackers(register):
    register("uniform-noise", "dreamset_example_plugin:UniformNoiseAttacker", description="uniform noise in the L-inf ball (baseline)")
