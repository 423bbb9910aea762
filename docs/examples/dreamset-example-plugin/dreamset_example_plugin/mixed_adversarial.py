"""``objective:mixed-adversarial`` — the worked Objective example (docs/kinds/objective.md): the
adversarial objective of Goodfellow, Shlens & Szegedy, 2015, "Explaining and Harnessing Adversarial
Examples" (arXiv:1412.6572), section 5.

Card
----
* Method: ``loss = α·CE(f(x), y) + (1 − α)·CE(f(x_adv), y)`` — clean and adversarial examples in
  the same step (the paper: α = 0.5 with FGSM, ``attacker:fgsm``). ``x_adv`` comes from
  ``train.attacker``; the context mask is passed on through ``Objective.perturb``.
* Shapes: ``x`` ``float32 B×C×H×W`` in [0,1], ``y`` ``int64 B`` -> a 0-dim ``float32`` loss;
  ``label_smoothing`` applies to both cross-entropies.
* Determinism: the only random draws are the attacker's, from torch's global generator.
* Defaults: ``alpha=0.5``.

Example::

    train:
      attacker: {key: fgsm, options: {eps: 0.1}}
      objective: {key: mixed-adversarial, options: {alpha: 0.5}}
"""
from __future__ import annotations

from pydantic import Field

import dreamset
from dreamset.contracts.interfaces import Objective


class MixedAdversarialOptions(dreamset.Options):
    alpha: float = Field(default=0.5, ge=0, le=1, description="weight of the clean cross-entropy")


@dreamset.register
class MixedAdversarialObjective(Objective):
    """α·CE(clean) + (1 − α)·CE(adversarial) (Goodfellow et al. 2015)."""

    key = "objective:mixed-adversarial"
    Options = MixedAdversarialOptions

    def loss(self, model, x, y, *, attacker=None, mask=None, label_smoothing=0.0):
        import torch.nn.functional as F

        x_adv = self.perturb(attacker, model, x, y, mask)
        alpha = self.options.alpha
        clean = F.cross_entropy(model(x), y, label_smoothing=label_smoothing)
        adversarial = F.cross_entropy(model(x_adv), y, label_smoothing=label_smoothing)
        return alpha * clean + (1 - alpha) * adversarial
