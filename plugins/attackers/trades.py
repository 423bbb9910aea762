"""``attacker:trades`` — the TRADES inner maximisation (Zhang, Yu, Jiao, Xing, El Ghaoui & Jordan,
2019, "Theoretically Principled Trade-off between Robustness and Accuracy", arXiv:1901.08573), L∞, backed by
torchattacks ``TPGD``.

Maximises ``KL(f(x) ‖ f(x'))`` over the ``eps``-ball: start at ``x + 0.001·N(0, I)`` (clamped to
[0,1]), then ``steps`` signed-gradient steps of size ``alpha``, each projected onto the ball and onto
[0,1]. The labels ``y`` are ignored (the attack moves away from the model's own prediction). Training
with this attacker switches the trainer to the TRADES loss ``CE(f(x), y) + β·KL(f(x) ‖ f(x_adv))``
(``dreamset.training.trainer``; β is ``train.trades_beta``). Defaults follow the paper's CIFAR-10 setting
(``eps = 8/255``, 10 steps, ``alpha = 2/255``). Input/output: ``float32 N×C×H×W`` in [0,1], ``eps``
in pixel units of [0,1]; ``‖x_adv − x‖∞ ≤ eps``.
"""
from __future__ import annotations

from pydantic import Field

from dreamset import Options, register
from dreamset.toolkit.attacking import TorchattacksAttacker, preserved_modes
from dreamset.contracts.options import FractionFloat


class TradesOptions(Options):
    eps: FractionFloat = Field(default=8 / 255, gt=0, le=1, description="L-inf radius (pixel units of [0,1])")
    alpha: FractionFloat = Field(default=2 / 255, gt=0, le=1, description="step size")
    steps: int = Field(default=10, ge=1, le=100_000, description="number of KL ascent steps")


@register(description="TRADES KL attack, L-inf (Zhang et al. 2019); trains with the TRADES loss")
class TradesAttacker(TorchattacksAttacker):
    """KL-divergence PGD (labels ignored); selects the TRADES loss when used for training."""

    key = "attacker:trades"

    Options = TradesOptions

    def objective(self, model, x, x_adv, y) -> float:
        """What this attack maximises: ``KL(f(x) ‖ f(x_adv))``, batch mean, model in eval mode (its
        modes are restored). The conformance suite checks it against a random corner of the ball,
        since a KL ascent need not raise the cross-entropy."""
        import torch
        import torch.nn.functional as F

        with preserved_modes(model), torch.no_grad():
            model.eval()
            return float(F.kl_div(F.log_softmax(model(x_adv), dim=1), F.softmax(model(x), dim=1), reduction="batchmean"))

    def make(self, model):
        import torchattacks

        o = self.options
        return torchattacks.TPGD(model, eps=o.eps, alpha=o.alpha, steps=o.steps)
