"""``shift:blur`` — Gaussian blur (ImageNet-C's defocus/Gaussian blur family, Hendrycks & Dietterich 2019, arXiv:1903.12261).

Severity 1..5 -> σ = 0.5, 0.75, 1.0, 1.5, 2.0 pixels; a separable kernel of radius ⌈2σ⌉ with
replicate padding (so it works on 8×8 images, where reflect padding of a large kernel cannot).
``float32 N×C×H×W`` in [0,1] -> same; deterministic (seed unused).
"""
from __future__ import annotations

import math

from dreamset import register
from dreamset.contracts.interfaces import Shift
from dreamset.contracts.lazy import lazy_module
from dreamset.plugins.shifts import SeverityOptions, severity_value

torch = lazy_module("torch")

SIGMAS = (0.5, 0.75, 1.0, 1.5, 2.0)


@register(description="Gaussian blur")
class BlurShift(Shift):
    """Separable Gaussian blur with replicate padding."""

    key = "shift:blur"

    Options = SeverityOptions

    def apply(self, images, seed: int):
        sigma = severity_value(SIGMAS, self.options.severity)
        radius = max(1, math.ceil(2 * sigma))
        x = torch.arange(-radius, radius + 1, dtype=torch.float32)
        kernel = torch.exp(-(x ** 2) / (2 * sigma ** 2))
        kernel = kernel / kernel.sum()
        n, c, h, w = images.shape
        out = images.float().reshape(n * c, 1, h, w)
        F = torch.nn.functional
        out = F.conv2d(F.pad(out, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
        out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
        return out.reshape(n, c, h, w).clamp(0.0, 1.0)
