"""``mixer:cut-paste`` — paste every object onto random backgrounds (Dwibedi et al., 2017, "Cut,
Paste and Learn: Surprisingly Easy Synthesis for Instance Detection").

Objects are the arm's synthetic images (else its real ones); their masks come from a threshold on the
difference to the image's border (white-on-black glyphs, objects on plain backdrops). Each epoch shows
every object ``repeats`` times, each time on a background drawn uniformly from the bank with a random
scale/rotation/translation/flip/brightness — vectorised over whole batches (:mod:`dreamset.plugins.mixers.compositing`).
With ``backgrounds: plain`` this is the naive baseline of Jin & Rinard (arXiv:2005.14707).
Objects are read from their source batch by batch (never all in memory); the epoch's plan holds
8 bytes per placement (``N × repeats`` int64 indices).
Yields ``(float32 B×C×H×W in [0,1], int64 B, context mask float32 B×1×H×W)`` — the mask is 1 where
the background shows, for ``attacker:masked-pgd``'s refinement; deterministic in ``(seed, epoch)``.
"""
from __future__ import annotations

import math

from pydantic import Field

from dreamset import register
from dreamset.contracts.interfaces import Mixer
from dreamset.plugins.mixers import CompositingOptions, compositing_inputs, epoch_generator, object_composition, object_source


class CutPasteOptions(CompositingOptions):
    repeats: int = Field(default=100, ge=1, le=1_000_000, description="times each object is shown per epoch")


@register(description="objects pasted on random backgrounds")
class CutPasteMixer(Mixer):
    """Objects on uniformly random backgrounds."""

    key = "mixer:cut-paste"

    Options = CutPasteOptions
    #: the conformance suite's toy sources need 2 placements per object, not 100
    conformance_options = {"repeats": 2}

    def steps_per_epoch(self, real, synthetic, batch_size: int) -> int:
        return math.ceil(len(object_source(real, synthetic)) * self.options.repeats / batch_size)

    def composition(self, real, synthetic, batch_size: int) -> tuple[float, float]:
        return object_composition(real, synthetic)

    def batches(self, real, synthetic, batch_size: int, epoch: int, seed: int):
        import torch

        from dreamset.plugins.mixers.compositing import composite

        fetch, labels, bank, placement = compositing_inputs(self, real, synthetic)
        generator = epoch_generator(seed, epoch)
        order = torch.randperm(len(labels) * self.options.repeats, generator=generator) % len(labels)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            bg = bank[torch.randint(len(bank), (len(idx),), generator=generator)]
            x, placed = composite(*fetch(idx), bg, generator, placement)
            yield x, labels[idx], 1 - placed
