"""``model:mnist-cnn`` — the CNN of Jin & Rinard's Digit→MNIST experiment: PyTorch's MNIST example
network, widened and with BatchNorm.

Paper: Charles Jin and Martin Rinard, "Learning From Context-Agnostic Synthetic Data"
(arXiv:2005.14707; NeurIPS 2021 as "Towards Context-Agnostic Learning Using Synthetic Data"); the
architecture as their code builds it (github.com/charlesjin/synthetic_data, ``mnist/model.py`` at
commit e757535), rewritten here, not copied.

Architecture (defaults): conv 3×3 1→``width`` (32, no padding) – BatchNorm – ReLU – conv 3×3
``width``→``4·width`` (128) – BatchNorm – ReLU – max-pool 2 – flatten (128·12·12 = 18,432 at 28×28)
– fc → ``hidden`` (256) – BatchNorm1d – ReLU – fc → K. ``batch_norm: false`` drops the three
BatchNorm layers. Input ``float32 N×C×H×W`` in [0,1] (H, W ≥ 6), normalised inside with
``(x − mean) / std`` (the paper's 0.1307 / 0.3801); logits ``N×K``; ``features()`` is the ``hidden``
layer. BatchNorm in train mode normalises over the batch the trainer forwards: the paper's batches
are 10 images (``train.batch_groups`` splits a larger optimizer batch into such groups).

Example::

    model = dreamset.registry.create("model:mnist-cnn").build((1, 28, 28), 10)
    logits = model(torch.rand(4, 1, 28, 28))  # 4×10
"""
from __future__ import annotations

from dreamset import Options, register
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import Model
from pydantic import Field


class MnistCNNOptions(Options):
    width: int = Field(default=32, ge=1, le=1024, description="channels of the first conv (the second has 4×)")
    hidden: int = Field(default=256, ge=1, le=65536, description="units of the hidden fc layer")
    batch_norm: bool = Field(default=True, description="BatchNorm after both convs and the hidden fc layer")
    mean: float = Field(default=0.1307, ge=0, le=1, description="normalisation mean (all channels)")
    std: float = Field(default=0.3801, gt=0, le=10, description="normalisation std (all channels)")


@register(description="Jin & Rinard's MNIST CNN: 2 convs, max-pool, fc 256, BatchNorm (arXiv:2005.14707)")
class MnistCNN(Model):
    """Two 3×3 convs, a max-pool and two fc layers, with BatchNorm (the paper's Digit→MNIST model)."""

    key = "model:mnist-cnn"

    Options = MnistCNNOptions

    def build(self, image_shape, num_classes: int):
        from dreamset.contracts.nn import Classifier
        from torch import nn

        c, h, w = image_shape
        if min(h, w) < 6:
            raise BadInputError(f"model:mnist-cnn: images must be at least 6×6, got {h}×{w}")
        o = self.options

        def norm(layer, n):
            return [layer(n)] if o.batch_norm else []

        flat = 4 * o.width * ((h - 4) // 2) * ((w - 4) // 2)
        body = nn.Sequential(
            nn.Conv2d(c, o.width, 3), *norm(nn.BatchNorm2d, o.width), nn.ReLU(),
            nn.Conv2d(o.width, 4 * o.width, 3), *norm(nn.BatchNorm2d, 4 * o.width), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(flat, o.hidden), *norm(nn.BatchNorm1d, o.hidden), nn.ReLU(),
        )
        return Classifier(body, nn.Linear(o.hidden, num_classes), mean=[o.mean] * c, std=[o.std] * c)
