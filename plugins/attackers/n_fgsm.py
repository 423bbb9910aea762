"""``attacker:n-fgsm`` — Noise-FGSM (de Jorge, Bibi, Volpi, Sanyal, Torr, Rogez & Dokania, NeurIPS 2022,
"Make Some Noise: Reliable and Efficient Single-Step Adversarial Training", arXiv:2202.01181), L∞.

A single-step training attack that avoids catastrophic overfitting without extra cost: strong noise,
one signed-gradient step from the noisy point, and *no projection* back onto the ε-ball (the paper's
Algorithm 1, its defaults ``k = 2``, ``α = ε``)::

    η ~ U(−k·ε, k·ε)^d                     # noise of 2ε
    x̃ = clamp(x + η, 0, 1)
    x_adv = clamp(x̃ + α·sign(∇ₓ̃ CE(f(x̃), y)), 0, 1)     # step ε, no projection

So ``‖x_adv − x‖∞ ≤ k·ε + α`` (3ε at the defaults); ``clip`` (a multiple of ε) projects onto a
smaller ball when set. The cost is one forward and one backward pass per batch, as FGSM — a quarter
of PGD-7's eight (``benchmarks/adversarial_training.py`` measures it). A *training* attack: evaluate
robustness with PGD/APGD at the threat model's ε, never with this one. The model is put in eval mode
for the gradient (as torchattacks does) and its exact modes, ``.grad`` and torch's random state
outside the noise draw are restored. Input/output: ``float32 N×C×H×W`` in [0,1]; ``eps`` in pixel
units of [0,1]. ``attacker.eps`` (what the conformance suite checks) is the radius the output keeps:
``clip·eps``, else ``(noise + alpha/eps)·eps``; ``options.eps`` is the training ε.

The noise is drawn from torch's global generator, which the trainer seeds per epoch (so a resumed run
draws the same noise).

Example::

    train:
      attacker: {key: n-fgsm, options: {eps: 0.15}}    # noise 2ε, step ε, no projection
"""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from dreamset import Options, register
from dreamset.contracts.options import FractionFloat
from dreamset.toolkit.attacking import TorchattacksAttacker, check_attack_inputs


class NFGSMOptions(Options):
    eps: FractionFloat = Field(default=8 / 255, gt=0, le=1, description="training L-inf radius ε (pixel units of [0,1])")
    noise: float = Field(default=2.0, ge=0, le=16, description="noise magnitude k: η ~ U(−k·ε, k·ε) (paper: 2)")
    alpha: FractionFloat | None = Field(default=None, gt=0, le=2, description="step size (default ε, the paper's)")
    clip: float | None = Field(default=None, gt=0, le=16,
                               description="project δ onto the clip·ε ball (default: no projection, the paper's)")


@register(description="N-FGSM: noise 2ε, step ε, no projection (de Jorge et al. 2022)")
class NFGSMAttacker(TorchattacksAttacker):
    """Noise of ``noise·eps``, one signed-gradient step of ``alpha``, no projection (unless ``clip``)."""

    key = "attacker:n-fgsm"

    Options = NFGSMOptions

    #: one gradient computation per batch (the catastrophic-overfitting check watches such attackers)
    single_step: ClassVar[bool] = True

    @property
    def step(self) -> float:
        return self.options.alpha if self.options.alpha is not None else self.options.eps

    @property
    def eps(self) -> float:
        """The L∞ radius ``x_adv`` keeps (``clip·ε``, else ``k·ε + α``)."""
        o = self.options
        return o.clip * o.eps if o.clip is not None else o.noise * o.eps + self.step

    def attack(self, model, x, y):
        import torch
        import torch.nn.functional as F

        check_attack_inputs(x, y)
        if x.shape[0] == 0:
            return x.clone()
        o = self.options
        # the noise is part of the attack's randomness: drawn before the guard forks the random state
        eta = (torch.rand(x.shape, dtype=x.dtype, device=x.device) * 2 - 1) * (o.noise * o.eps)
        with self.guarded(model, x), torch.enable_grad():
            model.eval()
            noisy = (x + eta).clamp(0, 1).requires_grad_(True)
            loss = F.cross_entropy(model(noisy), y.to(x.device))
            grad, = torch.autograd.grad(loss, noisy)
            delta = noisy.detach() + self.step * grad.sign() - x
            if o.clip is not None:
                delta = delta.clamp(-o.clip * o.eps, o.clip * o.eps)
            return (x + delta).clamp(0, 1).detach()
