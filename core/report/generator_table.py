"""The generator table: which synthetic source helps, and which distribution metric predicts it.

Sehwag et al. (ICLR 2022, arXiv:2104.09425, Table 1) train one robust classifier per generator and ask
whether a metric of the synthetic data ranks the generators as the robust-accuracy gain does: FID does
not, ARC does. For a recipe with named sources (:mod:`dreamset.orchestration.sources`) and, per source,
an arm that trains on real data plus that source only (``real+<source>``), :func:`generator_table` builds

* one row per such source: every per-source headline value with a direction that the report's
  metrics declare (the headline contract, :mod:`dreamset.report.headlines`: FID, KID, precision,
  density, recall, coverage, ARC, label agreement, a plugin's), the robust gain over the baseline arm
  with its 95% paired interval, and the clean gain (``report["comparisons"]``). A value its metric
  cannot vouch for (ARC whose discriminator collapsed) is shown as its note and left out of ρ;
* Spearman's ρ between the robust gain and each metric, **sign-adjusted** so that ρ > 0 means "a
  better metric goes with more gain", with an **exact** two-sided permutation p-value
  (``scipy.stats.permutation_test`` over every pairing: with n ≤ 10 sources the t-approximation
  is wrong — for ρ = 0.9 with 5 sources it gives 0.037, the exact p is 0.083), and a 95% interval
  from a bootstrap over **seeds** (the per-seed gains are resampled, paired across sources; the
  metrics are fixed): every ``n^n`` resample when there are at most 5 seeds, else 2,000 seeded ones;
* for every pair of metrics, the bootstrap interval of ``ρ(A) − ρ(B)``: one metric "ranks the
  sources better" only when that interval excludes 0; otherwise the two are "not told apart";
* ``generator_metrics_vs_gain.png`` in the run folder: each metric against the robust gain.

The result goes into ``report.json`` as ``generator_table`` (report.html lists it).
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

PLOT = "generator_metrics_vs_gain.png"
#: groups whose per-source headline values become columns
COLUMN_GROUPS = ("fidelity", "diversity", "discriminability", "label quality")


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


def columns(report: dict[str, Any], sources, classes: dict[str, type] | None = None) -> dict[str, dict[str, Any]]:
    """Column label -> ``{"lower": bool, "values": {source: number or None}, "notes": {source: text}}``
    for every per-source headline value with a direction (from the headline contract)."""
    from dreamset.report.headlines import declared_values, metric_classes

    classes = metric_classes() if classes is None else classes
    out: dict[str, dict[str, Any]] = {}
    for metric, result in (report.get("metrics") or {}).items():
        cls = classes.get(metric)
        if cls is None or not isinstance(result, dict):
            continue
        for source in sources:
            part = result.get(source)
            if not isinstance(part, dict):
                continue
            for v in declared_values(metric, metric, cls, part):
                h = v.headline
                if h.per_arm or h.better is None or h.group not in COLUMN_GROUPS:
                    continue
                column = out.setdefault(h.label, {"lower": h.better == "lower", "values": {}, "notes": {}, "headline": h})
                number = v.value if v.note is None and isinstance(v.value, (int, float)) and math.isfinite(v.value) else None
                column["values"][source] = float(number) if number is not None else None
                if v.note is not None:
                    column["notes"][source] = v.note
    return out


def seed_gains(report: dict[str, Any], arms: dict[str, str], baseline: str | None) -> dict[str, dict[str, float]]:
    """Source -> seed -> robust gain (arm minus baseline, the same seed) from ``report["arms"]``."""
    per = report.get("arms") or {}
    base = ((per.get(baseline) or {}).get("per_seed") or {}) if baseline else {}
    out: dict[str, dict[str, float]] = {}
    for source, arm in arms.items():
        mine = (per.get(arm) or {}).get("per_seed") or {}
        out[source] = {seed: float(r["robust_accuracy"]) - float(base[seed]["robust_accuracy"]) for seed, r in mine.items()
                       if isinstance(r.get("robust_accuracy"), (int, float)) and seed in base
                       and isinstance(base[seed].get("robust_accuracy"), (int, float))}
    return out


def _rho(adjusted: list[float], gains: list[float]) -> float | None:
    from scipy import stats

    if len(set(gains)) < 2 or len(set(adjusted)) < 2:
        return None
    value = float(stats.spearmanr(adjusted, gains).statistic)
    return None if math.isnan(value) else value


def exact_p(adjusted: list[float], gains: list[float]) -> float | None:
    """Two-sided permutation p-value of Spearman's ρ: the share of pairings whose ``|ρ|`` reaches the
    observed one, over **every** pairing for n ≤ 10 (n! of them, enumerated in numpy), else over
    100,000 seeded random ones. Ties get average ranks (as ``scipy.stats.spearmanr``)."""
    import numpy as np
    from scipy import stats

    observed = _rho(adjusted, gains)
    if observed is None:
        return None
    x = stats.rankdata(adjusted)
    y = stats.rankdata(gains)
    n = len(x)
    if n <= 10:
        perms = np.array(list(itertools.permutations(range(n))), dtype=np.int8)
    else:
        rng = np.random.default_rng(0)
        perms = np.argsort(rng.random((100_000, n)), axis=1)
    xc = x - x.mean()
    yp = y[perms] - y.mean()
    rhos = (yp @ xc) / (np.sqrt((xc ** 2).sum()) * np.sqrt((yp ** 2).sum(axis=1)))
    return float(np.mean(np.abs(rhos) >= abs(observed) - 1e-12))


def seed_resamples(seeds: list[str], limit: int = 2000) -> list[tuple[str, ...]]:
    """Every ``n^n`` resample of ``seeds`` with replacement (n ≤ 5), else ``limit`` seeded ones."""
    import numpy as np

    if len(seeds) <= 5:
        return list(itertools.product(seeds, repeat=len(seeds)))
    rng = np.random.default_rng(0)
    return [tuple(seeds[i] for i in rng.integers(0, len(seeds), len(seeds))) for _ in range(limit)]


def _interval(values: list[float]) -> dict[str, Any]:
    import numpy as np

    if len(values) < 2:
        return {"low": None, "high": None, "resamples": len(values)}
    low, high = np.percentile(values, [2.5, 97.5])
    return {"low": float(low), "high": float(high), "resamples": len(values)}


def spearman(gains: list[float], values: list[float], lower_is_better: bool) -> dict[str, Any]:
    """Sign-adjusted Spearman ρ (ρ > 0: better metric, more gain) with its exact permutation p-value."""
    n = len(gains)
    out: dict[str, Any] = {"rho": None, "p_value": None, "p_method": "exact permutation" if n <= 10 else "permutation (100,000)",
                           "n": n, "direction": "lower is better" if lower_is_better else "higher is better"}
    if n < 3 or len(set(gains)) < 2 or len(set(values)) < 2:
        out["note"] = "needs at least 3 sources and non-constant values"
        return out
    adjusted = [-v for v in values] if lower_is_better else list(values)
    out["rho"], out["p_value"] = _rho(adjusted, gains), exact_p(adjusted, gains)
    return out


def generator_table(recipe, report: dict[str, Any], classes: dict[str, type] | None = None) -> dict[str, Any] | None:
    """The section described in the module docstring, or ``None`` when the recipe has no
    ``real+<source>`` arm."""
    arms = source_arms(recipe)
    if not arms:
        return None
    comparisons = report.get("comparisons") or {}
    baseline = next(iter(comparisons.values()), {}).get("baseline")
    cols = columns(report, list(arms), classes)
    sources: dict[str, Any] = {}
    for source, arm in arms.items():
        entry: dict[str, Any] = {"arm": arm}
        for label, column in cols.items():
            entry[label] = column["values"].get(source)
        comparison = comparisons.get(arm) or {}
        robust, clean = comparison.get("robust_accuracy") or {}, comparison.get("clean_accuracy") or {}
        entry["robust_gain"] = {k: robust.get(k) for k in ("mean", "low", "high", "n", "verdict")} if robust else None
        entry["clean_gain"] = clean.get("mean")
        sources[source] = entry
    per_seed = seed_gains(report, arms, baseline)
    seeds = sorted(set.intersection(*(set(v) for v in per_seed.values()))) if per_seed else []
    resamples = seed_resamples(seeds) if len(seeds) >= 2 else []
    gained = [s for s, e in sources.items() if e["robust_gain"] and e["robust_gain"].get("mean") is not None]

    def signed(label: str, among: list[str]) -> list[float]:  # the column's values, negated when lower is better
        column = cols[label]
        return [-column["values"][s] if column["lower"] else column["values"][s] for s in among]

    def resampled(among: list[str], pick) -> list[float]:  # each source's mean gain over the seeds drawn
        return [sum(per_seed[s][k] for k in pick) / len(pick) for s in among]

    rho: dict[str, Any] = {}
    draws: dict[str, list[float | None]] = {}
    for label, column in cols.items():
        usable = [s for s in gained if column["values"].get(s) is not None]
        if not usable:
            continue
        rho[label] = spearman([sources[s]["robust_gain"]["mean"] for s in usable],
                              [column["values"][s] for s in usable], column["lower"])
        adjusted = signed(label, usable)
        draws[label] = [_rho(adjusted, resampled(usable, pick)) for pick in resamples]
        rho[label]["interval"] = _interval([d for d in draws[label] if d is not None])
    differences = []
    for a, b in itertools.combinations([c for c in rho if rho[c]["rho"] is not None], 2):
        # both ρ over the sources that have both values: ρ over different source sets do not compare
        common = [s for s in gained if cols[a]["values"].get(s) is not None and cols[b]["values"].get(s) is not None]
        adj = {c: signed(c, common) for c in (a, b)}
        mean_gains = [sources[s]["robust_gain"]["mean"] for s in common]
        ra, rb = _rho(adj[a], mean_gains), _rho(adj[b], mean_gains)
        if len(common) < 3 or ra is None or rb is None:
            continue
        paired = []
        for pick in resamples:
            gains = resampled(common, pick)
            x, y = _rho(adj[a], gains), _rho(adj[b], gains)
            if x is not None and y is not None:
                paired.append(x - y)
        interval = _interval(paired)
        told = interval["low"] is not None and (interval["low"] > 0 or interval["high"] < 0)
        differences.append({"a": a, "b": b, "difference": ra - rb, "sources": len(common), **interval,
                            "verdict": (f"{a} ranks better" if interval["low"] > 0 else f"{b} ranks better") if told
                            else "not told apart"})
    ranked = sorted((c for c in rho if rho[c]["rho"] is not None), key=lambda c: -rho[c]["rho"])
    best = ranked[0] if ranked and all(d["verdict"] == f"{ranked[0]} ranks better" for d in differences
                                       if ranked[0] in (d["a"], d["b"])) and len(ranked) > 1 else None
    header = ["source", "arm", *cols, "robust gain pp", "95% interval pp", "clean gain pp"]
    return {"header": header, "rows": [_row(source, entry, cols) for source, entry in sources.items()],
            "sources": sources, "spearman": rho, "rho_differences": differences, "best_ranking_metric": best,
            "seeds": seeds, "baseline": baseline, "plot": PLOT,
            "directions": {label: ("lower" if c["lower"] else "higher") for label, c in cols.items()}}


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}g}"


def _row(source: str, entry: dict[str, Any], cols: dict[str, dict[str, Any]]) -> list[str]:
    gain = entry["robust_gain"] or {}
    mean, low, high = gain.get("mean"), gain.get("low"), gain.get("high")
    interval = "–" if low is None or high is None else f"[{100 * low:+.1f}, {100 * high:+.1f}]"
    clean = entry["clean_gain"]
    cells = [c["notes"].get(source) or c["headline"].text(entry[label]) for label, c in cols.items()]
    return [source, entry["arm"], *cells,
            "–" if mean is None else f"{100 * mean:+.1f}", interval, "–" if clean is None else f"{100 * clean:+.1f}"]


def rho_rows(section: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of the Spearman table."""
    def span(r):
        i = r.get("interval") or {}
        return "–" if i.get("low") is None else f"[{i['low']:+.2f}, {i['high']:+.2f}]"

    rows = [[column, r["direction"], _fmt(r["rho"]), span(r), _fmt(r["p_value"]), r.get("p_method", "–"), str(r["n"])]
            for column, r in section["spearman"].items()]
    return ["metric", "better when", "sign-adjusted ρ vs robust gain", "95% interval (bootstrap over seeds)", "p-value",
            "p from", "sources"], rows


