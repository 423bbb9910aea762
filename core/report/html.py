"""``report.html``: a researcher's run page, rendered from ``report.json`` (and the PNGs beside it)
with the jinja2 template ``dreamset/report/templates/report.html``.

Top to bottom: the headline (per arm clean and robust accuracy with the attack and ε named, the
paired gain over the baseline arm with its 95% interval, what each arm's training cost), notes and
warnings, sample grids (upscaled nearest-neighbour, one labelled row per class), training curves,
metrics grouped by what they say (fidelity, diversity, discriminability, label quality, shift) with
bookkeeping folded away, the other figures full width, per-metric tables, stages and timings, the
resolved recipe, the versions of dreamset and of every plugin distribution used, and — generically —
any other section of report.json. Self-contained (images inline, no external URL), readable at
400 px wide.

The view model is built here (:func:`page_model`); the template only lays it out.
"""
from __future__ import annotations

import base64
import io
import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

from dreamset.report.tables import sig

#: report.json keys with a place of their own on the page; any other key gets a generic section
KNOWN_KEYS = {"recipe", "arms", "comparisons", "pair_comparisons", "notes", "wall_notes", "evaluation", "metrics", "timings", "seeds", "device",
              "stages", "versions", "warnings", "components", "generator_table", "data_efficiency"}

#: how metrics are grouped, labelled and formatted is declared on each metric class (the headline
#: contract, :mod:`dreamset.contracts.headline`, read through :mod:`dreamset.report.headlines`)

# -- number formatting --------------------------------------------------------------------------------

def pct(value: Any, std: Any = None) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        return "–"
    text = f"{100 * value:.1f}%"
    if isinstance(std, (int, float)) and std:
        text += f" ± {100 * std:.1f}"
    return text


def radius(eps: Any) -> str:
    """``0.0313725`` -> ``8/255``; other radii to 3 significant digits."""
    if isinstance(eps, str):
        return eps
    if not isinstance(eps, (int, float)):
        return "?"
    frac = Fraction(float(eps)).limit_denominator(255)
    if frac.denominator == 255 and abs(float(frac) - eps) < 1e-9:
        return f"{frac.numerator}/255"
    return sig(float(eps))


def attack_name(ref: dict[str, Any]) -> str:
    """``{"key": "pgd", "options": {"eps": 8/255, "steps": 10}}`` -> ``pgd-10 L∞ ε=8/255``."""
    key = str(ref.get("key", "?")).split(":", 1)[-1]
    options = ref.get("options") or {}
    steps = options.get("steps")
    norm = {"linf": "L∞", "l2": "L2"}.get(str(options.get("norm", "linf")), str(options.get("norm")))
    eps = options.get("eps", 8 / 255 if "eps" not in options else None)
    return f"{key}{f'-{steps}' if steps else ''} {norm} ε={radius(eps)}"


# -- images ---------------------------------------------------------------------------------------

def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def grid_rows(path: Path) -> list[dict[str, str]] | None:
    """The sample grid at ``path`` cut into one upscaled (nearest-neighbour) image per class row,
    with the class names from its sidecar ``<grid>.json`` (written with the grid); ``None`` without
    a sidecar (the grid is then shown whole)."""
    sidecar = path.with_suffix(".json")
    try:
        layout = json.loads(sidecar.read_text())
        from PIL import Image

        image = Image.open(path)
        image.load()
    except (OSError, ValueError):
        return None
    h, pad, names = int(layout["cell"][0]), int(layout["pad"]), list(layout["rows"])
    scale = max(1, math.ceil(48 / max(h, 1)))  # each sample at least 48 px tall
    rows = []
    for i, name in enumerate(names):
        top = pad + i * (h + pad)
        if top + h > image.height:
            break
        crop = image.crop((0, top - pad, image.width, top + h + pad))
        crop = crop.resize((crop.width * scale, crop.height * scale), Image.NEAREST)
        buffer = io.BytesIO()
        crop.save(buffer, format="PNG")
        rows.append({"label": str(name), "src": data_uri(buffer.getvalue())})
    return rows


