"""Single-step adversarial training: ``attacker:n-fgsm`` (de Jorge et al. 2022) and the
catastrophic-overfitting check of the training curves (Wong et al. 2020; dreamset.training.curves)."""
from __future__ import annotations

import pytest
import torch

import dreamset.registry as registry
from dreamset.conformance.attackers import tiny_attack_problem
from dreamset.training.curves import catastrophic_overfitting
from dreamset.report.tables import training_warnings

EPS = 0.1


def test_n_fgsm_is_noise_then_one_step_without_projection():
    model, x, y = tiny_attack_problem()
    attacker = registry.create("attacker:n-fgsm", eps=EPS)
    calls = []
    hook = model.register_forward_pre_hook(lambda *_: calls.append(1))
    torch.manual_seed(0)
    x_adv = attacker.attack(model, x, y)
    hook.remove()
    delta = (x_adv - x).abs().amax()
    assert len(calls) == 1  # one forward (and one backward): FGSM's cost
    assert delta > EPS + 1e-4  # no projection onto the eps-ball: noise 2ε plus a step ε
    assert delta <= 3 * EPS + 1e-6 and attacker.eps == pytest.approx(3 * EPS)
    clipped = registry.create("attacker:n-fgsm", eps=EPS, clip=1.0)
    assert (clipped.attack(model, x, y) - x).abs().amax() <= EPS + 1e-6 and clipped.eps == pytest.approx(EPS)


def test_n_fgsm_noise_follows_the_global_seed():
    model, x, y = tiny_attack_problem()
    attacker = registry.create("attacker:n-fgsm", eps=EPS)
    torch.manual_seed(3)
    first = attacker.attack(model, x, y)
    torch.manual_seed(3)
    assert torch.equal(first, attacker.attack(model, x, y))
    assert not torch.equal(first, attacker.attack(model, x, y))  # the draw advanced the generator


def test_single_step_attackers_are_declared():
    single = {key for key in registry.list("attacker:*") if getattr(registry.get(key).load(), "single_step", False)}
    assert single == {"attacker:fgsm", "attacker:fgsm-rs", "attacker:n-fgsm"}


def _curve(pairs):
    return [{"epoch": e, "step": 10 * (e + 1), "val_robust_accuracy": r, "val_train_attack_accuracy": s}
            for e, (r, s) in enumerate(pairs)]


def test_collapse_of_pgd_while_the_single_step_accuracy_rises_is_found_at_its_epoch():
    curve = _curve([(0.3, 0.35), (0.5, 0.55), (0.45, 0.6), (0.05, 0.9), (0.0, 0.95)])
    found = catastrophic_overfitting(curve, drop=0.2)
    assert found == {"epoch": 3, "step": 40, "val_robust_accuracy": 0.05, "best_val_robust_accuracy": 0.5,
                     "best_epoch": 1, "val_train_attack_accuracy": 0.9}


@pytest.mark.parametrize("pairs", [
    [(0.3, 0.35), (0.5, 0.55), (0.4, 0.45), (0.45, 0.5)],  # a wobble smaller than the drop
    [(0.3, 0.35), (0.5, 0.55), (0.1, 0.2)],  # both fall together: a bad epoch, not overfitting to the attack
    [(0.5, None), (0.0, None)],  # no single-step measurement
])
def test_no_overfitting_is_reported_without_the_signature(pairs):
    assert catastrophic_overfitting(_curve(pairs), drop=0.2) is None


def test_training_warning_names_arm_seed_and_epoch():
    co = {"epoch": 3, "step": 40, "val_robust_accuracy": 0.05, "best_val_robust_accuracy": 0.5, "best_epoch": 1,
          "val_train_attack_accuracy": 0.9, "stopped": True}
    lines = training_warnings({7: {"real": {"training": {"catastrophic_overfitting": co}}, "other": {"training": {}}}})
    assert len(lines) == 1
    assert "arm 'real', seed 7" in lines[0] and "epoch 3" in lines[0] and "stopped" in lines[0]
