"""Samplers: exact budgets, reproducibility, class balance, confidence ranking, and the adaptive
sampler preferring poorly covered samples on a 2-D example with a known answer."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import dreamset.registry as registry
from dreamset.conformance.samplers import FakeSelectionContext, check_sampler, toy_sources
from dreamset.contracts.data import TensorImageSet
from dreamset.contracts.errors import BadInputError


@pytest.mark.parametrize("key", ["sampler:uniform", "sampler:confidence", "sampler:adaptive-low-density"])
def test_sampler_contract(key):
    check_sampler(registry.create(key))


@pytest.mark.parametrize("options, expected", [({"count": 17}, 17), ({"fraction": 0.25}, 15), ({}, 60),
                                               ({"count": 17, "class_balanced": True}, 17)])
def test_uniform_budget_is_exact(options, expected):
    syn, real = toy_sources()
    a = registry.create("sampler:uniform", **options).select(syn, real, None, seed=0)
    assert len(a.indices) == expected
    b = registry.create("sampler:uniform", **options).select(syn, real, None, seed=1)
    if expected < 60:
        assert not np.array_equal(a.indices, b.indices)
    if options.get("class_balanced"):
        counts = np.bincount(syn.labels.numpy()[a.indices], minlength=3)
        assert sorted(counts.tolist()) == [5, 6, 6]


def test_uniform_errors():
    syn, real = toy_sources()
    with pytest.raises(BadInputError, match="count, fraction: give one budget"):
        registry.create("sampler:uniform", count=3, fraction=0.5)
    with pytest.raises(BadInputError, match="exceeds the 60 synthetic samples"):
        registry.create("sampler:uniform", count=61).select(syn, real, None, seed=0)


def test_confidence_keeps_top_fraction_per_class():
    syn, real = toy_sources(60)
    context = FakeSelectionContext()
    selection = registry.create("sampler:confidence", fraction=0.2).select(syn, real, context, seed=0)
    probs = context.predict(syn).numpy()
    labels = syn.labels.numpy()
    confidence = probs[np.arange(60), labels]
    assert len(selection.indices) == 12  # 4 per class
    for c in range(3):
        members = np.flatnonzero(labels == c)
        kept = np.intersect1d(members, selection.indices)
        assert len(kept) == 4
        assert confidence[kept].min() >= np.sort(confidence[members])[-4] - 1e-12
    assert np.allclose(selection.scores, confidence)


class PointContext:
    """Features are the images' two pixel values: a 2-D world where coverage is known."""

    device = torch.device("cpu")

    def features(self, source, model=None, batch_size=512):
        return source.get(range(len(source)))[0].flatten(1)


def _points(array, labels):
    x = torch.tensor(array, dtype=torch.float32).view(-1, 1, 1, 2)
    return TensorImageSet(x, torch.tensor(labels), ["a", "b"])


def test_adaptive_sampler_prefers_poorly_covered_samples_and_rejects_outliers():
    rng = np.random.default_rng(0)
    # real class 0: dense cluster around (0.2, 0.2) plus a sparse tail towards (0.45, 0.2)
    dense = 0.2 + 0.01 * rng.standard_normal((80, 2))
    tail = np.stack([np.linspace(0.25, 0.45, 8), np.full(8, 0.2)], 1)
    real = _points(np.clip(np.concatenate([dense, tail]), 0, 1), [0] * 88)
    # synthetic: 20 in the dense region (covered), 20 along the tail (poorly covered), 5 far outliers
    covered = 0.2 + 0.01 * rng.standard_normal((20, 2))
    sparse = np.stack([np.linspace(0.26, 0.44, 20), 0.2 + 0.005 * rng.standard_normal(20)], 1)
    outliers = np.stack([np.full(5, 0.95), np.linspace(0.8, 0.95, 5)], 1)
    synthetic = _points(np.clip(np.concatenate([covered, sparse, outliers]), 0, 1), [0] * 45)
    sampler = registry.create("sampler:adaptive-low-density", count=20, mode="top", k=3)
    selection = sampler.select(synthetic, real, PointContext(), seed=0)
    chosen = set(selection.indices.tolist())
    assert len(chosen) == 20
    assert selection.info["outliers"] == 5 and not chosen & set(range(40, 45))  # outliers rejected
    assert len(chosen & set(range(20, 40))) >= 18  # the poorly covered tail is preferred
    # softmax mode at a huge temperature is close to uniform over inliers; at a small one it matches top-k
    cold = registry.create("sampler:adaptive-low-density", count=20, temperature=1e-3, k=3).select(synthetic, real, PointContext(), seed=1)
    assert set(cold.indices.tolist()) == chosen
    hot = registry.create("sampler:adaptive-low-density", count=20, temperature=1e6, k=3).select(synthetic, real, PointContext(), seed=1)
    assert len(set(hot.indices.tolist()) & set(range(20))) >= 4  # covered samples now drawn too


def test_adaptive_density_ratio_score_and_budget_fill():
    syn, real = toy_sources(60, 40)
    selection = registry.create("sampler:adaptive-low-density", score="density-ratio", fraction=0.9, outlier_scale=0.01).select(
        syn, real, FakeSelectionContext(), seed=0)
    assert len(selection.indices) == 54  # budget exact even when most samples are outliers
    assert selection.info["outliers_used_to_fill_budget"] > 0
