"""``mixer:concat`` — the worked Mixer example (docs/kinds/mixer.md).

Card
----
* Method: one epoch is one pass over the union of the real and the selected synthetic images, in
  a seeded random order, so each batch holds real and synthetic images in the proportion of the
  two sets' sizes.
* Shapes: ``batches(real, synthetic, batch_size, epoch, seed)`` yields ``(x float32 B×C×H×W in
  [0,1], y int64 B)``; ``ceil((n_real + n_synthetic) / batch_size)`` batches (the last may be short).
* Determinism: the order is drawn from a generator seeded with ``(seed, epoch)``.
* Defaults: no options.

Example::

    arms:
      real+synthetic: {real: true, synthetic: true, mixer: concat}
"""
from __future__ import annotations

import math

import dreamset
from dreamset.contracts.interfaces import Mixer


@dreamset.register
class ConcatMixer(Mixer):
    """Shuffle the union of the real and synthetic sets every epoch."""

    key = "mixer:concat"

    @staticmethod
    def _sizes(real, synthetic):
        return (len(real) if real is not None else 0), (len(synthetic) if synthetic is not None else 0)

    def steps_per_epoch(self, real, synthetic, batch_size):
        return math.ceil(sum(self._sizes(real, synthetic)) / batch_size)

    def composition(self, real, synthetic, batch_size):
        n_real, n_synthetic = self._sizes(real, synthetic)
        total = n_real + n_synthetic
        return (n_real / total, n_synthetic / total) if total else None

    def batches(self, real, synthetic, batch_size, epoch, seed):
        import torch

        n_real, n_synthetic = self._sizes(real, synthetic)
        generator = torch.Generator().manual_seed(int(seed) * 100_003 + int(epoch))
        order = torch.randperm(n_real + n_synthetic, generator=generator)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            parts = [(real, rows[rows < n_real]), (synthetic, rows[rows >= n_real] - n_real)]
            xs, ys = zip(*(source.get(index) for source, index in parts if len(index)))
            yield torch.cat(xs), torch.cat(ys)
