"""``sampler:discriminator-score`` — keep the synthetic images a robust real-vs-synthetic discriminator
finds hardest to tell from real data.

Sehwag, Mahloujifar, Handina, Dai, Xiang, Chiang & Mittal (ICLR 2022, "Robust Learning Meets Generative
Models: Can Proxy Distributions Improve Adversarial Robustness?", arXiv:2104.09425) measure how close a
proxy (synthetic) distribution is to the real one with a discriminator trained *adversarially* to tell
the two apart (ARC, ``metric:arc``), and use the same kind of discriminator to score single synthetic
images: an image the robust discriminator still calls real is, at the pixel level, close to the real
distribution. (Their repository, inspire-group/proxy-distributions — README.md, data.py, train.py,
utils.py read — ships training and data loading but no sampling code; the scoring rule below is this
implementation's reading of the paper, stated in full so that it can be checked.)

Method:

* Data: up to ``max_samples`` real training images and every synthetic image; labels are ignored
  (real = class 0, synthetic = class 1), as in ``metric:arc``.
* **Cross-fitting**: the synthetic images are split into ``folds`` seeded folds; for each fold a
  discriminator (``discriminator``, default ``model:small-cnn`` width 8) is trained on the real images
  and the *other* folds' synthetic images — PGD adversarial training (``attacker:pgd``,
  ``attack_steps`` steps, L∞ or L2 radius ``eps``; standard training at ``eps`` 0) with batches half
  real, half synthetic (``mixer:ratio``) — and scores the held-out fold. No image is scored by a
  discriminator that saw it, so memorised training images do not look "fake" by construction.
* Score of image ``x``: the discriminator's softmax probability that ``x`` is **real**, on the clean
  image (``float64`` in [0, 1]); higher = harder to tell from real.
* Selection: per class, the ``fraction`` (at least one image) with the highest score (``keep:
  most-real``, default) or the lowest (``least-real``, the ablation); ties by store index.

Images: ``float32 N×C×H×W`` in [0, 1], real and synthetic of one shape. Cost: ``folds`` discriminator
trainings of ``epochs`` epochs on ``2·min(max_samples, N_real)`` images each (checkpoints cached in
``run_dir/samplers/discriminator-score/<digest>/``, keyed by everything but ``fraction`` and ``keep``, so
arms that keep different fractions share them; a temporary folder without a run folder), then one
forward pass over the synthetic set. Output: ``Selection`` with sorted ``int64`` indices, ``scores``
(one per synthetic image) and ``info`` (mean score kept and overall, folds, eps).

Example::

    arms: {real+synthetic: {synthetic: true, sampler: {key: discriminator-score, options: {fraction: 0.5}}}}
"""
from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field

from dreamset import Options, register
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.interfaces import Sampler, Selection
from dreamset.orchestration.recipe import ComponentRef


class DiscriminatorScoreOptions(Options):
    fraction: float = Field(default=0.5, gt=0, le=1, description="fraction kept per class")
    keep: Literal["most-real", "least-real"] = Field(default="most-real",
                                                     description="keep the images scored most real (default) or least real")
    norm: Literal["linf", "l2"] = Field(default="linf", description="threat model of the discriminator's training attack")
    eps: float = Field(default=0.05, ge=0, le=64, description="radius of the discriminator's adversarial training (0: standard)")
    discriminator: ComponentRef = Field(default={"key": "model:small-cnn", "options": {"width": 8}},
                                        description="registry model key (or {key, options}) of the discriminator")
    attacker: ComponentRef = Field(default={"key": "attacker:pgd"},
                                   description="attacker key (or {key, options}) of the adversarial training; created with norm, eps, attack_steps")
    folds: int = Field(default=2, ge=2, le=20, description="cross-fitting folds of the synthetic set")
    epochs: int = Field(default=5, ge=1, le=100_000, description="discriminator training epochs per fold")
    batch_size: int = Field(default=128, ge=2, le=1_000_000, description="training batch (half real, half synthetic)")
    lr: float = Field(default=0.002, gt=0, le=10, description="AdamW learning rate (cosine schedule)")
    attack_steps: int = Field(default=5, ge=1, le=10_000, description="PGD steps of the adversarial training")
    max_samples: int = Field(default=2000, ge=2, le=10_000_000, description="real training images used (drawn seeded)")


