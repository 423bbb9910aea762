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
    found = catastrophic_overfitting(curve, collapse=0.5, min_drop=0.1)
    assert found == {"epoch": 3, "step": 40, "val_robust_accuracy": 0.05, "best_val_robust_accuracy": 0.5,
                     "best_epoch": 1, "val_train_attack_accuracy": 0.9}


@pytest.mark.parametrize("pairs", [
    [(0.3, 0.35), (0.5, 0.55), (0.3, 0.6), (0.45, 0.5)],  # a dip, not a collapse to half
    [(0.1, 0.2), (0.15, 0.55), (0.06, 0.6)],  # to under half, but within the subset's noise
    [(0.3, 0.35), (0.5, 0.55), (0.1, 0.2)],  # both fall together: a bad epoch, not overfitting to the attack
    [(0.5, None), (0.0, None)],  # no single-step measurement
])
def test_no_overfitting_is_reported_without_the_signature(pairs):
    assert catastrophic_overfitting(_curve(pairs), collapse=0.5, min_drop=0.1) is None


def test_training_warning_names_arm_seed_and_epoch():
    co = {"epoch": 3, "step": 40, "val_robust_accuracy": 0.05, "best_val_robust_accuracy": 0.5, "best_epoch": 1,
          "val_train_attack_accuracy": 0.9, "stopped": True}
    lines = training_warnings({7: {"real": {"training": {"catastrophic_overfitting": co}}, "other": {"training": {}}}})
    assert len(lines) == 1
    assert "arm 'real', seed 7" in lines[0] and "epoch 3" in lines[0] and "stopped" in lines[0]


@pytest.mark.timeout(900)
def test_fgsm_training_on_mnist_overfits_catastrophically_and_is_stopped(tmp_path):
    """A run that really overfits: FGSM without a random start at eps 0.3 on 1,000 real MNIST digits
    (Wong et al. 2020's failure case). PGD accuracy on the validation subset collapses while FGSM's
    climbs; the check names the epoch in report.json's warnings and, with ``stop: true``, stops the arm
    there, so it trains fewer optimizer steps than planned."""
    import json

    import yaml

    from dreamset.cli import main

    recipe = {
        "name": "co-mnist", "seeds": [0],
        "data": {"dataset": {"key": "mnist", "options": {"train_size": 1000}}},
        "arms": {"real": {"real": True}},
        "train": {"model": {"key": "small-cnn", "options": {"width": 64}},
                  "attacker": {"key": "fgsm", "options": {"eps": 0.3}}, "epochs": 20, "batch_size": 64,
                  "optimizer": "adamw", "lr": 0.002, "schedule": "onecycle",
                  "catastrophic_overfitting": {"stop": True}},
        "evaluate": {"attackers": [{"key": "pgd", "options": {"eps": 0.3, "steps": 10}}], "robust_samples": 200},
        "report": {"html": False, "curve_every": 1, "curve_samples": 128},
    }
    path = tmp_path / "co.yaml"
    path.write_text(yaml.safe_dump(recipe))
    threads = torch.get_num_threads()  # the run this case was found in used one thread (as each xdist worker)
    torch.set_num_threads(1)
    try:
        assert main(["run", str(path), "--out", str(tmp_path / "run"), "-q"]) == 0
    finally:
        torch.set_num_threads(threads)
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    training = report["arms"]["real"]["per_seed"]["0"]["training"]
    co = training["catastrophic_overfitting"]
    assert co["stopped"] and co["val_robust_accuracy"] <= 0.5 * co["best_val_robust_accuracy"]
    assert co["val_train_attack_accuracy"] > co["val_robust_accuracy"] + 0.3  # FGSM no longer finds what PGD finds
    assert training["optimizer_steps"] == (co["epoch"] + 1) * training["steps_per_epoch"] < training["planned_steps"]
    assert [w for w in report["warnings"] if w.startswith("train: arm 'real', seed 0: catastrophic overfitting")]
