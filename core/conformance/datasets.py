"""Conformance checks for ``dataset:*`` components."""
from __future__ import annotations

import torch

from dreamset.contracts.interfaces import ImageSource


def check_image_source(source: ImageSource) -> None:
    """The ImageSource contract: shapes, dtypes, value and label ranges."""
    n = len(source)
    assert n > 0, "empty split"
    c, h, w = source.image_shape
    assert c in (1, 3) and h > 0 and w > 0
    labels = source.labels
    assert labels.dtype == torch.int64 and labels.shape == (n,)
    assert int(labels.min()) >= 0 and int(labels.max()) < len(source.class_names)
    idx = [0, n - 1, n // 2]
    x, y = source.get(idx)
    assert x.dtype == torch.float32 and tuple(x.shape) == (3, c, h, w)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0 and not torch.isnan(x).any()
    assert torch.equal(y, labels[idx])


def check_dataset(dataset) -> None:
    """Both splits satisfy the ImageSource contract, share class names and image shape, and loading
    is deterministic."""
    train, test = dataset.load("train"), dataset.load("test")
    check_image_source(train)
    check_image_source(test)
    assert train.class_names == test.class_names
    assert train.image_shape == test.image_shape
    again = dataset.load("train")
    assert torch.equal(again.labels, train.labels)
    assert torch.equal(again.get(range(len(again)))[0], train.get(range(len(train)))[0])


def check_default(dataset) -> None:
    check_dataset(dataset)
