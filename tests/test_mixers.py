"""Mixers: ratio composition, biregular degree exactness and impossibility, superimposition rate,
cut-paste placement."""
from __future__ import annotations

import math

import pytest
import torch

import dreamset.registry as registry
from dreamset.conformance import create_default
from dreamset.conformance.mixers import check_default, check_mixer
from dreamset.conformance.samplers import toy_sources
from dreamset.contracts.data import TensorImageSet
from dreamset.contracts.errors import BadInputError


@pytest.mark.parametrize("key", ["mixer:ratio", "mixer:cut-paste", "mixer:biregular"])
def test_mixer_contract(key):
    check_default(create_default(registry.get_registry(), key))


def _marked_sources():
    """Real images are all 0.25, synthetic all 0.75: a batch's composition is visible in its pixels."""
    real = TensorImageSet(torch.full((50, 1, 4, 4), 0.25), torch.arange(50) % 5, [str(i) for i in range(5)])
    syn = TensorImageSet(torch.full((37, 1, 4, 4), 0.75), torch.arange(37) % 5, [str(i) for i in range(5)])
    return real, syn


@pytest.mark.parametrize("fraction", [0.3, 0.5, 1.0, 0.0])
def test_ratio_batches_hold_the_fraction(fraction):
    real, syn = _marked_sources()
    mixer = registry.create("mixer:ratio", real_fraction=fraction)
    batches = list(mixer.batches(real, syn, 10, epoch=0, seed=0))
    if fraction == 0.0:
        assert len(batches) == math.ceil(37 / 10)
    else:
        assert len(batches) == math.ceil(50 / round(10 * fraction))
    real_seen = 0
    for x, _ in batches[:-1]:
        n_real = int((x[:, 0, 0, 0] == 0.25).sum())
        assert n_real == round(10 * fraction) and len(x) == 10
        real_seen += n_real
    if fraction > 0:
        real_seen += int((batches[-1][0][:, 0, 0, 0] == 0.25).sum())
        assert real_seen == 50  # one epoch = one pass over the real set
    check_mixer(mixer, real, syn, batch_size=10)


def test_ratio_epoch_steps_matches_a_real_arm_to_a_mixed_arm():
    """``epoch_steps`` gives a real-only arm and a half-real arm the same optimizer steps; the real set
    is then cycled through successive permutations (every sample seen equally often, full batches)."""
    values = torch.arange(50, dtype=torch.float32).view(50, 1, 1, 1).expand(50, 1, 4, 4) / 100
    real = TensorImageSet(values, torch.zeros(50, dtype=torch.long), ["0"])
    syn = TensorImageSet(torch.ones(37, 1, 4, 4), torch.zeros(37, dtype=torch.long), ["0"])
    alone = registry.create("mixer:ratio", real_fraction=1.0, epoch_steps=10)
    mixed = registry.create("mixer:ratio", real_fraction=0.5, epoch_steps=10)
    assert alone.steps_per_epoch(real, None, 10) == mixed.steps_per_epoch(real, syn, 10) == 10
    assert registry.create("mixer:ratio", real_fraction=1.0).steps_per_epoch(real, None, 10) == 5
    batches = list(alone.batches(real, None, 10, epoch=0, seed=0))
    assert len(batches) == 10 and all(len(x) == 10 for x, _ in batches)
    counts = torch.bincount((torch.cat([x[:, 0, 0, 0] for x, _ in batches]) * 100).round().long(), minlength=50)
    assert torch.equal(counts, torch.full((50,), 2))  # 100 draws = two full permutations of 50
    batches = list(mixed.batches(real, syn, 10, epoch=0, seed=0))
    assert len(batches) == 10 and all(int((x[:, 0, 0, 0] == 1).sum()) == 5 for x, _ in batches)
    check_mixer(mixed, real, syn, batch_size=10)


