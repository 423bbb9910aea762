"""``objective:pgd-at`` — PGD adversarial training (Madry, Makelov, Schmidt, Tsipras & Vladu, 2018,
"Towards Deep Learning Models Resistant to Adversarial Attacks", arXiv:1706.06083).

Card
----
* Method: the saddle-point problem ``min_θ E max_{x'∈B(x,ε)} CE(f_θ(x'), y)``: the inner maximum is
  ``train.attacker`` (``attacker:pgd`` in the paper; ``attacker:fgsm-rs`` gives Wong et al. 2020's
  fast AT, arXiv:2001.03994), the outer step minimises ``loss = CE(f(x_adv), y)`` on the adversarial
  batch only. The threat model (norm, ``eps``) is the attacker's.
* Shapes: ``x`` ``float32 B×C×H×W`` in [0,1], ``y`` ``int64 B`` -> a 0-dim ``float32`` loss. A
  context ``mask`` from a compositing mixer is passed to attackers that declare ``takes_mask``.
* Cost: the attacker's passes (PGD-k: k forward+backward) plus one forward pass.
* Options: none (``train.label_smoothing`` applies to the cross-entropy).

Example::

    train:
      model: wide-resnet
      attacker: {key: pgd, options: {eps: 0.0314, steps: 10}}
      objective: pgd-at          # the default when train.attacker is not trades
"""
from __future__ import annotations

from dreamset import register
from dreamset.contracts.interfaces import Objective


@register(description="PGD adversarial training: CE on attacked images (Madry et al. 2018)")
class PGDATObjective(Objective):
    """Cross-entropy on the attacker's adversarial examples (Madry et al. 2018)."""

    key = "objective:pgd-at"

    def loss(self, model, x, y, *, attacker=None, mask=None, label_smoothing=0.0):
        import torch.nn.functional as F

        x_adv = self.perturb(attacker, model, x, y, mask)
        return F.cross_entropy(model(x_adv), y, label_smoothing=label_smoothing)
