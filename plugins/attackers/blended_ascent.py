"""``attacker:blended-ascent`` — Jin & Rinard's local refinement: a few steps of gradient *ascent*
on the cross-entropy whose direction moves from the gradient's sign to the gradient itself, with
no projection (only a clamp to [0,1]).

Paper: Charles Jin and Martin Rinard, "Learning From Context-Agnostic Synthetic Data"
(arXiv:2005.14707; NeurIPS 2021 as "Towards Context-Agnostic Learning Using Synthetic Data"),
their "local refinement" of a training input. The schedule is read from their code
(github.com/charlesjin/synthetic_data at commit e757535, ``mnist/train.py`` ``create_inputs``),
rewritten here:

* for ``k = 0 .. steps−1``: ``g = ∇ₓ CE(f(x), y)`` (batch mean, model in eval mode),
  ``d = ((steps − k)·sign(g) + k·g / max|g|) / steps`` (``max|g|`` over the whole batch),
  ``x ← clamp(x + eps / (steps · shrink) · d, 0, 1)``;
* every pixel may move (there is no mask: the paper refines the whole superimposed input), by at most
  ``eps / shrink`` in all: with the paper's ``eps`` = 32/255, 8 steps and ``shrink`` = 2.5 that is
  12.8/255. :attr:`eps` (the threat-model radius the run checks) is that bound, ``eps / shrink``.

Input/output ``float32 N×C×H×W`` in [0,1], labels ``int64 N``; ``‖x_adv − x‖∞ ≤ eps / shrink``.
Cost: ``steps`` forward/backward passes. Deterministic (no random start). The model's train/eval
flags are restored.

Example (``train.attacker`` of a recipe)::

    attacker: {key: blended-ascent, options: {eps: 0.12549, steps: 8, shrink: 2.5}}
"""
from __future__ import annotations

from dreamset import Options, register
from dreamset.contracts.interfaces import Attacker
from dreamset.contracts.lazy import lazy_module
from dreamset.contracts.options import FractionFloat
from dreamset.toolkit.attacking import check_attack_inputs, preserved_modes
from pydantic import Field

torch = lazy_module("torch")


class BlendedAscentOptions(Options):
    eps: FractionFloat = Field(default=32 / 255, gt=0, le=1, description="the paper's eps (pixel units of [0,1]); "
                                                                         "the total movement is at most eps / shrink")
    steps: int = Field(default=8, ge=1, le=10_000, description="ascent steps")
    shrink: float = Field(default=2.5, ge=1, le=1000, description="each step is eps / (steps · shrink) at most")


@register(description="Jin & Rinard's local refinement: sign→gradient ascent, clamp only (arXiv:2005.14707)")
class BlendedAscentAttacker(Attacker):
    """Gradient ascent whose direction blends from sign(g) to g / max|g|; clamped, never projected."""

    key = "attacker:blended-ascent"

    Options = BlendedAscentOptions

    @property
    def eps(self) -> float:
        return float(self.options.eps) / self.options.shrink

    def attack(self, model, x, y):
        check_attack_inputs(x, y)
        if x.shape[0] == 0:
            return x.clone()
        o = self.options
        step = float(o.eps) / (o.steps * o.shrink)
        x_adv, y = x.detach().clone(), y.to(x.device)
        with preserved_modes(model), torch.enable_grad():
            model.eval()
            for k in range(o.steps):
                x_adv.requires_grad_(True)
                loss = torch.nn.functional.cross_entropy(model(x_adv), y)
                (grad,) = torch.autograd.grad(loss, x_adv)
                with torch.no_grad():
                    top = grad.abs().max()
                    normed = grad / top if float(top) > 0 else torch.zeros_like(grad)
                    direction = ((o.steps - k) * grad.sign() + k * normed) / o.steps
                    x_adv = (x_adv + step * direction).clamp(0, 1)
        return x_adv.detach()
