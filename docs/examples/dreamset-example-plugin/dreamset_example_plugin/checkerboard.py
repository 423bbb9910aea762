"""``dataset:checkerboard`` — the worked Dataset example (docs/kinds/dataset.md).

Card
----
* Data: procedural, no files: class ``k`` of ``classes`` is a checkerboard with cells of ``k + 1``
  pixels, plus seeded uniform noise of amplitude ``noise``; ``per_class`` images per class in
  ``train``, half as many in ``test``.
* Shapes: ``load(split)`` -> an ImageSource of ``float32 1×size×size`` images in [0,1], ``int64``
  labels, class names ``cells1 .. cellsK``.
* Determinism: split ``s`` is drawn from a generator seeded with ``seed`` and the split's name, so
  loading twice gives the same tensors and train and test never share noise.
* Defaults: ``size=8``, ``classes=3``, ``per_class=20``, ``noise=0.2``, ``seed=0``.

Example::

    data: {dataset: {key: checkerboard, options: {classes: 4}}}
"""
from __future__ import annotations

from pydantic import Field

import dreamset
from dreamset.contracts.interfaces import Dataset


class CheckerboardOptions(dreamset.Options):
    size: int = Field(default=8, ge=4, le=256, description="image height and width")
    classes: int = Field(default=3, ge=2, le=8, description="number of classes (cell sizes 1..classes)")
    per_class: int = Field(default=20, ge=2, le=100_000, description="training images per class (test: half)")
    noise: float = Field(default=0.2, ge=0, le=1, description="amplitude of the uniform noise")
    seed: int = Field(default=0, ge=0)


@dreamset.register
class CheckerboardDataset(Dataset):
    """Checkerboards whose cell size is the class; train and test splits, deterministic."""

    key = "dataset:checkerboard"
    Options = CheckerboardOptions

    def load(self, split):
        import torch

        from dreamset.contracts.data import TensorImageSet
        from dreamset.contracts.errors import BadInputError

        if split not in ("train", "test"):
            raise BadInputError(f"dataset:checkerboard: split must be 'train' or 'test', got {split!r}")
        o = self.options
        n = o.per_class if split == "train" else max(1, o.per_class // 2)
        generator = torch.Generator().manual_seed(o.seed * 2 + (split == "test"))
        labels = torch.arange(o.classes).repeat_interleave(n)
        grid = torch.arange(o.size)
        images = []
        for label in labels.tolist():
            cells = ((grid[:, None] // (label + 1)) + (grid[None, :] // (label + 1))) % 2
            images.append(cells.float() * (1 - o.noise) + o.noise * torch.rand(o.size, o.size, generator=generator))
        return TensorImageSet(torch.stack(images).unsqueeze(1).clamp(0, 1), labels,
                              [f"cells{k + 1}" for k in range(o.classes)], name=f"checkerboard-{split}")
