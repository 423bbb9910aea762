"""``sampler:per-class-cap`` — the worked Sampler example (docs/kinds/sampler.md).

Card
----
* Method: keep at most ``per_class`` synthetic samples of each class, chosen uniformly at random
  (seeded): a class-balancing filter for generators whose classes come out unevenly.
* Shapes: ``select(synthetic, real, services, seed)`` -> ``Selection`` with sorted unique ``int64``
  indices into ``synthetic``; no scores; ``info`` counts the kept samples per class.
* Determinism: a function of ``(synthetic.labels, seed, options)``; ``services`` is not used.
* Defaults: ``per_class=100``.

Example::

    arms:
      real+synthetic: {real: true, synthetic: true, sampler: {key: per-class-cap, options: {per_class: 500}}}
"""
from __future__ import annotations

from pydantic import Field

import dreamset
from dreamset.contracts.interfaces import Sampler, Selection


class PerClassCapOptions(dreamset.Options):
    per_class: int = Field(default=100, ge=1, le=10**9, description="most samples kept per class")


@dreamset.register
class PerClassCapSampler(Sampler):
    """At most per_class random samples of every class (seeded)."""

    key = "sampler:per-class-cap"
    Options = PerClassCapOptions

    def select(self, synthetic, real, services, seed):
        import numpy as np

        labels = synthetic.labels.numpy()
        rng = np.random.default_rng(seed)
        kept, counts = [], {}
        for label in np.unique(labels):
            rows = np.flatnonzero(labels == label)
            chosen = rng.permutation(rows)[: self.options.per_class]
            kept.append(chosen)
            counts[synthetic.class_names[int(label)]] = int(len(chosen))
        indices = np.sort(np.concatenate(kept)) if kept else np.zeros(0, dtype=np.int64)
        return Selection(indices=indices.astype(np.int64), info={"per_class": counts})
