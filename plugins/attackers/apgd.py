"""``attacker:apgd`` — Auto-PGD (Croce & Hein, 2020, "Reliable evaluation of adversarial robustness
with an ensemble of diverse parameter-free attacks", arXiv:2003.01690), L∞ or L2, backed by torchattacks ``APGD``.

PGD without a step-size to tune: the step starts at ``2·eps`` and is halved at checkpoints where the
loss stopped improving, with a momentum term; the best point found is kept. ``loss`` is the
cross-entropy (``ce``) or the scale-invariant difference-of-logits-ratio (``dlr``, needs at least 3
classes); ``restarts`` re-runs the attack from new random starts on the points not yet fooled.
Defaults follow the paper (100 iterations, one restart). The random start is a deterministic
function of ``seed``; torchattacks reseeds torch's global generator for that, so the global RNG
state is saved and restored around the attack (an evaluation must not reset the training RNG).
Input/output: ``float32 N×C×H×W`` in [0,1], ``eps`` in pixel units of [0,1]; ``‖x_adv − x‖ ≤ eps``.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from dreamset import register
from dreamset.toolkit.attacking import NormBallOptions, TorchattacksAttacker, check_attack_inputs, preserved_modes
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.lazy import lazy_module

torch = lazy_module("torch")


class APGDOptions(NormBallOptions):
    steps: int = Field(default=100, ge=1, le=100_000, description="iterations per restart")
    loss: Literal["ce", "dlr"] = Field(default="ce", description="cross-entropy or DLR (>= 3 classes)")
    restarts: int = Field(default=1, ge=1, le=1000, description="random restarts on the points not yet fooled")
    seed: int = Field(default=0, ge=0, description="seed of the random starts")


@register(description="Auto-PGD, L-inf or L2 (Croce & Hein 2020)")
class APGDAttacker(TorchattacksAttacker):
    """Auto-PGD with the CE or DLR loss, L∞ or L2."""

    key = "attacker:apgd"

    Options = APGDOptions
    #: the paper's 100 iterations are not needed to check the contract on the suite's tiny model
    conformance_options = {"steps": 10}

    def make(self, model):
        import torchattacks

        o = self.options
        return torchattacks.APGD(model, norm="Linf" if o.norm == "linf" else "L2", eps=o.eps, steps=o.steps,
                                 n_restarts=o.restarts, seed=o.seed, loss=o.loss)

    def attack(self, model, x, y):
        check_attack_inputs(x, y)
        if self.options.loss == "dlr" and x.shape[0]:
            with preserved_modes(model), torch.no_grad():
                model.eval()
                classes = model(x[:1]).shape[1]
            if classes < 3:
                raise BadInputError(f"loss: the DLR loss needs at least 3 classes, the model has {classes}")
        return super().attack(model, x, y)
