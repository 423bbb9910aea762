"""Built-in mixers, one per module. The options the two compositing mixers share live here once."""
from __future__ import annotations

from pydantic import Field

from dreamset import Options


class CompositingOptions(Options):
    """Where objects come from, what they are pasted on, and how they are placed
    (see :mod:`dreamset.plugins.mixers.compositing`)."""

    backgrounds: str = Field(default="procedural", description="plain | procedural | natural | folder:PATH")
    n_backgrounds: int = Field(default=200, ge=1, le=10_000_000, description="size of the background bank")
    background_min: float = Field(default=0.0, ge=0, le=1,
                                  description="the bank's intensities are mapped linearly from [0,1] into [background_min, background_max]")
    background_max: float = Field(default=1.0, ge=0, le=1,
                                  description="e.g. 0.4: dark textures under a bright glyph (MNIST's polarity: white ink on black)")
    mask_threshold: float = Field(default=0.2, gt=0, lt=1, description="object mask: |x - border median| > threshold")
    scale_min: float = Field(default=0.7, gt=0, le=4)
    scale_max: float = Field(default=1.0, gt=0, le=4)
    rotation: float = Field(default=15.0, ge=0, le=180, description="degrees")
    translate: float = Field(default=0.15, ge=0, le=1, description="fraction of the image size")
    flip: float = Field(default=0.0, ge=0, le=1, description="probability of a horizontal flip")
    brightness: float = Field(default=0.2, ge=0, lt=1)
    seed: int = Field(default=0, ge=0, description="seed of the background bank")

    def placement(self):
        from dreamset.contracts.errors import BadInputError
        from dreamset.plugins.mixers.compositing import Placement

        if self.scale_min > self.scale_max:
            raise BadInputError("scale_min, scale_max: scale_min must be <= scale_max")
        if self.background_min > self.background_max:
            raise BadInputError("background_min, background_max: background_min must be <= background_max")
        return Placement(scale=(self.scale_min, self.scale_max), rotation=self.rotation,
                         translate=self.translate, flip=self.flip, brightness=self.brightness)


def object_source(real, synthetic):
    """The objects a compositing mixer pastes: the synthetic set, else the real one."""
    source = synthetic if synthetic is not None and len(synthetic) else real
    if source is None or len(source) == 0:
        from dreamset.contracts.errors import BadInputError

        raise BadInputError("compositing mixer: no objects (neither synthetic nor real images)")
    return source


def object_composition(real, synthetic) -> tuple[float, float]:
    """``Mixer.composition`` of a compositing mixer: every image is an object from
    :func:`object_source` (synthetic when there is any) pasted on a background."""
    return (0.0, 1.0) if object_source(real, synthetic) is synthetic else (1.0, 0.0)


def compositing_inputs(mixer, real, synthetic):
    """``(fetch, labels, backgrounds, placement)`` for a compositing mixer: ``fetch(indices)`` reads
    those objects from their source and returns ``(images float32 B×C×H×W in [0,1], masks B×1×H×W)``;
    ``labels`` are all the objects' labels (``int64 N``), then the background bank and the placement
    ranges. Objects are read batch by batch (a store stays on disk: memory does not grow with the
    number of objects, ``benchmarks/compositing_memory.py``); the bank (``n_backgrounds`` images,
    capped by :func:`dreamset.plugins.mixers.backgrounds.background_bank`) and the labels are built on the first
    epoch and kept on the mixer for as long as the same object source comes back (the trainer calls
    ``batches`` once per epoch). The returned tensors are read-only by contract."""
    objects = object_source(real, synthetic)
    cached = getattr(mixer, "_compositing_inputs", None)
    if cached is not None and cached[0] is objects:
        return cached[1]
    from dreamset.plugins.mixers.backgrounds import background_bank
    from dreamset.toolkit.masks import object_masks

    o = mixer.options

    def fetch(indices):
        images, _ = objects.get(indices)
        return images, object_masks(images, o.mask_threshold)

    placement = o.placement()  # checks the options' ranges before the bank is built
    bank = background_bank(o.backgrounds, o.n_backgrounds, objects.image_shape, o.seed)
    if (o.background_min, o.background_max) != (0.0, 1.0):
        bank = o.background_min + (o.background_max - o.background_min) * bank
    inputs = (fetch, objects.labels, bank, placement)
    mixer._compositing_inputs = (objects, inputs)
    return inputs


def epoch_generator(seed: int, epoch: int):
    """The ``torch.Generator`` every built-in mixer draws an epoch from: a function of ``(seed, epoch)``."""
    import torch

    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
