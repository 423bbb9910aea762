"""Training objectives as components (``objective:*``): the built-ins keep the losses the trainer
computed before objectives existed (bit-identical weights after training), MART follows the authors'
reference formula and trains robustly, a third-party objective is used by the trainer, and old
recipes (``train.attacker: trades``, ``train.trades_beta``) keep working."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import dreamset
import dreamset.registry as registry
import dreamset.training.trainer as training
from dreamset.conformance import check_component
from dreamset.conformance.metrics import toy_row_images
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import Objective
from dreamset.orchestration.evaluation import accuracy
from dreamset.orchestration.recipe import TrainStage, load_recipe
from dreamset.training.objectives import objective_for

EPS = 0.2
SEED = 1


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def toy():
    g = torch.Generator().manual_seed(SEED)
    return toy_row_images(90, 3, 0.0, g), toy_row_images(60, 3, 0.0, g)


def settings(**overrides) -> TrainStage:
    values = dict(model="small-cnn", epochs=3, batch_size=20, optimizer="adamw", lr=0.01, weight_decay=0.0,
                  mixed_precision=False)
    return TrainStage(**(values | overrides))


def train(tmp, data, attacker=None, objective=None, epochs=3, **overrides):
    torch.manual_seed(SEED)
    model = registry.create("model:small-cnn", width=4).build((1, 8, 8), 3)
    record: dict = {}
    trained = training.train_classifier(None, model, mixer=registry.create("mixer:ratio", real_fraction=1.0), real=data,
                                        synthetic=None, attacker=attacker, settings=settings(epochs=epochs, **overrides),
                                        seed=SEED, checkpoint_dir=tmp, objective=objective, record=record)
    return trained, record


def _loss_before_objectives(model, x, y, objective, settings, attacker=None, attack_model=None, mask=None,
                            calls=None, cost=None):
    """The trainer's loss as it was before objectives (core/training/trainer.py at a515a55), verbatim but for
    the mask plumbing: standard CE, TRADES when the attacker is attacker:trades, else PGD-AT."""
    smoothing = settings.label_smoothing
    if attacker is None:
        return F.cross_entropy(model(x), y, label_smoothing=smoothing)
    before = calls[0] if calls is not None else 0
    x_adv = attacker.attack(attack_model if attack_model is not None else model, x, y)
    if calls is not None and cost is not None:
        cost["attack_forward_backward_passes"] += calls[0] - before
    if attacker.key == "attacker:trades":
        logits = model(x)
        logits_adv = model(x_adv)
        kl = F.kl_div(F.log_softmax(logits_adv, dim=1), F.softmax(logits, dim=1), reduction="batchmean")
        return F.cross_entropy(logits, y, label_smoothing=smoothing) + (settings.trades_beta or 6.0) * kl
    return F.cross_entropy(model(x_adv), y, label_smoothing=smoothing)


@pytest.mark.parametrize("key,options,overrides", [
    (None, {}, {}),
    ("attacker:pgd", {"eps": EPS, "steps": 2}, {"label_smoothing": 0.1}),
    ("attacker:trades", {"eps": EPS, "steps": 2}, {}),
    ("attacker:trades", {"eps": EPS, "steps": 2}, {"trades_beta": 3.0, "label_smoothing": 0.1}),
])
def test_old_recipes_train_bit_identically(toy, tmp_path, monkeypatch, key, options, overrides):
    attacker = registry.create(key, **options) if key else None
    new, new_cost = train(tmp_path / "objectives", toy[0], attacker, epochs=1, **overrides)
    monkeypatch.setattr(training, "_loss", _loss_before_objectives)
    old, old_cost = train(tmp_path / "before", toy[0], attacker, epochs=1, **overrides)
    for name, value in old.state_dict().items():
        assert torch.equal(new.state_dict()[name], value), f"{name} differs from the pre-objective trainer"
    # the forward-pass accounting is unchanged: the attacker's passes only (PGD-2: 2, TPGD-2: 3 per step)
    assert new_cost == {**old_cost, "wall_seconds": new_cost["wall_seconds"]}
    assert new_cost["attack_forward_backward_passes"] == {None: 0, "attacker:pgd": 2, "attacker:trades": 3}[key] * new_cost["optimizer_steps"]


def test_explicit_objectives_equal_the_legacy_choice(toy, tmp_path):
    attacker = registry.create("attacker:trades", eps=EPS, steps=2)
    legacy, _ = train(tmp_path / "legacy", toy[0], attacker, epochs=1, trades_beta=4.0)
    explicit, _ = train(tmp_path / "explicit", toy[0], attacker, epochs=1,
                        objective=registry.create("objective:trades", beta=4.0))
    assert all(torch.equal(v, explicit.state_dict()[k]) for k, v in legacy.state_dict().items())


def _mart_reference(model, x, x_adv, y, beta):
    """The MART loss as the authors' reference code writes it (argsort, KLDivLoss(reduction='none'))."""
    kl = torch.nn.KLDivLoss(reduction="none")
    logits = model(x)
    logits_adv = model(x_adv)
    adv_probs = F.softmax(logits_adv, dim=1)
    tmp1 = torch.argsort(adv_probs, dim=1)[:, -2:]
    new_y = torch.where(tmp1[:, -1] == y, tmp1[:, -2], tmp1[:, -1])
    loss_adv = F.cross_entropy(logits_adv, y) + F.nll_loss(torch.log(1.0001 - adv_probs + 1e-12), new_y)
    nat_probs = F.softmax(logits, dim=1)
    true_probs = torch.gather(nat_probs, 1, (y.unsqueeze(1)).long()).squeeze()
    loss_robust = (1.0 / len(x)) * torch.sum(
        torch.sum(kl(torch.log(adv_probs + 1e-12), nat_probs), dim=1) * (1.0000001 - true_probs))
    return loss_adv + float(beta) * loss_robust


