"""``attacker:pgd`` — projected gradient descent (Madry et al., 2018, "Towards Deep Learning Models
Resistant to Adversarial Attacks", arXiv:1706.06083), L∞ or L2, backed by torchattacks ``PGD`` / ``PGDL2``.

``steps`` iterations of size ``alpha`` (default ``2.5·eps/steps``, Madry et al.'s choice) from a random
start in the ``eps``-ball, each projected back onto the ball and onto [0,1]. The standard attack for
PGD adversarial training and for robust evaluation (PGD-20, with ``restarts`` keeping the worst case).
Input/output: ``float32 N×C×H×W`` in [0,1], ``eps`` in pixel units of [0,1]; ``‖x_adv − x‖ ≤ eps``.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from dreamset import register
from dreamset.toolkit.attacking import NormBallOptions, TorchattacksAttacker, check_attack_inputs, preserved_modes
from dreamset.contracts.lazy import lazy_module
from dreamset.contracts.options import FractionFloat

torch = lazy_module("torch")


class PGDOptions(NormBallOptions):
    alpha: FractionFloat | None = Field(default=None, gt=0, le=64, description="step size (default 2.5·eps/steps)")
    steps: int = Field(default=10, ge=1, le=100_000)
    random_start: bool = True
    restarts: int = Field(default=1, ge=1, le=1000, description="keep the worst case over restarts (evaluation)")
    targeted: Literal[False, "random", "least-likely"] = False


@register(description="PGD, L-inf or L2 (Madry et al. 2018)")
class PGDAttacker(TorchattacksAttacker):
    """PGD in the L∞ or L2 ball, with optional restarts."""

    key = "attacker:pgd"

    Options = PGDOptions

    def make(self, model):
        import torchattacks

        o = self.options
        alpha = o.alpha if o.alpha is not None else 2.5 * o.eps / o.steps
        cls = torchattacks.PGD if o.norm == "linf" else torchattacks.PGDL2
        return cls(model, eps=o.eps, alpha=alpha, steps=o.steps, random_start=o.random_start)

    def attack(self, model, x, y):
        if self.options.restarts == 1 or x.shape[0] == 0 or self.options.targeted:
            return super().attack(model, x, y)
        check_attack_inputs(x, y)
        # all restarts inside one guard: the random stream moves on between them (each its own random
        # start), and the caller's random state is restored once at the end
        with self.guarded(model, x):
            attack = self.prepared(model, x)
            best = self.run(attack, x, y)
            with preserved_modes(model), torch.no_grad():
                model.eval()
                fooled = model(best).argmax(1) != y
            for _ in range(self.options.restarts - 1):
                if bool(fooled.all()):
                    break
                candidate = self.run(attack, x, y)
                with preserved_modes(model), torch.no_grad():
                    model.eval()
                    new = model(candidate).argmax(1) != y
                take = new & ~fooled
                best[take] = candidate[take]
                fooled |= new
        return best
