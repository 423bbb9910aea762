"""``metric:class-balance`` — the worked Metric example (docs/kinds/metric.md).

Card
----
* Measures: how evenly the synthetic set covers the classes — the fraction of each class and the
  normalised entropy of the label distribution (1 = perfectly balanced, 0 = one class only) — and,
  for comparison, the same for the real training split.
* Scope ``"source"``: receives ``DistributionInputs`` and reads ``inputs.synthetic`` and
  ``inputs.real.train`` (their ``labels`` and ``class_names``); touches no model. With named
  synthetic sources the pipeline runs it once per source.
* Result: ``{"synthetic": {"fractions": {class: f}, "entropy": e} | null, "real": {...}}``, plain
  JSON, deterministic; a side without images is ``null`` and named in ``reasons`` (the metric
  contract: a value it cannot compute is ``None`` with its reason).
* Defaults: no options.

Example::

    evaluate: {metrics: [class-balance]}
"""
from __future__ import annotations

import math

import dreamset
from dreamset.contracts.interfaces import Metric


def _balance(source):
    if source is None or len(source) == 0:
        return None
    counts = source.labels.bincount(minlength=len(source.class_names)).tolist()
    total = sum(counts)
    fractions = {name: count / total for name, count in zip(source.class_names, counts)}
    entropy = -sum(f * math.log(f) for f in fractions.values() if f > 0)
    return {"fractions": fractions, "entropy": entropy / math.log(len(counts)) if len(counts) > 1 else 1.0}


@dreamset.register
class ClassBalanceMetric(Metric):
    """Per-class fractions and normalised label entropy of the synthetic and the real set."""

    key = "metric:class-balance"
    scope = "source"

    def compute(self, inputs):
        result = {"synthetic": _balance(inputs.synthetic), "real": _balance(inputs.real.train)}
        reasons = {side: "no images" for side, value in result.items() if value is None}
        return {**result, "reasons": reasons} if reasons else result
