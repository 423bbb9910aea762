"""The one reader of the metric headline contract (:mod:`dreamset.contracts.headline`).

:func:`headline_values` walks a report's ``metrics`` and returns, for every metric result (one per
named synthetic source ``metrics.<metric>.<source>``, one per arm for ``per_arm`` headlines), the
values its class declares in ``Metric.headline`` — labelled, formatted, with the metric's own notes
(ARC's "collapsed (lower bound)") in place of numbers it cannot vouch for. A metric whose class is not
installed or declares nothing contributes its numeric results generically (group ``other``,
bookkeeping such as sample counts left out). The run page, the terminal summary, the claims blocks,
the generator table and ``dreamset evaluate`` all read this, so a metric's headline is written once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dreamset.contracts.headline import GROUPS, Headline, is_number
from dreamset.report.tables import report_source_names, sig

#: FID/KID/PRDC on the offline reference classifier's features are not comparable with published values
FEATURE_NOTE = {"reference": "reference-classifier features, not comparable with published Inception values"}


@dataclass(frozen=True)
class HeadlineValue:
    """One shown value: ``metric`` (report name), ``shown_as`` (``fid``, ``fid[ddpm]``,
    ``effective_robustness[real]``), its :class:`Headline` (``None``: undeclared, shown generically),
    the raw ``value``, the ``text`` a reader prints (a note replaces the number), and the ``interval``
    dict where the headline names one."""

    metric: str
    shown_as: str
    key: str
    headline: Headline | None
    value: Any
    text: str
    note: str | None = None
    interval: dict[str, Any] | None = None
    feature_note: str | None = None
    verdict: str | None = None

    @property
    def label(self) -> str:
        name = self.headline.label if self.headline else self.key
        where = self.shown_as[len(self.metric):]  # "[source]" / "[arm]" or ""
        return f"{name}{' ' + where if where else ''}"

    @property
    def group(self) -> str:
        return self.headline.group if self.headline else "other"

    @property
    def interval_text(self) -> str:
        """``[low, high] verdict`` in the headline's scale, or ``""``."""
        d = self.interval or {}
        if self.headline is None or not is_number(d.get("low")) or not is_number(d.get("high")):
            return ""
        fmt, scale = self.headline.format, self.headline.scale
        span = f"[{fmt.format(d['low'] * scale)}, {fmt.format(d['high'] * scale)}]"
        verdict = self.verdict or d.get("verdict")
        return f"{span} {verdict}" if verdict else span


def metric_classes() -> dict[str, type]:
    """Report name (``metric:label-agreement`` -> ``label_agreement``) -> the installed metric class."""
    import dreamset.registry as registry

    out: dict[str, type] = {}
    for key in registry.list("metric:*"):
        try:
            out[report_name(key)] = registry.get(key).load()
        except Exception:  # noqa: BLE001 - a plugin that fails to load is shown generically, not fatal to a page
            continue
    return out


def report_name(key: str) -> str:
    """The name a metric's result has in ``report.json:metrics`` (``metric:label-agreement`` -> ``label_agreement``)."""
    return key.split(":", 1)[1].replace("-", "_")


def _parts(report: dict[str, Any], metric: str, result: Any) -> list[tuple[str, dict[str, Any]]]:
    """``[(shown_as, result)]``: one per named source where the result is per source, else one."""
    if not isinstance(result, dict):
        return [(metric, {"value": result})]
    sources = report_source_names(report)
    parts = [(f"{metric}[{k}]", v) for k, v in result.items() if k in sources and isinstance(v, dict)]
    return parts or [(metric, result)]


def _bookkeeping(key: str) -> bool:
    return key.startswith(("n_", "num_")) or key.endswith(("_dim", "_size", "_seed", "_std")) or key in ("k", "seed", "q")


def declared_values(metric: str, shown_as: str, cls: type, result: dict[str, Any]) -> list[HeadlineValue]:
    """The declared headline values of one result of ``cls``."""
    notes = cls.headline_notes(result) if hasattr(cls, "headline_notes") else {}
    feature = FEATURE_NOTE.get(result.get("extractor")) if isinstance(result.get("extractor"), str) else None
    out: list[HeadlineValue] = []
    for h in cls.headline:
        places = ([(f"{shown_as}[{arm}]", entry) for arm, entry in (result.get("arms") or {}).items() if isinstance(entry, dict)]
                  if h.per_arm else [(shown_as, result)])
        for where, entry in places:
            value, note = entry.get(h.key), notes.get(h.key)
            if value is None and note is None:
                continue
            interval = entry.get(h.interval) if h.interval and isinstance(entry.get(h.interval), dict) else None
            text = note if note is not None else h.text(value, entry.get(h.spread) if h.spread else None)
            out.append(HeadlineValue(metric, where, h.key, h, value, text, note, interval,
                                     feature if not out else None,  # the note once, on the metric's first value
                                     entry.get("verdict") if interval is not None else None))
    return out


def generic_values(metric: str, shown_as: str, result: dict[str, Any]) -> list[HeadlineValue]:
    """An undeclared metric's numeric results (bookkeeping keys left out)."""
    return [HeadlineValue(metric, shown_as, key, None, value, sig(value)) for key, value in result.items()
            if is_number(value) and not _bookkeeping(key) and math.isfinite(value)]


def headline_values(report: dict[str, Any], classes: dict[str, type] | None = None) -> list[HeadlineValue]:
    """Every headline value of ``report["metrics"]``, in the order of :data:`GROUPS`, then of the
    metrics in the report (``classes``: report name -> metric class; default: the registry's)."""
    classes = metric_classes() if classes is None else classes
    out: list[HeadlineValue] = []
    for metric, result in (report.get("metrics") or {}).items():
        cls = classes.get(metric)
        for shown_as, part in _parts(report, metric, result):
            if cls is not None and getattr(cls, "headline", ()):
                out += declared_values(metric, shown_as, cls, part)
            else:
                out += generic_values(metric, shown_as, part)
    return sorted(out, key=lambda v: GROUPS.index(v.group))
