"""``attacker:uniform-noise`` — the worked Attacker example (docs/kinds/attacker.md).

Card
----
* Threat model: L∞ ball of radius ``eps``; no paper — random noise drawn uniformly in the ball, the
  weakest baseline (any real attack should beat it).
* Shapes: ``attack(model, x float32 N×C×H×W in [0,1], y int64 N)`` -> ``x_adv`` of the same shape,
  dtype and device, in [0,1], ``‖x_adv − x‖∞ ≤ eps``. The model is not called, so its train/eval
  state is untouched; the device comes from ``x``.
* Determinism: the noise comes from a generator seeded with ``seed``.
* Defaults: ``eps=8/255``, ``seed=0``.

Example::

    evaluate: {attackers: [{key: uniform-noise, options: {eps: 0.1}}]}
"""
from __future__ import annotations

from pydantic import Field

import dreamset
from dreamset.contracts.interfaces import Attacker


class UniformNoiseOptions(dreamset.Options):
    eps: float = Field(default=8 / 255, gt=0, le=1, description="L-inf radius in [0,1] pixel units")
    seed: int = Field(default=0, ge=0)


@dreamset.register(description="uniform noise in the L-inf ball (baseline)")
class UniformNoiseAttacker(Attacker):
    """x_adv = clip(x + U(-eps, eps), 0, 1). Inputs float32 N×C×H×W in [0,1]; the model is not called,
    so its train/eval state is untouched and the device comes from ``x``."""

    key = "attacker:uniform-noise"

    Options = UniformNoiseOptions

    def attack(self, model, x, y):
        import torch

        generator = torch.Generator(device=x.device).manual_seed(self.options.seed)
        noise = (torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1) * self.options.eps
        return (x + noise).clamp(0, 1)
