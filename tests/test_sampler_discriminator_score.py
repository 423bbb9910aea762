"""sampler:discriminator-score (Sehwag et al. 2022): cross-fitted robust real-vs-synthetic discriminator scores;
the known answer: synthetic images made partly of noise score lowest and are dropped."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamset import registry
from dreamset.contracts.data import TensorImageSet
from dreamset.contracts.inputs import Services


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    return x, torch.tensor(d.target, dtype=torch.int64), [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    x, y, names = _digits()
    real = TensorImageSet(x[:600], y[:600], names, name="real")
    # 400 "synthetic" images: held-out real digits; every other one is half replaced by uniform noise
    syn_x, syn_y = x[600:1000].clone(), y[600:1000]
    noisy = torch.arange(400) % 2 == 1
    g = torch.Generator().manual_seed(0)
    syn_x[noisy] = 0.5 * syn_x[noisy] + 0.5 * torch.rand(int(noisy.sum()), 1, 8, 8, generator=g)
    synthetic = TensorImageSet(syn_x, syn_y, names, name="synthetic")
    sampler = registry.create("sampler:discriminator-score", fraction=0.5, epochs=4, eps=0.02, attack_steps=2)
    services = Services(device=torch.device("cpu"), run_dir=tmp_path_factory.mktemp("ds"))
    torch.set_num_threads(1)
    selection = sampler.select(synthetic, real, services, seed=0)
    return selection, noisy.numpy(), synthetic


def test_noisy_images_score_lowest_and_are_dropped(scored):
    selection, noisy, _ = scored
    scores = np.asarray(selection.scores)
    assert scores[noisy].mean() < scores[~noisy].mean() - 0.2
    # nearly every image in the lower half of the scores is a noisy one
    low = np.argsort(scores)[: len(scores) // 2]
    assert noisy[low].mean() > 0.9
    kept = np.asarray(selection.indices)
    assert noisy[kept].mean() <= 0.15 and len(kept) == 200  # a uniform half would keep 0.5


def test_every_class_keeps_its_fraction_and_least_real_is_the_reverse(scored, tmp_path):
    selection, _, synthetic = scored
    labels = synthetic.labels.numpy()
    kept = np.asarray(selection.indices)
    for c in range(10):
        assert (labels[kept] == c).sum() == max(1, round(0.5 * (labels == c).sum()))
    sampler = registry.create("sampler:discriminator-score", fraction=0.5, keep="least-real")
    reverse = sampler._keep(synthetic, np.asarray(selection.scores))
    assert len(np.intersect1d(reverse, kept)) <= 10  # ties aside, the complement


def test_the_sampler_passes_conformance():
    from dreamset.conformance.samplers import check_sampler

    cls = registry.get("sampler:discriminator-score").load()
    check_sampler(registry.create("sampler:discriminator-score", **cls.conformance_options))
