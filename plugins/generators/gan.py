"""``generator:gan`` — a small class-conditional DCGAN trained on the real data.

Radford, Metz & Chintala, 2016, "Unsupervised Representation Learning with Deep Convolutional
Generative Adversarial Networks" (arXiv:1511.06434) for the architecture; Mirza & Osindero, 2014,
"Conditional Generative Adversarial Nets" (arXiv:1411.1784) for the class conditioning. The
generator is the shared decoder of :mod:`dreamset.plugins.generators` (``z`` and a label embedding
-> linear -> two upsample+conv stages with batch norm -> sigmoid). The discriminator is three
convolutions with spectral normalisation (Miyato et al. 2018, arXiv:1802.05957) and LeakyReLU,
global sum pooling, and a projection head for the label (Miyato & Koyama 2018, arXiv:1802.05637).
Loss: ``hinge`` (default) or ``non-saturating`` (Goodfellow et al. 2014). Adam (β = 0, 0.9); the
sampled weights are an exponential moving average of the generator's (``ema_decay``).

``truncation`` (the truncation trick, Brock, Donahue & Simonyan 2019, arXiv:1809.11096): latent
entries with ``|z| > truncation`` are redrawn from the image's own seeded generator, so samples
concentrate near the modes — higher fidelity, lower diversity (a deliberately low-diversity source
for generator comparisons). ``null`` = plain ``N(0, I)``. Changing it does not retrain.

Shapes: fitted on real ``float32 N×C×H×W`` in [0,1] (any C, H, W; the decoder outputs
``4⌈max(H,W)/4⌉`` square and is cropped), ``generate`` returns ``float32 B×C×H×W`` in [0,1]. Image
``i`` depends only on ``(labels[i], seeds[i], options)``. Checkpoint ``workdir/gan.safetensors``
(generator weights + training hash in its metadata), reused when options and data match.

Defaults train on 500 sklearn digits (1×8×8) in about a minute of one CPU core. Narrower nets collapse
there: at ``width``/``disc_width`` 16 the generator ignores ``z`` and gives about one image per class
at every step count and loss probed, while the default width 32 covers most real digits
(``benchmarks/gan_probe.py``, i.e. ``benchmarks/generator_probe.py``, measures PRDC recall/coverage, Vendi and label agreement per setting;
docs/recipes.md, ``generator-comparison``). Example::

    generate:
      gan:  {generator: {key: gan, options: {train_steps: 3000}}, count: 2000}
      gan-truncated: {generator: {key: gan, options: {train_steps: 3000, truncation: 0.3}}, count: 2000}
"""
from __future__ import annotations

import copy
import logging
from typing import ClassVar, Literal

from pydantic import Field

from dreamset import register
from dreamset.contracts.lazy import lazy_module
from dreamset.contracts.progress import progress as loop_progress
from dreamset.plugins.generators import LatentGenerator, LatentOptions, build_decoder, ema_result, ema_update

torch = lazy_module("torch")

log = logging.getLogger("dreamset")


class GANOptions(LatentOptions):
    loss: Literal["hinge", "non-saturating"] = Field(default="hinge", description="adversarial loss")
    disc_width: int = Field(default=32, ge=4, le=1024, description="channels of the discriminator's first conv (then 2x, 4x)")
    ema_decay: float = Field(default=0.999, ge=0, lt=1, description="EMA of the generator's weights (0 = off)")
    truncation: float | None = Field(default=None, gt=0, le=10,
                                     description="redraw latent entries with |z| > truncation (low diversity); null = off")

    training_fields: ClassVar[tuple[str, ...]] = LatentOptions.training_fields + ("loss", "disc_width", "ema_decay")


