"""``generator:diffusers`` — any pretrained diffusers pipeline (hub id or local folder), its samples
labelled by the run's reference classifier or by the pipeline's own class conditioning.

Sehwag et al., ICLR 2022, "Robust Learning Meets Generative Models: Can Proxy Distributions Improve
Adversarial Robustness?": images sampled from an *unconditional* DDPM are labelled by a classifier
trained on the real training data, and these pseudo-labelled images are added to adversarial training.
``labels: pseudo`` does exactly that with :meth:`services.reference.model() <dreamset.orchestration.reference.ReferenceClassifier.model>`
(taken in ``fit``): the requested labels are ignored, the predicted labels are returned, and the
provenance records the prediction, its softmax confidence and the label that was asked for.
``labels: conditional`` instead asks a class-conditional model for the requested class: a pipeline
whose ``__call__`` takes ``class_labels`` (e.g. DiT), or a ``UNet2DModel`` with ``num_class_embeds``
sampled by the reverse-process loop written here (no diffusers pipeline passes class labels to it).

Loading (shared with ``generator:stable-diffusion``): ``model`` is a hub id (``org/name``) or a local
folder holding ``model_index.json``; a string that looks like a path (starts with ``/``, ``./``,
``../`` or ``~``, contains a path separator without the ``org/name`` shape, or exists) is always a
local folder and must exist. A hub id that cannot be fetched (offline, ``local_files_only``) is one
:class:`dreamset.BadInputError` saying to download it or give a folder. ``scheduler`` swaps the
pipeline's scheduler (``Scheduler.from_config(pipe.scheduler.config)``); ``default`` keeps it.

Shapes: the pipeline's output (``float`` in [0,1], NHWC numpy, NCHW tensor or PIL) becomes
``float32 B×C×H×W`` in [0,1]; with ``resize: true`` it is resized (bilinear, antialiased) and its
channels converted (RGB -> luminance, grey -> RGB) to the real data's ``(C, H, W)``. Image ``i``
depends only on ``(labels[i], seeds[i], options)``: its noise comes from its own
``torch.Generator().manual_seed(seeds[i])`` (a list of generators is passed to the pipeline).
"""
from __future__ import annotations

import inspect
import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from dreamset import BadInputError, Options, register
from dreamset.contracts.interfaces import GeneratedBatch, Generator
from dreamset.contracts.lazy import lazy_module

torch = lazy_module("torch")

log = logging.getLogger("dreamset")

#: ``org/name`` (or a bare legacy name such as ``gpt2``) on the Hugging Face hub
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
SCHEDULERS = ("default", "ddpm", "ddim", "dpm-solver++", "euler", "pndm")


class PretrainedOptions(Options):
    """Options of every generator that loads a pretrained diffusers pipeline."""

    model: str = Field(min_length=1, description="hub id (org/name) or local folder of a diffusers pipeline")
    local_files_only: bool = Field(default=False, description="never contact the hub (use the local cache only)")
    torch_dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        default="auto", description="weights dtype; auto = float16 on CUDA, float32 on CPU")
    scheduler: Literal["default", "ddpm", "ddim", "dpm-solver++", "euler", "pndm"] = Field(
        default="default", description="sampler; default keeps the pipeline's own scheduler")
    steps: int = Field(default=50, ge=1, le=10000, description="inference steps")
    batch_size: int = Field(default=8, ge=1, le=4096,
                            description="images per pipeline call on an accelerator (on CPU: one at a time)")
    resize: bool = Field(default=True, description="resize/convert outputs to the real data's (C, H, W)")


# -- helpers shared with generator:stable-diffusion -----------------------------------------------

def looks_like_path(model: str) -> bool:
    """True when ``model`` must be a local folder rather than a hub id."""
    if model.startswith(("/", "./", "../", "~", ".\\", "..\\")) or os.path.exists(os.path.expanduser(model)):
        return True
    separators = {os.sep, "/", *(os.altsep or "")}
    return any(sep in model for sep in separators) and not HUB_ID.match(model)


def _from_pretrained(loader, model: str, torch_dtype, **kwargs):
    # ``torch_dtype`` works on every supported diffusers (>= 0.38); 0.36+ merely prefers ``dtype``
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
        return loader.from_pretrained(model, torch_dtype=torch_dtype, **kwargs)


