"""``metric:arc`` — ARC, the area under the robust real-vs-synthetic discrimination curve, after
Sehwag, Mahloujifar, Handina, Dai, Xiang, Chiang & Mittal (2022, "Robust Learning Meets Generative
Models: Can Proxy Distributions Improve Adversarial Robustness?", ICLR, arXiv:2104.09425).

Sehwag et al. bound the robustness transferred from a proxy (synthetic) distribution by a
conditional Wasserstein distance, and estimate that distance by how well a discriminator *trained
adversarially* inside ε-balls still tells real from synthetic as ε grows: the sooner robust
discrimination collapses to chance, the closer the two distributions. Their exact grid and
normalisation are not public; this implementation fixes them as follows.

* Data: ``n = min(max_samples, |real|, |synthetic|)`` images per side, drawn without replacement
  (seeded) from the real split (``real``: ``train`` or ``test``) and the synthetic store; class
  labels are ignored (real = class 0, synthetic = class 1). A ``holdout_fraction`` of each side
  (at least one image) is held out; the rest trains the discriminator, every batch half real, half
  synthetic (``mixer:ratio``), so chance level is exactly 0.5. The ``2n`` images are held in memory
  (``2n·C·H·W·4`` bytes: 25 MB for 1000 CIFAR-sized images per side).
* Grid: ``eps`` (ascending, ≥ 0) or ``points`` radii evenly spaced on ``[0, eps_max]`` (default
  ``eps_max`` 8/255 for L∞, 0.5 for L2; pixel units of [0,1]).
* Per radius ε: a ``discriminator`` (registry model, default ``model:small-cnn`` width 8) is trained
  with ``train_classifier`` — standard training at ε = 0, PGD adversarial training (Madry et al.,
  2018; ``attacker:pgd``, ``attack_steps`` steps) otherwise — and its robust accuracy ``a(ε)`` on the
  held-out images is measured under PGD with ``eval_steps`` steps at the same ε (clean accuracy at
  ε = 0). ``schedule: curriculum`` (default) starts the discriminator at each radius from the one
  trained at the previous radius (an ε curriculum, as in Cai et al. 2018, "Curriculum Adversarial
  Training", arXiv:1805.04807); ``independent`` trains a fresh one per radius from the same
  initialisation — which on the default recipe collapsed to a constant prediction (exactly 50.0%
  at every ε > 0; docs/metrics.md has the measurement).
* Collapse check: for every radius the fraction of held-out images the discriminator calls real
  (clean) is recorded (``predicted_real_fraction``); 0 or 1 means a constant discriminator and
  adds a line to ``warnings`` (report.json: ``metrics.arc.warnings``, and the run's top-level
  ``warnings`` as ``arc: ...``).
* ARC = ``∫ clip((a(ε) − 0.5)/0.5, 0, 1) d(ε/ε_span)`` over the grid by the trapezoid rule, where
  ``ε_span = ε_last − ε_first``. Identical distributions give ≈ 0 (chance everywhere, up to
  held-out sampling noise); sets that stay separable at every radius give 1. ARC ∈ [0, 1].

Determinism: the subsets come from ``numpy.random.default_rng(seed)``; training and the attacks'
random starts run under ``torch.random.fork_rng`` seeded from ``seed`` (the caller's RNG is left as
it was). Discriminator checkpoints are cached in ``run_dir/metrics/arc/<digest>/`` keyed by the
options and the exact images, so a re-run reuses them.

Input images: ``float32 N×C×H×W`` in [0,1] (real and synthetic must share ``C×H×W``). Result:
``arc`` (float in [0,1]), ``curve`` (list of ``{eps, robust_accuracy, clean_accuracy,
predicted_real_fraction}``, in [0,1]), ``warnings``, ``schedule``, ``norm``, ``eps_max``, ``normalisation``, ``n_train_per_side``, ``n_heldout_per_side``,
``discriminator``, ``real``, a ``tables`` entry, and the figure ``run_dir/arc_curve.png``.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import Field, model_validator

from dreamset import Options, register
from dreamset.orchestration.seeding import forked_rng
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.headline import Headline
from dreamset.contracts.progress import progress
from dreamset.contracts.interfaces import Metric
from dreamset.contracts.options import FractionFloat
from dreamset.orchestration.recipe import ComponentRef

NORMALISATION = "trapezoid over eps/eps_span of clip((acc - 0.5) / 0.5, 0, 1)"


class ARCOptions(Options):
    norm: Literal["linf", "l2"] = Field(default="linf", description="threat model of the discriminator's eps-balls")
    eps: list[FractionFloat] | None = Field(default=None, min_length=2, max_length=100,
                                    description="explicit radius grid (ascending, >= 0); overrides eps_max/points")
    eps_max: FractionFloat | None = Field(default=None, gt=0, le=64, description="largest radius (default 8/255 L-inf, 0.5 L2)")
    points: int = Field(default=5, ge=2, le=100, description="radii evenly spaced on [0, eps_max]")
    discriminator: ComponentRef = Field(default={"key": "model:small-cnn", "options": {"width": 8}},
                                        description="registry model key (or {key, options}) of the real-vs-synthetic discriminator")
    attacker: ComponentRef = Field(default={"key": "attacker:pgd"},
                                   description="attacker key (or {key, options}) of the discriminator's training and held-out "
                                               "attacks; created with norm, eps and attack_steps / eval_steps")
    mixer: ComponentRef = Field(default={"key": "mixer:ratio"},
                                description="mixer key (or {key, options}) of the discriminator's batches; created with real_fraction 0.5")
    real: Literal["train", "test"] = Field(default="train", description="which real split to compare with")
    epochs: int = Field(default=10, ge=1, le=100_000, description="discriminator training epochs per radius")
    batch_size: int = Field(default=128, ge=2, le=1_000_000, description="training batch (half real, half synthetic)")
    lr: float = Field(default=0.002, gt=0, le=10, description="AdamW learning rate (cosine schedule; 0.01 before 2026-12 collapsed at eps > 0)")
    attack_steps: int = Field(default=5, ge=1, le=10_000, description="PGD steps during adversarial training")
    eval_steps: int = Field(default=10, ge=1, le=10_000, description="PGD steps when measuring robust accuracy")
    max_samples: int = Field(default=1000, ge=2, le=10_000_000, description="images per side (real, synthetic)")
    holdout_fraction: float = Field(default=0.3, gt=0, lt=1, description="fraction of each side held out for evaluation")
    seed: int = Field(default=0, ge=0, description="seed of the subsets, the discriminators and the attacks")
    schedule: Literal["curriculum", "independent"] = Field(
        default="curriculum",
        description="curriculum: the discriminator at each radius starts from the one trained at the previous radius "
                    "(no collapse to a constant); independent: a fresh discriminator per radius (the pre-2026-12 behaviour)")

    @model_validator(mode="after")
    def _grid(self):
        if self.eps is not None:
            if self.eps_max is not None:
                raise ValueError("eps, eps_max: give an explicit eps grid or eps_max/points, not both")
            if any(e < 0 for e in self.eps):
                raise ValueError("eps: radii must be >= 0")
            if any(b <= a for a, b in zip(self.eps, self.eps[1:])):
                raise ValueError("eps: radii must be strictly increasing")
        top = max(self.eps) if self.eps is not None else self.eps_max
        if self.norm == "linf" and top is not None and top > 1:
            raise ValueError(f"{'eps' if self.eps is not None else 'eps_max'}: an L-inf radius must be <= 1 for images in [0,1]")
        return self

    def grid(self) -> list[float]:
        """The radii, ascending."""
        if self.eps is not None:
            return [float(e) for e in self.eps]
        top = self.eps_max if self.eps_max is not None else (8 / 255 if self.norm == "linf" else 0.5)
        return [top * i / (self.points - 1) for i in range(self.points)]


def arc_area(eps: list[float], accuracies: list[float]) -> float:
    """ARC of a curve: the trapezoid-rule mean of ``clip((acc − 0.5)/0.5, 0, 1)`` over ``eps``
    rescaled to [0, 1] (``eps`` ascending, at least two distinct radii)."""
    if len(eps) != len(accuracies) or len(eps) < 2:
        raise BadInputError("eps: ARC needs at least two radii with one accuracy each")
    span = eps[-1] - eps[0]
    if span <= 0:
        raise BadInputError("eps: ARC needs an increasing radius grid")
    height = [min(1.0, max(0.0, (a - 0.5) / 0.5)) for a in accuracies]
    area = sum((eps[i + 1] - eps[i]) * (height[i] + height[i + 1]) / 2 for i in range(len(eps) - 1))
    return float(area / span)


def _predicted_fraction(model, source, device, batch_size: int) -> float:
    """Fraction of ``source`` the discriminator calls class 0 ("real"), clean inputs."""
    from dreamset.orchestration.evaluation import correct

    zeros = source.labels == 0
    hits = correct(model, source, device, batch_size)  # correct on a real image = predicted real
    predicted_real = (hits & zeros).sum() + (~hits & ~zeros).sum()
    return int(predicted_real) / max(len(source), 1)


def collapse_warnings(curve: list[dict]) -> list[str]:
    """One-line warnings for radii whose discriminator collapsed to a constant (it calls every
    held-out image real, or every one synthetic): its accuracy is exactly chance by construction,
    so that point measures the training failure, not the distributions."""
    collapsed = [p["eps"] for p in curve if p["predicted_real_fraction"] in (0.0, 1.0)]
    if not collapsed:
        return []
    return [f"the discriminator collapsed to a constant prediction at eps = {', '.join(f'{e:.4g}' for e in collapsed)} "
            "(exactly chance accuracy there): ARC is a lower bound; try schedule: curriculum, more epochs or a lower lr"]


@register(description="area under the robust real-vs-synthetic discrimination curve (Sehwag et al. 2022)")
class ARCMetric(Metric):
    """Area under the robust real-vs-synthetic discrimination accuracy curve."""

    key = "metric:arc"

    #: a distribution metric of the synthetic set: run once per named source (dreamset.orchestration.sources)
    scope = "source"

    headline = (Headline("arc", "ARC", better="lower", group="discriminability", format="{:.3f}",
                         explain="area under a robust real-vs-synthetic discriminator's accuracy curve; "
                                 "lower = harder to tell apart"),)

    @classmethod
    def headline_notes(cls, result: dict[str, Any]) -> dict[str, str]:
        """A discriminator that collapsed to a constant prediction at a radius makes ARC a lower bound:
        at every ε > 0 the headline says "collapsed (lower bound)" instead of a number; at some, the
        number is shown as a bound."""
        beyond = [p for p in result.get("curve") or [] if p.get("eps", 0) > 0]
        collapsed = [p for p in beyond if p.get("predicted_real_fraction") in (0, 0.0, 1, 1.0)]
        if beyond and len(collapsed) == len(beyond):
            return {"arc": "collapsed (lower bound)"}
        if collapsed and isinstance(result.get("arc"), (int, float)):
            return {"arc": f"≥ {result['arc']:.3f} (collapsed at {len(collapsed)} of {len(beyond)} radii: a lower bound)"}
        return {}

    Options = ARCOptions

    @classmethod
    def dependencies(cls, options):
        return {"discriminator": ("model", options.discriminator.key), "attacker": ("attacker", options.attacker.key),
                "mixer": ("mixer", options.mixer.key)}
    conformance_options = {"points": 3, "epochs": 2, "attack_steps": 2, "eval_steps": 2, "max_samples": 40,
                           "discriminator": {"key": "model:small-cnn", "options": {"width": 2}}}

    def _samples(self, inputs):
        """``(real images, synthetic images)`` — ``n`` each, float32 ``n×C×H×W`` in [0,1]."""
        import numpy as np

        real, synthetic = inputs.real.split(self.options.real), inputs.synthetic
        if real is None or len(real) == 0:
            raise BadInputError(f"real: metric:arc needs the real {self.options.real} split")
        if synthetic is None or len(synthetic) == 0:
            raise BadInputError("synthetic: metric:arc needs synthetic images (the recipe has no generate stage or an empty store)")
        if tuple(real.image_shape) != tuple(synthetic.image_shape):
            raise BadInputError(f"synthetic: images are {tuple(synthetic.image_shape)}, real ones {tuple(real.image_shape)}; ARC needs one shape")
        n = min(self.options.max_samples, len(real), len(synthetic))
        if n < 2:
            raise BadInputError(f"max_samples: ARC needs at least 2 images per side, got {n}")
        rng = np.random.default_rng(self.options.seed)
        real_idx = np.sort(rng.choice(len(real), size=n, replace=False))
        syn_idx = np.sort(rng.choice(len(synthetic), size=n, replace=False))
        real_x, _ = real.get(real_idx)
        syn_x, _ = synthetic.get(syn_idx)
        # shuffle before splitting so the held-out part is a random subset on each side
        real_x = real_x[rng.permutation(n)]
        syn_x = syn_x[rng.permutation(n)]
        return real_x.contiguous(), syn_x.contiguous()

    def _cache_key(self, real_x, syn_x) -> str:
        options = self.options.model_dump(mode="json")
        for name, default in ARCOptions().model_dump(mode="json").items():
            if name in ("attacker", "mixer") and options[name] == default:
                del options[name]  # options added later: at their defaults, earlier caches stay valid
        digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
        for x in (real_x, syn_x):
            digest.update(str(tuple(x.shape)).encode())
            digest.update(x.numpy().tobytes())
        return digest.hexdigest()[:16]

    def compute(self, inputs) -> dict[str, Any]:
        import torch

        from dreamset.contracts.data import TensorImageSet
        from dreamset.orchestration.evaluation import accuracy
        from dreamset.orchestration.recipe import TrainStage
        from dreamset.training.trainer import train_classifier

        o = self.options
        services = inputs.services
        device = services.device
        registry = services.registry
        try:
            model_key = registry.get(o.discriminator.key, "model").key
        except BadInputError as exc:
            raise BadInputError(f"discriminator.key: {exc}") from None
        factory = registry.create(model_key, field_path="discriminator.options", **o.discriminator.options)
        real_x, syn_x = self._samples(inputs)
        n = real_x.shape[0]
        n_hold = max(1, int(round(o.holdout_fraction * n)))
        n_fit = n - n_hold
        if n_fit < 1:
            raise BadInputError(f"max_samples: ARC needs at least 2 images per side to train and hold out, got {n}")
        names = ["real", "synthetic"]
        zeros, ones = torch.zeros(n, dtype=torch.int64), torch.ones(n, dtype=torch.int64)
        fit_real = TensorImageSet(real_x[:n_fit], zeros[:n_fit], names, name="arc real")
        fit_syn = TensorImageSet(syn_x[:n_fit], ones[:n_fit], names, name="arc synthetic")
        heldout = TensorImageSet(torch.cat([real_x[n_fit:], syn_x[n_fit:]]), torch.cat([zeros[n_fit:], ones[n_fit:]]),
                                 names, name="arc held-out")
        settings = TrainStage(model=o.discriminator, epochs=o.epochs, batch_size=o.batch_size, optimizer="adamw", lr=o.lr,
                              weight_decay=0.0, schedule="cosine", mixed_precision=False)
        mixer = registry.create(o.mixer.key, kind="mixer", field_path="mixer.options", **{**o.mixer.options, "real_fraction": 0.5})
        cache = services.run_dir / "metrics" / "arc" / self._cache_key(real_x, syn_x)
        grid = o.grid()
        curve = []
        previous = None
        with progress(services, "ARC radii", len(grid), unit="radii") as advance:
            for i, eps in enumerate(grid):
                train_attack = eval_attack = None
                if eps > 0:
                    train_attack, eval_attack = (registry.create(o.attacker.key, kind="attacker", field_path="attacker.options",
                                                                 **{**o.attacker.options, "norm": o.norm, "eps": eps, "steps": steps})
                                                 for steps in (o.attack_steps, o.eval_steps))
                with forked_rng(device, o.seed):
                    model = factory.build(tuple(real_x.shape[1:]), 2)
                    if o.schedule == "curriculum" and previous is not None:
                        model.load_state_dict(previous)  # warm start: fine-tune the previous radius's discriminator
                    model = train_classifier(services, model, mixer=mixer, real=fit_real, synthetic=fit_syn, attacker=train_attack,
                                             settings=settings, seed=o.seed, checkpoint_dir=cache / f"eps-{i}",
                                             description=f"ARC discriminator eps={eps:.4g}")
                    previous = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    clean = accuracy(model, heldout, device, o.batch_size)
                    predicted_real = _predicted_fraction(model, heldout, device, o.batch_size)
                    torch.manual_seed(o.seed)
                    robust = clean if eval_attack is None else accuracy(model, heldout, device, o.batch_size, eval_attack)
                curve.append({"eps": float(eps), "robust_accuracy": float(robust), "clean_accuracy": float(clean),
                              "predicted_real_fraction": float(predicted_real)})
                advance(1)
        arc = arc_area(grid, [point["robust_accuracy"] for point in curve])
        warnings = collapse_warnings(curve)
        source = inputs.source_name  # one curve per named synthetic source
        self._plot(services.run_dir / (f"arc_curve_{source}.png" if source else "arc_curve.png"), curve, arc)
        return {
            "arc": arc,
            "curve": curve,
            "norm": o.norm,
            "eps_max": float(grid[-1]),
            "normalisation": NORMALISATION,
            "n_train_per_side": int(n_fit),
            "n_heldout_per_side": int(n_hold),
            "discriminator": o.discriminator.model_dump(mode="json"),
            "real": o.real,
            "schedule": o.schedule,
            "warnings": warnings,
            "tables": {"ARC: robust discrimination accuracy (%)": {
                "header": ["eps", "robust acc %", "clean acc %", "predicted real %"],
                "rows": [[f"{p['eps']:.4g}", f"{100 * p['robust_accuracy']:.1f}", f"{100 * p['clean_accuracy']:.1f}",
                          f"{100 * p['predicted_real_fraction']:.1f}"] for p in curve],
            }},
        }

    def _plot(self, path, curve, arc: float) -> None:
        from dreamset.report.figures import png_figure

        eps = [p["eps"] for p in curve]
        with png_figure(path, figsize=(5, 3.5)) as (_, ax):
            ax.plot(eps, [p["robust_accuracy"] for p in curve], "o-", label="robust (held-out)")
            ax.plot(eps, [p["clean_accuracy"] for p in curve], "s--", alpha=0.6, label="clean (held-out)")
            ax.axhline(0.5, color="grey", lw=1, ls=":", label="chance")
            ax.set_ylim(0.0, 1.02)
            ax.set_xlabel(f"eps ({'L-inf' if self.options.norm == 'linf' else 'L2'}, pixel units of [0,1])")
            ax.set_ylabel("real vs synthetic accuracy")
            ax.set_title(f"ARC = {arc:.3f}")
            ax.legend(loc="lower left", fontsize=8)
