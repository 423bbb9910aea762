"""Conformance checks for ``mixer:*`` components."""
from __future__ import annotations

import torch

from dreamset.conformance.samplers import toy_sources


def check_mixer(mixer, real=None, synthetic=None, batch_size: int = 16) -> None:
    """``steps_per_epoch`` batches of float32 [0,1] images and int64 labels in range (and, when a
    mixer yields one, a float32 ``B×1×H×W`` context mask in [0,1]); deterministic in (epoch, seed);
    different epochs differ."""
    if real is None and synthetic is None:
        synthetic, real = toy_sources(30, 20)
    steps = mixer.steps_per_epoch(real, synthetic, batch_size)
    batches = list(mixer.batches(real, synthetic, batch_size, epoch=0, seed=1))
    assert len(batches) == steps, f"{len(batches)} batches, steps_per_epoch said {steps}"
    source = synthetic if synthetic is not None else real
    for batch in batches:
        assert len(batch) in (2, 3), f"a batch is (images, labels[, context mask]), got {len(batch)} items"
        x, y = batch[:2]
        if len(batch) == 3:
            mask = batch[2]
            assert mask.dtype == torch.float32 and tuple(mask.shape) == (x.shape[0], 1, *x.shape[2:]), \
                f"context mask must be float32 B×1×H×W, got {mask.dtype} {tuple(mask.shape)}"
            assert float(mask.min()) >= 0 and float(mask.max()) <= 1, "context mask outside [0,1]"
        assert x.dtype == torch.float32 and x.ndim == 4 and tuple(x.shape[1:]) == tuple(source.image_shape)
        assert float(x.min()) >= 0 and float(x.max()) <= 1
        assert y.dtype == torch.int64 and y.shape == x.shape[:1] and 0 < len(y) <= batch_size
        assert int(y.min()) >= 0 and int(y.max()) < len(source.class_names)
    again = list(mixer.batches(real, synthetic, batch_size, epoch=0, seed=1))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, again)), "not deterministic"
    other = list(mixer.batches(real, synthetic, batch_size, epoch=1, seed=1))
    assert any(not (torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])) for a, b in zip(batches, other)), "epochs are identical"


def check_default(mixer) -> None:
    """:func:`check_mixer` on 30 synthetic and 20 real toy images (small settings come from the
    mixer class's ``conformance_options``, through :func:`dreamset.conformance.create_default`)."""
    synthetic, real = toy_sources(30, 20)
    check_mixer(mixer, real, synthetic)
