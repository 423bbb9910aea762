"""``objective:mart`` — MART, Misclassification Aware adveRsarial Training (Yisen Wang, Difan Zou,
Jinfeng Yi, James Bailey, Xingjun Ma & Quanquan Gu, ICLR 2020, "Improving Adversarial Robustness
Requires Revisiting Misclassified Examples", https://openreview.net/forum?id=rklOg6EFwS; no arXiv
version).

Card
----
* Method: adversarial training that weighs each example by how badly the clean model gets it::

      loss = BCE(p(x_adv), y) + β · mean_i[ KL(p(x_i) ‖ p(x_adv,i)) · (1 − p_y(x_i)) ]
      BCE(p, y) = −log p_y − log(1 − max_{k≠y} p_k)

  ``p = softmax(f(·))``. The boosted cross-entropy (BCE) also pushes down the strongest wrong
  class; the KL term, as in TRADES, ties the adversarial prediction to the clean one, but is weighted
  by ``1 − p_y(x)``, so misclassified clean examples count most. Written after the authors' reference
  implementation (the same ``1e-12`` / ``1.0001`` guards inside the logs).
* Inner maximisation: ``train.attacker`` — the paper uses ``attacker:pgd`` (CE, L∞, ``eps = 8/255``,
  10 steps of ``2/255``). ``train.label_smoothing`` applies to the ``−log p_y`` term only.
* Shapes: ``x`` ``float32 B×C×H×W`` in [0,1], ``y`` ``int64 B`` -> a 0-dim ``float32`` loss.
* Cost: the attacker's passes plus two forward passes (``f(x)``, ``f(x_adv)``).
* Options: ``beta`` (the paper's λ; default 6.0, as in the reference code).
* Labels: hard only (``soft_labels = False``): a recipe that gives it CutMix/MixUp (``augment.batch``)
  is refused when validated, naming the field.

Example::

    train:
      attacker: {key: pgd, options: {eps: 0.0314, steps: 10, alpha: 0.00784}}
      objective: {key: mart, options: {beta: 6.0}}
"""
from __future__ import annotations

from pydantic import Field

from dreamset import Options, register
from dreamset.contracts.interfaces import Objective


class MartOptions(Options):
    beta: float = Field(default=6.0, gt=0, le=1000, description="weight β (the paper's λ) of the misclassification-aware KL term")


@register(description="MART: misclassification-aware adversarial training (Wang et al. 2020)")
class MartObjective(Objective):
    """Boosted CE on adversarial images + β·KL weighted by (1 − clean confidence) (Wang et al. 2020)."""

    key = "objective:mart"
    #: the boosted CE picks the strongest *wrong* class of each example: it needs one true class
    soft_labels = False
    Options = MartOptions

    def loss(self, model, x, y, *, attacker=None, mask=None, label_smoothing=0.0):
        import torch
        import torch.nn.functional as F

        if y.is_floating_point():
            from dreamset.contracts.errors import BadInputError

            raise BadInputError("augment.batch: objective:mart needs hard int64 labels; CutMix/MixUp make soft ones "
                                "(float32 B×K): drop the batch augmentation or choose objective pgd-at or trades")
        x_adv = self.perturb(attacker, model, x, y, mask)
        logits = model(x)
        logits_adv = model(x_adv)
        probs_adv = F.softmax(logits_adv, dim=1)
        top2 = torch.topk(probs_adv, 2, dim=1).indices
        strongest_wrong = torch.where(top2[:, 0] == y, top2[:, 1], top2[:, 0])
        bce = (F.cross_entropy(logits_adv, y, label_smoothing=label_smoothing)
               + F.nll_loss(torch.log(1.0001 - probs_adv + 1e-12), strongest_wrong))
        probs = F.softmax(logits, dim=1)
        true_probs = probs.gather(1, y.unsqueeze(1)).squeeze(1)
        kl = F.kl_div(torch.log(probs_adv + 1e-12), probs, reduction="none").sum(dim=1)
        return bce + self.options.beta * (kl * (1.0000001 - true_probs)).mean()
