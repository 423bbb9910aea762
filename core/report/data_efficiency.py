"""The data-efficiency section: how many generated images an arm needs, and which sampler needs fewest.

A recipe with ``evaluate.data_efficiency: {full: ARM}`` trains arms that keep a ``fraction`` of one
generated pool (``arms.<name>.sampler.options.fraction``) with different samplers, all at the same
optimizer steps, and one arm (``full``) on the whole pool. For every such arm this section gives, from
the paired differences over seeds (:mod:`dreamset.report.differences`, 95% Student-t intervals):

* ``gain``: robust accuracy minus the baseline arm's (``report["comparisons"]``);
* ``vs_reference``: minus the ``reference_sampler``'s arm (default ``sampler:uniform``) at the same
  fraction — does a smarter sampler beat keeping a uniform subset?
* ``vs_full``: minus the full-pool arm, with an **equivalence** verdict: "equivalent" only when the whole
  95% interval lies inside ``[−margin, +margin]`` (``evaluate.equivalence_margin``, default 0.01 = 1
  point; two one-sided tests), else "not shown equivalent";
* cost: the sampler's scoring time (``selections.<arm>.<seed>.wall_seconds``, mean over seeds) beside
  the arm's training wall time.

Per sampler, its **data efficiency** is the smallest fraction shown equivalent to the full pool (``None``
when none is). ``data_efficiency.png`` draws the robust gain over the baseline against the fraction, one
line per sampler with its 95% band, the full pool as a band across. report.json: ``data_efficiency``.
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

PLOT = "data_efficiency.png"
DEFAULT_MARGIN = 0.01


def _sampler_key(ref) -> str:
    key = ref.key
    return key if ":" in key else f"sampler:{key}"


def _robust(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    d = (entry or {}).get("robust_accuracy")
    return {k: d.get(k) for k in ("mean", "low", "high", "n", "verdict", "equivalence")} if d else None


def _mean_seconds(records: dict[str, Any] | None) -> float | None:
    values = [r.get("wall_seconds") for r in (records or {}).values() if isinstance(r, dict)]
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.fmean(values) if values else None


def data_efficiency(recipe, report: dict[str, Any], per_seed: dict[Any, dict[str, dict[str, Any]]]) -> dict[str, Any] | None:
    """The section described in the module docstring, or ``None`` without ``evaluate.data_efficiency``."""
    from dreamset.report.differences import compare_arms

    config = recipe.evaluate.data_efficiency
    if config is None:
        return None
    margin = recipe.evaluate.equivalence_margin or DEFAULT_MARGIN
    baseline = recipe.baseline_arm()
    arms = report.get("arms") or {}
    swept = {name: (_sampler_key(arm.sampler), float(arm.sampler.options["fraction"])) for name, arm in recipe.arms.items()
             if arm.sampler is not None and "fraction" in (arm.sampler.options or {}) and name != config.full}
    by_key = {(key, fraction): name for name, (key, fraction) in swept.items()}
    points = []
    for name, (key, fraction) in swept.items():
        reference = by_key.get((config.reference_sampler, fraction))
        training = (arms.get(name) or {}).get("training") or {}
        points.append({
            "arm": name, "sampler": key, "fraction": fraction,
            "gain": _robust((report.get("comparisons") or {}).get(name)),
            "vs_reference": _robust(compare_arms(per_seed, name, reference)) if reference and reference != name else None,
            "vs_full": _robust(compare_arms(per_seed, name, config.full, margin=margin)),
            "sampler_seconds": _mean_seconds((report.get("selections") or {}).get(name)),
            "train_seconds": training.get("wall_seconds"),
        })
    order = list(dict.fromkeys(key for key, _ in swept.values()))  # the recipe's order of samplers
    points.sort(key=lambda p: (order.index(p["sampler"]), p["fraction"]))
    efficiency = {}
    for key in dict.fromkeys(p["sampler"] for p in points):
        shown = [p["fraction"] for p in points if p["sampler"] == key and (p["vs_full"] or {}).get("equivalence") == "equivalent"]
        efficiency[key] = min(shown) if shown else None
    full_training = (arms.get(config.full) or {}).get("training") or {}
    return {"baseline": baseline, "full": config.full, "reference_sampler": config.reference_sampler, "margin": margin,
            "full_gain": _robust((report.get("comparisons") or {}).get(config.full)),
            "full_train_seconds": full_training.get("wall_seconds"), "points": points, "efficiency": efficiency, "plot": PLOT}


def plot(path: Path, section: dict[str, Any]) -> None:
    """Robust gain (pp) against the kept fraction, one line and 95% band per sampler; the full pool as a band."""
    from dreamset.report.figures import png_figure

    with png_figure(path, 1, 1, figsize=(6, 4)) as (_, ax):
        full = section.get("full_gain") or {}
        if full.get("mean") is not None:
            ax.axhline(100 * full["mean"], color="black", lw=1, label=f"full pool ({section['full']})")
            if full.get("low") is not None:
                ax.axhspan(100 * full["low"], 100 * full["high"], color="grey", alpha=0.2)
        for i, key in enumerate(dict.fromkeys(p["sampler"] for p in section["points"])):
            mine = [p for p in section["points"] if p["sampler"] == key and (p["gain"] or {}).get("mean") is not None]
            xs = [p["fraction"] for p in mine]
            ax.plot(xs, [100 * p["gain"]["mean"] for p in mine], "o-", color=f"C{i}", label=key.split(":", 1)[-1])
            banded = [p for p in mine if p["gain"].get("low") is not None]
            if banded:
                ax.fill_between([p["fraction"] for p in banded], [100 * p["gain"]["low"] for p in banded],
                                [100 * p["gain"]["high"] for p in banded], color=f"C{i}", alpha=0.15)
        ax.axhline(0, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("fraction of the generated pool kept")
        ax.set_ylabel(f"robust gain over {section['baseline']} (pp)")
        ax.legend(fontsize=7)


def add_data_efficiency(run_dir: Path, recipe, report: dict[str, Any], per_seed) -> None:
    """Put ``data_efficiency`` into ``report`` and draw its plot, when the recipe declares a sweep."""
    section = data_efficiency(recipe, report, per_seed)
    if section is None:
        return
    plot(Path(run_dir) / PLOT, section)
    report["data_efficiency"] = section


def _cell(d: dict[str, Any] | None, key: str = "verdict") -> str:
    if not d or d.get("mean") is None:
        return "–"
    span = f" [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]" if d.get("low") is not None else " (one seed)"
    return f"{100 * d['mean']:+.1f}{span} {d.get(key) or ''}".rstrip()


def rows(section: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """``(header, rows)`` of the sweep table (points in pp; seconds of scoring and training)."""
    ref = section["reference_sampler"].split(":", 1)[-1]
    header = ["sampler", "fraction kept", f"robust gain over {section['baseline']} pp", f"− {ref} at the same fraction pp",
              f"− full pool pp (equivalence within ±{100 * section['margin']:.0f})", "scoring s", "training s"]

    def seconds(v):
        return "–" if v is None else f"{v:.1f}"

    out = [[p["sampler"].split(":", 1)[-1], f"{p['fraction']:g}", _cell(p["gain"]), _cell(p["vs_reference"]),
            _cell(p["vs_full"], "equivalence"), seconds(p["sampler_seconds"]), seconds(p["train_seconds"])]
           for p in section["points"]]
    out.append(["(full pool)", "1", _cell(section.get("full_gain")), "–", "–", "–", seconds(section.get("full_train_seconds"))])
    return header, out


def efficiency_lines(section: dict[str, Any]) -> list[str]:
    """One generated sentence per sampler: its data efficiency, or that no fraction was shown equivalent."""
    margin = f"±{100 * section['margin']:.0f} point{'s' if section['margin'] != 0.01 else ''}"
    return [f"`{key.split(':', 1)[-1]}`: " + (f"the smallest fraction shown equivalent to the full pool (within {margin}) is {frac:g}."
                                              if frac is not None else
                                              f"no fraction is shown equivalent to the full pool (within {margin}).")
            for key, frac in section["efficiency"].items()]
