"""``metric:robust-accuracy`` — top-1 accuracy of every trained arm under an adversarial attack, on
the run's evaluation subset of the real test images, overall and per class.

Robust accuracy as in Madry et al. (2018, "Towards Deep Learning Models Resistant to Adversarial
Attacks", ICLR) and the proxy-distribution study of Sehwag et al. (2022, "Robust Learning Meets
Generative Models: Can Proxy Distributions Improve Adversarial Robustness?", ICLR): the fraction of
test images still classified correctly after ``attacker.attack(model, x, y)``.

The ``attacker`` option is a registry key (``pgd``, ``attacker:apgd``) or ``{key, options}``; by
default PGD-20 in the L∞ ball of radius ``eps`` (``steps`` iterations, step 2.5·eps/steps, random
start). ``eps``/``steps``/``norm`` only shape that default — with an explicit ``attacker`` they must
be left unset. The attack's random start draws from a private RNG seeded with ``seed`` (the global
torch RNG is left as it was), so the result is deterministic for fixed inputs and ``seed``.

Inputs (``scope = "arms"``, :class:`~dreamset.contracts.inputs.ArmInputs`): ``models`` (classifiers taking
``float32 N×C×H×W`` in [0,1], logits ``N×K``), ``real.test`` (labels ``int64`` in ``[0, K)``): by default the run's class-stratified evaluation
subset (``evaluate.robust_samples``, the same rows every arm and attacker of the run sees), or with
``max_samples`` a seeded class-stratified subset of that size — never the first N images. A sample is
robust only if it is classified correctly both clean and under attack. Accuracies are
fractions in [0,1]; tables show percentages. Result: ``robust_accuracy[<arm>]`` and
``clean_accuracy[<arm>]`` scalars on the same images, ``attacker`` (its description), ``n_samples``,
``arms`` (arm -> ``robust_accuracy``, ``clean_accuracy``, ``per_class``) and the table
``per-class robust accuracy (%)``.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from dreamset import Options, register
from dreamset.orchestration.seeding import forked_rng
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.headline import Headline
from dreamset.contracts.interfaces import Metric
from dreamset.orchestration.recipe import ComponentRef


class RobustAccuracyOptions(Options):
    attacker: ComponentRef | None = Field(default=None, description="attacker key or {key, options}; null = PGD-20 at eps")
    eps: float | None = Field(default=None, gt=0, le=64, description="radius of the default PGD attack (default 8/255 L-inf, 0.5 L2)")
    steps: int | None = Field(default=None, ge=1, le=100_000, description="iterations of the default PGD attack (default 20)")
    norm: Literal["linf", "l2"] | None = Field(default=None, description="norm of the default PGD attack (default linf)")
    max_samples: int | None = Field(default=None, ge=1, description="attack a seeded class-stratified subset of this many test "
                                    "images (null = the run's evaluation subset, evaluate.robust_samples)")
    batch_size: int = Field(default=256, ge=1, le=1_000_000, description="evaluation batch size")
    seed: int = Field(default=0, ge=0, description="seed of the attack's random start and of the max_samples subset")

    @model_validator(mode="after")
    def _default_attack_only(self):
        if self.attacker is not None:
            given = [name for name in ("eps", "steps", "norm") if getattr(self, name) is not None]
            if given:
                raise ValueError(f"{', '.join(given)}: only for the default PGD attack; put it in attacker.options")
        if self.norm != "l2" and self.eps is not None and self.eps > 1:
            raise ValueError("eps: an L-inf radius must be <= 1 for images in [0,1]")
        return self


@register(description="accuracy under an attacker (default PGD-20 L-inf) per arm and per class")
class RobustAccuracyMetric(Metric):
    """Accuracy under attack per arm and per class."""

    key = "metric:robust-accuracy"
    scope = "arms"

    headline = (Headline("robust_accuracy", "robust accuracy", better="higher", group="accuracy", scale=100, unit="%",
                         format="{:.1f}", per_arm=True, explain="accuracy under this metric's attacker (last seed)"),)

    Options = RobustAccuracyOptions
    conformance_options = {"max_samples": 24, "steps": 3}

    def make_attacker(self, registry):
        """The attacker component this metric evaluates under."""
        o = self.options
        if o.attacker is None:
            norm = o.norm or "linf"
            eps = o.eps if o.eps is not None else (8 / 255 if norm == "linf" else 0.5)
            return registry.create("attacker:pgd", kind="attacker", field_path="metric:robust-accuracy default attacker",
                                   norm=norm, eps=eps, steps=o.steps or 20)
        try:
            key = registry.get(o.attacker.key, "attacker").key
        except BadInputError as exc:
            raise BadInputError(f"attacker.key: {exc}") from None
        return registry.create(key, field_path="attacker.options", **o.attacker.options)

    def compute(self, inputs) -> dict[str, Any]:
        from dreamset.plugins.metrics.accuracy import evaluation_rows, per_class_accuracy, per_class_table

        test, device = inputs.real.test, inputs.services.device
        if test is None:
            raise BadInputError("real_test: metric:robust-accuracy needs the real test split")
        if not inputs.models:
            raise BadInputError("arms: metric:robust-accuracy needs trained arms (no models)")
        o = self.options
        attacker = self.make_attacker(inputs.services.registry)
        rows = evaluation_rows(inputs.real, o.max_samples, o.seed)
        n = len(test) if rows is None else len(rows)
        result: dict[str, Any] = {"attacker": attacker.describe(), "n_samples": n}
        arms: dict[str, Any] = {}
        per_arm: dict[str, list[dict[str, Any]]] = {}
        for arm, model in inputs.models.items():
            clean, _ = per_class_accuracy(model, test, device, o.batch_size, rows=rows)
            with forked_rng(device, o.seed):
                robust, per_class = per_class_accuracy(model, test, device, o.batch_size, attacker, rows=rows)
            result[f"robust_accuracy[{arm}]"] = robust
            result[f"clean_accuracy[{arm}]"] = clean
            arms[arm] = {"robust_accuracy": robust, "clean_accuracy": clean, "per_class": per_class}
            per_arm[arm] = per_class
        result["arms"] = arms
        result["tables"] = {"per-class robust accuracy (%)": per_class_table(per_arm, test.class_names)}
        return result
