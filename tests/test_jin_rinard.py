"""Jin & Rinard's Digit→MNIST protocol as components (issue 28; arXiv:2005.14707): their CNN
(``model:mnist-cnn``), glyph augmentation with its ramp (``augmentation:glyph-warp``), local refinement
(``attacker:blended-ascent``), persistent contexts (``objective:greedy-bias-correction``), per-arm
objectives and Adam with L2 weight decay. Tiny sizes."""
from __future__ import annotations

import pytest
import torch
from dreamset import registry
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.nn import Classifier
from dreamset.orchestration.recipe import load_recipe
from torch import nn


def test_mnist_cnn_is_the_papers_architecture():
    model = registry.create("model:mnist-cnn").build((1, 28, 28), 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [(1, 32, (3, 3), (0, 0)), (32, 128, (3, 3), (0, 0))]
    assert [(m.in_features, m.out_features) for m in linears] == [(18_432, 256), (256, 10)]
    assert len(norms) == 3
    assert float(model.mean.flatten()[0]) == pytest.approx(0.1307) and float(model.std.flatten()[0]) == pytest.approx(0.3801)
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    plain = registry.create("model:mnist-cnn", batch_norm=False, width=4, hidden=8).build((1, 12, 12), 3)
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in plain.modules())
    with pytest.raises(BadInputError, match="at least 6×6"):
        registry.create("model:mnist-cnn").build((1, 5, 5), 10)


def test_glyph_warp_ramps_in_like_the_paper():
    warp = registry.create("augmentation:glyph-warp")  # ramp_start 2, ramp_epochs 50
    assert [warp.strength_at(e) for e in (0, 1, 2, 27, 52, 299)] == [0, 0, 0, 0.5, 1, 1]
    assert warp.strength_at(None) == 1
    assert registry.create("augmentation:glyph-warp", ramp_epochs=0, ramp_start=3).strength_at(2) == 0


def test_glyph_warp_at_strength_zero_only_thresholds_and_later_warps():
    warp = registry.create("augmentation:glyph-warp")
    x = torch.zeros(4, 1, 16, 16)
    x[:, :, 4:12, 7:9] = 0.6  # a bar, one faint pixel
    x[:, :, 2, 2] = 0.1
    y = torch.arange(4)
    out, labels = warp.apply(x, y, 10, epoch=0)
    expected = x.clone()
    expected[expected > 0.2] = 1.0
    assert torch.equal(out, expected) and torch.equal(labels, y)
    torch.manual_seed(0)
    late, _ = warp.apply(x, y, 10, epoch=100)
    assert not torch.equal(late, expected) and float(late.min()) >= 0 and float(late.max()) <= 1


def test_the_trainer_hands_its_epoch_to_an_augmentation_that_takes_it():
    from dreamset.contracts.data import TensorImageSet
    from dreamset.training.augmenting import AugmentationPlan

    seen = []

    class Recorder:
        key, level, takes_epoch = "augmentation:recorder", "image", True

        def apply(self, images, labels, num_classes, epoch=None):
            seen.append(epoch)
            return images, labels

    source = TensorImageSet(torch.zeros(4, 1, 8, 8), torch.arange(4), [str(i) for i in range(4)])
    _, synthetic = AugmentationPlan(synthetic=[Recorder()]).sources(None, source, seed=0, epoch=7)
    synthetic.get(torch.arange(2))
    assert seen == [7]


def _linear(seed=0):
    torch.manual_seed(seed)
    model = Classifier(nn.Flatten(), nn.Linear(16, 3), mean=[0.0], std=[1.0])
    return model.eval()


