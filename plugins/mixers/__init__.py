"""Built-in mixers, one per module. The options the two compositing mixers share live here once."""
from __future__ import annotations

from pydantic import Field

from dreamset import Options


class CompositingOptions(Options):
    """Where objects come from, what they are pasted on, and how they are placed
    (see :mod:`dreamset.compositing`)."""

    backgrounds: str = Field(default="procedural", description="plain | procedural | natural | folder:PATH")
    n_backgrounds: int = Field(default=200, ge=1, le=10_000_000, description="size of the background bank")
    mask_threshold: float = Field(default=0.2, gt=0, lt=1, description="object mask: |x - border median| > threshold")
    scale_min: float = Field(default=0.7, gt=0, le=4)
    scale_max: float = Field(default=1.0, gt=0, le=4)
    rotation: float = Field(default=15.0, ge=0, le=180, description="degrees")
    translate: float = Field(default=0.15, ge=0, le=1, description="fraction of the image size")
    flip: float = Field(default=0.0, ge=0, le=1, description="probability of a horizontal flip")
    brightness: float = Field(default=0.2, ge=0, lt=1)
    seed: int = Field(default=0, ge=0, description="seed of the background bank")

    def placement(self):
        from dreamset.compositing import Placement

        if self.scale_min > self.scale_max:
            from dreamset.errors import BadInputError

            raise BadInputError("scale_min, scale_max: scale_min must be <= scale_max")
        return Placement(scale=(self.scale_min, self.scale_max), rotation=self.rotation,
                         translate=self.translate, flip=self.flip, brightness=self.brightness)


def object_source(real, synthetic):
    """The objects a compositing mixer pastes: the synthetic set, else the real one."""
    source = synthetic if synthetic is not None and len(synthetic) else real
    if source is None or len(source) == 0:
        from dreamset.errors import BadInputError

        raise BadInputError("compositing mixer: no objects (neither synthetic nor real images)")
    return source
