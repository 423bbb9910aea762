"""``sampler:confidence`` — keep the top ``fraction`` of each class by the reference classifier's
confidence in the generated label.

The filter DM-Improves-AT applies to its generated CIFAR sets (Wang et al., 2023, "Better Diffusion
Models Further Improve Adversarial Training", arXiv:2302.04638: top 20% per class by a pre-trained classifier's score).
The score of image ``i`` is ``p(y_i | x_i)`` under the run's real-trained reference classifier
(``services.reference.predict``: softmax ``float32 N×K``); ties break by store index. Per class, exactly
``round(fraction · n_c)`` (at least one) images are kept. Scores of all images are recorded.
"""
from __future__ import annotations

from pydantic import Field

from dreamset import Options, register
from dreamset.contracts.interfaces import Sampler, Selection


class ConfidenceOptions(Options):
    fraction: float = Field(default=0.2, gt=0, le=1, description="fraction kept per class")


def top_per_class(labels, scores, fraction: float, num_classes: int):
    """Sorted ``int64`` indices: per class, the ``round(fraction · n_c)`` (at least one) highest
    ``scores``, ties broken by index."""
    import numpy as np

    chosen = []
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        if len(members) == 0:
            continue
        keep = max(1, int(round(fraction * len(members))))
        order = np.lexsort((members, -scores[members]))  # highest score first, then index
        chosen.append(members[order[:keep]])
    return np.sort(np.concatenate(chosen)).astype(np.int64) if chosen else np.zeros(0, np.int64)


@register(description="top fraction per class by classifier confidence")
class ConfidenceSampler(Sampler):
    """Top-``fraction`` per class by classifier confidence in the intended label."""

    key = "sampler:confidence"

    Options = ConfidenceOptions

    def select(self, synthetic, real, services, seed: int) -> Selection:
        import numpy as np

        probabilities = services.reference.predict(synthetic).numpy()
        labels = synthetic.labels.numpy()
        scores = probabilities[np.arange(len(labels)), labels]
        indices = top_per_class(labels, scores, self.options.fraction, len(synthetic.class_names))
        return Selection(indices=indices, scores=scores, info={"mean_kept_confidence": float(scores[indices].mean()) if len(indices) else None})
