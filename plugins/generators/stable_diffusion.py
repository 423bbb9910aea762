"""``generator:stable-diffusion`` — a pretrained Stable Diffusion model prompted with class names.

Bansal & Grover, 2023, "Leaving Reality to Imagination: Robust Classification via Generated
Datasets" (ICLR 2023 workshop, arXiv:2302.02503): ImageNet-sized synthetic training sets from Stable
Diffusion, conditioned three ways —

* ``mode: text`` — text-to-image from a prompt made of the class name in a template. ``templates:
  clip80`` are the 80 ImageNet prompt templates of CLIP (Radford et al., 2021, "Learning Transferable
  Visual Models From Natural Language Supervision", the list of CLIP's prompt-engineering notebook),
  ``photo`` is ``"a photo of a {}"``, or give your own list (each with one ``{}``). Image ``i`` uses
  the template picked by a hash of its seed, so the choice is deterministic and independent of the
  label.

  **Prompt strategies** (Bansal & Grover's single vs diverse templates; Sariyildiz, Alahari, Larlus
  & Kalantidis, 2023, "Fake it till you make it", arXiv:2212.08420, class names with backgrounds):
  a *single template* (``templates: photo`` or a one-element list), the *80 CLIP templates at random*
  (``templates: clip80``, seeded as above), *templates × backgrounds* (``backgrounds``: a list of
  phrases such as ``"in a forest"``, or ``scenes`` for a built-in list of 16 scenes; image ``i``'s
  background is picked by another hash of its seed and appended to its filled template:
  ``"a photo of a goldfish in a forest."``), or *a user file of prompts per class* (``prompts_file``:
  a YAML or JSON mapping from class name to a list of prompts, one picked per image by its seed — e.g.
  WordNet definitions or hypernyms). Provenance records ``prompt_strategy``, ``template``,
  ``background`` and the exact ``prompt``.
* ``mode: image-variation`` — a real training image of the class goes through the CLIP image encoder
  of ``StableDiffusionImageVariationPipeline`` (e.g. ``lambdalabs/sd-image-variations-diffusers``).
* ``mode: image+label`` — img2img: a real image of the class, noised to ``strength``, denoised under
  the class prompt.

The real images come from ``fit(real)`` (the real training split is kept); image ``i`` uses the real
image of its label picked by a hash of its seed. Loading, schedulers, dtype and the hub-id/folder rules
are those of ``generator:diffusers`` (:mod:`dreamset.plugins.generators.diffusers_pipeline`).

Shapes: the pipeline makes ``3×height×width`` images (``height``/``width`` default to the model's
native size), returned as ``float32 B×3×H×W`` in [0,1], or, with ``resize: true``, resized and
converted to the real data's ``(C, H, W)``. Image ``i`` depends only on ``(labels[i], seeds[i],
options)``: its latents and noise come from ``torch.Generator().manual_seed(seeds[i])``. Provenance
records the exact prompt (``None`` for image variations), the template, the negative prompt and, for
the image modes, the index of the real source image.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from dreamset import BadInputError, register
from dreamset.contracts.interfaces import GeneratedBatch
from dreamset.contracts.lazy import lazy_module
from dreamset.plugins.generators.diffusers_pipeline import (
    PretrainedOptions,
    PretrainedPipelineGenerator,
    check_request,
    fit_shape,
    micro_batches,
)

torch = lazy_module("torch")

log = logging.getLogger("dreamset")

#: CLIP's 80 ImageNet prompt templates (Radford et al. 2021, Prompt_Engineering_for_ImageNet.ipynb)
CLIP_IMAGENET_TEMPLATES = (
    "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.", "a photo of the hard to see {}.",
    "a low resolution photo of the {}.", "a rendering of a {}.", "graffiti of a {}.", "a bad photo of the {}.",
    "a cropped photo of the {}.", "a tattoo of a {}.", "the embroidered {}.", "a photo of a hard to see {}.",
    "a bright photo of a {}.", "a photo of a clean {}.", "a photo of a dirty {}.", "a dark photo of the {}.",
    "a drawing of a {}.", "a photo of my {}.", "the plastic {}.", "a photo of the cool {}.",
    "a close-up photo of a {}.", "a black and white photo of the {}.", "a painting of the {}.",
    "a painting of a {}.", "a pixelated photo of the {}.", "a sculpture of the {}.", "a bright photo of the {}.",
    "a cropped photo of a {}.", "a plastic {}.", "a photo of the dirty {}.", "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.", "a photo of the {}.", "a good photo of the {}.", "a rendering of the {}.",
    "a {} in a video game.", "a photo of one {}.", "a doodle of a {}.", "a close-up photo of the {}.",
    "a photo of a {}.", "the origami {}.", "the {} in a video game.", "a sketch of a {}.", "a doodle of the {}.",
    "a origami {}.", "a low resolution photo of a {}.", "the toy {}.", "a rendition of the {}.",
    "a photo of the clean {}.", "a photo of a large {}.", "a rendition of a {}.", "a photo of a nice {}.",
    "a photo of a weird {}.", "a blurry photo of a {}.", "a cartoon {}.", "art of a {}.", "a sketch of the {}.",
    "a embroidered {}.", "a pixelated photo of a {}.", "itap of the {}.", "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.", "a plushie {}.", "a photo of the nice {}.", "a photo of the small {}.",
    "a photo of the weird {}.", "the cartoon {}.", "art of the {}.", "a drawing of the {}.",
    "a photo of the large {}.", "a black and white photo of a {}.", "the plushie {}.", "a dark photo of a {}.",
    "itap of a {}.", "graffiti of the {}.", "a toy {}.", "itap of my {}.", "a photo of a cool {}.",
    "a photo of a small {}.", "a tattoo of the {}.",
)
TEMPLATE_SETS = {"clip80": CLIP_IMAGENET_TEMPLATES, "photo": ("a photo of a {}",)}
#: ``backgrounds: scenes`` — common scene types (after the indoor/outdoor categories of Places365,
#: which Sariyildiz et al. 2023 use as backgrounds)
SCENE_BACKGROUNDS = (
    "in a forest", "on a beach", "in a kitchen", "in a living room", "on a city street", "in a field",
    "in the snow", "in the desert", "in an office", "in a garden", "on a mountain", "in a park",
    "in a bedroom", "on a farm", "in a parking lot", "under water",
)
BACKGROUND_SETS = {"scenes": SCENE_BACKGROUNDS}


def seeded_choice(seed: int, purpose: str, n: int) -> int:
    """A deterministic index in ``range(n)`` from ``seed`` (a hash, so consecutive seeds, which the
    store pairs with consecutive labels, do not tie choices to classes)."""
    digest = hashlib.sha256(f"{purpose}:{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % n


class StableDiffusionOptions(PretrainedOptions):
    mode: Literal["text", "image-variation", "image+label"] = Field(
        default="text", description="text-to-image, CLIP image variation of a real image, or img2img with the class prompt")
    templates: Literal["clip80", "photo"] | list[str] = Field(
        default="clip80", description="prompt templates: clip80, photo, or a list of strings each holding one {}")
    backgrounds: Literal["scenes"] | list[str] | None = Field(
        default=None, description="templates × backgrounds: scenes, or a list of phrases appended to the prompt (e.g. 'in a forest')")
    prompts_file: str | None = Field(
        default=None, description="YAML/JSON file: class name -> list of prompts (used instead of templates)")
    guidance: float = Field(default=7.5, ge=0, le=50, description="classifier-free guidance scale")
    negative_prompt: str | None = Field(default=None, description="negative prompt (text and image+label modes)")
    width: int | None = Field(default=None, ge=8, le=4096, description="pipeline output width (multiple of 8); None = native")
    height: int | None = Field(default=None, ge=8, le=4096, description="pipeline output height (multiple of 8); None = native")
    strength: float = Field(default=0.75, gt=0, le=1, description="image+label: how far the real image is noised (1 = fully)")

    @field_validator("templates")
    @classmethod
    def _templates(cls, value):
        if isinstance(value, list):
            if not value:
                raise ValueError("templates: give at least one template")
            bad = [t for t in value if t.count("{}") != 1]
            if bad:
                raise ValueError(f"templates: each template needs exactly one {{}} for the class name (got {bad[0]!r})")
        return value

    @model_validator(mode="after")
    def _check(self):
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and value % 8:
                raise ValueError(f"{name} must be a multiple of 8 (got {value})")
        if isinstance(self.backgrounds, list) and (not self.backgrounds or not all(b.strip() for b in self.backgrounds)):
            raise ValueError("backgrounds: give at least one non-empty phrase")
        if self.prompts_file is not None:
            if self.backgrounds is not None:
                raise ValueError("prompts_file: the file's prompts are used as they are; remove backgrounds")
            if not Path(self.prompts_file).is_file():
                raise ValueError(f"prompts_file: {self.prompts_file} is not a file")
        if self.mode == "image-variation" and (self.backgrounds is not None or self.prompts_file is not None):
            raise ValueError("image-variation mode takes no prompt; remove backgrounds / prompts_file")
        if self.mode == "image-variation" and self.negative_prompt is not None:
            raise ValueError("negative_prompt: image-variation mode takes no prompt; remove negative_prompt")
        if self.mode == "image+label" and int(self.steps * self.strength) < 1:
            raise ValueError(f"strength × steps must be ≥ 1 denoising step (got {self.strength} × {self.steps})")
        return self

    @property
    def template_list(self) -> tuple[str, ...]:
        return TEMPLATE_SETS[self.templates] if isinstance(self.templates, str) else tuple(self.templates)

    @property
    def background_list(self) -> tuple[str, ...]:
        if self.backgrounds is None:
            return ()
        return BACKGROUND_SETS[self.backgrounds] if isinstance(self.backgrounds, str) else tuple(self.backgrounds)

    @property
    def prompt_strategy(self) -> str:
        """``file``, ``templates×backgrounds``, ``single-template`` or ``templates-at-random``."""
        if self.prompts_file is not None:
            return "file"
        if self.backgrounds is not None:
            return "templates×backgrounds"
        return "single-template" if len(self.template_list) == 1 else "templates-at-random"


def read_prompts_file(path: str, class_names) -> dict[str, list[str]]:
    """The prompts per class of a YAML/JSON ``prompts_file``; every class needs at least one."""
    import yaml

    from dreamset.files.verify import load_yaml

    try:  # JSON is YAML; aliases and integer sizes bounded before anything is built
        data = load_yaml(Path(path).read_text(encoding="utf-8"), f"prompts_file: {path}")
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BadInputError(f"prompts_file: cannot read {path} ({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(data, dict):
        raise BadInputError(f"prompts_file: {path} must map class names to lists of prompts")
    out = {}
    for name in class_names:
        prompts = data.get(name)
        if isinstance(prompts, str):
            prompts = [prompts]
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
            raise BadInputError(f"prompts_file: {path} has no list of prompts for class {name!r}")
        out[name] = prompts
    return out


@register(description="Stable Diffusion from class-name prompts, image variations or img2img (Bansal & Grover 2023)")
class StableDiffusionGenerator(PretrainedPipelineGenerator):
    """Stable Diffusion prompted with class names (Bansal & Grover 2023)."""

    key = "generator:stable-diffusion"

    Options = StableDiffusionOptions
    default_key = "generator:stable-diffusion"

    def __init__(self, options: StableDiffusionOptions | None = None) -> None:
        super().__init__(options)
        self.real = None
        self.by_class: list = []
        self.size: tuple[int, int] | None = None  # (height, width) of the pipeline's output

    def fit(self, real, workdir: Path, services=None) -> None:
        import diffusers

        opts = self.options
        loader = {"text": diffusers.AutoPipelineForText2Image, "image+label": diffusers.AutoPipelineForImage2Image,
                  "image-variation": diffusers.StableDiffusionImageVariationPipeline}[opts.mode]
        if opts.mode != "text" and real is None:
            raise BadInputError(f"mode: {opts.mode} needs the real training images; call fit(real, workdir)")
        self.load(loader, services)
        native = self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor
        self.size = (opts.height or native, opts.width or native)
        self.real = real
        if opts.mode != "text":
            self.by_class = [torch.nonzero(real.labels == c).flatten() for c in range(len(real.class_names))]

    def image_shape(self, real=None) -> tuple[int, int, int]:
        if self.options.resize:
            real = real if real is not None else self.real
            if real is None:
                raise BadInputError(f"{self.name}: image_shape needs the real data (resize: true)")
            return tuple(int(v) for v in real.image_shape)
        if self.size is None:
            if self.options.height is None or self.options.width is None:
                raise BadInputError(f"{self.name}: call fit() before image_shape() (or set width and height)")
            return (3, self.options.height, self.options.width)
        return (3, *self.size)

    # -- conditioning -----------------------------------------------------------------------------
    def prompt(self, label: int, seed: int, class_names) -> tuple[str | None, str]:
        """``(template, prompt)`` of an image: the template picked by its seed, filled with the class
        (then its background appended), or the file's prompt picked by its seed (template ``None``)."""
        return self.conditioning(label, seed, class_names)[:2]

    def conditioning(self, label: int, seed: int, class_names) -> tuple[str | None, str, str | None]:
        """``(template, prompt, background)`` of image ``(label, seed)`` under the prompt strategy."""
        opts = self.options
        if opts.prompts_file is not None:
            if getattr(self, "_file_prompts", None) is None:
                self._file_prompts = read_prompts_file(opts.prompts_file, class_names)
            prompts = self._file_prompts[class_names[label]]
            return None, prompts[seeded_choice(seed, "prompt", len(prompts))], None
        templates = opts.template_list
        template = templates[seeded_choice(seed, "template", len(templates))]
        prompt = template.replace("{}", class_names[label])
        backgrounds = opts.background_list
        if not backgrounds:
            return template, prompt, None
        background = backgrounds[seeded_choice(seed, "background", len(backgrounds))]
        stop = "." if prompt.endswith(".") else ""
        return template, f"{prompt[:len(prompt) - len(stop)]} {background}{stop}", background

    def source_index(self, label: int, seed: int, class_names) -> int:
        """Index in the real training split of the image that conditions image ``(label, seed)``."""
        candidates = self.by_class[label] if label < len(self.by_class) else []
        if len(candidates) == 0:
            raise BadInputError(f"mode: {self.options.mode} needs a real image of class {class_names[label]!r}; "
                                "the real training split has none")
        return int(candidates[seeded_choice(seed, "source", len(candidates))])

    def _source_images(self, indices):
        """Real images at ``indices`` as 3-channel ``float32`` in [0,1] at the pipeline's size."""
        images, _ = self.real.get(indices)
        return fit_shape(images, (3, *self.size))

    # -- generation -------------------------------------------------------------------------------
    def generate(self, labels, seeds, class_names) -> GeneratedBatch:
        if self.pipe is None:
            raise BadInputError(f"{self.name}: call fit(real, workdir, services) before generate()")
        opts = self.options
        labels, seeds = check_request(self.name, labels, seeds, class_names)
        shape = self.image_shape()
        records = []
        for label, seed in zip(labels.tolist(), seeds):
            record = {"generator": self.name, "label": label, "class_name": class_names[label], "seed": seed,
                      "steps": opts.steps, "guidance": opts.guidance, "scheduler": opts.scheduler,
                      "width": shape[2], "height": shape[1], "model": opts.model, "mode": opts.mode,
                      "prompt": None, "template": None, "negative_prompt": opts.negative_prompt}
            if opts.mode != "image-variation":
                record["template"], record["prompt"], record["background"] = self.conditioning(label, seed, class_names)
                record["prompt_strategy"] = opts.prompt_strategy
            if opts.mode != "text":
                record["source_index"] = self.source_index(label, seed, class_names)
            if opts.mode == "image+label":
                record["strength"] = opts.strength
            records.append(record)
        images = [torch.zeros(0, *shape)]
        for chunk in micro_batches(len(seeds), opts.batch_size, self.device):
            x = self._sample(records[chunk])
            images.append(fit_shape(x, shape) if opts.resize else x)
        return GeneratedBatch(images=torch.cat(images), labels=labels.clone(), provenance=records)

    def _sample(self, records):
        opts = self.options
        height, width = self.size
        kwargs = {"height": height, "width": width, "num_inference_steps": opts.steps, "guidance_scale": opts.guidance,
                  "generator": [torch.Generator().manual_seed(r["seed"]) for r in records], "output_type": "pt"}
        if opts.mode == "image-variation":
            from PIL import Image

            from dreamset.contracts.data import to_uint8_images

            sources = to_uint8_images(self._source_images([r["source_index"] for r in records]))
            kwargs["image"] = [Image.fromarray(x.permute(1, 2, 0).numpy()) for x in sources]
        else:
            kwargs["prompt"] = [r["prompt"] for r in records]
            if opts.negative_prompt is not None:
                kwargs["negative_prompt"] = [opts.negative_prompt] * len(records)
        if opts.mode == "image+label":
            kwargs.update(image=self._source_images([r["source_index"] for r in records]), strength=opts.strength)
            kwargs.pop("height"), kwargs.pop("width")  # img2img takes the size of its input image
        return self.pipe(**kwargs).images.float().cpu().clamp(0.0, 1.0)
