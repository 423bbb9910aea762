"""Built-in generators: one component per module, each registered through its own entry point.

What the two latent-variable generators (``generator:gan``, ``generator:vae``) share lives here once:
their options (:class:`LatentOptions`), the class-conditional decoder ``(z, label) -> image``
(:func:`build_decoder`) and :class:`LatentGenerator`, which fits (or reuses) a decoder on the real
data and samples it with one seeded latent per image.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from dreamset import BadInputError, Options
from dreamset.contracts.interfaces import GeneratedBatch, Generator
from dreamset.contracts.lazy import lazy_module

torch = lazy_module("torch")

log = logging.getLogger("dreamset")


class LatentOptions(Options):
    """Options of a class-conditional latent-variable generator trained on the real data."""

    latent_dim: int = Field(default=32, ge=1, le=4096, description="size of the latent z ~ N(0, I)")
    width: int = Field(default=32, ge=4, le=1024, description="channels of the decoder's last hidden layer (the first has 2x)")
    train_steps: int = Field(default=2000, ge=1, le=10_000_000, description="optimizer steps")
    batch_size: int = Field(default=64, ge=2, le=100_000, description="training batch size")
    lr: float = Field(default=2e-4, gt=0, le=1, description="Adam learning rate")
    seed: int = Field(default=0, ge=0, description="seed of initialisation, batches and training noise")

    #: options that change the trained weights (a change retrains); the rest only affect sampling
    training_fields: ClassVar[tuple[str, ...]] = ("latent_dim", "width", "train_steps", "batch_size", "lr", "seed")

    def training_hash(self, data_digest: str) -> str:
        fields = {name: getattr(self, name) for name in type(self).training_fields}
        text = json.dumps({"options": fields, "data": data_digest}, sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()


def data_digest(images, labels) -> str:
    """sha256 of the real data as uint8 images and int64 labels (a change of data retrains):
    :func:`dreamset.files.digests.images_sha256`, the digest a store records of the data too."""
    from dreamset.files.digests import images_sha256

    return images_sha256(images, labels)


def ema_update(ema, model, max_decay: float, step: int) -> None:
    """One step of an exponential moving average of ``model``'s weights into ``ema``, the decay warmed
    up as in diffusers' ``EMAModel`` (``min(max_decay, (1 + step) / (10 + step))``) so early weights fade."""
    decay = min(max_decay, (1 + step) / (10 + step))
    with torch.no_grad():
        torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - decay)


def ema_result(ema, model):
    """The EMA model with ``model``'s buffers (batch-norm statistics are not averaged)."""
    for mine, theirs in zip(ema.buffers(), model.buffers()):
        mine.copy_(theirs)
    return ema


def base_size(image_shape) -> int:
    """Side ``s`` of the decoder's first feature map; the decoder outputs ``4s × 4s``, cropped to H×W."""
    return max(1, math.ceil(max(image_shape[1], image_shape[2]) / 4))


@functools.lru_cache(maxsize=None)
def _decoder_class():
    nn = torch.nn

    class ConditionalDecoder(nn.Module):
        """``(z float32 B×latent, labels int64 B) -> logits float32 B×C×H×W`` (DCGAN-style:
        a linear layer to ``2w×s×s``, two nearest-neighbour upsamplings with 3×3 convolutions,
        batch norm and ReLU; Radford et al. 2016). The label enters as a learned embedding
        concatenated to ``z`` (Mirza & Osindero 2014)."""

        def __init__(self, arch: dict[str, Any]) -> None:
            super().__init__()
            c, self.h, self.w = arch["image_shape"]
            width, s, latent = arch["width"], arch["base_size"], arch["latent_dim"]
            self.s, self.width = s, width
            self.embed = nn.Embedding(arch["num_classes"], latent)
            self.fc = nn.Linear(2 * latent, 2 * width * s * s)
            self.body = nn.Sequential(
                nn.BatchNorm2d(2 * width), nn.ReLU(),
                nn.Upsample(scale_factor=2), nn.Conv2d(2 * width, width, 3, padding=1),
                nn.BatchNorm2d(width), nn.ReLU(),
                nn.Upsample(scale_factor=2), nn.Conv2d(width, c, 3, padding=1),
            )

        def forward(self, z, labels):
            h = self.fc(torch.cat([z, self.embed(labels)], dim=1)).view(-1, 2 * self.width, self.s, self.s)
            return self.body(h)[:, :, :self.h, :self.w]

    return ConditionalDecoder


def build_decoder(arch: dict[str, Any]):
    return _decoder_class()(arch)


