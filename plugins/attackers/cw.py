"""``attacker:cw`` — the Carlini–Wagner L2 attack (Carlini & Wagner, 2017, "Towards Evaluating the
Robustness of Neural Networks", arXiv:1608.04644), backed by torchattacks ``CW``.

Minimises ``‖x' − x‖₂² + c·max(Z(x')_y − max_{i≠y} Z(x')_i, −kappa)`` over ``x' = ½(tanh(w) + 1)``
(always in [0,1]) with Adam (``steps`` iterations, learning rate ``lr``); per image it returns the
closest ``x'`` that is misclassified, or ``x`` itself when none was found. A minimum-norm attack: it
has no radius, so ``eps`` is ``None`` and the perturbation size is the result, not a constraint
(torchattacks does not implement the paper's binary search over ``c``; raise ``c`` for a stronger,
larger attack). torchattacks 3.5.1 computes the two logits of the margin as maxima over
``one_hot·Z`` and ``(1 − one_hot)·Z``, which reads a 0 for the masked-out entries, so with negative
logits the margin is wrong (with all logits negative the attack does nothing); :func:`cw_margin`
replaces it with the true ``Z_y`` and ``max_{i≠y} Z_i``. Used for evaluation. Input/output:
``float32 N×C×H×W`` in [0,1].
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from dreamset import Options, register
from dreamset.toolkit.attacking import TorchattacksAttacker
from dreamset.contracts.lazy import lazy_module

torch = lazy_module("torch")


class CWOptions(Options):
    c: float = Field(default=1.0, gt=0, le=1e6, description="weight of the misclassification term")
    kappa: float = Field(default=0.0, ge=0, le=1e6, description="confidence margin of the logit difference")
    steps: int = Field(default=50, ge=1, le=100_000, description="Adam iterations")
    lr: float = Field(default=0.01, gt=0, le=10, description="Adam learning rate (in tanh space)")
    targeted: Literal[False, "random", "least-likely"] = Field(
        default=False, description="untargeted, or towards a random / the least-likely other class")


def cw_margin(logits, labels, kappa: float, targeted: bool):
    """The paper's ``f``: ``max(Z_y − max_{i≠y} Z_i, −kappa)`` per image (``y`` the target class and
    the sign swapped when ``targeted``); ``logits`` ``N×K``, ``labels`` ``int64 N``."""
    own = logits.gather(1, labels[:, None])[:, 0]
    others = logits.masked_fill(torch.nn.functional.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
    margin = own - others.amax(dim=1)
    return (-margin if targeted else margin).clamp(min=-kappa)


@register(description="Carlini-Wagner L2 (Carlini & Wagner 2017)")
class CWAttacker(TorchattacksAttacker):
    """Minimum-L2 attack; no ``eps``."""

    key = "attacker:cw"

    Options = CWOptions

    def make(self, model):
        import torchattacks

        o = self.options
        attack = torchattacks.CW(model, c=o.c, kappa=o.kappa, steps=o.steps, lr=o.lr)
        attack.f = lambda logits, labels: cw_margin(logits, labels, attack.kappa, attack.targeted)
        return attack
