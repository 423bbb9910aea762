"""``generator:ddpm`` — a class-conditional denoising diffusion model trained on the real data.

Ho, Jain & Abbeel, 2020, "Denoising Diffusion Probabilistic Models" (NeurIPS, arXiv:2006.11239): a U-Net learns to
predict the noise ``eps`` added to an image at a random timestep (MSE loss); sampling runs the
learned reverse process. Synthetic training data from such a model, trained on the classifier's own
real training split only, is what Gowal et al. 2021 ("Improving Robustness using Generated Data"),
Sehwag et al. ICLR 2022 ("Robust Learning Meets Generative Models") and Wang et al. ICML 2023
("Better Diffusion Models Further Improve Adversarial Training") add to adversarial training.

The model is a diffusers ``UNet2DModel`` conditioned on the label through ``num_class_embeds``
(one extra "null" class for classifier-free guidance, Ho & Salimans 2021: labels are dropped with
probability ``label_dropout`` in training, ``guidance`` > 1 mixes conditional and unconditional
predictions at sampling). It is trained with ``DDPMScheduler`` (epsilon prediction) and an
exponential moving average of its weights (the EMA weights are saved and sampled), then sampled
with ``ddpm``, ``ddim`` (eta = 0) or ``dpm-solver++`` (``DPMSolverMultistepScheduler``, Lu et al.
2022, with dynamic thresholding to [-1,1] and, for the cosine schedule, ``lambda_min_clipped``).

Tuned defaults (a 32/64-channel U-Net, 1000 steps of batch 64, EMA 0.995, cosine schedule,
DPM-Solver++ with 20 steps) train on 500 sklearn digits (1×8×8) in about two minutes of one CPU core;
a logistic regression trained on those 500 real digits labels the samples as intended > 85% of the
time (tests/test_generator_ddpm.py, slow test).

Shapes: real images ``float32 N×C×H×W`` in [0,1] are mapped to [-1,1] and zero-padded (or, with
``sample_size`` set, resized) to the U-Net's square ``S×S`` input (``S`` a multiple of
``2**(len(block_out_channels) - 1)``); samples are cropped (or resized) back, so ``generate``
returns ``float32 B×C×H×W`` in [0,1] with the real data's ``(C, H, W)``. Image ``i`` depends only
on ``(labels[i], seeds[i], options)``: its initial noise and every stochastic step draw from its own
``torch.Generator`` seeded with ``seeds[i]``.

Checkpoint: ``workdir/unet.safetensors`` (EMA weights) and ``workdir/ddpm.json`` (architecture,
image shape, classes and a hash of the training options and the real data), both written
atomically; ``fit`` with the same hash reuses them, a different hash retrains.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from dreamset import BadInputError, Options, register
from dreamset.contracts.interfaces import GeneratedBatch, Generator
from dreamset.contracts.lazy import lazy_module
from dreamset.contracts.progress import progress as loop_progress
from dreamset.plugins.generators import data_digest, ema_result, ema_update

torch = lazy_module("torch")

log = logging.getLogger("dreamset")

CHECKPOINT = "unet.safetensors"
MANIFEST = "ddpm.json"
#: options that change the trained weights (a change retrains); the rest only affect sampling
TRAINING_FIELDS = (
    "block_out_channels", "layers_per_block", "attention", "sample_size", "train_steps", "batch_size",
    "lr", "warmup_steps", "ema_decay", "label_dropout", "num_train_timesteps", "beta_schedule", "seed",
)


class DDPMOptions(Options):
    # -- architecture --------------------------------------------------------------------------
    block_out_channels: tuple[int, ...] = Field(
        default=(32, 64), min_length=1, max_length=6,
        description="channels of each U-Net resolution level (each level but the last halves H and W)")
    layers_per_block: int = Field(default=1, ge=1, le=4, description="ResNet layers per U-Net block")
    attention: bool = Field(default=False, description="self-attention in the lowest-resolution blocks")
    sample_size: int | None = Field(
        default=None, ge=4, le=512,
        description="U-Net input size S (images are resized to S×S and back); "
                    "None = pad to the next valid size, crop back")
    # -- training ------------------------------------------------------------------------------
    train_steps: int = Field(default=1000, ge=1, description="optimizer steps")
    batch_size: int = Field(default=64, ge=1, description="training batch size")
    lr: float = Field(default=2e-3, gt=0, le=1, description="AdamW learning rate (cosine decay after warmup)")
    warmup_steps: int = Field(default=50, ge=0, description="linear learning-rate warmup steps")
    ema_decay: float = Field(default=0.995, ge=0, lt=1, description="EMA decay of the sampled weights (0 = no EMA)")
    label_dropout: float = Field(default=0.0, ge=0, lt=1,
                                 description="probability of training on the null label (needed for guidance > 1)")
    num_train_timesteps: int = Field(default=1000, ge=2, le=10000, description="diffusion timesteps T")
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = Field(
        default="squaredcos_cap_v2", description="noise schedule")
    seed: int = Field(default=0, ge=0, description="seed of initialisation, batches and training noise")
    # -- sampling ------------------------------------------------------------------------------
    scheduler: Literal["ddpm", "ddim", "dpm-solver++"] = Field(default="dpm-solver++", description="sampler")
    steps: int = Field(default=20, ge=1, le=10000, description="sampling steps")
    guidance: float = Field(default=1.0, ge=0, le=50,
                            description="classifier-free guidance scale (1 = plain conditional sampling)")
    micro_batch: int = Field(
        default=64, ge=1, le=4096,
        description="the U-Net always runs on exactly this many images (the last chunk is padded), so an "
                    "image does not depend on what else is in its batch")
    precision: Literal["float32", "bfloat16", "float16"] = Field(
        default="float32",
        description="U-Net compute precision when sampling (autocast; the scheduler steps stay float32); "
                    "float16 needs a CUDA device")
    channels_last: bool = Field(default=False, description="run the U-Net in channels_last memory format (faster convs on GPU)")

    @model_validator(mode="after")
    def _check(self):
        channels = self.block_out_channels
        if any(c < 8 or c % 8 for c in channels):
            raise ValueError(f"block_out_channels: every entry must be a positive multiple of 8 (got {list(channels)})")
        factor = 2 ** (len(channels) - 1)
        if self.sample_size is not None and self.sample_size % factor:
            raise ValueError(f"sample_size must be a multiple of {factor} for {len(channels)} U-Net levels "
                             f"(got {self.sample_size})")
        if self.steps > self.num_train_timesteps:
            raise ValueError(f"steps ({self.steps}) cannot exceed num_train_timesteps ({self.num_train_timesteps})")
        return self

    def training_hash(self, data_digest: str) -> str:
        fields = {name: getattr(self, name) for name in TRAINING_FIELDS}
        text = json.dumps({"options": fields, "data": data_digest}, sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()


def _groups(channels) -> int:
    """GroupNorm groups dividing every channel count (all are multiples of 8)."""
    import math

    return min(32, math.gcd(*channels))


def build_unet(arch: dict):
    """The U-Net for an architecture record (as stored in ``ddpm.json``)."""
    from diffusers import UNet2DModel

    levels = len(arch["block_out_channels"])
    down = ["DownBlock2D"] * levels
    up = ["UpBlock2D"] * levels
    if arch["attention"]:
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    return UNet2DModel(
        sample_size=arch["sample_size"],
        in_channels=arch["channels"],
        out_channels=arch["channels"],
        block_out_channels=tuple(arch["block_out_channels"]),
        layers_per_block=arch["layers_per_block"],
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        norm_num_groups=_groups(arch["block_out_channels"]),
        num_class_embeds=arch["num_classes"] + 1,  # the last one is the null label (guidance)
        attention_head_dim=8,
    )


@register(description="class-conditional DDPM trained on the real data (Ho et al. 2020)")
class DDPMGenerator(Generator):
    """Class-conditional DDPM trained on the real training split (Ho et al., 2020)."""

    key = "generator:ddpm"

    Options = DDPMOptions
    #: small settings the conformance suite uses so it checks the contract in seconds
    conformance_options = {"block_out_channels": (8, 16), "train_steps": 3, "steps": 3, "batch_size": 8}

    def __init__(self, options: DDPMOptions | None = None) -> None:
        super().__init__(options)
        self.unet = None
        self.arch: dict | None = None
        self.device = None

    # -- geometry ------------------------------------------------------------------------------
    def _sample_size(self, height: int, width: int) -> int:
        if self.options.sample_size is not None:
            return self.options.sample_size
        factor = 2 ** (len(self.options.block_out_channels) - 1)
        side = max(height, width, factor)
        return -(-side // factor) * factor

    def _to_unet(self, images):
        """[0,1] ``N×C×H×W`` -> [-1,1] ``N×C×S×S`` (pad with -1 = black, or resize)."""
        size, (_, h, w) = self.arch["sample_size"], self.arch["image_shape"]
        x = images * 2.0 - 1.0
        if self.options.sample_size is not None:
            return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return torch.nn.functional.pad(x, (0, size - w, 0, size - h), value=-1.0)

    def _from_unet(self, x):
        """[-1,1] ``N×C×S×S`` -> [0,1] ``N×C×H×W``."""
        _, h, w = self.arch["image_shape"]
        if self.options.sample_size is not None:
            x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        else:
            x = x[:, :, :h, :w]
        return ((x + 1.0) / 2.0).clamp(0.0, 1.0).to(torch.float32).contiguous()

    def image_shape(self, real=None) -> tuple[int, int, int]:
        if real is not None:
            return tuple(int(v) for v in real.image_shape)
        if self.arch is None:
            raise BadInputError(f"{self.key or 'generator:ddpm'}: image_shape needs the real data or a fitted model")
        return tuple(self.arch["image_shape"])

    # -- schedulers ----------------------------------------------------------------------------
    def _train_scheduler(self):
        from diffusers import DDPMScheduler

        return DDPMScheduler(num_train_timesteps=self.options.num_train_timesteps,
                             beta_schedule=self.options.beta_schedule, prediction_type="epsilon", clip_sample=True)

    def sampling_scheduler(self):
        """A fresh scheduler of the chosen kind, sharing the training noise schedule."""
        import diffusers

        config = self._train_scheduler().config
        if self.options.scheduler == "ddpm":
            return diffusers.DDPMScheduler.from_config(config)
        if self.options.scheduler == "ddim":
            return diffusers.DDIMScheduler.from_config(config)
        # the cosine schedule's lambda(t) -> -inf near t = T: clip it, as diffusers documents
        clip = -5.1 if self.options.beta_schedule == "squaredcos_cap_v2" else -float("inf")
        return diffusers.DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=2,
                                                                 lambda_min_clipped=clip, thresholding=True,
                                                                 sample_max_value=1.0)

    # -- training ------------------------------------------------------------------------------
    def fit(self, real, workdir: Path, services=None) -> None:
        from dreamset.contracts.data import materialize

        workdir = Path(workdir)
        self.device = services.device if services is not None else torch.device("cpu")
        if self.options.precision == "float16" and self.device.type != "cuda":
            raise BadInputError(f"precision: float16 sampling needs a CUDA device (this run uses {self.device}); "
                                "use bfloat16 or float32")
        images, labels = materialize(real)
        if len(labels) == 0:
            raise BadInputError(f"{self.key or 'generator:ddpm'}: the real training split is empty; nothing to fit")
        c, h, w = (int(v) for v in real.image_shape)
        expected_hash = self.options.training_hash(data_digest(images, labels))
        self.arch = {
            "block_out_channels": list(self.options.block_out_channels),
            "layers_per_block": self.options.layers_per_block,
            "attention": self.options.attention,
            "sample_size": self._sample_size(h, w),
            "channels": c,
            "image_shape": [c, h, w],
            "num_classes": len(real.class_names),
        }
        if self._load(workdir, expected_hash):
            log.info("generator:ddpm: reusing the trained checkpoint in %s", workdir)
            return
        self.unet = self._for_sampling(self._train(images, labels, services))
        self._save(workdir, expected_hash, list(real.class_names))

    def _load(self, workdir: Path, expected_hash: str) -> bool:
        from safetensors.torch import load

        manifest_path, weights_path = workdir / MANIFEST, workdir / CHECKPOINT
        if not (manifest_path.is_file() and weights_path.is_file()):
            return False
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            return False
        if manifest.get("hash") != expected_hash or manifest.get("arch") != self.arch:
            log.info("generator:ddpm: options or data changed since %s was trained; retraining", workdir)
            return False
        data = weights_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != manifest.get("weights_sha256"):
            log.warning("generator:ddpm: %s does not match its manifest; retraining", weights_path)
            return False
        unet = build_unet(self.arch)
        unet.load_state_dict(load(data))
        self.unet = self._for_sampling(unet)
        return True

    def _for_sampling(self, unet):
        """The U-Net on the device, in eval mode, without gradients, in the chosen memory format."""
        unet = unet.to(self.device).eval().requires_grad_(False)
        return unet.to(memory_format=torch.channels_last) if self.options.channels_last else unet

    def _save(self, workdir: Path, expected_hash: str, class_names: list[str]) -> None:
        from safetensors.torch import save

        from dreamset.files.atomic import atomic_write_bytes, atomic_write_text

        state = {k: v.detach().cpu().contiguous() for k, v in self.unet.state_dict().items()}
        data = save(state)
        atomic_write_bytes(workdir / CHECKPOINT, data)
        manifest = {
            "generator": "generator:ddpm",
            "hash": expected_hash,
            "weights_sha256": hashlib.sha256(data).hexdigest(),
            "arch": self.arch,
            "class_names": class_names,
            "options": self.options.model_dump(mode="json"),
        }
        # the manifest is written last: its presence marks a finished checkpoint
        atomic_write_text(workdir / MANIFEST, json.dumps(manifest, indent=2))

    def _train(self, images, labels, services):
        import copy
        import math

        opts = self.options
        device = self.device
        num_classes = self.arch["num_classes"]
        cpu_gen = torch.Generator().manual_seed(opts.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(opts.seed)
            unet = build_unet(self.arch)
        unet = unet.to(device).train()
        ema = copy.deepcopy(unet).requires_grad_(False) if opts.ema_decay > 0 else None
        scheduler = self._train_scheduler()
        alphas = scheduler.alphas_cumprod.to(device)
        data = self._to_unet(images).to(device)
        targets = labels.to(device)
        optimizer = torch.optim.AdamW(unet.parameters(), lr=opts.lr, weight_decay=0.0)

        def lr_factor(step: int) -> float:
            if step < opts.warmup_steps:
                return (step + 1) / opts.warmup_steps
            span = max(1, opts.train_steps - opts.warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * (step - opts.warmup_steps) / span))

        lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
        progress = loop_progress(services, "training DDPM", opts.train_steps, unit="steps")  # bars, or lines in a log
        n = data.shape[0]
        order, cursor = torch.randperm(n, generator=cpu_gen), 0
        with progress as advance:
            for step in range(opts.train_steps):
                if cursor + min(opts.batch_size, n) > n:  # a new epoch: reshuffle
                    order, cursor = torch.randperm(n, generator=cpu_gen), 0
                idx = order[cursor:cursor + opts.batch_size]
                cursor += len(idx)
                x0 = data[idx]
                y = targets[idx]
                if opts.label_dropout > 0:
                    drop = torch.rand(len(idx), generator=cpu_gen).to(device) < opts.label_dropout
                    y = torch.where(drop, torch.full_like(y, num_classes), y)
                noise = torch.randn(x0.shape, generator=cpu_gen).to(device)
                t = torch.randint(0, opts.num_train_timesteps, (len(idx),), generator=cpu_gen).to(device)
                a = alphas[t].view(-1, 1, 1, 1)
                xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
                loss = torch.nn.functional.mse_loss(unet(xt, t, class_labels=y).sample, noise)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
                optimizer.step()
                lr_schedule.step()
                if ema is not None:
                    ema_update(ema, unet, opts.ema_decay, step)
                if advance is not None:
                    advance()
                if step % 250 == 0 or step == opts.train_steps - 1:
                    log.debug("generator:ddpm step %d loss %.4f", step, float(loss.detach()))
        if ema is not None:
            unet = ema_result(ema, unet)
        return unet.eval().requires_grad_(False)

    # -- sampling ------------------------------------------------------------------------------
    def generate(self, labels, seeds, class_names) -> GeneratedBatch:
        if self.unet is None:
            raise BadInputError(f"{self.key or 'generator:ddpm'}: call fit(real, workdir) before generate()")
        labels = torch.as_tensor(labels, dtype=torch.int64)
        seeds = [int(s) for s in seeds]
        if len(seeds) != len(labels):
            raise BadInputError(f"generator:ddpm: {len(labels)} labels but {len(seeds)} seeds")
        num_classes = self.arch["num_classes"]
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise BadInputError(f"generator:ddpm: labels must be in [0, {num_classes - 1}] (the model was fitted on {num_classes} classes)")
        if self.options.guidance != 1.0 and self.options.label_dropout == 0:
            raise BadInputError("generator:ddpm: guidance != 1 needs a model trained with label_dropout > 0")
        x = self.sample(labels, seeds)
        images = self._from_unet(x.cpu())
        c, h, w = self.arch["image_shape"]
        provenance = [
            {
                "generator": self.key or "generator:ddpm",
                "label": int(label),
                "class_name": class_names[int(label)],
                "prompt": None,
                "seed": seed,
                "steps": self.options.steps,
                "guidance": self.options.guidance,
                "scheduler": self.options.scheduler,
                "width": w,
                "height": h,
            }
            for label, seed in zip(labels.tolist(), seeds)
        ]
        return GeneratedBatch(images=images, labels=labels.clone(), provenance=provenance)

    def sample(self, labels, seeds):
        """The reverse process in U-Net space: ``float32 B×C×S×S`` in about [-1,1].

        CPU kernels are not batch-invariant (a conv over 5 images and over 64 differ in the last
        bits), so the U-Net always sees fixed-size chunks of ``micro_batch`` images: the result for
        one image is then the same whatever else is generated with it, and wherever it sits."""
        step = self.options.micro_batch
        with torch.inference_mode():
            chunks = [self._sample_chunk(labels[start:start + step], seeds[start:start + step])
                      for start in range(0, len(seeds), step)]
        if not chunks:
            c, size = self.arch["channels"], self.arch["sample_size"]
            return torch.zeros(0, c, size, size)
        return torch.cat(chunks)

    def _sample_chunk(self, labels, seeds):
        device, unet, guidance = self.device, self.unet, self.options.guidance
        c, size, n = self.arch["channels"], self.arch["sample_size"], len(seeds)
        padding = self.options.micro_batch - n
        generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        generators += [torch.Generator().manual_seed(0) for _ in range(padding)]
        x = torch.cat([torch.randn((1, c, size, size), generator=g) for g in generators]).to(device)
        y = torch.cat([labels, torch.zeros(padding, dtype=torch.int64)]).to(device)
        if guidance != 1.0:
            y = torch.cat([y, torch.full_like(y, self.arch["num_classes"])])
        scheduler = self.sampling_scheduler()
        scheduler.set_timesteps(self.options.steps, device=device)
        x = x * scheduler.init_noise_sigma
        extra = {"generator": generators} if self.options.scheduler == "ddpm" else {}
        precision = self.options.precision
        autocast = torch.autocast(device_type=device.type, dtype=getattr(torch, precision), enabled=precision != "float32")
        layout = torch.channels_last if self.options.channels_last else torch.contiguous_format
        for t in scheduler.timesteps:
            with autocast:
                if guidance != 1.0:
                    cond, uncond = unet(torch.cat([x, x]).contiguous(memory_format=layout), t, class_labels=y).sample.float().chunk(2)
                    eps = uncond + guidance * (cond - uncond)
                else:
                    eps = unet(x.contiguous(memory_format=layout), t, class_labels=y).sample.float()
            x = scheduler.step(eps, t, x, **extra).prev_sample
        return x[:n]