def test_mart_follows_the_reference_formula(toy):
    x, y = toy[0].get(range(12))
    torch.manual_seed(0)
    model = registry.create("model:small-cnn", width=4).build((1, 8, 8), 3).eval()
    attacker = registry.create("attacker:pgd", eps=EPS, steps=2)
    mart = registry.create("objective:mart", beta=5.0)
    torch.manual_seed(5)
    loss = mart.loss(model, x, y, attacker=attacker)
    torch.manual_seed(5)
    expected = _mart_reference(model, x, attacker.attack(model, x, y), y, 5.0)
    assert torch.allclose(loss, expected, atol=1e-6), (float(loss), float(expected))


def test_mart_trains_robustly_and_passes_conformance(toy, tmp_path):
    check_component("objective:mart")
    standard, _ = train(tmp_path / "standard", toy[0], epochs=10)
    mart, record = train(tmp_path / "mart", toy[0], registry.create("attacker:pgd", eps=EPS, steps=3), epochs=10,
                         objective=registry.create("objective:mart"))
    torch.manual_seed(123)
    pgd = registry.create("attacker:pgd", eps=EPS, steps=10)
    robust_standard, robust_mart = accuracy(standard, toy[1], attacker=pgd), accuracy(mart, toy[1], attacker=pgd)
    assert accuracy(mart, toy[1]) >= 0.85
    assert robust_mart >= robust_standard + 0.3, (robust_standard, robust_mart)
    assert record["attack_forward_backward_passes"] == 3 * record["optimizer_steps"]


class _HalfCleanOptions(dreamset.Options):
    weight: float = 0.5


class HalfClean(Objective):
    """A third-party objective: weight·CE(x) + (1 − weight)·CE(x_adv)."""

    key = "objective:half-clean"
    Options = _HalfCleanOptions
    calls = 0

    def loss(self, model, x, y, *, attacker=None, mask=None, label_smoothing=0.0):
        type(self).calls += 1
        x_adv = self.perturb(attacker, model, x, y, mask)
        w = self.options.weight
        return w * F.cross_entropy(model(x), y) + (1 - w) * F.cross_entropy(model(x_adv), y)


class ObjectivePlugin:
    @dreamset.hookimpl
    def register_objectives(self, register):
        register(HalfClean)


