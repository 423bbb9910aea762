"""Conformance checks for ``objective:*`` components.

:func:`check_objective` calls ``loss`` on the tiny trained classifier of
:func:`dreamset.conformance.attackers.tiny_attack_problem` in train mode, with ``attacker:pgd``
(L∞, ``eps = 8/255``, 3 steps) when the objective declares ``uses_attacker``, and checks the
:class:`~dreamset.contracts.interfaces.Objective` contract: a finite 0-dim floating-point tensor that
back-propagates into the model's parameters (some gradient non-zero); the input batch not modified in
place; the model's train/eval flags as they came in; the attacker called through ``attack`` with the
model (or not at all for ``uses_attacker = False``); a context mask passed on to an attacker that
declares ``takes_mask`` and withheld from one that does not; the same loss for the same random state and
model state (determinism: random draws come from torch's global generator only; an objective that keeps
state across calls offers ``reset_state()`` and is reset before each call); ``label_smoothing`` accepted.
"""
from __future__ import annotations

import torch

from dreamset.conformance.attackers import single_thread, tiny_attack_problem
from dreamset.contracts.checks import loss_problem
from dreamset.contracts.interfaces import Attacker
from dreamset.contracts.nn import training_modes


class _RecordingAttacker(Attacker):
    """Wraps a real attacker and records the calls (and the masks) it gets."""

    def __init__(self, inner, takes_mask: bool) -> None:
        super().__init__(inner.options)
        self.inner, self.key, self.takes_mask, self.calls = inner, inner.key, takes_mask, []

    def attack(self, model, x, y, mask=None):  # noqa: D401 - signature of a mask-taking attacker
        self.calls.append({"model": model, "mask": mask})
        return self.inner.attack(model, x, y)


def _attacker():
    import dreamset.registry as registry

    return registry.create("attacker:pgd", eps=8 / 255, steps=3)


def check_objective(objective, model=None, x=None, y=None) -> None:
    """Raise ``AssertionError`` unless ``objective`` keeps the contract on ``model`` (default: the
    tiny attack problem, single-threaded) for images ``x`` (``float32 N×C×H×W`` in [0,1]) and labels
    ``y``."""
    if model is None:
        with single_thread():
            model, x, y = tiny_attack_problem()
            _check(objective, model, x, y)
    else:
        _check(objective, model, x, y)


def _loss(objective, model, x, y, attacker, mask=None, smoothing=0.0, seed=0, state=None):
    if state is not None:  # train-mode forward passes move batch-norm statistics: start each call alike
        model.load_state_dict(state)
    if hasattr(objective, "reset_state"):  # an objective with state across calls (persistent contexts)
        objective.reset_state()
    torch.manual_seed(seed)
    return objective.loss(model, x, y, attacker=attacker, mask=mask, label_smoothing=smoothing)


def _check(objective, model, x, y) -> None:
    key = objective.key or type(objective).__name__
    uses = bool(getattr(objective, "uses_attacker", True))
    model.train()
    modes = training_modes(model)
    x_before = x.clone()
    attacker = _RecordingAttacker(_attacker(), takes_mask=True) if uses else None
    mask = torch.zeros(len(x), 1, *x.shape[2:])
    mask[:, :, : x.shape[2] // 2] = 1
    model.zero_grad(set_to_none=True)
    loss = _loss(objective, model, x, y, attacker, mask=mask)
    problem = loss_problem(loss)  # the check a run makes on every training step (dreamset.orchestration.guards)
    assert problem is None, f"{key}: {problem}"
    assert torch.equal(x, x_before), f"{key}: modified its input batch in place"
    assert training_modes(model) == modes, f"{key}: changed the model's train/eval flags"
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and bool(g.abs().sum() > 0) for g in grads), f"{key}: the loss does not reach the model's parameters"
    assert all(g is None or bool(torch.isfinite(g).all()) for g in grads), f"{key}: non-finite gradients"
    model.zero_grad(set_to_none=True)
    if uses:
        assert attacker.calls, f"{key}: declares uses_attacker but never called attacker.attack"
        assert all(call["model"] is model for call in attacker.calls), f"{key}: attacked another model than the one given"
        assert all(call["mask"] is mask for call in attacker.calls), (
            f"{key}: did not pass the context mask on to an attacker with takes_mask (use Objective.perturb)")
        plain = _RecordingAttacker(_attacker(), takes_mask=False)
        _loss(objective, model, x, y, plain, mask=mask)
        assert all(call["mask"] is None for call in plain.calls), (
            f"{key}: passed a mask to an attacker without takes_mask (use Objective.perturb)")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    first = _loss(objective, model, x, y, _attacker() if uses else None, seed=7, state=state).detach()
    again = _loss(objective, model, x, y, _attacker() if uses else None, seed=7, state=state).detach()
    smoothed = _loss(objective, model, x, y, _attacker() if uses else None, smoothing=0.1, seed=7, state=state).detach()
    model.load_state_dict(state)
    model.zero_grad(set_to_none=True)
    assert torch.equal(first, again), f"{key}: not deterministic given torch's random state ({float(first)} != {float(again)})"
    assert bool(torch.isfinite(smoothed)), f"{key}: non-finite loss with label_smoothing=0.1"
    assert training_modes(model) == modes, f"{key}: changed the model's train/eval flags"


def check_default(objective) -> None:
    check_objective(objective)