def test_blended_ascent_follows_the_papers_step_schedule():
    """Hand-made reference: step k moves by eps/(steps·shrink)·((steps−k)·sign(g) + k·g/max|g|)/steps, clamped, no projection."""
    attacker = registry.create("attacker:blended-ascent", eps=0.4, steps=3, shrink=2.0)
    model = _linear()
    x = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 0, 1])
    ref = x.clone()
    for k in range(3):
        ref.requires_grad_(True)
        (g,) = torch.autograd.grad(nn.functional.cross_entropy(model(ref), y), ref)
        step = ((3 - k) * g.sign() + k * g / g.abs().max()) / 3
        ref = (ref.detach() + 0.4 / (3 * 2.0) * step).clamp(0, 1)
    out = attacker.attack(model, x, y)
    assert torch.allclose(out, ref, atol=1e-6)
    assert attacker.eps == pytest.approx(0.2) and float((out - x).abs().max()) <= 0.2 + 1e-6
    with torch.no_grad():
        assert nn.functional.cross_entropy(model(out), y) > nn.functional.cross_entropy(model(x), y)


class _Shift:
    """A stand-in attacker that adds 0.01 everywhere (and records its calls)."""

    key, takes_mask = "attacker:shift", False

    def __init__(self):
        self.calls = 0

    def attack(self, model, x, y):
        self.calls += 1
        return (x + 0.01).clamp(0, 1)


def test_greedy_bias_correction_contexts_persist_and_reset():
    model = _linear().train()
    x = torch.full((6, 1, 4, 4), 0.3)
    y = torch.arange(6) % 3
    keep = registry.create("objective:greedy-bias-correction", reset=0.0)
    shift = _Shift()
    torch.manual_seed(0)
    keep.loss(model, x, y, attacker=shift)
    first = keep.contexts.clone()
    noise = (first - 0.01 - 2 / 3 * x) * 3  # the first contexts were U[0, 0.5] noise
    assert float(noise.min()) >= -1e-5 and float(noise.max()) <= 0.5 + 1e-5
    keep.loss(model, x, y, attacker=shift)
    assert torch.allclose(keep.contexts, (2 * x + first) / 3 + 0.01, atol=1e-6)  # the previous refined input is the context
    fresh = registry.create("objective:greedy-bias-correction", reset=1.0, refine=False)
    assert fresh.uses_attacker is False
    fresh.loss(model, x, y)
    again = fresh.contexts.clone()
    fresh.loss(model, x, y)
    assert not torch.allclose(fresh.contexts, (2 * x + again) / 3)  # every context redrawn
    assert float(((fresh.contexts - 2 / 3 * x) * 3).max()) <= 0.5 + 1e-5
    fresh.reset_state()
    assert fresh.contexts is None


def test_greedy_bias_correction_refines_once_per_call_and_trains():
    model = _linear().train()
    objective = registry.create("objective:greedy-bias-correction")
    shift = _Shift()
    loss = objective.loss(model, torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 2, 0]), attacker=shift)
    loss.backward()
    assert shift.calls == 1 and model.head.weight.grad is not None and model.training


def test_an_arm_objective_needing_an_attacker_is_refused_without_one():
    with pytest.raises(BadInputError) as info:
        load_recipe("context-agnostic-mnist-short", ["train.attacker=null"], registry=registry.get_registry())
    assert "arms.context-agnostic.objective: objective:greedy-bias-correction needs an attacker" in str(info.value)
    with pytest.raises(BadInputError, match="standard: true trains with objective:standard"):
        load_recipe("context-agnostic-mnist-short", ["arms.naive.objective=greedy-bias-correction"],
                    registry=registry.get_registry())
    with pytest.raises(BadInputError, match="arms.no-refinement.objective.options"):
        load_recipe("context-agnostic-mnist-short", ["arms.no-refinement.objective.options.reset=2"],
                    registry=registry.get_registry())


def test_adam_adds_the_weight_decay_to_the_gradient():
    from dreamset.training.trainer import _optimizer

    recipe, _ = load_recipe("context-agnostic-mnist-short", [])
    optimizer = _optimizer(recipe.train, nn.Linear(3, 2))
    assert type(optimizer) is torch.optim.Adam
    assert [g["weight_decay"] for g in optimizer.param_groups] == [1e-4, 0.0]  # weights decay, biases do not
