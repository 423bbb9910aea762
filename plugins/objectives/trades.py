"""``objective:trades`` — TRADES (Zhang, Yu, Jiao, Xing, El Ghaoui & Jordan, 2019, "Theoretically
Principled Trade-off between Robustness and Accuracy", arXiv:1901.08573).

Card
----
* Method: ``loss = CE(f(x), y) + β·KL(f(x) ‖ f(x_adv))``: the natural error plus a boundary term
  that pulls the prediction on the adversarial example towards the clean one; ``β`` trades accuracy
  for robustness (the paper: 1/λ, 6 on CIFAR-10). ``x_adv`` comes from ``train.attacker`` —
  ``attacker:trades`` (the paper's KL ascent) for the method as published; any attacker works.
* Threat model: the attacker's (``attacker:trades``: L∞ ball of radius ``eps``).
* Shapes: ``x`` ``float32 B×C×H×W`` in [0,1], ``y`` ``int64 B`` -> a 0-dim ``float32`` loss.
  ``train.label_smoothing`` applies to the CE term only.
* Cost: the attacker's passes plus two forward passes (``f(x)``, ``f(x_adv)``).
* Options: ``beta`` (default 6.0, the paper's CIFAR-10 setting).
* Migration: ``train.attacker: trades`` without ``train.objective`` selects this objective with
  ``beta = train.trades_beta`` (docs/migration.md).

Example::

    train:
      attacker: {key: trades, options: {eps: 0.0314, steps: 10}}
      objective: {key: trades, options: {beta: 6.0}}
"""
from __future__ import annotations

from pydantic import Field

from dreamset import Options, register
from dreamset.contracts.interfaces import Objective


class TradesOptions(Options):
    beta: float = Field(default=6.0, gt=0, le=1000, description="weight β of the KL robustness term")


@register(description="TRADES: CE + β·KL(clean ‖ adversarial) (Zhang et al. 2019)")
class TradesObjective(Objective):
    """CE on clean images + β·KL(f(x) ‖ f(x_adv)) (Zhang et al. 2019)."""

    key = "objective:trades"
    Options = TradesOptions

    def loss(self, model, x, y, *, attacker=None, mask=None, label_smoothing=0.0):
        import torch.nn.functional as F

        x_adv = self.perturb(attacker, model, x, y, mask)
        logits = model(x)
        logits_adv = model(x_adv)
        kl = F.kl_div(F.log_softmax(logits_adv, dim=1), F.softmax(logits, dim=1), reduction="batchmean")
        return F.cross_entropy(logits, y, label_smoothing=label_smoothing) + self.options.beta * kl
