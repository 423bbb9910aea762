"""``extractor:timm`` — pooled features of any timm model (Wightman, "PyTorch Image Models"),
including the self-supervised and language-supervised backbones dgm-eval recommends (Stein et al.
2023, "Exposing flaws of generative model evaluation metrics", arXiv:2306.04675): DINOv2
(Oquab et al. 2023, arXiv:2304.07193; timm ``vit_base_patch14_dinov2.lvd142m``) and CLIP
(Radford et al. 2021, arXiv:2103.00020; timm ``vit_large_patch14_clip_224.openai``).

The model is built by ``timm.create_model(model, pretrained=False, num_classes=0)`` (no classifier
head: the pooled pre-logits features, ``D`` = ``model.num_features``) and its weights are loaded from
the local ``weights`` file (``.safetensors``/``.pt``/``.pth``; every parameter of the model must be
in it, a leftover head is ignored) — never downloaded. Randomly initialised features are
meaningless, so ``weights`` is required unless ``random_weights: true`` (tests only).

Preprocessing, from the model's ``pretrained_cfg`` unless overridden: grey images replicated to 3
channels; resize to ``input_size`` (``image_size`` option to override; ``resize`` mode bilinear or
bicubic, ``align_corners=False``); normalised with the config's ``mean``/``std``.
Input ``float32 B×C×H×W`` in [0,1]; output ``float32 B×D``.
Example: ``{extractor: {key: extractor:timm, options: {model: vit_small_patch14_dinov2.lvd142m, weights: dinov2_s.safetensors}}}``.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dreamset import Options, register
from dreamset.contracts.interfaces import Extractor


class TimmOptions(Options):
    model: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$", description="timm model name (timm.list_models)")
    weights: str | None = Field(default=None, min_length=1, description="local weights file (never downloaded)")
    random_weights: bool = Field(default=False, description="allow no weights file (random features: tests only)")
    image_size: int | None = Field(default=None, ge=8, le=2048, description="input size (default: the model's pretrained_cfg)")
    resize: Literal["bilinear", "bicubic"] = Field(default="bilinear", description="resize mode")

    @model_validator(mode="after")
    def _needs_weights(self):
        if self.weights is None and not self.random_weights:
            raise ValueError("weights: extractor:timm needs a local weights file (randomly initialised features are meaningless)")
        return self


@register(description="pooled features of any timm model (DINOv2, CLIP, ...) with local weights")
class TimmExtractor(Extractor):
    """Pooled (``num_classes=0``) features of a timm model with local weights."""

    key = "extractor:timm"

    Options = TimmOptions
    conformance_options = {"model": "resnet10t", "random_weights": True, "image_size": 32}

    def prepare(self, services) -> None:
        import timm
        import torch

        from dreamset.toolkit.features import load_state_dict

        o = self.options
        try:
            model = timm.create_model(o.model, pretrained=False, num_classes=0)
        except RuntimeError as exc:  # timm: "Unknown model (...)"
            from dreamset.contracts.errors import BadInputError

            raise BadInputError(f"model: {exc}") from None
        if o.weights:
            load_state_dict(model, o.weights, f"extractor:timm {o.model}")
        cfg = getattr(model, "pretrained_cfg", {}) or {}
        self._size = o.image_size or int(cfg.get("input_size", (3, 224, 224))[-1])
        self._mean = tuple(cfg.get("mean", (0.485, 0.456, 0.406)))
        self._std = tuple(cfg.get("std", (0.229, 0.224, 0.225)))
        self._device = getattr(services, "device", None) or torch.device("cpu")
        self._model = model.eval().to(self._device)

    def embed(self, images):
        import torch

        from dreamset.toolkit.features import resize_and_normalise

        with torch.no_grad():
            x = resize_and_normalise(images.to(self._device, torch.float32), self._size, self._mean, self._std, self.options.resize)
            return self._model(x).flatten(1).float().cpu()

    @property
    def preprocessing(self) -> dict:
        size = getattr(self, "_size", self.options.image_size)
        return {"channels": "grey replicated to 3", "resize": f"{self.options.resize} to {size}x{size}, align_corners=False",
                "range": f"[0,1], (x - {getattr(self, '_mean', 'cfg mean')}) / {getattr(self, '_std', 'cfg std')}"}

    def cache_identity(self) -> dict | None:
        from dreamset.toolkit.features import file_identity

        if self.options.weights is None:
            return None
        return {"key": "extractor:timm", "model": self.options.model, "weights": file_identity(self.options.weights)}
