"""``attacker:masked-pgd`` — L∞ PGD restricted to a region of the image, for the adversarial
refinement of cut-and-paste composites in context-agnostic learning (Charles Jin and Martin Rinard,
"Learning From Context-Agnostic Synthetic Data", arXiv:2005.14707, 2020): the object is
kept and only its context (the background) is attacked, so the classifier learns to ignore context.

``attack(model, x, y, mask=None)``: ``x`` ``float32 N×C×H×W`` in [0,1], ``y`` ``int64 N``, ``mask``
``float N×1×H×W`` or ``N×C×H×W`` in [0,1] where 1 = may be perturbed. A mask value ``m`` gives the
pixel the budget ``m·eps`` (a soft mask), so pixels with ``m = 0`` come back bit-identical to ``x``.
Without a mask, ``region`` decides: ``background`` (the default, the paper's use) or ``foreground``
derive the mask from the image — foreground = pixels whose largest absolute difference over channels
from the image's per-channel border median exceeds ``threshold``; ``given`` demands a mask. The loop
is Madry et al.'s PGD (random start in the masked ball, ``steps`` signed-gradient steps of ``alpha``
on the cross-entropy, projection onto the masked ball and [0,1]) with the model in eval mode. Output:
same shape and dtype as ``x``, in [0,1], ``|x_adv − x| ≤ mask·eps`` element-wise.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from dreamset import Options, register
from dreamset.toolkit.attacking import check_attack_inputs, preserved_modes
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import Attacker
from dreamset.contracts.lazy import lazy_module
from dreamset.contracts.options import FractionFloat

torch = lazy_module("torch")


class MaskedPGDOptions(Options):
    eps: FractionFloat = Field(default=8 / 255, gt=0, le=1, description="L-inf radius inside the mask (pixel units of [0,1])")
    alpha: FractionFloat | None = Field(default=None, gt=0, le=1, description="step size (default 2.5·eps/steps)")
    steps: int = Field(default=10, ge=1, le=100_000, description="PGD iterations")
    random_start: bool = Field(default=True, description="start from a uniform point of the masked ball")
    region: Literal["given", "foreground", "background"] = Field(
        default="background", description="where to attack when attack() gets no mask ('given': a mask is required)")
    threshold: float = Field(default=0.1, ge=0, lt=1,
                             description="foreground = max-over-channels |x − border median| above this")


@register(description="L-inf PGD inside a mask / the background (Jin & Rinard, arXiv:2005.14707)")
class MaskedPGDAttacker(Attacker):
    """L∞ PGD whose perturbation lives inside a (given or derived) mask."""

    key = "attacker:masked-pgd"

    Options = MaskedPGDOptions
    takes_mask = True

    def region_mask(self, x, mask=None):
        """The ``N×C×H×W`` mask used for ``x``: ``mask`` checked and broadcast, or derived from ``x``."""
        if mask is None:
            if self.options.region == "given":
                raise BadInputError("mask: attacker:masked-pgd with region='given' needs a mask")
            from dreamset.toolkit.masks import object_masks  # imports torch: not at plugin import time

            fg = object_masks(x, self.options.threshold)
            mask = fg if self.options.region == "foreground" else 1 - fg
        else:
            if not torch.is_floating_point(mask) or mask.ndim != 4 or mask.shape[0] != x.shape[0] \
                    or mask.shape[1] not in (1, x.shape[1]) or mask.shape[2:] != x.shape[2:]:
                raise BadInputError(f"mask: must be float N×1×H×W or N×C×H×W matching x {tuple(x.shape)}, "
                                    f"got {mask.dtype} {tuple(mask.shape)}")
            if mask.numel() and not (bool(torch.isfinite(mask).all()) and float(mask.min()) >= 0 and float(mask.max()) <= 1):
                raise BadInputError("mask: values must be in [0,1]")
        return mask.to(device=x.device, dtype=x.dtype).expand_as(x)

    def attack(self, model, x, y, mask=None):
        check_attack_inputs(x, y)
        m = self.region_mask(x, mask)
        if x.shape[0] == 0:
            return x.clone()
        o = self.options
        alpha = o.alpha if o.alpha is not None else 2.5 * o.eps / o.steps
        x, y = x.detach(), y.to(x.device)
        low, high = x - o.eps * m, x + o.eps * m  # m = 0: low = high = x exactly
        x_adv = x.clone()
        if o.random_start:
            x_adv = x_adv + o.eps * m * (2 * torch.rand_like(x) - 1)
        x_adv = torch.max(torch.min(x_adv, high), low).clamp(0, 1)
        with preserved_modes(model), torch.enable_grad():
            model.eval()
            for _ in range(o.steps):
                x_adv.requires_grad_(True)
                loss = torch.nn.functional.cross_entropy(model(x_adv), y)
                (grad,) = torch.autograd.grad(loss, x_adv)
                x_adv = x_adv.detach() + alpha * m * grad.sign()
                x_adv = torch.max(torch.min(x_adv, high), low).clamp(0, 1)
        return torch.where(m > 0, x_adv, x).detach()
