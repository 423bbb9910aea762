"""``generator:vae`` — a class-conditional variational autoencoder trained on the real data.

Kingma & Welling, 2014, "Auto-Encoding Variational Bayes" (arXiv:1312.6114), conditioned on the
label as in Sohn, Lee & Yan 2015 (CVAE). Encoder: the image with the label as one-hot channels ->
two strided 3×3/4×4 convolutions with ReLU -> ``(μ, log σ²)`` of ``q(z | x, y)``. Decoder: the shared
class-conditional decoder of :mod:`dreamset.plugins.generators` (``z`` + label embedding -> image
logits). Loss per image: Bernoulli negative log-likelihood of the pixels (binary cross-entropy on
images in [0,1], summed) + ``beta`` · KL(q ‖ N(0, I)); Adam. Samples are the decoder's mean
``sigmoid(decoder(z, y))`` for ``z ~ N(0, I)`` — smooth, typically blurrier than a GAN's or DDPM's.

Shapes: fitted on real ``float32 N×C×H×W`` in [0,1]; ``generate`` returns ``float32 B×C×H×W`` in
[0,1]. Image ``i`` depends only on ``(labels[i], seeds[i], options)``. Checkpoint
``workdir/vae.safetensors`` (decoder weights + training hash), reused when options and data match.

Example::

    generate:
      vae: {generator: {key: vae, options: {train_steps: 2000}}, count: 2000}
"""
from __future__ import annotations

import logging
from typing import ClassVar

from pydantic import Field

from dreamset import register
from dreamset.contracts.lazy import lazy_module
from dreamset.contracts.progress import progress as loop_progress
from dreamset.plugins.generators import LatentGenerator, LatentOptions, build_decoder

torch = lazy_module("torch")

log = logging.getLogger("dreamset")


class VAEOptions(LatentOptions):
    lr: float = Field(default=1e-3, gt=0, le=1, description="Adam learning rate")
    beta: float = Field(default=1.0, gt=0, le=1000, description="weight of the KL term (1 = the ELBO)")

    training_fields: ClassVar[tuple[str, ...]] = LatentOptions.training_fields + ("beta",)


def build_encoder(arch: dict, width: int):
    """``(images B×C×H×W, labels B) -> (mu, logvar)``, each ``B×latent_dim``."""
    nn = torch.nn

    class ConditionalEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            c = arch["image_shape"][0]
            self.k, self.side = arch["num_classes"], 4 * arch["base_size"]
            self.body = nn.Sequential(
                nn.Conv2d(c + self.k, width, 3, padding=1), nn.ReLU(),
                nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(2 * width, 2 * width, 4, stride=2, padding=1), nn.ReLU(),
                nn.Flatten(),
            )
            self.head = nn.Linear(2 * width * arch["base_size"] ** 2, 2 * arch["latent_dim"])

        def forward(self, x, labels):
            x = nn.functional.pad(x, (0, self.side - x.shape[3], 0, self.side - x.shape[2]))
            onehot = nn.functional.one_hot(labels, self.k).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
            return self.head(self.body(torch.cat([x, onehot], dim=1))).chunk(2, dim=1)

    return ConditionalEncoder()


@register(description="class-conditional variational autoencoder (Kingma & Welling 2014)")
class VAEGenerator(LatentGenerator):
    """Class-conditional VAE (Kingma & Welling 2014) trained on the real data."""

    key = "generator:vae"
    Options = VAEOptions
    name = "vae"
    conformance_options = {"train_steps": 3, "batch_size": 8, "width": 8, "latent_dim": 8}

    def _train(self, images, labels, services):

        o, device = self.options, self.device
        cpu_gen = torch.Generator().manual_seed(o.seed)
        decoder = build_decoder(self.arch).to(device).train()
        encoder = build_encoder(self.arch, o.width).to(device).train()
        optimizer = torch.optim.Adam(list(decoder.parameters()) + list(encoder.parameters()), lr=o.lr)
        data, targets = images.to(device), labels.to(device)
        progress = loop_progress(services, "training VAE", o.train_steps, unit="steps")  # bars, or lines in a log
        batches = self._batches(len(data), cpu_gen)
        with progress as advance:
            for step in range(o.train_steps):
                idx = next(batches).to(device)
                x, y = data[idx], targets[idx]
                mu, logvar = encoder(x, y)
                noise = torch.randn(mu.shape, generator=cpu_gen).to(device)
                z = mu + (0.5 * logvar).exp() * noise
                logits = decoder(z, y)
                nll = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
                kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum() / len(x)
                loss = nll + o.beta * kl
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if advance is not None:
                    advance()
                if step % 500 == 0 or step == o.train_steps - 1:
                    log.debug("generator:vae step %d nll %.3f kl %.3f", step, float(nll.detach()), float(kl.detach()))
        return decoder
