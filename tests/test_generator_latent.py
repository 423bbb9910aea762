"""generator:gan and generator:vae (the contract itself is the conformance suite's): fit -> checkpoint ->
reuse, retrain when a training option changes but not for a sampling option, truncation lowers
diversity, and each image depends only on its label and seed."""
from __future__ import annotations

import pytest
import torch

from dreamset.conformance.generators import _tiny_real, check_generator
from dreamset.registry import get_registry

TINY = {"generator:gan": {"train_steps": 4, "batch_size": 8, "width": 8, "disc_width": 8, "latent_dim": 8},
        "generator:vae": {"train_steps": 4, "batch_size": 8, "width": 8, "latent_dim": 8}}


@pytest.mark.parametrize("key", sorted(TINY))
def test_fit_checkpoints_and_reuses(key, tmp_path, monkeypatch):
    real = _tiny_real()
    first = get_registry().create(key, **TINY[key])
    first.fit(real, tmp_path)
    name = key.split(":")[1]
    assert (tmp_path / f"{name}.safetensors").is_file()
    labels, seeds = torch.tensor([0, 1, 2, 3]), [5, 6, 7, 8]
    images = first.generate(labels, seeds, real.class_names).images
    # a second generator with the same options reuses the checkpoint (training would fail here)
    again = get_registry().create(key, **TINY[key])
    monkeypatch.setattr(type(again), "_train", lambda *a, **k: pytest.fail("retrained"))
    again.fit(real, tmp_path)
    assert torch.equal(again.generate(labels, seeds, real.class_names).images, images)
    check_generator(again, real.class_names, real.image_shape)
    # a training option changes the hash: retrained (and the image changes)
    monkeypatch.undo()
    other = get_registry().create(key, **{**TINY[key], "seed": 1})
    other.fit(real, tmp_path)
    assert not torch.equal(other.generate(labels, seeds, real.class_names).images, images)


def test_truncation_lowers_diversity_without_retraining(tmp_path, monkeypatch):
    real = _tiny_real()
    plain = get_registry().create("generator:gan", **TINY["generator:gan"])
    plain.fit(real, tmp_path)
    truncated = get_registry().create("generator:gan", **TINY["generator:gan"], truncation=0.1)
    monkeypatch.setattr(type(truncated), "_train", lambda *a, **k: pytest.fail("retrained"))
    truncated.fit(real, tmp_path)
    z = torch.stack([truncated.latent(torch.Generator().manual_seed(s)) for s in range(200)])
    assert float(z.abs().max()) <= 0.1
    labels = torch.zeros(64, dtype=torch.int64)
    spread = {name: float(g.generate(labels, list(range(64)), real.class_names).images.std(0).mean())
              for name, g in (("plain", plain), ("truncated", truncated))}
    assert spread["truncated"] < 0.5 * spread["plain"]
    batch = truncated.generate(labels[:2], [3, 4], real.class_names)
    assert batch.provenance[0]["truncation"] == 0.1 and batch.provenance[0]["seed"] == 3
