"""``objective:standard`` — empirical risk minimisation: the cross-entropy of the clean batch.

Card
----
* Method: ``loss = CE(f(x), y)`` with ``train.label_smoothing`` (Szegedy et al. 2016,
  arXiv:1512.00567). No attacker (``uses_attacker = False``): with ``train.attacker: null`` a
  recipe trains with this objective; an arm with ``standard: true`` always does.
* Shapes: ``x`` ``float32 B×C×H×W`` in [0,1], ``y`` ``int64 B`` -> a 0-dim ``float32`` loss.
* Cost: one forward pass per optimizer step.
* Options: none.

Example::

    train:
      model: small-cnn
      objective: standard        # or leave train.objective and train.attacker out
"""
from __future__ import annotations

from dreamset import register
from dreamset.contracts.interfaces import Objective


@register(description="cross-entropy on clean images (standard training)")
class StandardObjective(Objective):
    """Cross-entropy on the clean batch (standard training)."""

    key = "objective:standard"
    uses_attacker = False

    def loss(self, model, x, y, *, attacker=None, mask=None, label_smoothing=0.0):
        import torch.nn.functional as F

        return F.cross_entropy(model(x), y, label_smoothing=label_smoothing)