def plot(path: Path, section: dict[str, Any]) -> None:
    """Each metric (x) against the robust gain in pp (y, 95% interval as error bars)."""
    from dreamset.report.figures import png_figure

    directions = section.get("directions") or {}
    columns = [c for c in directions if any(e.get(c) is not None for e in section["sources"].values())]
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
                if entry.get(column) is None or gain.get("mean") is None:
                    continue
                y = 100 * gain["mean"]
                err = None
                if gain.get("low") is not None:
                    err = [[y - 100 * gain["low"]], [100 * gain["high"] - y]]
                ax.errorbar([entry[column]], [y], yerr=err, fmt="o", capsize=3)
                ax.annotate(source, (entry[column], y), fontsize=7, xytext=(3, 3), textcoords="offset points")
            r = section["spearman"].get(column, {})
            ax.axhline(0, color="grey", lw=0.8, ls=":")
            ax.set_title(f"{column} (ρ={_fmt(r.get('rho'), 2)}, {directions[column]} better)", fontsize=8)
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
    lines += [*sentences(section)]
    return "\n".join(lines)


def sentences(section: dict[str, Any]) -> list[str]:
    """What the ρ table allows one to say, generated: a metric ranks the sources better than another
    only where the bootstrap interval of the difference of their ρ excludes 0; significance only from
    the exact p-values."""
    out = []
    for d in section.get("rho_differences") or []:
        if {d["a"], d["b"]} != {"ARC", "FID"}:
            continue
        span = "–" if d.get("low") is None else f"[{d['low']:+.2f}, {d['high']:+.2f}]"
        if d["verdict"] == "not told apart":
            out.append(f"ARC and FID are not told apart at this scale: ρ(ARC) − ρ(FID) = {d['difference'] if d['a'] == 'ARC' else -d['difference']:+.2f}, "
                       f"95% bootstrap interval over seeds {span if d['a'] == 'ARC' else _negate(d)} contains 0.")
        else:
            out.append(f"{d['verdict'].split(' ')[0]} ranks the sources better than "
                       f"{'FID' if d['verdict'].startswith('ARC') else 'ARC'} (ρ(ARC) − ρ(FID) interval "
                       f"{span if d['a'] == 'ARC' else _negate(d)} excludes 0).")
    if not out:
        out.append("ARC and FID cannot both be ranked against the gain in this run (ρ undefined).")
    significant = [c for c, r in section["spearman"].items() if r.get("p_value") is not None and r["p_value"] < 0.05]
    out.append(f"Exact permutation p < 0.05 only for {', '.join(significant)}." if significant
               else "No ρ reaches p < 0.05 by the exact permutation test.")
    return out


def _negate(d: dict[str, Any]) -> str:
    return f"[{-d['high']:+.2f}, {-d['low']:+.2f}]"
