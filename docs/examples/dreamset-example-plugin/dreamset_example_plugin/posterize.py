"""``shift:posterize`` — the worked Shift example (docs/kinds/shift.md).

Card
----
* Shift: colour quantisation to ``2**bits`` levels per channel (the "posterize" corruption of
  image-augmentation libraries), a photometric shift that keeps shapes and edges.
* Shapes: ``apply(images float32 N×C×H×W in [0,1], seed)`` -> same shape and dtype, in [0,1].
* Determinism: no randomness at all (``seed`` is unused), so trivially a function of
  ``(images, seed, options)``. ``label`` is ``posterize@<bits>`` in reports.
* Defaults: ``bits=1`` (two levels).

Example::

    data: {dataset: digits, shifts: [{key: posterize, options: {bits: 2}}]}
"""
from __future__ import annotations

from pydantic import Field

import dreamset
from dreamset.contracts.interfaces import Shift


class PosterizeOptions(dreamset.Options):
    bits: int = Field(default=1, ge=1, le=7, description="bits per channel kept (2**bits levels)")


@dreamset.register
class PosterizeShift(Shift):
    """Quantise every channel to 2**bits levels."""

    key = "shift:posterize"
    Options = PosterizeOptions

    @property
    def label(self):
        return f"posterize@{self.options.bits}"

    def apply(self, images, seed):
        levels = 2 ** self.options.bits - 1
        return (images * levels).round().div(levels).clamp(0, 1).to(images.dtype)
