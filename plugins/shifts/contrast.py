"""``shift:contrast`` — contrast reduction towards each image's mean (ImageNet-C's contrast
corruption, Hendrycks & Dietterich 2019, arXiv:1903.12261): ``x -> (x − μ)·c + μ``.

Severity 1..5 -> c = 0.75, 0.6, 0.45, 0.3, 0.2. ``float32 N×C×H×W`` in [0,1] -> same; deterministic.
"""
from __future__ import annotations

from dreamset import register
from dreamset.contracts.interfaces import Shift
from dreamset.plugins.shifts import SeverityOptions, severity_value

FACTORS = (0.75, 0.6, 0.45, 0.3, 0.2)


@register(description="reduced contrast")
class ContrastShift(Shift):
    """Contrast scaled by c around the per-image mean."""

    key = "shift:contrast"

    Options = SeverityOptions

    def apply(self, images, seed: int):
        factor = severity_value(FACTORS, self.options.severity)
        mean = images.float().mean(dim=(1, 2, 3), keepdim=True)
        return ((images.float() - mean) * factor + mean).clamp(0.0, 1.0)
