"""Conformance checks for ``sampler:*`` components."""
from __future__ import annotations

import numpy as np
import torch

from dreamset.contracts.checks import selection_problem
from dreamset.contracts.data import TensorImageSet


class FakeReferenceClassifier:
    """A stand-in :class:`~dreamset.orchestration.reference.ReferenceClassifier`: features are the flattened images,
    predictions a fixed softmax."""

    device = torch.device("cpu")

    def features(self, source, model=None, batch_size=512):
        return source.get(range(len(source)))[0].flatten(1)

    def predict(self, source, model=None, batch_size=512):
        x = source.get(range(len(source)))[0].flatten(1)
        logits = x[:, : len(source.class_names)] * 5
        return torch.softmax(logits, dim=1)


class FakeSelectionContext:
    """A stand-in RunContext: ``reference`` is a :class:`FakeReferenceClassifier`, and ``features`` /
    ``predict`` are the shorthands for it that a RunContext has too."""

    device = torch.device("cpu")

    def __init__(self) -> None:
        self.reference = FakeReferenceClassifier()

    def features(self, source, model=None, batch_size=512):
        return self.reference.features(source, model, batch_size)

    def predict(self, source, model=None, batch_size=512):
        return self.reference.predict(source, model, batch_size)


def toy_sources(n_synthetic: int = 60, n_real: int = 40, classes: int = 3):
    g = torch.Generator().manual_seed(0)
    names = [f"c{i}" for i in range(classes)]
    syn = TensorImageSet(torch.rand(n_synthetic, 1, 4, 4, generator=g), torch.arange(n_synthetic) % classes, names)
    real = TensorImageSet(torch.rand(n_real, 1, 4, 4, generator=g), torch.arange(n_real) % classes, names)
    return syn, real


def check_sampler(sampler, synthetic=None, real=None, context=None) -> None:
    """Indices valid, unique, int64; scores (if any) one per synthetic sample
    (:func:`dreamset.contracts.checks.selection_problem`, which runs check too); same seed -> same
    selection."""
    if synthetic is None:
        synthetic, real = toy_sources()
    context = context or FakeSelectionContext()
    a = sampler.select(synthetic, real, context, seed=3)
    b = sampler.select(synthetic, real, context, seed=3)
    problem = selection_problem(a, len(synthetic))  # the check a run makes (dreamset.orchestration.guards)
    assert problem is None, problem
    indices = np.asarray(a.indices)
    assert indices.dtype == np.int64, f"indices must be int64, got {indices.dtype}"
    assert np.array_equal(indices, np.asarray(b.indices)), "not reproducible for a fixed seed"


def check_default(sampler) -> None:
    check_sampler(sampler)
