"""In-memory image sources and views. Tensor contract: see :mod:`dreamset.contracts.interfaces`."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import ImageSource, as_index_tensor


def to_float_images(images: torch.Tensor) -> torch.Tensor:
    """``uint8`` (0..255) or float images -> ``float32`` in [0,1]."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    return images.to(torch.float32)


def to_uint8_images(images: torch.Tensor) -> torch.Tensor:
    """``float`` images in [0,1] -> ``uint8`` (round to nearest); NaNs are refused."""
    if images.dtype == torch.uint8:
        return images
    if torch.isnan(images).any():
        raise BadInputError("images contain NaN values")
    return images.clamp(0, 1).mul(255).round_().to(torch.uint8)


class TensorImageSet(ImageSource):
    """Images held in memory: ``uint8`` or ``float32`` ``N×C×H×W``; ``get`` returns float32 [0,1]."""

    def __init__(self, images: torch.Tensor, labels, class_names: Sequence[str], name: str = "") -> None:
        labels = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels).to(torch.int64)
        if images.ndim != 4:
            raise BadInputError(f"{name or 'images'}: expected N×C×H×W images, got shape {tuple(images.shape)}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise BadInputError(
                f"{name or 'labels'}: expected {images.shape[0]} labels, got shape {tuple(labels.shape)}"
            )
        if images.dtype != torch.uint8:
            images = images.to(torch.float32)
            if images.numel() and (torch.isnan(images).any() or images.min() < 0 or images.max() > 1):
                raise BadInputError(f"{name or 'images'}: float images must be in [0,1] without NaN")
        if labels.numel() and (labels.min() < 0 or labels.max() >= len(class_names)):
            raise BadInputError(
                f"{name or 'labels'}: labels must be in [0, {len(class_names) - 1}], got "
                f"[{int(labels.min())}, {int(labels.max())}]"
            )
        self.images = images
        self._labels = labels
        self.class_names = list(class_names)
        self.name = name

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def labels(self) -> torch.Tensor:
        return self._labels

    def get(self, indices):
        idx = as_index_tensor(indices)
        return to_float_images(self.images[idx]), self._labels[idx]


def materialize(source: ImageSource, batch_size: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """All images (float32 N×C×H×W in [0,1]) and labels of a (small) source."""
    xs, ys = [], []
    for start in range(0, len(source), batch_size):
        x, y = source.get(range(start, min(start + batch_size, len(source))))
        xs.append(x)
        ys.append(y)
    if not xs:
        c, h, w = source.image_shape
        return torch.zeros(0, c, h, w), torch.zeros(0, dtype=torch.int64)
    return torch.cat(xs), torch.cat(ys)