def test_a_plugin_objective_is_used_by_the_trainer(toy, tmp_path, dreamset_registry):
    dreamset_registry(ObjectivePlugin())
    check_component("objective:half-clean")
    HalfClean.calls = 0
    s = settings(attacker={"key": "pgd", "options": {"eps": EPS, "steps": 1}}, objective="half-clean")
    attacker = registry.create("attacker:pgd", eps=EPS, steps=1)
    objective = objective_for(attacker, s)
    assert objective.key == "objective:half-clean"
    train(tmp_path, toy[0], attacker, epochs=1, objective=objective)
    assert HalfClean.calls == 5  # ceil(90 / 20) optimizer steps, one loss each


def test_old_trades_recipe_resolves_to_the_trades_objective():
    recipe, _ = load_recipe("cifar10-generated-at", registry=registry.get_registry())
    assert recipe.train.objective is None and recipe.train.trades_beta == 5.0
    objective = objective_for(registry.create("attacker:trades"), recipe.train)
    assert objective.key == "objective:trades" and objective.options.beta == 5.0
    recipe, _ = load_recipe("cifar10-generated-at", ["train.trades_beta=null", "train.objective=mart",
                                                     "train.attacker=pgd"], registry=registry.get_registry())
    assert objective_for(registry.create("attacker:pgd"), recipe.train).key == "objective:mart"


@pytest.mark.parametrize("overrides,message", [
    (["train.objective=mart"], "train.trades_beta: only for recipes without train.objective"),
    (["train.trades_beta=null", "train.objective=standard"], "objective:standard trains without an attacker"),
    (["train.trades_beta=null", "train.objective=mart", "train.attacker=null"], "objective:mart needs an attacker"),
    (["train.trades_beta=null", "train.objective.key=mrat"], "train.objective.key: unknown component 'objective:mrat'"),
    (["train.trades_beta=null", "train.objective={key: trades, options: {beta: -1}}"], "train.objective.options.beta"),
])
def test_inconsistent_objective_settings_are_one_line_errors(overrides, message):
    with pytest.raises(BadInputError) as info:
        load_recipe("cifar10-generated-at", overrides, registry=registry.get_registry())
    assert message in str(info.value) and "\n" not in str(info.value)


MART = ["train.trades_beta=null", "train.objective=mart", "train.attacker=pgd"]


@pytest.mark.parametrize("overrides,field", [
    (MART + ["train.augment.batch=[cutmix]"], "train.augment.batch: objective:mart needs hard labels, but augmentation:cutmix"),
    (MART + ["arms.real+synthetic.augment={batch: [mixup]}"], "arms.real+synthetic.augment.batch: objective:mart needs hard labels, but augmentation:mixup"),
])
def test_mart_with_cutmix_or_mixup_is_refused_at_validation_naming_the_field(overrides, field):
    """CutMix/MixUp make soft labels (``float32 B×K``); MART's boosted CE needs one true class per
    example (``soft_labels = False``), so the recipe is refused before anything runs."""
    with pytest.raises(BadInputError) as info:
        load_recipe("cifar10-generated-at", overrides, registry=registry.get_registry())
    assert str(info.value).startswith(field) and "\n" not in str(info.value)
    # the same batch augmentation with an objective that takes soft labels, or on a standard arm, is fine
    load_recipe("cifar10-generated-at", ["train.trades_beta=null", "train.objective=pgd-at", "train.attacker=pgd",
                                         "train.augment.batch=[cutmix]"], registry=registry.get_registry())
    load_recipe("cifar10-generated-at", MART + ["arms.real.standard=true", "arms.real.augment={batch: [mixup]}"],
                registry=registry.get_registry())


def test_mart_given_soft_labels_directly_is_a_clear_error_not_an_internal_one(toy):
    x, y = toy[0].get(range(4))
    soft = F.one_hot(y, toy[0].num_classes).float()
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(x[0].numel(), toy[0].num_classes))
    with pytest.raises(BadInputError, match="augment.batch: objective:mart needs hard int64 labels"):
        registry.create("objective:mart").loss(model, x, soft, attacker=registry.create("attacker:pgd", steps=1))
    assert registry.get("objective:mart").load().soft_labels is False
    assert all(registry.get(k).load().soft_labels for k in ("objective:standard", "objective:pgd-at", "objective:trades"))
