"""``shift:rotate`` — rotation about the image centre, zero (black) fill outside the image.

Severity 1..5 -> 10°, 20°, 30°, 45°, 60°; images alternate the direction (even index: +, odd: −) so
the set is not biased one way. ``float32 N×C×H×W`` in [0,1] -> same; deterministic (seed unused).
Taori et al. (2020) use such synthetic shifts as the contrast to natural ones.
"""
from __future__ import annotations

import math

from dreamset import register
from dreamset.contracts.interfaces import Shift
from dreamset.contracts.lazy import lazy_module
from dreamset.plugins.shifts import SeverityOptions, severity_value

torch = lazy_module("torch")

DEGREES = (10.0, 20.0, 30.0, 45.0, 60.0)


@register(description="rotation by 10..60 degrees")
class RotateShift(Shift):
    """Rotation by ±(10..60)° with zero fill."""

    key = "shift:rotate"

    Options = SeverityOptions

    def apply(self, images, seed: int):
        n = images.shape[0]
        angle = math.radians(severity_value(DEGREES, self.options.severity))
        signs = torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0)
        cos, sin = math.cos(angle), torch.sin(signs * angle)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = cos
        theta[:, 0, 1] = -sin
        theta[:, 1, 0] = sin
        theta[:, 1, 1] = cos
        grid = torch.nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
        out = torch.nn.functional.grid_sample(images.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out.clamp(0.0, 1.0)