@register(description="keep the images a robust real-vs-synthetic discriminator finds most real (Sehwag et al. 2022)")
class DiscriminatorScoreSampler(Sampler):
    """Per class, the ``fraction`` of synthetic images a cross-fitted robust discriminator scores most real."""

    key = "sampler:discriminator-score"

    Options = DiscriminatorScoreOptions
    conformance_options = {"epochs": 1, "attack_steps": 1, "max_samples": 40,
                           "discriminator": {"key": "model:small-cnn", "options": {"width": 2}}}

    def _registry(self, services):
        registry = getattr(services, "registry", None)
        if registry is None:
            import dreamset.registry as registry_module

            registry = registry_module.get_registry()
        return registry

    def select(self, synthetic, real, services, seed: int) -> Selection:
        scores = self.scores(synthetic, real, services, seed)
        return Selection(indices=self._keep(synthetic, scores), scores=scores, info=self._info(scores))

    def scores(self, synthetic, real, services, seed: int):
        """``float64 N_synthetic``: each synthetic image's probability of being real under the
        discriminator of the fold that did not train on it."""
        import numpy as np
        import torch

        from dreamset.contracts.data import TensorImageSet
        from dreamset.contracts.inputs import Services
        from dreamset.orchestration.recipe import TrainStage
        from dreamset.orchestration.seeding import forked_rng
        from dreamset.training.trainer import train_classifier

        o = self.options
        if real is None or len(real) < 1 or synthetic is None or len(synthetic) < o.folds:
            raise BadInputError(f"sampler:discriminator-score: needs real images and at least {o.folds} synthetic images (folds)")
        if tuple(real.image_shape) != tuple(synthetic.image_shape):
            raise BadInputError(f"synthetic: images are {tuple(synthetic.image_shape)}, real ones {tuple(real.image_shape)}; "
                                "the discriminator needs one shape")
        registry = self._registry(services)
        device = getattr(services, "device", None) or torch.device("cpu")
        rng = np.random.default_rng(seed)
        real_rows = np.sort(rng.choice(len(real), size=min(o.max_samples, len(real)), replace=False))
        real_x, _ = real.get(real_rows)
        syn_x, _ = synthetic.get(np.arange(len(synthetic)))
        fold_of = rng.permutation(len(synthetic)) % o.folds
        names = ["real", "synthetic"]
        factory = registry.create(o.discriminator.key, kind="model", field_path="discriminator.options", **o.discriminator.options)
        mixer = registry.create("mixer:ratio", kind="mixer", real_fraction=0.5)
        attacker = None
        if o.eps > 0:
            attacker = registry.create(o.attacker.key, kind="attacker", field_path="attacker.options",
                                       **{**o.attacker.options, "norm": o.norm, "eps": o.eps, "steps": o.attack_steps})
        settings = TrainStage(model=o.discriminator, epochs=o.epochs, batch_size=o.batch_size, optimizer="adamw", lr=o.lr,
                              weight_decay=0.0, schedule="cosine", mixed_precision=False)
        run_dir = getattr(services, "run_dir", None)
        cache = (Path(run_dir) / "samplers" / "discriminator-score" if run_dir else Path(tempfile.mkdtemp(prefix="dreamset-ds-")))
        cache = cache / self._digest(real_x, syn_x, seed)
        train_services = services if isinstance(services, Services) else Services(device=device, registry=registry, run_dir=run_dir)
        out = np.zeros(len(synthetic), dtype=np.float64)
        zeros = torch.zeros(len(real_x), dtype=torch.int64)
        with train_services.progress("discriminator-score folds", o.folds) as advance:
            for fold in range(o.folds):
                fit = np.flatnonzero(fold_of != fold)
                held = np.flatnonzero(fold_of == fold)
                fit_real = TensorImageSet(real_x, zeros, names, name="discriminator real")
                fit_syn = TensorImageSet(syn_x[fit], torch.ones(len(fit), dtype=torch.int64), names, name="discriminator synthetic")
                with forked_rng(device, seed + fold):
                    model = factory.build(tuple(real_x.shape[1:]), 2)
                    model = train_classifier(train_services, model, mixer=mixer, real=fit_real, synthetic=fit_syn, attacker=attacker,
                                             settings=settings, seed=seed + fold, checkpoint_dir=cache / f"fold-{fold}",
                                             description=f"discriminator-score fold {fold}")
                out[held] = self._probability_real(model, syn_x[held], device, o.batch_size)
                advance(1)
        return out

    @staticmethod
    def _probability_real(model, images, device, batch_size: int):
        import numpy as np
        import torch

        was_training = model.training
        model.eval()
        values = []
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                logits = model(images[start:start + batch_size].to(device)).float()
                values.append(torch.softmax(logits, dim=1)[:, 0].cpu().double())
        model.train(was_training)
        return torch.cat(values).numpy() if values else np.zeros(0)

    def _digest(self, real_x, syn_x, seed: int) -> str:
        options = self.options.model_dump(mode="json", exclude={"fraction", "keep"})  # the scores do not depend on them
        digest = hashlib.sha256(json.dumps({"options": options, "seed": seed}, sort_keys=True).encode())
        for x in (real_x, syn_x):
            digest.update(str(tuple(x.shape)).encode())
            digest.update(x.numpy().tobytes())
        return digest.hexdigest()[:16]

    def _keep(self, synthetic, scores):
        from dreamset.plugins.samplers.confidence import top_per_class

        sign = 1.0 if self.options.keep == "most-real" else -1.0  # least-real: the top of the negated scores
        return top_per_class(synthetic.labels.numpy(), sign * scores, self.options.fraction, len(synthetic.class_names))

    def _info(self, scores) -> dict:
        o = self.options
        return {"mean_score": float(scores.mean()) if len(scores) else None, "folds": o.folds, "eps": o.eps,
                "norm": o.norm, "keep": o.keep, "score": "probability real (cross-fitted robust discriminator)"}
