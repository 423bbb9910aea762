"""``model:linear`` — the worked Model example (docs/kinds/model.md).

Card
----
* Architecture: multinomial logistic regression, ``logits = W·flatten(x') + b`` on the normalised
  image ``x' = (x − 0.5) / 0.5``; the penultimate features are the flattened normalised pixels.
* Shapes: ``build((C, H, W), K)`` -> a ``dreamset.contracts.nn.Classifier`` taking ``float32 N×C×H×W`` in
  [0,1] and returning logits ``N×K``; ``features(x)`` is ``N×(C·H·W)``.
* Determinism: initialised from torch's global generator (the trainer seeds it).
* Defaults: no options.

Example::

    train: {model: linear, epochs: 5}
"""
from __future__ import annotations

import dreamset
from dreamset.contracts.interfaces import Model


@dreamset.register
class LinearModel(Model):
    """Logistic regression on the pixels, inside dreamset.contracts.nn.Classifier."""

    key = "model:linear"

    def build(self, image_shape, num_classes):
        from torch import nn

        from dreamset.contracts.nn import Classifier

        c, h, w = image_shape
        return Classifier(nn.Flatten(), nn.Linear(c * h * w, num_classes), mean=[0.5] * c, std=[0.5] * c)
