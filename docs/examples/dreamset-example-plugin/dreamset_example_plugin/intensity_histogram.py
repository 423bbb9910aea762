"""``extractor:intensity-histogram`` — the worked Extractor example (docs/kinds/extractor.md).

Card
----
* Features: per image, the fraction of pixel values (all channels) in each of ``bins`` equal-width
  bins of [0, 1] — a crude, weight-free feature space (no paper: an illustration).
* Input ``float32 B×C×H×W`` in [0,1]; output ``float32 B×bins`` on the CPU, each row summing to 1.
* Preprocessing: none (any size, any number of channels).
* Defaults: ``bins = 16``.

Example::

    evaluate: {metrics: [{key: fid, options: {extractor: {key: extractor:intensity-histogram, options: {bins: 8}}}}]}
"""
from __future__ import annotations

from pydantic import Field

import dreamset
from dreamset.contracts.interfaces import Extractor


class IntensityHistogramOptions(dreamset.Options):
    bins: int = Field(default=16, ge=2, le=256, description="equal-width bins of [0, 1]")


@dreamset.register
class IntensityHistogramExtractor(Extractor):
    """Per-image histogram of pixel intensities."""

    key = "extractor:intensity-histogram"
    Options = IntensityHistogramOptions

    def embed(self, images):
        import torch

        x = images.detach().float().cpu().clamp(0, 1).flatten(1)
        index = (x * self.options.bins).long().clamp(max=self.options.bins - 1)
        counts = torch.zeros(x.shape[0], self.options.bins).scatter_add_(1, index, torch.ones_like(x))
        return counts / x.shape[1]

    @property
    def preprocessing(self):
        return {"resize": "none", "range": "[0,1] clamped"}

    def cache_identity(self):
        return {"key": self.key, "bins": self.options.bins}
