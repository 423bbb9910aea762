"""``shift:edges`` — sketch rendering: the Sobel gradient magnitude, normalised per image.

A cheap stand-in for the sketch domains used to measure robustness to natural shift (ImageNet-Sketch,
Wang et al. 2019; Taori et al. 2020): shapes survive, texture and fill are gone. Severity 1..5 blends
the original towards its edge map, ``(1 − a)·x + a·edges(x)`` with a = 0.2, 0.4, 0.6, 0.8, 1.0.
``float32 N×C×H×W`` in [0,1] -> same; computed per channel; deterministic (seed unused).
"""
from __future__ import annotations

from dreamset import register
from dreamset.contracts.interfaces import Shift
from dreamset.contracts.lazy import lazy_module
from dreamset.plugins.shifts import SeverityOptions, severity_value

torch = lazy_module("torch")

AMOUNTS = (0.2, 0.4, 0.6, 0.8, 1.0)


@register(description="sketch: Sobel edge map")
class EdgesShift(Shift):
    """Sobel edge map, blended by severity."""

    key = "shift:edges"

    Options = SeverityOptions

    def apply(self, images, seed: int):
        F = torch.nn.functional
        n, c, h, w = images.shape
        x = F.pad(images.float().reshape(n * c, 1, h, w), (1, 1, 1, 1), mode="replicate")
        kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]).view(1, 1, 3, 3)
        gx = F.conv2d(x, kx)
        gy = F.conv2d(x, kx.transpose(2, 3))
        magnitude = torch.sqrt(gx ** 2 + gy ** 2).reshape(n, c, h, w)
        peak = magnitude.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)
        edges = magnitude / peak
        amount = severity_value(AMOUNTS, self.options.severity)
        return ((1 - amount) * images.float() + amount * edges).clamp(0.0, 1.0)
