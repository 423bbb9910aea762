"""``model:small-cnn`` — small convolutional classifiers that train in seconds on CPU.

For 8×8 inputs (scikit-learn digits): conv(w)–conv(2w)–maxpool–fc(4w); for larger inputs (32×32
CIFAR-style) one more conv block per halving down to 8×8 — the "small CNN" scale used for quick
adversarial-training studies (e.g. the MNIST/CIFAR CNNs of Wong et al. 2020). Returns a
:class:`dreamset.contracts.nn.Classifier`: input ``float32 N×C×H×W`` in [0,1], normalised inside with
``mean``/``std``, logits ``N×K``; ``features()`` is the penultimate ``fc`` layer (``N×4w``).

Options: ``width`` (32), ``dropout`` before the head (0), ``batch_norm`` (off: conv–ReLU; on:
conv–BatchNorm–ReLU, Ioffe & Szegedy 2015, arXiv:1502.03167 — it keeps training off the
uniform-prediction plateau that composites on textured contexts can hold a plain CNN on, see
docs/recipes.md ``context-agnostic-mnist``), ``mean``/``std`` of the input normalisation (0.5/0.5).
Attackers run the model in eval mode, so with ``batch_norm`` an attack uses the running statistics.

Example::

    model = dreamset.registry.create("model:small-cnn", width=32, batch_norm=True).build((1, 28, 28), 10)
    logits = model(torch.rand(4, 1, 28, 28))  # 4×10
"""
from __future__ import annotations

from pydantic import Field

from dreamset import Options, register
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import Model


class SmallCNNOptions(Options):
    width: int = Field(default=32, ge=1, le=1024, description="channels of the first conv layer")
    dropout: float = Field(default=0.0, ge=0, lt=1)
    batch_norm: bool = Field(default=False, description="BatchNorm after every conv (conv–BN–ReLU)")
    mean: float = Field(default=0.5, ge=0, le=1, description="normalisation mean (all channels)")
    std: float = Field(default=0.5, gt=0, le=10, description="normalisation std (all channels)")


@register(description="small CNN for 8x8 / 32x32 inputs")
class SmallCNN(Model):
    """A few conv layers + one hidden fc layer."""

    key = "model:small-cnn"

    Options = SmallCNNOptions

    def build(self, image_shape, num_classes: int):
        import torch.nn as nn

        from dreamset.contracts.nn import Classifier

        c, h, w = image_shape
        if min(h, w) < 4:
            raise BadInputError(f"model:small-cnn: images must be at least 4×4, got {h}×{w}")
        width = self.options.width
        layers: list[nn.Module] = []

        def conv(cin: int, cout: int) -> list[nn.Module]:
            bn = [nn.BatchNorm2d(cout)] if self.options.batch_norm else []
            return [nn.Conv2d(cin, cout, 3, padding=1), *bn, nn.ReLU()]

        channels = c
        size = min(h, w)
        out = width
        while size > 8:  # downsample big inputs to 8×8 first
            layers += [*conv(channels, out), nn.MaxPool2d(2)]
            channels, size = out, size // 2
            out = min(out * 2, 8 * width)
        layers += [
            *conv(channels, width),
            *conv(width, 2 * width),
            nn.AdaptiveMaxPool2d(4), nn.Flatten(),
            nn.Linear(2 * width * 16, 4 * width), nn.ReLU(),
        ]
        if self.options.dropout:
            layers.append(nn.Dropout(self.options.dropout))
        body = nn.Sequential(*layers)
        head = nn.Linear(4 * width, num_classes)
        return Classifier(body, head, mean=[self.options.mean] * c, std=[self.options.std] * c)
