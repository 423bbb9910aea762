"""``metric:accuracy`` — clean top-1 accuracy of every trained arm on the real test split, overall
and per class, plus its mean ± sample std over seeds.

Top-1 accuracy is the standard measure of the papers dreamset reproduces (e.g. Sehwag et al.,
2022, "Robust Learning Meets Generative Models: Can Proxy Distributions Improve Adversarial
Robustness?", ICLR; Gowal et al., 2021, "Improving Robustness using Generated Data", NeurIPS).

Inputs (``scope = "arms"``, :class:`~dreamset.contracts.inputs.ArmInputs`): ``models`` (arm -> classifier of
the last seed; it takes ``float32 N×C×H×W`` images in [0,1] and returns logits ``N×K``),
``real.test`` (labels ``int64 N`` in ``[0, K)``) and ``results`` (seed -> arm -> ``clean_accuracy``). All accuracies are fractions in [0,1]
(tables show percentages). A class absent from the evaluated images has accuracy ``null``.

Result: ``clean_accuracy[<arm>]`` scalars (last seed), ``arms`` (arm -> ``clean_accuracy``,
``per_class`` list of ``{class, count, accuracy}``, and over seeds ``seeds``, ``clean_accuracy_mean``,
``clean_accuracy_std``), and the tables ``per-class clean accuracy (%)`` and ``clean accuracy over
seeds (%)``.
"""
from __future__ import annotations

import statistics
from typing import Any

from pydantic import Field

from dreamset import Options, register
from dreamset.contracts.errors import BadInputError
from dreamset.contracts.headline import Headline
from dreamset.contracts.interfaces import Metric


class AccuracyOptions(Options):
    batch_size: int = Field(default=256, ge=1, le=1_000_000, description="evaluation batch size")
    max_samples: int | None = Field(default=None, ge=1, description="a seeded class-stratified subset of this many test images (null = all)")
    seed: int = Field(default=0, ge=0, description="seed of that subset")


def evaluation_rows(real, max_samples: int | None, seed: int = 0, field: str = "max_samples"):
    """The test rows a classifier metric evaluates of ``real`` (:class:`~dreamset.contracts.inputs.RealData`):
    the run's evaluation subset (``real.evaluation_subset``, all rows when the run has none) for
    ``max_samples: null``, else a seeded class-stratified subset of ``max_samples`` rows
    (:func:`dreamset.orchestration.evaluation.stratified_subset`)."""
    from dreamset.orchestration.evaluation import stratified_subset

    if max_samples is None:
        return real.evaluation_subset
    return stratified_subset(real.test.labels, max_samples, seed, field=field)


def per_class_accuracy(model, source, device, batch_size: int, attacker=None, rows=None) -> tuple[float, list[dict[str, Any]]]:
    """Top-1 accuracy of ``model`` on ``source`` (its ``rows`` when given), optionally under
    ``attacker`` — then a sample counts only if it is also correct clean, as in
    :func:`dreamset.orchestration.evaluation.worst_case_correct` — overall and per class:
    ``(overall, [{"class", "count", "accuracy"}, ...])``."""
    from dreamset.orchestration.evaluation import correct

    if rows is not None:
        source = source.subset(rows)
    if len(source) == 0:
        raise BadInputError("real_test: the test set is empty, there is nothing to evaluate")
    flags = correct(model, source, device, batch_size)
    if attacker is not None:
        flags &= correct(model, source, device, batch_size, attacker)
    labels = source.labels
    rows_out = []
    for c, name in enumerate(source.class_names):
        members = labels == c
        count = int(members.sum())
        rows_out.append({"class": name, "count": count, "accuracy": int(flags[members].sum()) / count if count else None})
    return int(flags.sum()) / len(flags), rows_out


def percent(value: float | None) -> str:
    """A fraction in [0,1] as a percentage with one decimal (``–`` for missing values)."""
    return "–" if value is None else f"{100 * value:.1f}"


def per_class_table(per_arm: dict[str, list[dict[str, Any]]], class_names: list[str]) -> dict[str, Any]:
    """Table rows ``class, count, <arm> ...`` (percentages) from per-class result lists."""
    arms = list(per_arm)
    rows = []
    for c, name in enumerate(class_names):
        count = next((per_arm[arm][c]["count"] for arm in arms), 0)
        rows.append([name, count] + [percent(per_arm[arm][c]["accuracy"]) for arm in arms])
    return {"header": ["class", "count"] + [f"{arm} %" for arm in arms], "rows": rows}


@register(description="clean accuracy per arm and per class")
class AccuracyMetric(Metric):
    """Clean accuracy per arm and per class; mean ± std over seeds."""

    key = "metric:accuracy"
    scope = "arms"

    headline = (Headline("clean_accuracy_mean", "clean accuracy", better="higher", group="accuracy", scale=100, unit="%",
                         format="{:.1f}", spread="clean_accuracy_std", per_arm=True,
                         explain="accuracy on the real test set, mean ± std over seeds"),)

    Options = AccuracyOptions

    def compute(self, inputs) -> dict[str, Any]:
        test, device = inputs.real.test, inputs.services.device
        if test is None:
            raise BadInputError("real_test: metric:accuracy needs the real test split")
        if not inputs.models and not inputs.results:
            raise BadInputError("arms: metric:accuracy needs trained arms (no models)")
        o = self.options
        result: dict[str, Any] = {}
        arms: dict[str, dict[str, Any]] = {}
        per_arm: dict[str, list[dict[str, Any]]] = {}
        for arm, model in inputs.models.items():
            rows_used = None if o.max_samples is None else evaluation_rows(inputs.real, o.max_samples, o.seed)
            overall, rows = per_class_accuracy(model, test, device, o.batch_size, rows=rows_used)
            result[f"clean_accuracy[{arm}]"] = overall
            arms[arm] = {"clean_accuracy": overall, "per_class": rows}
            per_arm[arm] = rows
        seed_rows = []
        names = list(dict.fromkeys(arm for runs in inputs.results.values() for arm in runs))
        for arm in names:
            values = [float(runs[arm]["clean_accuracy"]) for runs in inputs.results.values()
                      if arm in runs and isinstance(runs[arm].get("clean_accuracy"), (int, float))]
            if not values:
                continue
            mean = statistics.fmean(values)
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            arms.setdefault(arm, {}).update({"seeds": len(values), "clean_accuracy_mean": mean, "clean_accuracy_std": std})
            seed_rows.append([arm, len(values), percent(mean), percent(std)])
        result["arms"] = arms
        tables: dict[str, Any] = {}
        if per_arm:
            tables["per-class clean accuracy (%)"] = per_class_table(per_arm, test.class_names)
        if seed_rows:
            tables["clean accuracy over seeds (%)"] = {"header": ["arm", "seeds", "mean %", "std %"], "rows": seed_rows}
        result["tables"] = tables
        return result
