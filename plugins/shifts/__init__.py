"""Built-in distribution shifts (``shift:*``), one per module.

They stand in for natural distribution shifts when measuring effective robustness (Taori et al., 2020)
and follow the severity convention of the ImageNet-C corruptions (Hendrycks & Dietterich, 2019):
``severity`` 1..5, each module documenting its parameter table. All map ``float32 N×C×H×W`` in [0,1]
to the same shape and range, deterministically given ``(images, seed, options)``.
"""
from __future__ import annotations

from pydantic import Field

from dreamset import Options


class SeverityOptions(Options):
    """The options every built-in shift shares."""

    severity: int = Field(default=3, ge=1, le=5, description="1 (mild) .. 5 (strong)")


def severity_value(table: tuple[float, ...], severity: int) -> float:
    """The parameter of ``severity`` (1-based) in a 5-entry table."""
    return table[severity - 1]