def build_discriminator(arch: dict, width: int):
    """``(images float32 B×C×H×W in [0,1], labels int64 B) -> logits float32 B``."""
    nn = torch.nn
    sn = nn.utils.spectral_norm

    class ProjectionDiscriminator(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            c = arch["image_shape"][0]
            self.side = 4 * arch["base_size"]
            self.body = nn.Sequential(
                sn(nn.Conv2d(c, width, 3, padding=1)), nn.LeakyReLU(0.2),
                sn(nn.Conv2d(width, 2 * width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),
                sn(nn.Conv2d(2 * width, 4 * width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2),
            )
            self.linear = sn(nn.Linear(4 * width, 1))
            self.embed = sn(nn.Embedding(arch["num_classes"], 4 * width))

        def forward(self, x, labels):
            x = nn.functional.pad(x, (0, self.side - x.shape[3], 0, self.side - x.shape[2]))
            h = self.body(x).sum(dim=(2, 3))
            return self.linear(h).squeeze(1) + (self.embed(labels) * h).sum(dim=1)

    return ProjectionDiscriminator()


@register(description="class-conditional DCGAN, spectral-norm projection discriminator (Radford et al. 2016)")
class GANGenerator(LatentGenerator):
    """Class-conditional DCGAN (spectral-norm projection discriminator) trained on the real data."""

    key = "generator:gan"
    Options = GANOptions
    name = "gan"
    conformance_options = {"train_steps": 3, "batch_size": 8, "width": 8, "disc_width": 8, "latent_dim": 8}

    def _train(self, images, labels, services):

        o, device = self.options, self.device
        cpu_gen = torch.Generator().manual_seed(o.seed)
        decoder = build_decoder(self.arch).to(device).train()
        disc = build_discriminator(self.arch, o.disc_width).to(device).train()
        ema = copy.deepcopy(decoder).requires_grad_(False) if o.ema_decay > 0 else None
        opt_g = torch.optim.Adam(decoder.parameters(), lr=o.lr, betas=(0.0, 0.9))
        opt_d = torch.optim.Adam(disc.parameters(), lr=o.lr, betas=(0.0, 0.9))
        data, targets = images.to(device), labels.to(device)
        k = self.arch["num_classes"]
        softplus, relu = torch.nn.functional.softplus, torch.nn.functional.relu
        progress = loop_progress(services, "training GAN", o.train_steps, unit="steps")  # bars, or lines in a log
        batches = self._batches(len(data), cpu_gen)
        with progress as advance:
            for step in range(o.train_steps):
                idx = next(batches)
                x, y = data[idx.to(device)], targets[idx.to(device)]
                z = torch.randn(len(idx), o.latent_dim, generator=cpu_gen).to(device)
                y_fake = torch.randint(0, k, (len(idx),), generator=cpu_gen).to(device)
                fake = torch.sigmoid(decoder(z, y_fake))
                d_real, d_fake = disc(x, y), disc(fake.detach(), y_fake)
                if o.loss == "hinge":
                    loss_d = relu(1 - d_real).mean() + relu(1 + d_fake).mean()
                else:
                    loss_d = softplus(-d_real).mean() + softplus(d_fake).mean()
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                g_out = disc(fake, y_fake)
                loss_g = -g_out.mean() if o.loss == "hinge" else softplus(-g_out).mean()
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                if ema is not None:
                    ema_update(ema, decoder, o.ema_decay, step)
                if advance is not None:
                    advance()
                if step % 500 == 0 or step == o.train_steps - 1:
                    log.debug("generator:gan step %d loss_d %.4f loss_g %.4f", step, float(loss_d.detach()), float(loss_g.detach()))
        return ema_result(ema, decoder) if ema is not None else decoder

    def latent(self, generator):
        z = torch.randn(self.options.latent_dim, generator=generator)
        t = self.options.truncation
        if t is not None:
            outside = z.abs() > t
            while outside.any():  # redraw from the image's own generator: still a function of the seed
                z[outside] = torch.randn(int(outside.sum()), generator=generator)
                outside = z.abs() > t
        return z

    def provenance_extra(self):
        return {"truncation": self.options.truncation}
