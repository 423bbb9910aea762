"""``objective:greedy-bias-correction`` — Jin & Rinard's training loop for context-agnostic learning:
each batch's objects are superimposed on *persistent contexts* (the previous batch's refined inputs,
some reset to noise), locally refined by the training attacker, and trained on.

Paper: Charles Jin and Martin Rinard, "Learning From Context-Agnostic Synthetic Data"
(arXiv:2005.14707; NeurIPS 2021 as "Towards Context-Agnostic Learning Using Synthetic Data"),
their Greedy Bias Correction ("the previous image becomes the next context"). The details are read
from their code (github.com/charlesjin/synthetic_data at commit e757535, ``mnist/train.py``
``create_inputs``), rewritten here:

* contexts ``c`` (``B×C×H×W``): at the first call, noise ``U[0, noise_max]``; at every later call
  each row is replaced by fresh noise with probability ``reset`` (the paper: ``randn > 0.8``, i.e.
  P = 0.2119), the others are kept;
* input ``x̃ = object_weight · x + (1 − object_weight) · c`` (the paper: ``(2·x + c) / 3``);
* ``refine: true``: ``x̃ ← attacker(model, x̃, y)`` (the paper's 8 steps of ``attacker:blended-ascent``,
  every pixel, clamp only); the attacker gets the mixer's context mask only if it declares ``takes_mask``;
* ``c ← x̃`` (detached): the next batch's context is this batch's (refined) input, with the ghost of
  its digit in it; ``loss = CE(f(x̃), y)``.

The objects ``x`` are the mixer's batch (for the paper: the augmented glyph on black, placed as it
is, e.g. ``mixer:cut-paste`` with ``backgrounds: plain`` and no placement jitter). Ablations:
``reset: 1`` (fresh noise every batch: no persistence), ``refine: false`` (no refinement; then the
objective takes no attacker, ``uses_attacker`` is false), ``object_weight: 1`` (no superimposition).

**State.** The contexts persist across calls on this object (one per arm and seed: the trainer
creates the objective per arm). Under ``train.batch_groups: G`` each row group is one call, in order,
so a batch of ``G·b`` is ``G`` successive paper batches of ``b`` (the paper's gradient accumulation).
A batch of another size than the contexts starts fresh noise contexts. The contexts are not in the
checkpoints: a run resumed after a kill restarts them from noise (its weights then differ from an
uninterrupted run's). :meth:`reset_state` forgets them.

Shapes: ``x`` ``float32 B×C×H×W`` in [0,1], ``y`` ``int64 B`` → a 0-dim loss. Cost: the attacker's
passes plus one forward pass. Random draws from torch's global generator (the trainer seeds it).

Example (arms of one recipe; ``train.attacker: {key: blended-ascent}``)::

    context-agnostic: {synthetic: true, mixer: {key: cut-paste, options: {backgrounds: plain, ...}},
                       objective: greedy-bias-correction}
    no-refinement:    {..., objective: {key: greedy-bias-correction, options: {refine: false}}}
"""
from __future__ import annotations

from dreamset import Options, register
from dreamset.contracts.interfaces import Objective
from dreamset.contracts.lazy import lazy_module
from pydantic import Field

torch = lazy_module("torch")

#: the paper's reset rule ``torch.randn(B) > 0.8``: P(N(0, 1) > 0.8)
PAPER_RESET = 0.21185539858339664


class GreedyBiasCorrectionOptions(Options):
    object_weight: float = Field(default=2 / 3, gt=0, le=1, description="x̃ = w·object + (1 − w)·context (the paper: 2/3)")
    reset: float = Field(default=PAPER_RESET, ge=0, le=1, description="probability a context is reset to noise per batch")
    noise_max: float = Field(default=0.5, ge=0, le=1, description="reset contexts are U[0, noise_max]")
    refine: bool = Field(default=True, description="refine the superimposed input with train.attacker")


@register(description="Jin & Rinard's Greedy Bias Correction: persistent contexts + local refinement (arXiv:2005.14707)")
class GreedyBiasCorrection(Objective):
    """Objects on the previous batch's refined inputs (some reset to noise), refined, then trained on."""

    key = "objective:greedy-bias-correction"

    Options = GreedyBiasCorrectionOptions

    def __init__(self, options=None) -> None:
        super().__init__(options)
        #: the instance's declaration follows ``refine`` (the class default says True)
        self.uses_attacker = bool(self.options.refine)
        self.contexts = None

    def reset_state(self) -> None:
        """Forget the persistent contexts (the next call starts from noise)."""
        self.contexts = None

    def inputs(self, x):
        """The superimposed inputs of objects ``x`` on the current contexts (updating the resets)."""
        o = self.options
        noise = o.noise_max * torch.rand(x.shape, device=x.device, dtype=x.dtype)
        if self.contexts is None or self.contexts.shape != x.shape:
            contexts = noise
        else:
            fresh = (torch.rand(len(x), device=x.device) < o.reset).view(-1, *[1] * (x.ndim - 1))
            contexts = torch.where(fresh, noise, self.contexts.to(device=x.device, dtype=x.dtype))
        return (o.object_weight * x + (1 - o.object_weight) * contexts).clamp(0, 1)

    def loss(self, model, x, y, *, attacker=None, mask=None, label_smoothing=0.0):
        import torch.nn.functional as F

        x_tilde = self.inputs(x.detach())
        if self.options.refine:
            x_tilde = self.perturb(attacker, model, x_tilde, y, mask)
        self.contexts = x_tilde.detach().clone()
        return F.cross_entropy(model(x_tilde), y, label_smoothing=label_smoothing)
