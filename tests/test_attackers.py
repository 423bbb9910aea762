"""The attackers beyond the conformance suite: each attack does what its paper says on a tiny trained
classifier, the suite's checks catch broken attackers, and docs/attacks.md's example works."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

import dreamset.registry as registry
from dreamset.conformance import create_default
from dreamset.conformance.attackers import check_attacker, single_thread, tiny_attack_problem
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import Attacker
from dreamset.contracts.nn import training_modes

EPS = 8 / 255
DOCS = Path(__file__).resolve().parents[1] / "docs" / "attacks.md"


@pytest.fixture(autouse=True)
def _one_thread():
    with single_thread():
        yield


@pytest.fixture(scope="module")
def problem():
    """Tiny 4-class model (eval mode), 16 images 1×8×8, labels; PGD-10 fools about half."""
    return tiny_attack_problem()


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


class FixedLinear(torch.nn.Module):
    """A parameter-free classifier: logits = flatten(x) @ W + b with W, b plain tensors (no
    parameters, no buffers — torchattacks cannot guess a device from it)."""

    def __init__(self, classes: int = 3, features: int = 64, bias: float = 0.0):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.weight = torch.randn(features, classes, generator=g)
        self.bias = torch.full((classes,), bias)

    def forward(self, x):
        return x.flatten(1) @ self.weight + self.bias


# -- every registered attacker, third-party ones included -------------------------------------------

@pytest.mark.parametrize("key", registry.list("attacker:*"))
def test_attacker_contract_on_a_parameter_free_model_without_printing(key, capfd):
    attacker = create_default(registry.get_registry(), key)
    model = FixedLinear()
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    y = model(x).argmax(1)
    check_attacker(attacker, model, x, y)
    out, _ = capfd.readouterr()
    assert out == ""


# -- the suite catches broken attackers --------------------------------------------------------------

class _Broken(Attacker):
    """Scaled FGSM with one defect at a time (``fault``), to show each check can fail."""

    fault = "none"

    def attack(self, model, x, y):
        modes = training_modes(model)
        x_in = x.detach().clone().requires_grad_(True)
        if self.fault != "leaves-eval":
            model.eval()
        grad = torch.zeros_like(x)
        if x.numel() and self.fault == "leaves-grad":  # backward() also fills the parameters' .grad
            F.cross_entropy(model(x_in), y).backward()
            grad = x_in.grad
        elif x.numel():
            grad = torch.autograd.grad(F.cross_entropy(model(x_in), y), x_in)[0]
        for name, module in model.named_modules():
            module.training = modes[name] if self.fault != "leaves-eval" else False
        step = {"lowers-loss": -EPS, "too-far": 2 * EPS}.get(self.fault, EPS)
        if self.fault == "train-mode-bn":
            model.train()
            with torch.no_grad():
                model(x)  # moves the batch-norm statistics
            for name, module in model.named_modules():
                module.training = modes[name]
        out = (x + step * grad.sign()).clamp(0, 1)
        if self.fault == "in-place":
            x.copy_(out)
        return out


@pytest.mark.parametrize("fault,message", [
    ("leaves-eval", "train/eval flags"), ("lowers-loss", "lowered the cross-entropy"),
    ("too-far", "L-inf perturbation"), ("in-place", "in place"), ("train-mode-bn", "parameters/buffers"),
    ("leaves-grad", "left gradients"),
])
def test_conformance_catches_a_broken_attacker(fault, message):
    check_attacker(_fixed(_Broken, "none"))  # the same attack without the defect passes
    with pytest.raises(AssertionError, match=message):
        check_attacker(_fixed(_Broken, fault))


def _fixed(cls, fault):
    """An instance with ``fault`` and a radius (the base ``Options`` has no ``eps``)."""
    broken = type(f"Broken_{fault}", (cls,), {"fault": fault, "eps": EPS})()
    broken.key = f"attacker:broken-{fault}"
    return broken


# -- FGSM, FGSM-RS, TRADES -------------------------------------------------------------------------

def test_fgsm_is_eps_times_gradient_sign(problem):
    model, x, y = problem
    x_grad = x.clone().requires_grad_(True)
    grad = torch.autograd.grad(F.cross_entropy(model(x_grad), y), x_grad)[0]
    expected = (x + EPS * grad.sign()).clamp(0, 1)
    got = registry.create("attacker:fgsm", eps=EPS).attack(model, x, y)
    assert torch.allclose(got, expected, atol=1e-7)
    assert accuracy(model, got, y) < accuracy(model, x, y)


def test_fgsm_rs_steps_1_25_eps_stays_in_the_ball_and_lowers_accuracy(problem):
    model, x, y = problem
    attacker = registry.create("attacker:fgsm-rs", eps=EPS)
    assert attacker.make(model).alpha == pytest.approx(1.25 * EPS)
    torch.manual_seed(0)
    x_adv = attacker.attack(model, x, y)
    assert float((x_adv - x).abs().max()) <= EPS + 1e-6
    assert accuracy(model, x_adv, y) < accuracy(model, x, y)
    assert not torch.equal(x_adv, registry.create("attacker:fgsm", eps=EPS).attack(model, x, y))  # the random start


def _kl(model, x, x_adv) -> float:
    with torch.no_grad():
        return float(F.kl_div(F.log_softmax(model(x_adv), 1), F.softmax(model(x), 1), reduction="batchmean"))


def test_trades_raises_the_kl_divergence_and_ignores_labels(problem):
    model, x, y = problem
    attacker = registry.create("attacker:trades", eps=EPS, alpha=EPS / 4, steps=10)
    torch.manual_seed(0)
    x_adv = attacker.attack(model, x, y)
    torch.manual_seed(0)
    assert torch.equal(attacker.attack(model, x, (y + 1) % 4), x_adv)  # labels play no role
    noise = (x + EPS * (2 * torch.rand(x.shape, generator=torch.Generator().manual_seed(3)) - 1)).clamp(0, 1)
    assert float((x_adv - x).abs().max()) <= EPS + 1e-6
    assert _kl(model, x, x_adv) > 10 * _kl(model, x, noise) > 0


# -- APGD, AutoAttack ----------------------------------------------------------------------------

@pytest.mark.parametrize("norm,eps", [("linf", EPS), ("l2", 0.3)])
def test_apgd_is_at_least_as_strong_as_pgd10(problem, norm, eps):
    model, x, y = problem
    torch.manual_seed(0)
    pgd = accuracy(model, registry.create("attacker:pgd", norm=norm, eps=eps, steps=10).attack(model, x, y), y)
    # three restarts: with one, a sample on the boundary can survive APGD and not PGD's random start,
    # depending on the float summation order of the thread count (seen with OMP_NUM_THREADS=1)
    apgd = accuracy(model, registry.create("attacker:apgd", norm=norm, eps=eps, restarts=3).attack(model, x, y), y)
    assert pgd < accuracy(model, x, y)
    assert apgd <= pgd


def test_autoattack_is_at_least_as_strong_as_pgd10(problem):
    model, x, y = problem
    torch.manual_seed(0)
    pgd = accuracy(model, registry.create("attacker:pgd", eps=EPS, steps=10).attack(model, x, y), y)
    assert accuracy(model, registry.create("attacker:autoattack", eps=EPS).attack(model, x, y), y) <= pgd


@pytest.mark.parametrize("key", ["attacker:apgd", "attacker:autoattack"])
def test_seeded_attacks_leave_the_global_rng_alone(problem, key):
    model, x, y = problem
    attacker = registry.create(key, **({"steps": 5} if key == "attacker:apgd" else {"eps": 0.2}))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    attacker.attack(model, x[:4], y[:4])
    assert torch.equal(torch.rand(3), expected)


def test_autoattack_infers_the_number_of_classes():
    import torchattacks

    model, x, y = tiny_attack_problem(num_classes=3)
    attacker = registry.create("attacker:autoattack", eps=2 * EPS)
    x_adv = attacker.attack(model, x, y)
    assert float((x_adv - x).abs().max()) <= 2 * EPS + 1e-6
    assert accuracy(model, x_adv, y) < accuracy(model, x, y)
    names = {k: [type(m).__name__ + ("-dlr" if getattr(m, "loss", "") == "dlr" else "")
                 for m in attacker.ensemble(model, k)._autoattack.attacks] for k in (3, 4)}
    assert names[4] == ["APGD", "APGDT", "FAB", "Square"]
    assert names[3] == ["APGD", "APGD-dlr", "FAB", "Square"]
    two = attacker.ensemble(model, 2)._autoattack.attacks
    assert [type(m) for m in two] == [torchattacks.APGD, torchattacks.FAB, torchattacks.Square]
    rand2 = registry.create("attacker:autoattack", version="rand").ensemble(model, 2)._autoattack
    assert isinstance(rand2, torchattacks.APGD) and rand2.loss == "ce"
    model2, x2, y2 = tiny_attack_problem(num_classes=2)
    assert registry.create("attacker:autoattack", eps=2 * EPS).attack(model2, x2, y2).shape == x2.shape


def test_apgd_dlr_needs_three_classes():
    model, x, y = tiny_attack_problem(num_classes=2)
    with pytest.raises(BadInputError, match="^loss: "):
        registry.create("attacker:apgd", loss="dlr", steps=5).attack(model, x, y)


# -- CW ---------------------------------------------------------------------------------------------

def test_cw_has_no_eps_and_changes_predictions(problem):
    model, x, y = problem
    attacker = registry.create("attacker:cw", c=10, steps=100, lr=0.05)
    assert attacker.eps is None
    x_adv = attacker.attack(model, x, y)
    assert accuracy(model, x_adv, y) <= 0.5 * accuracy(model, x, y)


def test_cw_works_when_all_logits_are_negative():
    model = FixedLinear(bias=-100.0)  # torchattacks 3.5.1's margin reads 0 for masked logits: no attack
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    y = model(x).argmax(1)
    x_adv = registry.create("attacker:cw", c=10, steps=100, lr=0.05).attack(model, x, y)
    assert accuracy(model, x_adv, y) <= 0.25


# -- masked PGD -----------------------------------------------------------------------------------

def _composites(n: int = 8):
    """Flat 0.2 background with a 4×4 object of 0.9 at rows/cols 2..5 (the foreground)."""
    x = torch.full((n, 1, 8, 8), 0.2)
    x[:, :, 2:6, 2:6] = 0.9
    obj = torch.zeros(n, 1, 8, 8, dtype=torch.bool)
    obj[:, :, 2:6, 2:6] = True
    return x, obj


def test_masked_pgd_with_a_given_mask(problem):
    model, x, y = problem
    mask = (torch.rand(x.shape, generator=torch.Generator().manual_seed(5)) > 0.5).float()
    x_adv = registry.create("attacker:masked-pgd", eps=EPS, region="given").attack(model, x, y, mask=mask)
    assert torch.equal(x_adv[mask == 0], x[mask == 0])  # bit-identical outside the mask
    assert float((x_adv - x).abs().max()) <= EPS + 1e-6
    assert bool((x_adv != x)[mask == 1].any())
    with torch.no_grad():
        assert F.cross_entropy(model(x_adv), y) > F.cross_entropy(model(x), y)
    soft = torch.full((x.shape[0], 1, 8, 8), 0.5)  # N×1×H×W, half the budget everywhere
    x_soft = registry.create("attacker:masked-pgd", eps=EPS, region="given").attack(model, x, y, mask=soft)
    assert float((x_soft - x).abs().max()) <= 0.5 * EPS + 1e-6


@pytest.mark.parametrize("region", ["foreground", "background"])
def test_masked_pgd_derives_the_region_from_the_image(problem, region):
    model, _, _ = problem
    x, obj = _composites()
    y = torch.zeros(x.shape[0], dtype=torch.long)
    attacked = obj if region == "foreground" else ~obj
    x_adv = registry.create("attacker:masked-pgd", eps=EPS, region=region).attack(model, x, y)
    assert torch.equal(x_adv[~attacked], x[~attacked])
    assert bool((x_adv != x)[attacked].any())
    assert float((x_adv - x).abs().max()) <= EPS + 1e-6


def test_masked_pgd_rejects_a_missing_or_bad_mask(problem):
    model, x, y = problem
    with pytest.raises(BadInputError, match="^mask: "):
        registry.create("attacker:masked-pgd", region="given").attack(model, x, y)
    attacker = registry.create("attacker:masked-pgd")
    for bad in (torch.ones(x.shape[0], 2, 8, 8), torch.ones(x.shape[0], 1, 4, 4), torch.full(x.shape, 2.0)):
        with pytest.raises(BadInputError, match="^mask: "):
            attacker.attack(model, x, y, mask=bad)


# -- targeted modes, options ------------------------------------------------------------------------

def test_pgd_targeted_modes_reach_their_targets(problem):
    model, x, y = problem
    with torch.no_grad():
        logits = model(x)
    least = logits.scatter(1, y[:, None], float("inf")).argmin(1)  # least likely class other than y
    strong = {"eps": 0.3, "steps": 20}
    x_ll = registry.create("attacker:pgd", targeted="least-likely", **strong).attack(model, x, y)
    assert accuracy(model, x_ll, least) >= 0.75
    x_random = registry.create("attacker:pgd", targeted="random", **strong).attack(model, x, y)
    assert accuracy(model, x_random, y) <= 0.25
    for key in ("attacker:fgsm", "attacker:fgsm-rs", "attacker:cw"):
        registry.create(key, targeted="least-likely").attack(model, x[:4], y[:4])


@pytest.mark.parametrize("key,options,field", [
    ("attacker:fgsm", {"eps": -1}, "eps"), ("attacker:fgsm-rs", {"alpha": 0}, "alpha"),
    ("attacker:trades", {"steps": 0}, "steps"), ("attacker:apgd", {"norm": "l3"}, "norm"),
    ("attacker:apgd", {"eps": 2}, "eps"), ("attacker:autoattack", {"version": "fast"}, "version"),
    ("attacker:cw", {"c": -1}, "c"), ("attacker:masked-pgd", {"region": "inside"}, "region"),
    ("attacker:pgd", {"eps": -1}, "eps"), ("attacker:cw", {"eps": 0.1}, "eps"),
])
def test_bad_option_is_a_one_line_error_naming_the_field(key, options, field):
    with pytest.raises((BadInputError, ValidationError)) as info:
        registry.create(key, **options)
    message = str(info.value)
    assert "\n" not in message and re.search(rf"\b{field}\b", message), message


# -- docs/attacks.md ------------------------------------------------------------------------------

def test_docs_table_lists_every_builtin_attacker():
    documented = set(re.findall(r"^\| `(attacker:[a-z0-9-]+)` \|", DOCS.read_text(), flags=re.M))
    builtin = {k for k in registry.list("attacker:*") if registry.get(k).distribution == "dreamset"}
    assert documented == builtin


def test_docs_example_plugin_passes_conformance(tmp_path, monkeypatch, dreamset_registry, dreamset_conformance):
    source = re.search(r"`my_attacks.py`:\n\n```python\n(.*?)```", DOCS.read_text(), flags=re.S).group(1)
    (tmp_path / "my_attacks.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_attacks", raising=False)
    import my_attacks

    dreamset_registry(my_attacks)
    assert "attacker:rfgsm" in registry.list("attacker:*")
    dreamset_conformance("attacker:rfgsm")
    model, x, y = tiny_attack_problem()
    assert accuracy(model, registry.create("attacker:rfgsm").attack(model, x, y), y) < accuracy(model, x, y)


def test_docs_suite_command_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--pyargs", "dreamset.conformance.suite",
         "--dreamset-conformance", "attacker:fgsm*"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "2 passed" in result.stdout



def test_pgd_restarts_each_draw_a_new_random_start_and_leave_the_rng_alone():
    # eps too small to fool (all restarts run), alpha too small to hide where each random start landed
    attacker = registry.create("attacker:pgd", eps=1e-4, alpha=1e-7, steps=1, restarts=3)
    runs = []
    run = attacker.run
    attacker.run = lambda attack, x, y: runs.append(run(attack, x, y)) or runs[-1]
    model = FixedLinear()
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    y = model(x).argmax(1)
    state = torch.get_rng_state()
    attacker.attack(model, x, y)
    assert torch.equal(torch.get_rng_state(), state)
    assert len(runs) == 3
    assert not torch.equal(runs[0], runs[1]) and not torch.equal(runs[1], runs[2])
