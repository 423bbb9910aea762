"""``metric:label-agreement`` — how often the run's real-trained reference classifier predicts the
label a synthetic image was generated for, overall and per class, with its mean confidence.

A sanity check of class-conditional generators in the spirit of the "classification accuracy
score" of Ravuri & Vinyals (2019, "Classification Accuracy Score for Conditional Generative
Models", NeurIPS), run in the opposite direction (a real-trained classifier judges the synthetic
images), as used to filter generated data (e.g. Sehwag et al., 2022, "Robust Learning Meets
Generative Models: Can Proxy Distributions Improve Adversarial Robustness?", ICLR). Low agreement
means the generator's images do not carry their intended class.

Inputs (``scope = "source"``, :class:`~dreamset.contracts.inputs.DistributionInputs`): ``synthetic`` (images
``float32 N×C×H×W`` in [0,1], intended labels ``int64 N`` in ``[0, K)``; the first ``max_samples``
are used) and ``services.reference.predict`` (softmax
``float32 N×K`` of the run's reference classifier, :class:`~dreamset.orchestration.reference.ReferenceClassifier`).

Result (fractions/probabilities in [0,1]): ``agreement`` (fraction with ``argmax = label``),
``mean_confidence`` (mean max-softmax probability), ``mean_label_probability`` (mean softmax
probability of the intended label), ``n_samples``, ``per_class`` (list of ``{class, count,
agreement, mean_label_probability}``; ``null`` for classes without images) and the table
``per-class label agreement``.
"""
from __future__ import annotations

from typing import Any

from pydantic import Field

from dreamset import Options, register
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.headline import Headline
from dreamset.contracts.interfaces import Metric


class LabelAgreementOptions(Options):
    max_samples: int | None = Field(default=None, ge=1, description="judge at most this many synthetic images (the first ones; null = all)")
    batch_size: int = Field(default=512, ge=1, le=1_000_000, description="prediction batch size")


@register(description="fraction of synthetic images the real-trained reference classifier labels as intended")
class LabelAgreementMetric(Metric):
    """Agreement of the reference classifier with the synthetic images' intended labels."""

    key = "metric:label-agreement"

    #: a distribution metric of the synthetic set: run once per named source (dreamset.orchestration.sources)
    scope = "source"

    headline = (
        Headline("agreement", "label agreement", better="higher", group="label quality", scale=100, unit="%",
                 format="{:.1f}", explain="synthetic labels the reference classifier agrees with"),
        Headline("mean_confidence", "mean confidence", group="label quality", scale=100, unit="%", format="{:.1f}",
                 explain="mean top-class probability of the reference classifier"),
        Headline("mean_label_probability", "mean label probability", better="higher", group="label quality", scale=100,
                 unit="%", format="{:.1f}", explain="mean probability the reference classifier gives the intended label"),
    )

    Options = LabelAgreementOptions

    def compute(self, inputs) -> dict[str, Any]:
        synthetic, real = inputs.synthetic, inputs.real.train
        if synthetic is None or len(synthetic) == 0:
            raise BadInputError("synthetic: metric:label-agreement needs synthetic images (the recipe has no generate stage or an empty store)")
        if real is not None and synthetic.num_classes != real.num_classes:
            raise BadInputError(f"synthetic: {synthetic.num_classes} classes, but the real data has {real.num_classes}")
        o = self.options
        n = len(synthetic) if o.max_samples is None else min(len(synthetic), o.max_samples)
        source = synthetic if n == len(synthetic) else synthetic.subset(range(n))
        probabilities = inputs.services.reference.predict(source, batch_size=o.batch_size).double()
        labels = source.labels
        agree = probabilities.argmax(dim=1) == labels
        label_probability = probabilities.gather(1, labels.view(-1, 1)).squeeze(1)
        per_class, rows = [], []
        for c, name in enumerate(synthetic.class_names):
            members = labels == c
            count = int(members.sum())
            entry = {"class": name, "count": count, "agreement": None, "mean_label_probability": None}
            if count:
                entry["agreement"] = float(agree[members].double().mean())
                entry["mean_label_probability"] = float(label_probability[members].mean())
            per_class.append(entry)
            rows.append([name, count] + ["–" if entry[k] is None else f"{100 * entry[k]:.1f}" for k in ("agreement", "mean_label_probability")])
        return {
            "agreement": float(agree.double().mean()),
            "mean_confidence": float(probabilities.max(dim=1).values.mean()),
            "mean_label_probability": float(label_probability.mean()),
            "n_samples": n,
            "per_class": per_class,
            "tables": {"per-class label agreement": {"header": ["class", "count", "agreement %", "mean p(label) %"], "rows": rows}},
        }
