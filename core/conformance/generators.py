"""Conformance checks for generators (``generator:*``): the contract of
:meth:`dreamset.contracts.interfaces.Generator.generate`.

``generate(labels int64 B, seeds list[int] B, class_names) -> GeneratedBatch`` with images
``float32 B×C×H×W`` in [0,1], the requested labels echoed back, and one provenance dict per image
holding at least :data:`dreamset.store.format.PROVENANCE_KEYS`. Image ``i`` is a function of
``(labels[i], seeds[i], options)`` only: the same call twice gives identical tensors, and an image
generated alone equals the same image generated inside a batch (up to float rounding).
"""
from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Sequence

#: the provenance keys every record must carry (kept in one place: dreamset.store.format)
from dreamset.store.format import PROVENANCE_KEYS


def _labels_and_seeds(num_classes: int, n: int, seed: int):
    import torch

    labels = torch.arange(n, dtype=torch.int64) % num_classes
    seeds = [seed + 7 * i for i in range(n)]
    return labels, seeds


def check_generator(generator, class_names: Sequence[str], image_shape: Sequence[int], n: int = 4,
                    seed: int = 1234, batch_atol: float = 1e-5, seed_matters: bool = True) -> None:
    """Assert the Generator contract on ``n`` images (labels cycling over the classes).

    ``batch_atol``: tolerated absolute difference between an image generated alone and inside a
    batch. Repeating the same call must be bit-identical, but a network's kernels may block their
    sums differently for another batch size (a DDPM UNet on CPU differs by ~5e-7); the default
    1e-5 allows that and is far below one uint8 step (1/255), while a real batch dependence
    (shared noise, batch statistics) is caught. Pass 0 to demand bit-identity. ``seed_matters=False`` for a
    generator without randomness (then different seeds may give the same image)."""
    import torch

    from dreamset.contracts.interfaces import GeneratedBatch

    name = getattr(generator, "key", "") or type(generator).__name__
    class_names = list(class_names)
    shape = (n, *tuple(int(v) for v in image_shape))
    labels, seeds = _labels_and_seeds(len(class_names), n, seed)
    out = generator.generate(labels.clone(), list(seeds), class_names)
    assert isinstance(out, GeneratedBatch), f"{name}: generate() must return a GeneratedBatch, got {type(out).__name__}"
    images = out.images
    assert isinstance(images, torch.Tensor), f"{name}: images must be a torch.Tensor"
    assert tuple(images.shape) == shape, f"{name}: images have shape {tuple(images.shape)}, expected {shape}"
    assert images.dtype == torch.float32, f"{name}: images must be float32, got {images.dtype}"
    assert torch.isfinite(images).all(), f"{name}: images contain NaN or inf"
    assert images.min() >= 0 and images.max() <= 1, f"{name}: images outside [0,1] ([{float(images.min())}, {float(images.max())}])"
    assert isinstance(out.labels, torch.Tensor) and out.labels.dtype == torch.int64, f"{name}: labels must be an int64 tensor"
    if getattr(generator, "assigns_labels", False):
        labels = out.labels.cpu()
        assert int(labels.min()) >= 0 and int(labels.max()) < len(class_names), f"{name}: assigned labels out of range"
    assert torch.equal(out.labels.cpu(), labels), f"{name}: labels {out.labels.tolist()} are not the requested {labels.tolist()}"
    assert len(out.provenance) == n, f"{name}: {len(out.provenance)} provenance records for {n} images"
    for i, record in enumerate(out.provenance):
        assert isinstance(record, dict), f"{name}: provenance[{i}] must be a dict"
        missing = [key for key in PROVENANCE_KEYS if key not in record]
        assert not missing, f"{name}: provenance[{i}] lacks {missing}"
        assert int(record["label"]) == int(labels[i]), f"{name}: provenance[{i}]['label'] is {record['label']}, expected {int(labels[i])}"
        assert record["seed"] == seeds[i], f"{name}: provenance[{i}]['seed'] is {record['seed']}, expected {seeds[i]}"
        assert record["class_name"] == class_names[int(labels[i])], f"{name}: provenance[{i}]['class_name'] mismatch"
        json.dumps(record, default=float)

    again = generator.generate(labels.clone(), list(seeds), class_names)
    assert torch.equal(again.images, images), f"{name}: not deterministic (same labels and seeds gave different images)"

    for i in (0, n - 1):
        alone = generator.generate(labels[i:i + 1].clone(), [seeds[i]], class_names).images
        diff = float((alone[0] - images[i]).abs().max())
        assert diff <= batch_atol, f"{name}: image {i} differs by {diff} when generated alone instead of in a batch of {n}"
    if not seed_matters:
        return
    other = generator.generate(labels[:1].clone(), [seeds[0] + 1], class_names).images
    assert not torch.equal(other[0], images[0]), f"{name}: a different seed gave the same image (seeds are ignored)"


def _tiny_real(num_classes: int = 4, size: int = 8):
    import torch

    from dreamset.contracts.data import TensorImageSet

    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(10 * num_classes) % num_classes
    images = torch.rand(len(labels), 1, size, size, generator=generator)
    return TensorImageSet(images, labels, [f"class{c}" for c in range(num_classes)], name="conformance")


def check_default(generator) -> None:
    """The suite's behavioural check for a generator created with default options: fitted on a
    tiny 1×8×8 four-class set (fit must be quick for such data), then :func:`check_generator`."""
    real = _tiny_real()
    with tempfile.TemporaryDirectory() as workdir:
        generator.fit(real, Path(workdir))
        shape = generator.image_shape(real)
        assert len(shape) == 3 and all(isinstance(v, int) and v > 0 for v in shape) and math.prod(shape) > 0, \
            f"{getattr(generator, 'key', '')}: image_shape must be (C, H, W) positive ints, got {shape}"
        check_generator(generator, real.class_names, shape)
