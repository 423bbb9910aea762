"""``dataset:digits`` — scikit-learn's bundled 8×8 handwritten digits (offline).

The UCI optical-recognition digits (Alpaydin & Kaynak, 1998) as shipped with scikit-learn
(``sklearn.datasets.load_digits``): 1,797 grey-scale images, 10 classes, 17 intensity levels (0..16).
Images are returned as ``float32 N×1×8×8`` in [0,1] (value / 16); class names ``"0"``..``"9"``.

Splits are deterministic and stratified: ``train_size`` images (default 500, as in the default
recipe) drawn with ``seed``; the test split is the rest (or ``test_size`` of it).
"""
from __future__ import annotations

from pydantic import Field

from dreamset import Options, register
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import Dataset


class DigitsOptions(Options):
    train_size: int = Field(default=500, ge=10, le=1700, description="number of real training images")
    test_size: int | None = Field(default=None, ge=10, le=1787, description="test images (default: all the rest)")
    seed: int = Field(default=0, ge=0, description="seed of the stratified split")


@register(description="scikit-learn 8x8 digits (offline)")
class DigitsDataset(Dataset):
    """scikit-learn's 8×8 digits with a deterministic stratified train/test split."""

    key = "dataset:digits"

    Options = DigitsOptions

    def _split(self):
        import numpy as np
        from sklearn.datasets import load_digits

        from dreamset.plugins.datasets import stratified_split

        digits = load_digits()
        images = (digits.images.astype(np.float32) / 16.0)[:, None, :, :]
        labels = digits.target.astype(np.int64)
        o = self.options
        return (images, labels) + stratified_split(labels, o.train_size, o.test_size, o.seed, "dataset:digits")

    def load(self, split: str):
        import torch

        from dreamset.contracts.data import TensorImageSet

        if split not in ("train", "test"):
            raise BadInputError(f"dataset:digits: split must be 'train' or 'test', got {split!r}")
        images, labels, train_idx, test_idx = self._split()
        idx = train_idx if split == "train" else test_idx
        return TensorImageSet(torch.from_numpy(images[idx]), torch.from_numpy(labels[idx]),
                              [str(d) for d in range(10)], name=f"digits/{split}")
