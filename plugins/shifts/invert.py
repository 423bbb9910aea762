"""``shift:invert`` — photometric inversion ``x -> 1 - x``.

A natural-shift stand-in for effective robustness (Taori et al., 2020, "Measuring Robustness to
Natural Distribution Shifts in Image Classification"): digits and objects keep their shape while
every intensity flips. ``severity`` in 1..5 blends towards the full inversion
(``x -> (1 - a) x + a (1 - x)`` with ``a = severity / 5``); severity 5 is the plain inversion.

Input/output: ``float32 N×C×H×W`` in [0,1]; deterministic (the seed is unused).
"""
from __future__ import annotations

from pydantic import Field

from dreamset import register
from dreamset.contracts.interfaces import Shift
from dreamset.plugins.shifts import SeverityOptions


class InvertOptions(SeverityOptions):
    """Default severity 5: the plain inversion."""

    severity: int = Field(default=5, ge=1, le=5, description="1..5; 5 = full inversion")


@register(description="photometric inversion 1 - x")
class InvertShift(Shift):
    """Photometric inversion, blended by severity."""

    key = "shift:invert"

    Options = InvertOptions

    def apply(self, images, seed: int):
        amount = self.options.severity / 5.0
        return ((1.0 - amount) * images + amount * (1.0 - images)).clamp(0.0, 1.0)
