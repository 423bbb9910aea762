"""The metric headline contract: what a metric puts on the run page, the terminal, the claims blocks,
the generator table and ``dreamset evaluate`` — declared once, on the metric's class.

A metric lists its headline values as :class:`Headline` entries in ``Metric.headline``. Every reader
(:mod:`dreamset.report.headlines`) finds the class through the registry from the metric's report name
and shows exactly these values, with their label, unit, direction and group; a metric that declares
nothing still shows its numeric results, generically, under "other metrics". A value the metric
cannot vouch for in one result (ARC whose discriminator collapsed: the number is only a lower bound)
is replaced by the text :meth:`dreamset.contracts.interfaces.Metric.headline_notes` returns for it.

Example (a plugin metric)::

    class Sharpness(Metric):
        key = "metric:sharpness"
        scope = "source"
        headline = (Headline("sharpness", "sharpness", better="higher", group="fidelity",
                             format="{:.3f}", explain="mean Laplacian variance of the synthetic images"),)

``tests/test_headlines.py`` checks that every key a built-in metric declares exists in a real
``report.json``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

#: the groups the run page shows, in order ("other" comes last)
GROUPS = ("fidelity", "diversity", "discriminability", "label quality", "accuracy", "shift", "other")


@dataclass(frozen=True)
class Headline:
    """One headline value of a metric.

    ``key``: the key in the metric's result (for ``per_arm``: in each ``result["arms"][arm]``);
    ``label``: its name for readers; ``better``: ``"lower"``, ``"higher"`` or ``None`` (no direction);
    ``unit`` and ``scale``: the value is shown as ``format.format(value * scale)`` followed by ``unit``
    (a share in [0, 1] is ``scale=100, unit="%"``); ``group``: one of :data:`GROUPS`; ``explain``: one
    line on what it says; ``spread``: the key of a ``±`` value shown beside it (same scale);
    ``interval``: the key of a ``{low, high, verdict}`` dict beside it (same scale); ``per_arm``: the
    value is per trained arm (``scope = "arms"`` metrics)."""

    key: str
    label: str
    better: Literal["lower", "higher"] | None = None
    group: str = "other"
    unit: str = ""
    scale: float = 1.0
    format: str = "{:.3g}"
    explain: str = ""
    spread: str | None = None
    interval: str | None = None
    per_arm: bool = False

    def __post_init__(self) -> None:
        if self.group not in GROUPS:
            raise ValueError(f"Headline {self.key!r}: group must be one of {', '.join(GROUPS)}, not {self.group!r}")
        if self.better not in (None, "lower", "higher"):
            raise ValueError(f"Headline {self.key!r}: better must be 'lower', 'higher' or None, not {self.better!r}")
        self.format.format(0.5)  # a bad format string fails where it is declared, not when a page renders

    def text(self, value: Any, spread: Any = None) -> str:
        """``value`` (and ``± spread``) formatted with this headline's scale, format and unit; ``–``
        for a missing or non-finite value."""
        if not is_number(value) or not math.isfinite(value):
            return "–"
        out = self.format.format(value * self.scale)
        if is_number(spread) and math.isfinite(spread) and spread:
            out += f" ± {self.format.format(abs(spread) * self.scale).lstrip('+')}"
        return f"{out} {self.unit}".rstrip() if self.unit not in ("%",) else out + "%"

    @property
    def direction(self) -> str:
        return {"lower": "lower is better", "higher": "higher is better"}.get(self.better or "", "no direction")


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