def curves_png(report: dict[str, Any]) -> bytes | None:
    """Training curves of every arm (mean over seeds per epoch): loss, training accuracy and the
    periodic validation accuracies (clean solid, robust dashed); ``None`` without curves."""
    series: dict[str, dict[str, dict[int, list[float]]]] = {}
    for arm, entry in (report.get("arms") or {}).items():
        for run in (entry.get("per_seed") or {}).values():
            for point in ((run.get("training") or {}).get("curves") or []):
                for key in ("loss", "train_accuracy", "val_clean_accuracy", "val_robust_accuracy"):
                    value = point.get(key)
                    if isinstance(value, (int, float)) and not math.isnan(value):
                        series.setdefault(arm, {}).setdefault(key, {}).setdefault(int(point["epoch"]) + 1, []).append(value)
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    try:
        panels = [("loss", "training loss", [("loss", "-")]),
                  ("train accuracy %", "training accuracy (batches trained on)", [("train_accuracy", "-")]),
                  ("validation accuracy %", "validation: clean (solid), robust (dashed)",
                   [("val_clean_accuracy", "-"), ("val_robust_accuracy", "--")])]
        for ax, (ylabel, title, keys) in zip(axes, panels):
            for i, (arm, by_key) in enumerate(series.items()):
                colour = f"C{i % 10}"
                for key, style in keys:
                    points = sorted((by_key.get(key) or {}).items())
                    if points:
                        scale = 1 if key == "loss" else 100
                        ax.plot([e for e, _ in points], [scale * sum(v) / len(v) for _, v in points], style,
                                color=colour, marker="o", markersize=3, label=arm if style == "-" else None)
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("epoch")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
    finally:
        plt.close(fig)
    return buffer.getvalue()


# -- the view model -----------------------------------------------------------------------------------

