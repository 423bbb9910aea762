"""Feature extractors for metrics and samplers: one option string picks one.

- ``"reference"``: penultimate features of the run's real-trained reference classifier (offline).
- ``"timm:NAME"``: a timm model's pooled features (``num_classes=0``); weights only if
  ``pretrained_path`` names a local file (never downloaded implicitly).
- ``"inception-v3"``: torchvision Inception-v3 pool features (2048-d); weights from a local file.

FIDs from different extractors are not comparable: every metric reports which one it used.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from dreamset.errors import BadInputError
from dreamset.interfaces import ImageSource


def _timm_extractor(name: str, weights: str | None):
    import timm

    model = timm.create_model(name, pretrained=False, num_classes=0)
    if weights:
        _load_state(model, weights)
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    size = cfg.get("input_size", (3, 224, 224))[-1]
    mean = torch.tensor(cfg.get("mean", (0.485, 0.456, 0.406))).view(1, -1, 1, 1)
    std = torch.tensor(cfg.get("std", (0.229, 0.224, 0.225))).view(1, -1, 1, 1)
    return model, size, mean, std


def _inception_extractor(weights: str | None):
    from torchvision.models import inception_v3

    model = inception_v3(weights=None, aux_logits=True, init_weights=False)
    if weights:
        _load_state(model, weights)
    model.fc = torch.nn.Identity()
    mean = torch.tensor((0.485, 0.456, 0.406)).view(1, -1, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225)).view(1, -1, 1, 1)
    return model, 299, mean, std


def _load_state(model: torch.nn.Module, weights: str) -> None:
    path = Path(weights)
    if not path.is_file():
        raise BadInputError(f"feature weights: {path} does not exist (give a local file)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=False)


def feature_extractor(context, extractor: str = "reference", weights: str | None = None) -> "Callable[..., torch.Tensor]":
    """``f(source, batch_size=256)`` -> features ``float32 N×D`` (CPU) of every image of ``source``
    under ``extractor``. The network is built (and its weights loaded) once, here, so callers that
    go through a store chunk by chunk keep one ``f``."""
    if extractor == "reference":
        return lambda source, batch_size=256: context.features(source, batch_size=batch_size)
    if extractor.startswith("timm:"):
        model, size, mean, std = _timm_extractor(extractor[5:], weights)
    elif extractor == "inception-v3":
        model, size, mean, std = _inception_extractor(weights)
    else:
        raise BadInputError(f"feature extractor {extractor!r}: use 'reference', 'timm:NAME' or 'inception-v3'")
    device = context.device if context is not None else torch.device("cpu")
    model = model.eval().to(device)
    mean, std = mean.to(device), std.to(device)

    @torch.no_grad()
    def features(source: ImageSource, batch_size: int = 256) -> torch.Tensor:
        out = []
        for start in range(0, len(source), batch_size):
            x, _ = source.get(range(start, min(start + batch_size, len(source))))
            x = x.to(device)
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            out.append(model((x - mean) / std).flatten(1).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, 0)

    return features


def extract_features(context, source: ImageSource, extractor: str = "reference", weights: str | None = None,
                     batch_size: int = 256) -> torch.Tensor:
    """Features ``float32 N×D`` (CPU) of every image of ``source`` under ``extractor``."""
    return feature_extractor(context, extractor, weights)(source, batch_size=batch_size)
