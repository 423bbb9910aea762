"""The generator table: which synthetic source helps, and which distribution metric predicts it.

Sehwag et al. (ICLR 2022, Table 1) train one robust classifier per generator and ask whether a
metric of the synthetic data ranks the generators as the robust-accuracy gain does: FID does not,
ARC does. For a recipe with named sources (:mod:`dreamset.orchestration.sources`) and, per source, an arm that
trains on real data plus that source only (``real+<source>``), :func:`generator_table` builds

* one row per such source: FID, KID, precision, recall, density, coverage, ARC (from
  ``metrics.<metric>.<source>``; ``None`` where the recipe does not compute one), the robust gain
  over the baseline arm with its 95% paired interval, and the clean gain (both from
  ``report["comparisons"]``, :mod:`dreamset.report.differences`);
* Spearman's ρ between the robust gain and each metric with scipy's p-value
  (``scipy.stats.spearmanr``), **sign-adjusted** so that ρ > 0 means "a better metric goes with
  more gain" (FID, KID and ARC are negated: lower is better; precision, recall, density and
  coverage are not). ρ needs at least three sources with both numbers, and is ``None`` when either
  side is constant;
* ``generator_metrics_vs_gain.png`` in the run folder: each metric against the robust gain, error
  bars the 95% interval, points labelled by source.

The result goes into ``report.json`` as ``generator_table`` (and report.html lists it). With at most a
handful of generators ρ is coarse: with 5 sources ``|ρ|`` must reach 0.9 for ``p < 0.05``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

#: column -> (metric report name, key in its result, True if lower is better)
METRICS: dict[str, tuple[str, str, bool]] = {
    "FID": ("fid", "fid", True),
    "KID": ("kid", "kid_mean", True),
    "precision": ("prdc", "precision", False),
    "recall": ("prdc", "recall", False),
    "density": ("prdc", "density", False),
    "coverage": ("prdc", "coverage", False),
    "ARC": ("arc", "arc", True),
}
PLOT = "generator_metrics_vs_gain.png"
HEADER = ["source", "arm", *METRICS, "robust gain pp", "95% interval pp", "clean gain pp"]


def source_arms(recipe) -> dict[str, str]:
    """Source -> the first arm that trains on real data plus that source only."""
    from dreamset.orchestration.sources import arm_sources, named

    if not named(recipe):
        return {}
    out: dict[str, str] = {}
    for arm_name, arm in recipe.arms.items():
        chosen, _ = arm_sources(recipe, arm)
        if arm.real and len(chosen) == 1 and chosen[0] not in out:
            out[chosen[0]] = arm_name
    return {name: out[name] for name in recipe.generate if name in out}


def _metric(metrics: dict[str, Any], source: str, column: str) -> float | None:
    report_name, key, _ = METRICS[column]
    value = ((metrics.get(report_name) or {}).get(source) or {}).get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def spearman(gains: list[float], values: list[float], lower_is_better: bool) -> dict[str, Any]:
    """Sign-adjusted Spearman ρ (ρ > 0: better metric, more gain) and its two-sided p-value."""
    import math

    from scipy import stats

    n = len(gains)
    out: dict[str, Any] = {"rho": None, "p_value": None, "n": n,
                           "direction": "lower is better" if lower_is_better else "higher is better"}
    if n < 3 or len(set(gains)) < 2 or len(set(values)) < 2:
        out["note"] = "needs at least 3 sources and non-constant values"
        return out
    adjusted = [-v for v in values] if lower_is_better else list(values)
    result = stats.spearmanr(adjusted, gains)
    rho, p = float(result.statistic), float(result.pvalue)
    out["rho"], out["p_value"] = (None if math.isnan(rho) else rho), (None if math.isnan(p) else p)
    return out


def generator_table(recipe, report: dict[str, Any]) -> dict[str, Any] | None:
    """The section described in the module docstring, or ``None`` when the recipe has no
    ``real+<source>`` arm."""
    arms = source_arms(recipe)
    if not arms:
        return None
    metrics, comparisons = report.get("metrics") or {}, report.get("comparisons") or {}
    sources: dict[str, Any] = {}
    for source, arm in arms.items():
        entry: dict[str, Any] = {"arm": arm}
        for column in METRICS:
            entry[column] = _metric(metrics, source, column)
        comparison = comparisons.get(arm) or {}
        robust, clean = comparison.get("robust_accuracy") or {}, comparison.get("clean_accuracy") or {}
        entry["robust_gain"] = {k: robust.get(k) for k in ("mean", "low", "high", "n", "verdict")} if robust else None
        entry["clean_gain"] = clean.get("mean")
        sources[source] = entry
    rho: dict[str, Any] = {}
    for column, (_, _, lower) in METRICS.items():
        pairs = [(e["robust_gain"]["mean"], e[column]) for e in sources.values()
                 if e["robust_gain"] and e["robust_gain"].get("mean") is not None and e[column] is not None]
        if pairs:
            rho[column] = spearman([g for g, _ in pairs], [v for _, v in pairs], lower)
    ranked = sorted((c for c in rho if rho[c]["rho"] is not None), key=lambda c: -rho[c]["rho"])
    return {"header": HEADER, "rows": [_row(source, entry) for source, entry in sources.items()],
            "sources": sources, "spearman": rho, "best_ranking_metric": ranked[0] if ranked else None,
            "baseline": next(iter(comparisons.values()), {}).get("baseline"), "plot": PLOT}


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}g}"


def _row(source: str, entry: dict[str, Any]) -> list[str]:
    gain = entry["robust_gain"] or {}
    mean, low, high = gain.get("mean"), gain.get("low"), gain.get("high")
    interval = "–" if low is None or high is None else f"[{100 * low:+.1f}, {100 * high:+.1f}]"
    clean = entry["clean_gain"]
    return [source, entry["arm"], *(_fmt(entry[c]) for c in METRICS),
            "–" if mean is None else f"{100 * mean:+.1f}", interval, "–" if clean is None else f"{100 * clean:+.1f}"]


def rho_rows(section: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of the Spearman table."""
    rows = [[column, r["direction"], _fmt(r["rho"]), _fmt(r["p_value"]), str(r["n"])]
            for column, r in section["spearman"].items()]
    return ["metric", "better when", "sign-adjusted ρ vs robust gain", "p-value", "sources"], rows