def headline(report: dict[str, Any]) -> dict[str, Any]:
    """Per arm: clean and robust accuracy, the paired gain over the baseline (with interval and
    verdict) and the training cost; plus how robust accuracy was measured."""
    from dreamset.report.tables import arm_steps

    evaluation = report.get("evaluation") or {}
    attacks = [attack_name(a) for a in evaluation.get("attackers") or []]
    comparisons = report.get("comparisons") or {}
    rows = []
    for name, arm in (report.get("arms") or {}).items():
        training = arm.get("training") or {}
        seen = training.get("images_seen") or {}
        gains = {}
        entry = comparisons.get(name) or {}
        for key in ("clean_accuracy", "robust_accuracy"):
            d = entry.get(key)
            if d:
                interval = (f"[{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]" if d.get("low") is not None else "one seed: no interval")
                gains[key] = {"mean": f"{100 * d['mean']:+.1f} pp", "interval": interval,
                              "verdict": d.get("verdict", ""), "shown": d.get("verdict") not in (None, "not shown")
                              and d.get("low") is not None}
        rows.append({
            "arm": name, "baseline": entry.get("baseline"),
            "clean": pct(arm.get("clean_accuracy"), arm.get("clean_accuracy_std")),
            "robust": pct(arm.get("robust_accuracy"), arm.get("robust_accuracy_std")),
            "gains": gains,
            "steps": sig(int(round(steps))) if (steps := arm_steps(arm)) is not None else "–",
            "images": (f"{sig(int(round(seen['real'])))} real + {sig(int(round(seen['synthetic'])))} synthetic"
                       if isinstance(seen.get("real"), (int, float)) else sig(seen.get("total"))),
            "attack_passes": sig(int(round(training["attack_forward_backward_passes"])))
            if isinstance(training.get("attack_forward_backward_passes"), (int, float)) else "–",
            "wall": f"{training['wall_seconds']:.0f} s" if isinstance(training.get("wall_seconds"), (int, float)) else "–",
        })
    n = evaluation.get("subset_size")
    return {"rows": rows, "attacks": attacks, "n_robust": n, "test_size": evaluation.get("test_size"),
            "seeds": report.get("seeds") or [], "definition": evaluation.get("robust_accuracy")}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def metric_groups(report: dict[str, Any], classes: dict[str, type] | None = None
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(groups, bookkeeping)``: each metric's declared headline values grouped by what they say
    (:func:`dreamset.report.headlines.headline_values`; an undeclared metric's numbers under "other
    metrics"), and every other scalar folded away."""
    from dreamset.contracts.headline import GROUPS
    from dreamset.report.headlines import _parts, headline_values

    values = headline_values(report, classes)
    claimed = {(v.shown_as, v.key) for v in values}
    claimed |= {(v.shown_as, v.headline.spread) for v in values if v.headline and v.headline.spread}
    groups = []
    for group in GROUPS:
        rows = []
        for v in (v for v in values if v.group == group):
            name = v.label if v.headline else f"{v.shown_as}.{v.key}"
            if v.feature_note:
                name += f" — {v.feature_note}"
            shown = v.text + (f" {v.interval_text}" if v.interval_text else "")
            rows.append({"name": name, "value": shown, "explain": v.headline.explain if v.headline else ""})
        if rows:
            groups.append({"title": "other metrics" if group == "other" else group, "rows": rows})
    bookkeeping = []
    for metric, result in (report.get("metrics") or {}).items():
        for shown_as, part in _parts(report, metric, result):
            for key, value in part.items():
                if (shown_as, key) in claimed or key in ("tables", "warnings"):
                    continue
                if _is_number(value) or (isinstance(value, str) and len(value) < 80):
                    bookkeeping.append({"name": f"{shown_as}.{key}", "value": sig(value)})
    return groups, bookkeeping


def percent_columns() -> set[str]:
    """Result keys every declaring metric shows as a percentage (its headline's ``unit == "%"``): the
    share columns of the per-metric tables."""
    from dreamset.report.headlines import metric_classes

    return {h.key for cls in metric_classes().values() for h in getattr(cls, "headline", ()) if h.unit == "%"}


def _cell(value: Any) -> str:
    return sig(value) if _is_number(value) else str(value)


def metric_tables(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every metric's ``tables``, numbers rounded; share columns (precision, recall, ...) in % like
    the rest of the page."""
    out, percent_keys = [], percent_columns()
    for name, result in (report.get("metrics") or {}).items():
        for title, table in ((result.get("tables") if isinstance(result, dict) else None) or {}).items():
            header = list(table.get("header", []))
            shares = {i for i, h in enumerate(header) if str(h) in percent_keys}
            rows = [[f"{100 * c:.1f}" if i in shares and isinstance(c, float) else _cell(c) for i, c in enumerate(row)]
                    for row in table.get("rows", [])]
            out.append({"title": f"{name}: {title}", "rows": rows,
                        "header": [f"{h} %" if i in shares else h for i, h in enumerate(header)]})
    return out


def generator_tables(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The generator table and its Spearman ρ (:mod:`dreamset.report.generator_table`), when the run has one."""
    section = report.get("generator_table")
    if not section:
        return []
    from dreamset.report.generator_table import rho_rows

    header, rows = rho_rows(section)
    return [{"title": "generators: metrics and robust gain per synthetic source", "header": section["header"],
             "rows": section["rows"]},
            {"title": "generators: Spearman ρ between each metric and the robust gain", "header": header, "rows": rows}]


def data_efficiency_tables(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The data-efficiency sweep (:mod:`dreamset.report.data_efficiency`), when the run has one."""
    section = report.get("data_efficiency")
    if not section:
        return []
    from dreamset.report.data_efficiency import efficiency_lines, rows

    header, body = rows(section)
    return [{"title": "data efficiency: robust gain per sampler and fraction of the pool kept; "
                      + " ".join(line.replace("`", "") for line in efficiency_lines(section)), "header": header, "rows": body}]


def warnings(report: dict[str, Any]) -> list[str]:
    """report.json's ``warnings`` (the metrics' lines gathered by the pipeline); a report written
    before that key existed gets them gathered here."""
    from dreamset.report.tables import metric_warnings, report_source_names

    if "warnings" in report:
        return [str(n) for n in report["warnings"] or []]
    return metric_warnings(report.get("metrics") or {}, report_source_names(report))


def generic_section(value: Any) -> dict[str, Any]:
    """Any other report.json section: a table for a mapping of scalars or a list of flat records,
    else its JSON."""
    if isinstance(value, dict) and value and all(not isinstance(v, (dict, list)) for v in value.values()):
        return {"header": ["key", "value"], "rows": [[str(k), _cell(v)] for k, v in value.items()]}
    if isinstance(value, dict) and value and all(isinstance(v, dict) and all(not isinstance(x, (dict, list)) for x in v.values())
                                                 for v in value.values()):
        columns = list(dict.fromkeys(k for v in value.values() for k in v))
        return {"header": [""] + columns, "rows": [[str(k)] + [_cell(v.get(c, "")) for c in columns] for k, v in value.items()]}
    if isinstance(value, list) and value and all(isinstance(v, dict) and all(not isinstance(x, (dict, list)) for x in v.values())
                                                 for v in value):
        columns = list(dict.fromkeys(k for v in value for k in v))
        return {"header": columns, "rows": [[_cell(v.get(c, "")) for c in columns] for v in value]}
    return {"json": json.dumps(value, indent=2, default=str)}


def page_model(run_dir: Path | None, report: dict[str, Any]) -> dict[str, Any]:
    import yaml

    from dreamset.report.tables import arms_table_rows, comparison_rows

    run_dir = Path(run_dir) if run_dir is not None else None
    pngs = sorted(run_dir.glob("*.png")) if run_dir is not None else []
    grids, figures = [], []
    for path in pngs:
        title = path.stem.replace("_", " ")
        if path.stem.startswith("samples_"):
            rows = grid_rows(path)
            grids.append({"title": title.replace("samples ", "") + " samples", "rows": rows,
                          "src": None if rows else data_uri(path.read_bytes())})
        else:
            figures.append({"title": title, "src": data_uri(path.read_bytes())})
    curves = curves_png(report)
    groups, bookkeeping = metric_groups(report)
    arms_header, arms_rows = arms_table_rows(report)
    c_header, c_rows = comparison_rows(report)
    timings = report.get("timings") or {}
    stages = report.get("stages") or {}
    versions = dict(report.get("versions") or {})
    components = report.get("components") or versions.pop("components", {}) or {}
    recipe = report.get("recipe") or {}
    return {
        "name": str(recipe.get("name", "")), "description": str(recipe.get("description", "")).strip(),
        "device": report.get("device"), "seeds": report.get("seeds") or [],
        "headline": headline(report),
        "notes": [str(n) for n in (report.get("notes") or []) + (report.get("wall_notes") or [])],
        "warnings": warnings(report),
        "grids": grids, "figures": figures,
        "curves": data_uri(curves) if curves else None,
        "groups": groups, "bookkeeping": bookkeeping,
        "arms_table": {"header": arms_header, "rows": arms_rows},
        "comparisons": {"header": c_header, "rows": c_rows},
        "tables": data_efficiency_tables(report) + generator_tables(report) + metric_tables(report),
        "stages": [{"name": n, "seconds": f"{timings.get(n, 0.0):.1f}", "result": " | ".join(stages.get(n, []))}
                   for n in dict.fromkeys([*timings, *stages])],
        "recipe_yaml": yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True) if recipe else "",
        "versions": [[k, str(v)] for k, v in versions.items()],
        "components": [[str(v.get("key", k)) + (f" ({k})" if "key" in v else ""), str(v.get("distribution")), str(v.get("version"))]
                       for k, v in components.items() if isinstance(v, dict)],
        "extra": [{"title": key, **generic_section(value)} for key, value in report.items() if key not in KNOWN_KEYS],
    }


def _environment():
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("dreamset.report", "templates"),
                              autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)


def render_html(run_dir: Path | None, report: dict[str, Any]) -> str:
    """The whole page."""
    return _environment().get_template("report.html").render(page=page_model(run_dir, report))


def render_headline(report: dict[str, Any]) -> str:
    """Only the headline block (what a notebook shows for a :class:`dreamset.api.RunReport`)."""
    template = _environment().get_template("report.html")
    return "".join(template.blocks["headline"](template.new_context({"page": {"headline": headline(report),
                                                                                "name": (report.get("recipe") or {}).get("name", "")}})))
