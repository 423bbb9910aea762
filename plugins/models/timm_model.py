"""``model:timm`` — any architecture of PyTorch Image Models as a dreamset classifier.

timm (Wightman, 2019, "PyTorch Image Models", github.com/huggingface/pytorch-image-models) implements
the architectures, e.g. ResNets (He et al., 2016, "Deep Residual Learning for Image Recognition"),
Wide ResNets (Zagoruyko & Komodakis, 2016) and Vision Transformers (Dosovitskiy et al., 2021, "An
Image is Worth 16x16 Words"). The body is ``timm.create_model(name, pretrained=False, num_classes=0,
in_chans=C)`` — the pooled penultimate features ``N×D`` — and the head a fresh ``nn.Linear(D, K)``.

* Weights are optional. ``weights``: a local ``.safetensors`` / ``.pth`` file, read with safetensors or
  ``torch.load(weights_only=True)`` (never an arbitrary unpickle): a timm state dict (its classifier
  is dropped, the first conv adapted to ``C`` channels, ViT position embeddings resampled by the
  architecture's own checkpoint filter) or a dreamset ``Classifier`` state dict (``body.*``/``head.*``;
  the head is kept when the class count matches). ``hub: true`` lets timm download the pretrained
  weights instead — this needs internet access (and ``huggingface_hub``); it is never required.
* ``input_size``: ``null`` runs the architecture at the image size as is (architectures taking
  ``img_size`` — ViTs, whose patch grid is fixed at construction — are built for it, so 32×32 images
  work without upsampling); an int resizes every image bilinearly to ``input_size``² inside the
  model (e.g. 224 for pretrained ViTs).
* Normalisation: the ``mean``/``std`` of the architecture's ``pretrained_cfg`` when weights are used
  (averaged over the channels when ``C`` differs from the weights' 3), else 0.5 / 0.5; ``mean`` and
  ``std`` override it for all channels.

Input ``float32 N×C×H×W`` in [0,1] (normalised inside), logits ``N×K``; ``features()`` is ``N×D``.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Union

from pydantic import Field, field_validator, model_validator

from dreamset import Options, register
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import Model

#: create_model arguments dreamset sets itself (not allowed in ``create_kwargs``)
_RESERVED_KWARGS = {"model_name", "pretrained", "num_classes", "in_chans", "pretrained_cfg", "pretrained_cfg_overlay"}

KwargValue = Union[bool, int, float, str, list[int], list[float], None]


class TimmModelOptions(Options):
    name: str = Field(default="resnet18", min_length=1, max_length=200,
                      description="timm architecture, e.g. resnet18, vit_tiny_patch16_224, wide_resnet50_2")
    weights: str | None = Field(default=None, min_length=1,
                                description="local .safetensors/.pth weights (timm or dreamset state dict)")
    hub: bool = Field(default=False, description="let timm download pretrained weights (needs internet)")
    input_size: int | None = Field(default=None, ge=8, le=4096,
                                   description="resize images bilinearly to this square size inside the model; null = as is")
    create_kwargs: dict[str, KwargValue] = Field(default_factory=dict,
                                                 description="extra timm.create_model arguments, e.g. {patch_size: 4, drop_rate: 0.1}")
    mean: float | None = Field(default=None, ge=0, le=1, description="normalisation mean, all channels (default: see docs)")
    std: float | None = Field(default=None, gt=0, le=10, description="normalisation std, all channels (default: see docs)")

    @field_validator("create_kwargs")
    @classmethod
    def _reserved(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        reserved = sorted(set(kwargs) & _RESERVED_KWARGS)
        if reserved:
            raise ValueError(f"set by model:timm itself, not allowed here: {', '.join(reserved)}")
        return kwargs

    @model_validator(mode="after")
    def _one_weight_source(self):
        if self.weights is not None and self.hub:
            raise ValueError("weights and hub are mutually exclusive: give a local file or hub: true, not both")
        return self


def check_architecture(name: str) -> None:
    """Raise :class:`BadInputError` (with close matches) unless timm knows architecture ``name``."""
    import timm

    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name.split(".", 1)[0], timm.list_models(), n=5, cutoff=0.6)
    hint = f"; close matches: {', '.join(close)}" if close else "; see timm.list_models()"
    raise BadInputError(f"model:timm.name: unknown timm architecture {name!r}{hint}")


def _unwrap_state_dict(state: dict[str, Any], path: Path) -> dict[str, Any]:
    """The tensors of a (possibly wrapped) state dict: ``{"state_dict": ...}`` / ``{"model": ...}``
    containers are opened and a DistributedDataParallel ``module.`` prefix is removed."""
    for wrapper in ("state_dict", "model", "state_dict_ema"):
        if wrapper in state and isinstance(state[wrapper], dict):
            state = state[wrapper]
            break
    if not state or not all(hasattr(v, "shape") for v in state.values()):
        raise BadInputError(f"{path}: expected a state dict of tensors")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _load_into(module, state: dict[str, Any], path: Path, name: str, allowed_unexpected=(), allowed_missing=()) -> None:
    """``module.load_state_dict`` that accepts no missing or unexpected keys other than those starting
    with ``allowed_missing`` / ``allowed_unexpected``; every failure is one line naming the file."""
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        detail = " ".join(str(exc).split("\n\t")[1:2]).strip() or str(exc).splitlines()[0]
        raise BadInputError(f"{path}: weights do not fit timm {name!r}: {detail}") from None
    unexpected = [k for k in result.unexpected_keys if not k.startswith(tuple(allowed_unexpected))]
    missing = [k for k in result.missing_keys if not k.startswith(tuple(allowed_missing))]
    if missing:
        raise BadInputError(f"{path}: weights do not fit timm {name!r}: {len(missing)} missing "
                            f"key(s), e.g. {', '.join(missing[:3])}")
    if unexpected:
        raise BadInputError(f"{path}: weights do not fit timm {name!r}: {len(unexpected)} unexpected "
                            f"key(s), e.g. {', '.join(unexpected[:3])}")


def _prepare_timm_state(state: dict[str, Any], body, in_chans: int) -> dict[str, Any]:
    """Adapt a timm checkpoint to ``body`` as timm's own pretrained loader does: the architecture's
    ``checkpoint_filter_fn`` (key remapping, position-embedding resampling), then the first conv
    adapted to ``in_chans`` input channels."""
    import sys

    from timm.models import adapt_input_conv

    filter_fn = getattr(sys.modules.get(type(body).__module__), "checkpoint_filter_fn", None)
    if filter_fn is not None:
        try:
            state = filter_fn(dict(state), body)
        except TypeError:  # older one-argument filters
            state = filter_fn(dict(state))
    first_convs = body.pretrained_cfg.get("first_conv") or ()
    for conv_name in (first_convs,) if isinstance(first_convs, str) else first_convs:
        key = f"{conv_name}.weight"
        if key not in state:
            continue
        weight = state[key]
        target = body.get_submodule(conv_name).weight
        if weight.ndim == 4 and weight.shape[1] != target.shape[1]:
            state[key] = adapt_input_conv(in_chans, weight, base_chans=weight.shape[1])
    return state


@register(description="any timm architecture by name (optional local or hub weights)")
class TimmModel(Model):
    """A timm architecture body (pooled features) + a linear head."""

    key = "model:timm"

    Options = TimmModelOptions
    conformance_options = {"name": "test_resnet"}

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options)
        check_architecture(self.options.name)
        if self.options.weights is not None and not Path(self.options.weights).is_file():
            raise BadInputError(f"model:timm.weights: {self.options.weights}: weights file not found")

    def _create_body(self, channels: int, size: tuple[int, int]):
        import timm

        o = self.options
        kwargs = dict(o.create_kwargs)
        kwargs.setdefault("img_size", size)
        for attempt in (kwargs, {k: v for k, v in kwargs.items() if k != "img_size"}):
            try:
                return timm.create_model(o.name, pretrained=o.hub, num_classes=0, in_chans=channels, **attempt)
            except TypeError as exc:
                if "img_size" in str(exc) and "img_size" not in o.create_kwargs and "img_size" in attempt:
                    continue  # the architecture has no img_size argument: build it as is
                raise BadInputError(f"model:timm.create_kwargs: timm {o.name!r} rejected its arguments: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - timm raises many kinds; all become one line
                if o.hub:
                    raise BadInputError(f"model:timm.hub: could not fetch pretrained weights for {o.name!r} "
                                        f"(hub: true needs internet access): {type(exc).__name__}: {exc}") from None
                raise BadInputError(f"model:timm: cannot build {o.name!r} for {channels}×{size[0]}×{size[1]} "
                                    f"images: {type(exc).__name__}: {exc}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def build(self, image_shape, num_classes: int):
        import torch
        from torch import nn

        from dreamset.contracts.nn import Classifier
        from dreamset.files.checkpoints import load_torch_weights

        o = self.options
        c, h, w = image_shape
        size = (o.input_size, o.input_size) if o.input_size else (h, w)
        timm_body = self._create_body(c, size)
        path = Path(o.weights) if o.weights is not None else None
        classifier_state = None
        if path is not None:
            state = _unwrap_state_dict(load_torch_weights(path), path)
            if any(k.startswith("body.") for k in state):  # a dreamset Classifier's state dict
                classifier_state = state
            else:
                state = _prepare_timm_state(state, timm_body, c)
                classifiers = timm_body.pretrained_cfg.get("classifier") or ()
                classifiers = (classifiers,) if isinstance(classifiers, str) else tuple(classifiers)
                _load_into(timm_body, state, path, o.name, allowed_unexpected=tuple(f"{k}." for k in classifiers))
        body = nn.Sequential(nn.Upsample(size=size, mode="bilinear", align_corners=False), timm_body) \
            if o.input_size else timm_body
        was_training = body.training
        body.eval()
        try:
            with torch.no_grad():
                features = body(torch.zeros(1, c, h, w)).flatten(1)
        except (RuntimeError, AssertionError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BadInputError(f"model:timm: {o.name!r} cannot take {c}×{h}×{w} images ({first}); set input_size "
                                f"(e.g. 224) or create_kwargs (e.g. patch_size)") from None
        body.train(was_training)
        mean, std = self._normalisation(timm_body, c)
        model = Classifier(body, nn.Linear(features.shape[1], num_classes), mean=mean, std=std)
        if classifier_state is not None:
            head_fits = all(f"head.{k}" in classifier_state and classifier_state[f"head.{k}"].shape == v.shape
                            for k, v in model.head.state_dict().items())
            state = classifier_state if head_fits else {k: v for k, v in classifier_state.items() if not k.startswith("head.")}
            _load_into(model, state, path, o.name, allowed_unexpected=("head.",), allowed_missing=("head.",))
        return model

    def _normalisation(self, timm_body, channels: int) -> tuple[list[float], list[float]]:
        o = self.options
        mean, std = [0.5] * channels, [0.5] * channels
        if o.weights is not None or o.hub:
            cfg = timm_body.pretrained_cfg
            cfg_mean, cfg_std = list(cfg.get("mean") or mean), list(cfg.get("std") or std)
            if len(cfg_mean) != channels:
                cfg_mean = [sum(cfg_mean) / len(cfg_mean)] * channels
                cfg_std = [sum(cfg_std) / len(cfg_std)] * channels
            mean, std = cfg_mean, cfg_std
        if o.mean is not None:
            mean = [o.mean] * channels
        if o.std is not None:
            std = [o.std] * channels
        return mean, std
