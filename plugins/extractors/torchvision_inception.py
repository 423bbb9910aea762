"""``extractor:torchvision-inception`` — pool features (2048-d) of torchvision's Inception-v3
(Szegedy et al. 2016, arXiv:1512.00567) with weights from a local file.

This is what ``metric:fid`` called ``extractor: inception-v3`` before extractors were components
(kept so old recipes give the same numbers). It is *not* the network of published FIDs (that is
``extractor:inception-fid``): FIDs from it are not comparable with papers.

Preprocessing: grey images replicated to 3 channels; bilinear resize to 299×299
(``align_corners=False``); ImageNet normalisation (mean 0.485/0.456/0.406, std 0.229/0.224/0.225).
Weights: torchvision's ``inception_v3`` state dict (``.pth``/``.safetensors``), never downloaded.
Input ``float32 B×C×H×W`` in [0,1]; output ``float32 B×2048``.
"""
from __future__ import annotations

from pydantic import Field

from dreamset import Options, register
from dreamset.contracts.interfaces import Extractor

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class TorchvisionInceptionOptions(Options):
    weights: str = Field(min_length=1, description="local torchvision inception_v3 weights file (never downloaded)")


@register(description="torchvision Inception-v3 pool features, local weights (not the FID network)")
class TorchvisionInceptionExtractor(Extractor):
    """torchvision Inception-v3 pool features with ImageNet preprocessing."""

    key = "extractor:torchvision-inception"

    Options = TorchvisionInceptionOptions

    def prepare(self, services) -> None:
        import torch
        from torchvision.models import inception_v3

        from dreamset.toolkit.features import load_state_dict

        model = inception_v3(weights=None, aux_logits=True, init_weights=False)
        load_state_dict(model, self.options.weights, "extractor:torchvision-inception")
        model.fc = torch.nn.Identity()
        self._device = getattr(services, "device", None) or torch.device("cpu")
        self._model = model.eval().to(self._device)

    def embed(self, images):
        import torch

        from dreamset.toolkit.features import resize_and_normalise

        with torch.no_grad():
            x = resize_and_normalise(images.to(self._device, torch.float32), 299, MEAN, STD)
            return self._model(x).flatten(1).float().cpu()

    @property
    def preprocessing(self) -> dict:
        return {"channels": "grey replicated to 3", "resize": "bilinear to 299x299, align_corners=False",
                "range": f"[0,1], ImageNet (x - {MEAN}) / {STD}"}

    def cache_identity(self) -> dict:
        from dreamset.toolkit.features import file_identity

        return {"key": "extractor:torchvision-inception", "weights": file_identity(self.options.weights)}