def plot(path: Path, section: dict[str, Any]) -> None:
    """Each metric (x) against the robust gain in pp (y, 95% interval as error bars)."""
    from dreamset.report.figures import png_figure

    columns = [c for c in METRICS if any(e[c] is not None for e in section["sources"].values())]
    if not columns:
        return
    ncols = min(4, len(columns))
    nrows = -(-len(columns) // ncols)
    with png_figure(path, nrows, ncols, figsize=(3.2 * ncols, 2.8 * nrows), squeeze=False) as (_, axes):
        for ax in axes.flat[len(columns):]:
            ax.set_visible(False)
        for ax, column in zip(axes.flat, columns):
            for source, entry in section["sources"].items():
                gain = entry["robust_gain"] or {}
                if entry[column] is None or gain.get("mean") is None:
                    continue
                y = 100 * gain["mean"]
                err = None
                if gain.get("low") is not None:
                    err = [[y - 100 * gain["low"]], [100 * gain["high"] - y]]
                ax.errorbar([entry[column]], [y], yerr=err, fmt="o", capsize=3)
                ax.annotate(source, (entry[column], y), fontsize=7, xytext=(3, 3), textcoords="offset points")
            r = section["spearman"].get(column, {})
            ax.axhline(0, color="grey", lw=0.8, ls=":")
            ax.set_title(f"{column} (ρ={_fmt(r.get('rho'), 2)}, {METRICS[column][2] and 'lower' or 'higher'} better)", fontsize=8)
            ax.set_xlabel(column, fontsize=8)
            ax.set_ylabel("robust gain (pp)", fontsize=8)


def add_generator_table(run_dir: Path, recipe, report: dict[str, Any]) -> None:
    """Put ``generator_table`` into ``report`` and draw its plot, when the recipe compares sources."""
    section = generator_table(recipe, report)
    if section is None:
        return
    plot(Path(run_dir) / PLOT, section)
    report["generator_table"] = section


def markdown(section: dict[str, Any]) -> str:
    """The table, the ρ table and one sentence comparing how ARC and FID rank the sources (for
    docs/recipes.md through ``benchmarks/generator_table.py``)."""
    def table(header, rows):
        return ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] * len(header)) + " |",
                *("| " + " | ".join(r) + " |" for r in rows)]

    lines = table(section["header"], section["rows"])
    lines += ["", f"Robust/clean gain: paired difference to `{section.get('baseline')}` over seeds, percentage points, "
              "95% Student-t interval.", ""]
    lines += table(*rho_rows(section)) + [""]
    arc, fid = (section["spearman"].get(c, {}).get("rho") for c in ("ARC", "FID"))
    if arc is None or fid is None:
        lines.append("ARC and FID cannot both be ranked against the gain in this run (ρ undefined).")
    else:
        verdict = ("ranks the sources better than FID" if arc > fid else
                   "ranks the sources no better than FID" if arc == fid else "ranks the sources worse than FID")
        significant = [c for c, r in section["spearman"].items() if r.get("p_value") is not None and r["p_value"] < 0.05]
        lines.append(f"At this scale ARC {verdict} (sign-adjusted ρ {arc:+.2f} vs {fid:+.2f}); "
                     + (f"ρ is significant at p < 0.05 only for {', '.join(significant)}." if significant
                        else "no ρ is significant at p < 0.05."))
    return "\n".join(lines)