class LatentGenerator(Generator):
    """A class-conditional decoder fitted on the real data, sampled with one latent per image.

    Subclasses set ``name`` and implement ``_train(images, labels, services) -> decoder`` and may
    override :meth:`latent` (e.g. truncation). ``fit`` stores the decoder as
    ``workdir/<name>.safetensors`` with the training hash in its metadata and reuses it when the
    hash (options that change the weights + the real data) matches. Image ``i`` is
    ``sigmoid(decoder(z_i, label_i))`` with ``z_i`` drawn from ``torch.Generator`` seeded ``seeds[i]``:
    a function of ``(label, seed, options)`` only."""

    name = "latent"

    def __init__(self, options=None) -> None:
        super().__init__(options)
        self.decoder = None
        self.arch: dict | None = None
        self.device = None

    def image_shape(self, real=None) -> tuple[int, int, int]:
        if real is not None:
            return tuple(int(v) for v in real.image_shape)
        if self.arch is None:
            raise BadInputError(f"{self.key or 'generator:' + self.name}: image_shape needs the real data or a fitted model")
        return tuple(self.arch["image_shape"])

    # -- fit -----------------------------------------------------------------------------------
    def fit(self, real, workdir: Path, services=None) -> None:
        from dreamset.contracts.data import materialize

        workdir = Path(workdir)
        self.device = services.device if services is not None else torch.device("cpu")
        images, labels = materialize(real)
        if len(labels) == 0:
            raise BadInputError(f"{self.key or 'generator:' + self.name}: the real training split is empty; nothing to fit")
        shape = [int(v) for v in real.image_shape]
        self.arch = {"image_shape": shape, "num_classes": len(real.class_names), "latent_dim": self.options.latent_dim,
                     "width": self.options.width, "base_size": base_size(shape)}
        expected = self.options.training_hash(data_digest(images, labels))
        if self._load(workdir, expected):
            log.info("%s: reusing the trained checkpoint in %s", self.key, workdir)
            return
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.options.seed)
            decoder = self._train(images, labels, services)
        self.decoder = decoder.to(self.device).eval().requires_grad_(False)
        self._save(workdir, expected, list(real.class_names))

    def _checkpoint(self, workdir: Path) -> Path:
        return workdir / f"{self.name}.safetensors"

    def _load(self, workdir: Path, expected: str) -> bool:
        from dreamset.files.checkpoints import load_checkpoint

        path = self._checkpoint(workdir)
        if not path.is_file():
            return False
        try:
            tensors, meta = load_checkpoint(path)
        except BadInputError as exc:
            log.warning("%s: %s; retraining", self.key, exc)
            return False
        if meta.get("hash") != expected or meta.get("arch") != self.arch:
            log.info("%s: options or data changed since %s was trained; retraining", self.key, path)
            return False
        decoder = build_decoder(self.arch)
        decoder.load_state_dict(tensors)
        self.decoder = decoder.to(self.device).eval().requires_grad_(False)
        return True

    def _save(self, workdir: Path, expected: str, class_names: list[str]) -> None:
        from dreamset.files.checkpoints import save_checkpoint

        meta = {"generator": self.key or f"generator:{self.name}", "hash": expected, "arch": self.arch,
                "class_names": class_names, "options": self.options.model_dump(mode="json")}
        save_checkpoint(self._checkpoint(workdir), self.decoder.state_dict(), meta)

    def _batches(self, n: int, generator):
        """Endless minibatch indices: successive seeded permutations of ``n`` rows."""
        while True:
            order = torch.randperm(n, generator=generator)
            for start in range(0, n - min(self.options.batch_size, n) + 1, self.options.batch_size):
                yield order[start:start + self.options.batch_size]

    # -- sampling ------------------------------------------------------------------------------
    def latent(self, generator):
        """One latent ``float32 latent_dim`` from ``generator`` (default: standard normal)."""
        return torch.randn(self.options.latent_dim, generator=generator)

    def provenance_extra(self) -> dict[str, Any]:
        return {}

    def generate(self, labels, seeds, class_names) -> GeneratedBatch:
        name = self.key or f"generator:{self.name}"
        if self.decoder is None:
            raise BadInputError(f"{name}: call fit(real, workdir) before generate()")
        labels = torch.as_tensor(labels, dtype=torch.int64)
        seeds = [int(s) for s in seeds]
        if len(seeds) != len(labels):
            raise BadInputError(f"{name}: {len(labels)} labels but {len(seeds)} seeds")
        num_classes = self.arch["num_classes"]
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise BadInputError(f"{name}: labels must be in [0, {num_classes - 1}] (the model was fitted on {num_classes} classes)")
        c, h, w = self.arch["image_shape"]
        if len(seeds):
            z = torch.stack([self.latent(torch.Generator().manual_seed(seed)) for seed in seeds])
            with torch.inference_mode():
                images = torch.sigmoid(self.decoder(z.to(self.device), labels.to(self.device)).float()).cpu()
        else:
            images = torch.zeros(0, c, h, w)
        extra = self.provenance_extra()
        provenance = [{"generator": name, "label": int(label), "class_name": class_names[int(label)], "prompt": None,
                       "seed": seed, "steps": None, "guidance": None, "scheduler": None, "width": w, "height": h, **extra}
                      for label, seed in zip(labels.tolist(), seeds)]
        return GeneratedBatch(images=images.contiguous(), labels=labels.clone(), provenance=provenance)
