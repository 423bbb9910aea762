"""``attacker:fgsm`` — the fast gradient sign method (Goodfellow, Shlens & Szegedy, 2015, "Explaining
and Harnessing Adversarial Examples", arXiv:1412.6572), L∞, backed by torchattacks ``FGSM``.

One step of size ``eps`` along the sign of the input gradient of the cross-entropy loss, clamped to
[0,1]: ``x_adv = clamp(x + eps·sign(∇ₓ CE(f(x), y)), 0, 1)`` (towards a target class, minus the
gradient, when ``targeted``). Input/output: ``float32 N×C×H×W`` in [0,1]; ``eps`` in pixel units of
[0,1]; ``‖x_adv − x‖∞ ≤ eps``. Cheap and weak: a baseline, and the fast adversarial-training attack
of Goodfellow et al. (see ``attacker:fgsm-rs`` for the variant that does not overfit).
"""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from dreamset import Options, register
from dreamset.toolkit.attacking import TorchattacksAttacker
from dreamset.contracts.options import FractionFloat


class FGSMOptions(Options):
    eps: FractionFloat = Field(default=8 / 255, gt=0, le=1, description="L-inf radius = step size (pixel units of [0,1])")
    targeted: Literal[False, "random", "least-likely"] = Field(
        default=False, description="untargeted, or towards a random / the least-likely other class")


@register(description="FGSM, L-inf (Goodfellow et al. 2015)")
class FGSMAttacker(TorchattacksAttacker):
    """Single-step L∞ attack: ``x + eps·sign(∇)``, clamped to [0,1]."""

    key = "attacker:fgsm"

    Options = FGSMOptions

    single_step: ClassVar[bool] = True

    def make(self, model):
        import torchattacks

        return torchattacks.FGSM(model, eps=self.options.eps)
