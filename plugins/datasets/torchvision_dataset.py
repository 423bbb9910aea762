"""``dataset:torchvision`` — any torchvision classification dataset by class name.

CIFAR10/CIFAR100 (Krizhevsky, 2009; the benchmark of Sehwag et al. 2022, Gowal et al. 2021,
Wang et al. 2023), MNIST, FashionMNIST, SVHN, … with ``root`` and ``download`` (off by default: nothing
is fetched unless asked). SVHN's ``split=`` argument and the others' ``train=`` are both handled.
Images are returned as ``uint8 N×C×H×W`` (``get`` gives float32 [0,1]); ``train_size`` /
``test_size`` take a deterministic stratified-free random subset (seeded).
"""
from __future__ import annotations

import difflib
from pathlib import Path

from pydantic import Field

from dreamset import Options, register
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import Dataset


class TorchvisionOptions(Options):
    name: str = Field(min_length=1, description="torchvision.datasets class, e.g. CIFAR10, MNIST, SVHN")
    root: str = Field(default="data", min_length=1)
    download: bool = False
    train_size: int | None = Field(default=None, ge=1)
    test_size: int | None = Field(default=None, ge=1)
    seed: int = Field(default=0, ge=0)


@register(description="any torchvision classification dataset")
class TorchvisionDataset(Dataset):
    """A torchvision classification dataset."""

    key = "dataset:torchvision"

    Options = TorchvisionOptions

    def _dataset_class(self):
        import torchvision.datasets as datasets

        names = [n for n in dir(datasets) if not n.startswith("_") and isinstance(getattr(datasets, n), type)]
        if self.options.name not in names:
            close = difflib.get_close_matches(self.options.name, names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise BadInputError(f"dataset:torchvision.name: no torchvision dataset {self.options.name!r}{hint}")
        return getattr(datasets, self.options.name)

    def load(self, split: str):
        import inspect

        import numpy as np
        import torch

        from dreamset.contracts.data import TensorImageSet

        if split not in ("train", "test"):
            raise BadInputError(f"dataset:torchvision: split must be 'train' or 'test', got {split!r}")
        cls = self._dataset_class()
        root = Path(self.options.root).expanduser()
        params = inspect.signature(cls).parameters
        kwargs = {"root": str(root), "download": self.options.download}
        if "train" in params:
            kwargs["train"] = split == "train"
        elif "split" in params:
            kwargs["split"] = split
        try:
            dataset = cls(**kwargs)
        except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted. You can use download=True ..."
            raise BadInputError(
                f"dataset:torchvision: {self.options.name} not found under {root} ({' '.join(str(exc).split())}); "
                f"set download: true (needs network) or put the files under {root}"
            ) from None
        images = getattr(dataset, "data", None)
        labels = getattr(dataset, "targets", None)
        if labels is None:
            labels = getattr(dataset, "labels", None)
        if images is None or labels is None:
            raise BadInputError(f"dataset:torchvision: {self.options.name} does not expose data/targets arrays")
        images = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
        if images.ndim == 3:
            images = images[:, None]
        elif images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
            images = images.transpose(0, 3, 1, 2)
        labels = np.asarray(labels, dtype=np.int64)
        size = self.options.train_size if split == "train" else self.options.test_size
        if size is not None and size < len(labels):
            idx = np.sort(np.random.default_rng(self.options.seed).permutation(len(labels))[:size])
            images, labels = images[idx], labels[idx]
        classes = list(getattr(dataset, "classes", []) or [str(i) for i in range(int(labels.max()) + 1)])
        return TensorImageSet(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels), classes,
                              name=f"{self.options.name}/{split}")
