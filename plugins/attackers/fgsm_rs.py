"""``attacker:fgsm-rs`` — FGSM with a random start (Wong, Rice & Kolter, 2020, "Fast is better than
free: Revisiting adversarial training", arXiv:2001.03994), L∞, backed by torchattacks ``FFGSM``.

The paper's attack (its Algorithm 3): ``δ ~ U(−eps, eps)`` (then ``x + δ`` clamped to [0,1]), one
step ``δ ← δ + alpha·sign(∇_δ CE(f(x+δ), y))``, projection onto the ``eps``-ball and onto [0,1].
torchattacks ``FFGSM`` implements exactly these steps, so it is used as is; only its default step
size differs (a fixed ``10/255``): here ``alpha`` defaults to the paper's ``1.25·eps`` (which is
``10/255`` at ``eps = 8/255``). Used for fast adversarial training. Input/output: ``float32
N×C×H×W`` in [0,1]; ``eps`` in pixel units of [0,1]; ``‖x_adv − x‖∞ ≤ eps``.
"""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from dreamset import Options, register
from dreamset.toolkit.attacking import TorchattacksAttacker
from dreamset.contracts.options import FractionFloat


class FGSMRandomStartOptions(Options):
    eps: FractionFloat = Field(default=8 / 255, gt=0, le=1, description="L-inf radius (pixel units of [0,1])")
    alpha: FractionFloat | None = Field(default=None, gt=0, le=2, description="step size (default 1.25·eps, Wong et al. 2020)")
    targeted: Literal[False, "random", "least-likely"] = Field(
        default=False, description="untargeted, or towards a random / the least-likely other class")


@register(description="FGSM with random start, L-inf (Wong et al. 2020)")
class FGSMRandomStartAttacker(TorchattacksAttacker):
    """Uniform random start in the L∞ ball, one signed-gradient step of ``alpha``, projection."""

    key = "attacker:fgsm-rs"

    Options = FGSMRandomStartOptions

    single_step: ClassVar[bool] = True

    def make(self, model):
        import torchattacks

        o = self.options
        alpha = o.alpha if o.alpha is not None else 1.25 * o.eps
        return torchattacks.FFGSM(model, eps=o.eps, alpha=alpha)