#: libraries whose classes a pipeline folder's model_index.json may name (anything else is custom code)
KNOWN_LIBRARIES = {"diffusers", "transformers", None}


def refuse_custom_code(folder: Path, field: str = "model") -> None:
    """A one-line error when a local pipeline folder carries code of its own: a ``.py`` file, or a
    ``model_index.json`` naming a custom pipeline class or a component from another library. dreamset
    loads weights and configs, never code found in a model folder."""
    import json

    scripts = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.py"))
    if scripts:
        raise BadInputError(f"{field}: {folder} contains Python code ({', '.join(scripts[:3])}); dreamset does not run "
                            "code shipped with a model: remove it or use a standard diffusers pipeline folder")
    try:
        index = json.loads((folder / "model_index.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{field}: {folder / 'model_index.json'} is unreadable ({exc})") from None
    if not isinstance(index, dict) or isinstance(index.get("_class_name"), (list, tuple)):
        raise BadInputError(f"{field}: {folder / 'model_index.json'} names a custom pipeline class; dreamset loads "
                            "diffusers' own pipelines only")
    for name, value in index.items():
        if not name.startswith("_") and isinstance(value, list) and len(value) == 2 and value[0] not in KNOWN_LIBRARIES:
            raise BadInputError(f"{field}: {folder / 'model_index.json'}: component {name!r} comes from "
                                f"{str(value[0])[:60]!r}, not diffusers or transformers (custom code is not loaded)")


def load_pretrained(loader, model: str, *, local_files_only: bool, torch_dtype, field: str = "model", **kwargs):
    """``loader.from_pretrained(model, ...)`` with hub ids and folders never confused, and every
    failure to find the model turned into one :class:`BadInputError` line."""
    if looks_like_path(model):
        folder = Path(os.path.expanduser(model))
        if not folder.is_dir():
            raise BadInputError(f"{field}: local folder {model!r} does not exist (give an existing pipeline folder or a hub id org/name)")
        if not (folder / "model_index.json").is_file():
            raise BadInputError(f"{field}: {model!r} is not a diffusers pipeline folder (no model_index.json); "
                                "save one with pipe.save_pretrained(folder)")
        refuse_custom_code(folder, field)
        if any(folder.rglob("*.safetensors")):  # never fall back to pickled .bin weights beside them
            kwargs.setdefault("use_safetensors", True)
        try:
            return _from_pretrained(loader, str(folder), torch_dtype, trust_remote_code=False, **kwargs)
        except (OSError, ValueError, TypeError, KeyError) as exc:  # wrong pipeline type, missing or corrupt parts
            reason = (str(exc).strip().splitlines() or [""])[0][:200]
            raise BadInputError(f"{field}: cannot load {loader.__name__} from {model!r} ({type(exc).__name__}: {reason})") from exc
    if not HUB_ID.match(model):
        raise BadInputError(f"{field}: {model!r} is neither a hub id (org/name) nor an existing local folder")
    try:
        return _from_pretrained(loader, model, torch_dtype, local_files_only=local_files_only, **kwargs)
    except Exception as exc:  # the hub's errors (offline, not cached, gated, missing) vary by version
        reason = (str(exc).strip().splitlines() or [""])[0][:160]
        raise BadInputError(
            f"{field}: cannot load {model!r} from the Hugging Face hub ({type(exc).__name__}: {reason}); "
            f"download it first (huggingface-cli download {model}) or give a local folder"
        ) from exc


def resolve_dtype(name: str, device) -> Any:
    """The torch dtype for option ``torch_dtype`` on ``device`` (float16 is refused on CPU)."""
    cuda = torch.device(device).type == "cuda"
    if name == "auto":
        return torch.float16 if cuda else torch.float32
    if name == "float16" and not cuda:
        raise BadInputError("torch_dtype: float16 needs a CUDA device; use float32, bfloat16 or auto on CPU")
    return getattr(torch, name)


def set_scheduler(pipe, name: str) -> None:
    """Swap ``pipe.scheduler`` for scheduler ``name`` built from the same noise-schedule config."""
    if name == "default":
        return
    import diffusers

    config = pipe.scheduler.config
    if name == "dpm-solver++":
        pipe.scheduler = diffusers.DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++")
        return
    cls = {"ddpm": diffusers.DDPMScheduler, "ddim": diffusers.DDIMScheduler,
           "euler": diffusers.EulerDiscreteScheduler, "pndm": diffusers.PNDMScheduler}[name]
    pipe.scheduler = cls.from_config(config)


def prepare_pipeline(pipe, options: PretrainedOptions, device):
    """Scheduler swap, device placement and a quiet progress bar (dreamset shows its own)."""
    set_scheduler(pipe, options.scheduler)
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def call_kwargs(pipe, **candidates) -> dict[str, Any]:
    """The ``candidates`` that ``pipe.__call__`` accepts (pipelines differ in their signatures)."""
    parameters = inspect.signature(pipe.__call__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return candidates
    return {k: v for k, v in candidates.items() if k in parameters}


def as_float_images(images) -> "torch.Tensor":
    """A pipeline's ``images`` (NHWC numpy, NCHW tensor or PIL list) as ``float32 B×C×H×W`` in [0,1]."""
    import numpy as np

    if isinstance(images, torch.Tensor):
        x = images.detach().float().cpu()
    else:
        if isinstance(images, list) and images and not isinstance(images[0], np.ndarray):  # PIL images
            images = np.stack([np.asarray(image, dtype=np.float32) / 255.0 for image in images])
        array = np.asarray(images, dtype=np.float32)
        if array.ndim == 3:
            array = array[..., None]
        x = torch.from_numpy(array).permute(0, 3, 1, 2)
    return x.clamp(0.0, 1.0).contiguous()


def fit_shape(images, shape) -> "torch.Tensor":
    """``float32 B×C'×H'×W'`` in [0,1] -> ``B×C×H×W``: channels converted (RGB -> ITU-R 601 luminance,
    grey -> repeated, RGBA -> RGB) and resized (bilinear, antialiased)."""
    c, h, w = (int(v) for v in shape)
    x = images[:, :3] if images.shape[1] == 4 and c != 4 else images
    if x.shape[1] != c:
        if c == 1 and x.shape[1] == 3:
            x = (x * torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)
        elif x.shape[1] == 1:
            x = x.repeat(1, c, 1, 1)
        else:
            raise BadInputError(f"resize: cannot convert {x.shape[1]}-channel images to {c} channels")
    if tuple(x.shape[2:]) != (h, w):
        x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0.0, 1.0).to(torch.float32).contiguous()


def micro_batches(n: int, batch_size: int, device) -> list[slice]:
    """Slices of ``range(n)`` run together. On CPU every image is its own batch: batched convolutions
    and matmuls differ from single-image ones in the last bit, and the interface promises images that
    are bit-identical whatever the batching; on an accelerator ``batch_size`` images go together."""
    step = 1 if torch.device(device).type == "cpu" else batch_size
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def check_request(key: str, labels, seeds, class_names) -> tuple["torch.Tensor", list[int]]:
    """Validated ``(labels int64, seeds)`` of a ``generate`` call."""
    labels = torch.as_tensor(labels, dtype=torch.int64).cpu()
    seeds = [int(s) for s in seeds]
    if len(seeds) != len(labels):
        raise BadInputError(f"{key}: {len(labels)} labels but {len(seeds)} seeds")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise BadInputError(f"{key}: labels must be in [0, {len(class_names) - 1}] ({len(class_names)} classes)")
    return labels, seeds


# -- the component --------------------------------------------------------------------------------

class DiffusersPipelineOptions(PretrainedOptions):
    scheduler: Literal["default", "ddpm", "ddim", "dpm-solver++", "euler", "pndm"] = Field(
        default="ddim", description="sampler; default keeps the pipeline's own scheduler")
    steps: int = Field(default=100, ge=1, le=10000, description="inference steps")
    labels: Literal["pseudo", "conditional"] = Field(
        default="pseudo",
        description="pseudo: label samples with the run's reference classifier (Sehwag et al. 2022); "
                    "conditional: pass the requested class to a class-conditional model")
    guidance: float | None = Field(
        default=None, ge=0, le=50,
        description="guidance_scale for pipelines that take one (e.g. DiT); None = the pipeline's default")


class PretrainedPipelineGenerator(Generator):
    """Base of the generators that sample a pretrained diffusers pipeline (``self.pipe``, loaded in
    ``fit`` on the run's device)."""

    default_key = "generator:diffusers"

    def __init__(self, options: PretrainedOptions | None = None) -> None:
        super().__init__(options)
        self.pipe = None
        self.device = None

    @property
    def name(self) -> str:
        return self.key or self.default_key

    def load(self, loader, services) -> None:
        """Load ``options.model`` with ``loader`` onto ``services.device`` (CPU without services)."""
        opts = self.options
        self.device = torch.device(services.device) if services is not None else torch.device("cpu")
        dtype = resolve_dtype(opts.torch_dtype, self.device)
        pipe = load_pretrained(loader, opts.model, local_files_only=opts.local_files_only, torch_dtype=dtype)
        self.pipe = prepare_pipeline(pipe, opts, self.device)


@register(description="any pretrained diffusers pipeline, pseudo-labelled (Sehwag et al. 2022) or class-conditional")
class DiffusersPipelineGenerator(PretrainedPipelineGenerator):
    """A pretrained diffusers pipeline; samples pseudo-labelled or class-conditional."""

    key = "generator:diffusers"

    Options = DiffusersPipelineOptions

    def __init__(self, options: DiffusersPipelineOptions | None = None) -> None:
        super().__init__(options)
        self.classifier = None
        self.real_shape: tuple[int, int, int] | None = None

    @property
    def assigns_labels(self) -> bool:
        """True with ``labels: pseudo``: ``generate`` returns the classifier's labels, not the requested ones."""
        return self.options.labels == "pseudo"

    def fit(self, real, workdir: Path, services=None) -> None:
        from diffusers import DiffusionPipeline

        opts = self.options
        self.real_shape = tuple(int(v) for v in real.image_shape) if real is not None else None
        pseudo = opts.labels == "pseudo"
        if pseudo and getattr(services, "reference", None) is None:
            raise BadInputError("labels: pseudo needs the run's reference classifier (services.reference); call fit(real, workdir, services)")
        if pseudo and self.real_shape is None:
            raise BadInputError("labels: pseudo needs the real data (the reference classifier sees its image shape)")
        self.load(DiffusionPipeline, services)
        if opts.labels == "conditional" and self._conditioning() is None:
            raise BadInputError(
                f"labels: {opts.model!r} ({type(self.pipe).__name__}) is not class-conditional (no class_labels argument, "
                "no UNet2DModel with num_class_embeds); use labels: pseudo")
        if pseudo and not opts.resize and self._native_shape() != self.real_shape:
            raise BadInputError(f"resize: labels: pseudo classifies images of the real shape {self.real_shape}; "
                                f"the pipeline makes {self._native_shape()}, so set resize: true")
        if pseudo:
            self.classifier = services.reference.model()

    # -- geometry --------------------------------------------------------------------------------
    def _native_shape(self) -> tuple[int, int, int] | None:
        """``(C, H, W)`` the pipeline produces, from its U-Net (and VAE/VQ-VAE) config."""
        unet = getattr(self.pipe, "unet", None) or getattr(self.pipe, "transformer", None)
        size = getattr(getattr(unet, "config", None), "sample_size", None)
        if size is None:
            return None
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        decoder = getattr(self.pipe, "vae", None) or getattr(self.pipe, "vqvae", None)
        if decoder is not None:
            factor = 2 ** (len(decoder.config.block_out_channels) - 1)
            return (int(decoder.config.out_channels), h * factor, w * factor)
        return (int(unet.config.out_channels), h, w)

    def image_shape(self, real=None) -> tuple[int, int, int]:
        if self.options.resize:
            shape = real.image_shape if real is not None else self.real_shape
            if shape is None:
                raise BadInputError(f"{self.name}: image_shape needs the real data (resize: true)")
            return tuple(int(v) for v in shape)
        if self.pipe is None:
            raise BadInputError(f"{self.name}: call fit() before image_shape() (resize: false)")
        shape = self._native_shape()
        if shape is None:
            raise BadInputError(f"resize: cannot tell the output shape of {type(self.pipe).__name__}; set resize: true")
        return shape

    # -- sampling --------------------------------------------------------------------------------
    def _conditioning(self) -> str | None:
        """``"pipeline"`` (``__call__`` takes class_labels), ``"unet"`` (own loop) or None."""
        if "class_labels" in inspect.signature(self.pipe.__call__).parameters:
            return "pipeline"
        unet = getattr(self.pipe, "unet", None)
        if unet is not None and getattr(unet.config, "num_class_embeds", None) and getattr(self.pipe, "scheduler", None):
            return "unet"
        return None

    def generate(self, labels, seeds, class_names) -> GeneratedBatch:
        if self.pipe is None:
            raise BadInputError(f"{self.name}: call fit(real, workdir, services) before generate()")
        labels, seeds = check_request(self.name, labels, seeds, class_names)
        shape = self.image_shape()
        pseudo = self.options.labels == "pseudo"
        images, predicted, confidence = [torch.zeros(0, *shape)], [labels[:0]], [torch.zeros(0)]
        for chunk in micro_batches(len(seeds), self.options.batch_size, self.device):
            x = self._sample(labels[chunk], seeds[chunk])
            images.append(fit_shape(x, shape) if self.options.resize else x)
            if pseudo:
                conf, pred = self._pseudo_labels(images[-1], len(class_names))
                confidence.append(conf)
                predicted.append(pred)
        x = torch.cat(images)
        records = [{"generator": self.name, "prompt": None, "seed": seed, "steps": self.options.steps,
                    "guidance": self.options.guidance, "scheduler": self.options.scheduler,
                    "width": shape[2], "height": shape[1], "model": self.options.model} for seed in seeds]
        out_labels = torch.cat(predicted) if pseudo else labels.clone()
        if pseudo:
            for record, asked, conf in zip(records, labels.tolist(), torch.cat(confidence).tolist()):
                record.update(requested_label=asked, confidence=conf, labelled_by="reference-classifier")
        for record, label in zip(records, out_labels.tolist()):
            record.update(label=label, class_name=class_names[label])
        return GeneratedBatch(images=x, labels=out_labels, provenance=records)

    def _sample(self, labels, seeds):
        generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        mode = self._conditioning() if self.options.labels == "conditional" else None
        if mode == "unet":
            with torch.no_grad():
                return self._class_conditional_loop(labels, generators)
        kwargs = call_kwargs(self.pipe, batch_size=len(seeds), generator=generators,
                             num_inference_steps=self.options.steps, output_type="np")
        if mode == "pipeline":
            kwargs["class_labels"] = labels.tolist()
        if self.options.guidance is not None:
            kwargs.update(call_kwargs(self.pipe, guidance_scale=self.options.guidance))
        return as_float_images(self.pipe(**kwargs).images)

    def _class_conditional_loop(self, labels, generators):
        """Reverse process of a class-conditional pixel-space ``UNet2DModel`` (``[-1,1]`` -> [0,1])."""
        if self.options.guidance not in (None, 1.0):
            raise BadInputError("guidance: a UNet2DModel with num_class_embeds is sampled without guidance; leave it unset")
        unet, device = self.pipe.unet, self.device
        scheduler = type(self.pipe.scheduler).from_config(self.pipe.scheduler.config)
        c, h, w = self._native_shape()
        x = torch.cat([torch.randn((1, c, h, w), generator=g) for g in generators]).to(device, unet.dtype)
        y = labels.to(device)
        scheduler.set_timesteps(self.options.steps, device=device)
        x = x * scheduler.init_noise_sigma
        takes_generator = "generator" in inspect.signature(scheduler.step).parameters
        for t in scheduler.timesteps:
            eps = unet(scheduler.scale_model_input(x, t), t, class_labels=y).sample
            x = scheduler.step(eps, t, x, **({"generator": generators} if takes_generator else {})).prev_sample
        return (x.float().cpu() / 2 + 0.5).clamp(0.0, 1.0)

    def _pseudo_labels(self, images, num_classes: int):
        """``(confidence float32 B, predicted labels int64 B)`` of the reference classifier."""
        model = self.classifier
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                probs = torch.softmax(model(images.to(self.device)).float(), dim=1).cpu()
        finally:
            model.train(was_training)
        if probs.shape[1] != num_classes:
            raise BadInputError(f"labels: the reference classifier has {probs.shape[1]} outputs for {num_classes} classes")
        confidence, predicted = probs.max(dim=1)
        return confidence, predicted.to(torch.int64)
