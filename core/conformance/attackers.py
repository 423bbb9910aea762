"""Conformance checks for ``attacker:*`` components.

:func:`check_attacker` runs an attacker on a tiny trained classifier (:func:`tiny_attack_problem`:
16 ``float32 1×8×8`` images in [0,1], 4 classes, a conv net with batch norm and dropout inside a
:class:`~dreamset.contracts.nn.Classifier`) and checks the :class:`~dreamset.contracts.interfaces.Attacker` contract:
``x_adv`` has the shape, dtype and device of ``x``, finite values in [0,1], stays in the threat model
(``options.norm`` ``linf`` — the default — or ``l2``, radius ``attacker.eps``; skipped when ``eps`` is
``None``), the input tensor is not modified in place, the model comes back exactly as it was (every
submodule's train/eval flag — from ``train()`` and from a mixed state —, its parameters and buffers
such as batch-norm statistics, and its parameters' ``.grad``), an empty batch works, and for
untargeted attackers the mean cross-entropy on ``x_adv`` is not lower than on ``x`` — or, for an
attacker that declares ``objective(model, x, x_adv, y) -> float`` (what it maximises, e.g. TRADES'
KL, which need not raise the cross-entropy), that objective at ``x_adv`` is not lower than at a
random corner of the ``eps``-ball.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from dreamset.contracts.checks import L2_TOLERANCE, LINF_TOLERANCE, attack_output_problem  # noqa: F401 (re-exported)
from dreamset.contracts.nn import Classifier, restore_training_modes, training_modes

#: slack for float round-off in the loss check (the threat model's: dreamset.contracts.checks)
LOSS_TOLERANCE = 1e-3


def tiny_attack_problem(num_classes: int = 4, n: int = 16, seed: int = 0):
    """``(model, x, y)``: a small conv classifier briefly trained (15 Adam steps, in a forked RNG so
    the caller's random state is untouched) on ``n`` 1×8×8 images, noise in [0.3, 0.5] where class
    ``c`` brightens quadrant ``c % 4`` by ``0.1·(1 + c // 4)``. It classifies them all correctly with a
    cross-entropy near 0.4 and PGD-10 at ``eps = 8/255`` fools about half: a model whose loss reacts
    to small perturbations. Returned in eval mode, without gradients."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % num_classes
    x = 0.3 + 0.2 * torch.rand(n, 1, 8, 8, generator=generator)
    for i, c in enumerate(y.tolist()):
        rows, cols = (c % 4) // 2 * 4, (c % 2) * 4
        x[i, 0, rows:rows + 4, cols:cols + 4] += 0.1 * (1 + c // 4)
    x = x.clamp(0, 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        body = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        )
        model = Classifier(body, nn.Sequential(nn.Dropout(0.1), nn.Linear(32, num_classes)), mean=[0.5], std=[0.5])
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        model.train()
        for _ in range(15):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    model.zero_grad(set_to_none=True)
    return model.eval(), x, y


def _loss(model, x, y) -> float:
    modes = training_modes(model)
    model.eval()
    with torch.no_grad():
        value = float(nn.functional.cross_entropy(model(x), y))
    restore_training_modes(model, modes)
    return value


def _snapshot(model):
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    grads = [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
    return training_modes(model), state, grads


def _run(attacker, model, x, y, what: str):
    """Attack once and check everything that does not depend on the loss."""
    modes, state, grads = _snapshot(model)
    x_before = x.clone()
    x_adv = attacker.attack(model, x, y)
    key = attacker.key or type(attacker).__name__
    assert torch.equal(x, x_before), f"{key}: modified its input tensor in place ({what})"
    assert training_modes(model) == modes, f"{key}: did not restore the train/eval flags of the model ({what})"
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in state.items()), f"{key}: changed parameters/buffers ({what})"
    new_grads = [p.grad for p in model.parameters()]
    assert all((a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))
               for a, b in zip(grads, new_grads)), f"{key}: left gradients in the model's parameters ({what})"
    # the same check a run makes on every attacked batch (dreamset.orchestration.guards)
    problem = attack_output_problem(x, x_adv, attacker.eps, getattr(attacker.options, "norm", "linf"))
    assert problem is None, f"{key}: {problem} ({what})"
    return x_adv


@contextlib.contextmanager
def single_thread():
    """Run torch's CPU ops on one thread, then restore the thread count. At the size of the tiny
    problem extra threads only add synchronisation: on a busy 2-core machine AutoAttack's Square
    queries took minutes with 2 threads and seconds with 1."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def check_attacker(attacker, model=None, x=None, y=None) -> None:
    """Raise ``AssertionError`` unless ``attacker`` keeps the contract on ``model`` (default: the
    :func:`tiny_attack_problem`, run single-threaded) for images ``x`` (``float32 N×C×H×W`` in
    [0,1]) and labels ``y``."""
    if model is None:
        with single_thread():
            model, x, y = tiny_attack_problem()
            _check(attacker, model, x, y)
    elif x is None or y is None:
        raise ValueError("check_attacker: pass x and y together with model")
    else:
        _check(attacker, model, x, y)


def _check(attacker, model, x, y) -> None:
    key = attacker.key or type(attacker).__name__
    was = training_modes(model)
    try:
        model.train()
        x_adv = _run(attacker, model, x, y, "model in train mode")
        if hasattr(attacker, "objective"):  # its own objective (e.g. TRADES' KL) must beat a random corner
            eps = float(attacker.options.eps)
            noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0)).to(x.device)
            corner = (x + eps * torch.sign(noise)).clamp(0, 1)
            adversarial, random = attacker.objective(model, x, x_adv, y), attacker.objective(model, x, corner, y)
            assert adversarial >= random - LOSS_TOLERANCE, (
                f"{key}: the attack reached a lower objective than a random corner of the ball "
                f"({adversarial:.4f} < {random:.4f})")
        elif not getattr(attacker.options, "targeted", False):
            clean, adversarial = _loss(model, x, y), _loss(model, x_adv, y)
            assert adversarial >= clean - LOSS_TOLERANCE, (
                f"{key}: the attack lowered the cross-entropy ({clean:.4f} -> {adversarial:.4f})")
        first = next((module for name, module in model.named_modules() if name), None)
        if first is not None:  # a mixed state: the model in train mode, one submodule in eval mode
            model.train()
            first.eval()
            _run(attacker, model, x[:4], y[:4], "mixed train/eval state")
        model.eval()
        _run(attacker, model, x[:0], y[:0], "empty batch")
    finally:
        restore_training_modes(model, was)


def check_mask_declaration(attacker) -> None:
    """``takes_mask`` matches ``attack``'s signature: the trainer hands a context mask only to
    attackers that declare it (it no longer inspects signatures)."""
    import inspect

    key = attacker.key or type(attacker).__name__
    has_parameter = "mask" in inspect.signature(attacker.attack).parameters
    declared = bool(getattr(attacker, "takes_mask", False))
    assert has_parameter == declared, (
        f"{key}: attack() {'takes' if has_parameter else 'does not take'} a mask but takes_mask is {declared}"
        + (" (set the class attribute takes_mask = True)" if has_parameter else ""))


def check_default(attacker) -> None:
    check_mask_declaration(attacker)
    check_attacker(attacker)
