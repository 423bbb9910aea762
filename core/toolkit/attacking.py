"""The shared glue between dreamset's Attacker contract and torchattacks.

torchattacks (Kim, 2020) implements the attacks; this base class fixes what its ``Attack`` does not
promise (see torchattacks issue #21 and the notes in ../shared/STYLE.md):

* the device comes from the inputs ``x``, never from the model's parameters (a parameter-free model
  works; torchattacks' own guess would print and fail);
* the model's exact train/eval flag of every submodule is restored afterwards, even on error, and so
  are its parameters' ``.grad`` (CW and FAB call ``backward()``) and torch's global random state
  (APGD, FAB and Square reseed it on every call; an evaluation must not reset the training seed);
* inputs are checked to be ``float`` images in [0,1]; the result is detached, same dtype and shape;
* nothing is printed; normalisation is the model's business, never the attack's.
"""
from __future__ import annotations

import contextlib
import io
from typing import Literal

from pydantic import Field, model_validator

from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import Attacker
from dreamset.contracts.lazy import lazy_module
from dreamset.contracts.options import FractionFloat, Options
from dreamset.orchestration.seeding import forked_rng

# torch stays lazy so plugin modules may subclass TorchattacksAttacker at import time
torch = lazy_module("torch")


class NormBallOptions(Options):
    """Options of an attack in an L∞ or L2 ball: ``norm`` and ``eps`` (an L∞ ``eps`` above 1 is
    refused: images are in [0,1]). Attackers with more options subclass it."""

    norm: Literal["linf", "l2"] = Field(default="linf", description="threat model")
    eps: FractionFloat = Field(default=8 / 255, gt=0, le=64, description="radius (pixel units of [0,1])")

    @model_validator(mode="after")
    def _linf_eps(self):
        if self.norm == "linf" and self.eps > 1:
            raise ValueError("eps: an L-inf radius must be <= 1 for images in [0,1]")
        return self


def check_attack_inputs(x, y) -> None:
    """Raise a one-line :class:`BadInputError` unless ``x`` is ``float N×C×H×W`` in [0,1] and ``y``
    has shape ``(N,)``; returns ``None``."""
    if not torch.is_floating_point(x) or x.ndim != 4:
        raise BadInputError(f"attack input must be float N×C×H×W images, got {x.dtype} {tuple(x.shape)}")
    if x.numel() and (float(x.min()) < 0 or float(x.max()) > 1):
        raise BadInputError("attack input must be in [0,1] (normalisation belongs inside the model)")
    if y.shape != x.shape[:1]:
        raise BadInputError(f"attack labels must have shape ({x.shape[0]},), got {tuple(y.shape)}")


@contextlib.contextmanager
def preserved_gradients_and_rng(model, device):
    """Restore every parameter's ``.grad`` and torch's global random state (CPU, and ``device``'s
    when it is a CUDA device) on exit."""
    grads = {p: p.grad for p in model.parameters()}
    try:
        with forked_rng(device):
            yield
    finally:
        for p, grad in grads.items():
            p.grad = grad


@contextlib.contextmanager
def preserved_modes(model):
    """``with preserved_modes(model): ...`` — restore every submodule's train/eval flag on exit (also
    on an exception)."""
    from dreamset.contracts.nn import restore_training_modes, training_modes

    modes = training_modes(model)
    try:
        yield
    finally:
        restore_training_modes(model, modes)


class TorchattacksAttacker(Attacker):
    """Base for attackers backed by a ``torchattacks.Attack``: subclasses implement :meth:`make`.

    Options may define ``targeted`` (``false`` | ``random`` | ``least-likely``)."""

    def make(self, model):  # pragma: no cover - abstract
        raise NotImplementedError

    def attack(self, model, x, y):
        check_attack_inputs(x, y)
        if x.shape[0] == 0:
            return x.clone()
        with self.guarded(model, x):
            return self.run(self.prepared(model, x), x, y)

    @contextlib.contextmanager
    def guarded(self, model, x):
        """What every call runs inside: the model's modes, its ``.grad`` and torch's random state are
        restored on exit, and torchattacks' prints are swallowed."""
        with preserved_modes(model), preserved_gradients_and_rng(model, x.device), contextlib.redirect_stdout(io.StringIO()):
            yield

    def prepared(self, model, x):
        """The torchattacks object for ``model`` on ``x``'s device, in the configured targeted mode."""
        attack = self.make(model)
        attack.set_device(x.device)
        targeted = getattr(self.options, "targeted", False)
        if targeted == "random":
            attack.set_mode_targeted_random()
        elif targeted == "least-likely":
            attack.set_mode_targeted_least_likely()
        return attack

    @staticmethod
    def run(attack, x, y):
        """One run of a prepared attack (call inside :meth:`guarded`): detached, ``x``'s dtype, [0,1]."""
        return attack(x, y.to(x.device)).detach().to(dtype=x.dtype).clamp_(0.0, 1.0)