def test_ratio_without_replacement_covers_synthetic_evenly():
    real, syn = _marked_sources()
    syn = TensorImageSet(torch.arange(37, dtype=torch.float32).view(37, 1, 1, 1).expand(37, 1, 4, 4) / 100, torch.zeros(37, dtype=torch.long), ["0"])
    real = TensorImageSet(torch.ones(74, 1, 4, 4), torch.zeros(74, dtype=torch.long), ["0"])
    seen = torch.cat([x[x[:, 0, 0, 0] < 1][:, 0, 0, 0] for x, _ in registry.create("mixer:ratio", real_fraction=0.5).batches(real, syn, 4, 0, 0)])
    counts = torch.bincount((seen * 100).round().long(), minlength=37)
    assert int(counts.min()) >= 1 and int(counts.max()) - int(counts.min()) <= 1


def test_biregular_degrees_are_exact_over_many_draws():
    from dreamset.plugins.mixers.biregular import biregular_edges

    for seed in range(50):
        g = torch.Generator().manual_seed(seed)
        n_o, n_b, d_o = 10, 25, 5
        objects, backgrounds = biregular_edges(n_o, n_b, d_o, g)
        assert torch.equal(torch.bincount(objects, minlength=n_o), torch.full((n_o,), d_o))
        assert torch.equal(torch.bincount(backgrounds, minlength=n_b), torch.full((n_b,), n_o * d_o // n_b))
        pairs = set(zip(objects.tolist(), backgrounds.tolist()))
        assert len(pairs) == n_o * d_o  # simple graph: no repeated pair


@pytest.mark.parametrize("n_o, n_b, d_o", [(10, 200, 200), (10, 250, 200), (7, 21, 12)])
def test_dense_biregular_graphs_are_simple_and_exact(n_o, n_b, d_o):
    """Dense graphs, where random swaps cannot remove every repeated pair (the complete graph among
    them), still come out simple with exact degrees."""
    from dreamset.plugins.mixers.biregular import biregular_edges

    objects, backgrounds = biregular_edges(n_o, n_b, d_o, torch.Generator().manual_seed(0))
    keys = objects * n_b + backgrounds
    assert len(torch.unique(keys)) == n_o * d_o
    assert torch.equal(torch.bincount(objects, minlength=n_o), torch.full((n_o,), d_o))
    assert torch.equal(torch.bincount(backgrounds, minlength=n_b), torch.full((n_b,), n_o * d_o // n_b))


@pytest.mark.parametrize("n_b, d_o", [(7, 5), (3, 5)])
def test_impossible_degrees_are_rejected(n_b, d_o):
    syn, real = toy_sources(10, 10)
    mixer = registry.create("mixer:biregular", n_backgrounds=n_b, object_degree=d_o)
    with pytest.raises(BadInputError, match="object_degree=.* has no biregular graph"):
        next(mixer.batches(None, syn, 8, 0, 0))


def test_superimposition_probability_is_honoured():
    """A superimposed composite keeps the previous composite's object: with black backgrounds and a
    bright object, it carries more bright pixels. Measure the rate of 'two objects' images."""
    names = ["a", "b"]
    # object 0: a bright left bar; object 1: a bright right bar (disjoint when not moved)
    x = torch.zeros(2, 1, 8, 8)
    x[0, :, :, 1:3] = 1
    x[1, :, :, 5:7] = 1
    syn = TensorImageSet(x, torch.tensor([0, 1]), names)
    for p in (0.0, 0.5):
        mixer = registry.create("mixer:biregular", backgrounds="plain", n_backgrounds=100, object_degree=100, superimpose=p,
                                rotation=0, translate=0, scale_min=1, scale_max=1, brightness=0)
        both = total = 0
        for images, labels, _ in mixer.batches(None, syn, 50, epoch=0, seed=0):
            left = images[:, 0, :, 1:3].mean(dim=(1, 2)) > 0.5
            right = images[:, 0, :, 5:7].mean(dim=(1, 2)) > 0.5
            both += int((left & right).sum())
            total += len(images)
        rate = both / total
        # superimposing onto a composite of the *other* object makes both bars visible: p · P(other) ≈ p/2
        assert abs(rate - p / 2) < 0.06, (p, rate)


def test_cut_paste_puts_object_pixels_where_the_mask_says():
    from dreamset.plugins.mixers.compositing import Placement, composite
    from dreamset.toolkit.masks import object_masks

    obj = torch.zeros(4, 1, 8, 8)
    obj[:, :, 2:6, 2:6] = 0.9
    masks = object_masks(obj, 0.2)
    assert int(masks.sum()) == 4 * 16
    bg = torch.full((4, 1, 8, 8), 0.1)
    out, placed = composite(obj, masks, bg, torch.Generator().manual_seed(0),
                            Placement(scale=(1, 1), rotation=0, translate=0, flip=0, brightness=0))
    assert torch.allclose(out[:, :, 2:6, 2:6], torch.full((4, 1, 4, 4), 0.9), atol=1e-5)
    assert torch.allclose(out[:, :, 0, :], torch.full((4, 1, 8), 0.1), atol=1e-5)
    assert torch.allclose(placed, masks)


@pytest.mark.parametrize("kind", ["plain", "procedural", "natural"])
def test_background_banks(kind):
    from dreamset.plugins.mixers.backgrounds import background_bank

    bank = background_bank(kind, 6, (3, 8, 8), seed=0)
    assert bank.shape == (6, 3, 8, 8) and float(bank.min()) >= 0 and float(bank.max()) <= 1
    assert torch.equal(bank, background_bank(kind, 6, (3, 8, 8), seed=0))
    if kind != "plain":
        assert float(bank.std()) > 0.05
    with pytest.raises(BadInputError, match="folder .* not found"):
        background_bank("folder:/nonexistent/x", 2, (1, 8, 8), 0)


@pytest.mark.parametrize("key, options", [("cut-paste", {"repeats": 3}),
                                          ("biregular", {"n_backgrounds": 10, "object_degree": 5, "superimpose": 0.5})])
def test_compositing_mixers_yield_the_context_mask(key, options):
    """The third item is 1 where the background shows and 0 on the pasted object: with a plain black
    background and no jitter, exactly where the composite is dark."""
    x = torch.zeros(2, 1, 8, 8)
    x[:, :, 2:6, 2:6] = 0.9
    syn = TensorImageSet(x, torch.tensor([0, 1]), ["a", "b"])
    mixer = registry.create(f"mixer:{key}", backgrounds="plain", rotation=0, translate=0, scale_min=1, scale_max=1,
                            brightness=0, **options)
    for images, labels, context in mixer.batches(None, syn, 4, epoch=0, seed=0):
        assert context.shape == (len(images), 1, 8, 8)
        assert torch.equal(context, (images < 0.45).float())
        assert torch.equal(context[:, :, 2:6, 2:6], torch.zeros(len(images), 1, 4, 4))


def test_background_range_maps_the_bank_and_keeps_the_object():
    """``background_min``/``background_max`` map the bank's [0,1] linearly into that range (dark
    textures under a bright glyph); the object's pixels and the context mask do not change."""
    x = torch.zeros(2, 1, 8, 8)
    x[:, :, 2:6, 2:6] = 0.9
    syn = TensorImageSet(x, torch.tensor([0, 1]), ["a", "b"])
    still = dict(rotation=0, translate=0, scale_min=1, scale_max=1, brightness=0, repeats=4)
    full = registry.create("mixer:cut-paste", backgrounds="procedural", n_backgrounds=5, **still)
    dark = registry.create("mixer:cut-paste", backgrounds="procedural", n_backgrounds=5, background_min=0.1,
                           background_max=0.4, **still)
    (a, la, ma), (b, lb, mb) = next(iter(full.batches(None, syn, 8, 0, 0))), next(iter(dark.batches(None, syn, 8, 0, 0)))
    assert torch.equal(la, lb) and torch.equal(ma, mb)
    context = ma.bool().expand_as(a)
    assert torch.allclose(b[context], 0.1 + 0.3 * a[context], atol=1e-6)
    assert float(b[context].min()) >= 0.1 - 1e-6 and float(b[context].max()) <= 0.4 + 1e-6
    assert torch.equal(b[~context], a[~context])
    with pytest.raises(BadInputError, match="background_min"):
        registry.create("mixer:cut-paste", background_min=0.5, background_max=0.4).batches(None, syn, 8, 0, 0).__next__()
