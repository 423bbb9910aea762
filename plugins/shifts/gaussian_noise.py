"""``shift:gaussian-noise`` — additive Gaussian noise, clipped to [0,1] (ImageNet-C's first
corruption, Hendrycks & Dietterich 2019, arXiv:1903.12261).

Severity 1..5 -> σ = 0.04, 0.08, 0.12, 0.18, 0.26 (in [0,1] pixel units). The noise is drawn from a
``torch.Generator`` seeded with ``seed``, so the shifted set is deterministic.
``float32 N×C×H×W`` in [0,1] -> same.
"""
from __future__ import annotations

from dreamset import register
from dreamset.contracts.interfaces import Shift
from dreamset.contracts.lazy import lazy_module
from dreamset.plugins.shifts import SeverityOptions, severity_value

torch = lazy_module("torch")

SIGMAS = (0.04, 0.08, 0.12, 0.18, 0.26)


@register(description="additive Gaussian noise (seeded)")
class GaussianNoiseShift(Shift):
    """x + N(0, σ²), clipped; seeded."""

    key = "shift:gaussian-noise"

    Options = SeverityOptions

    def apply(self, images, seed: int):
        generator = torch.Generator().manual_seed(int(seed))
        noise = torch.randn(images.shape, generator=generator) * severity_value(SIGMAS, self.options.severity)
        return (images.float() + noise.to(images.device)).clamp(0.0, 1.0)
