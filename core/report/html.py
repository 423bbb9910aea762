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

#: report.json keys with a place of their own on the page; any other key gets a generic section
KNOWN_KEYS = {"recipe", "arms", "comparisons", "pair_comparisons", "notes", "evaluation", "metrics", "timings", "seeds", "device",
              "stages", "versions", "warnings", "components", "generator_table"}

#: metric result keys that say what the metric found, per group; everything else numeric is
#: bookkeeping (sample counts, feature sizes, settings) and folds away
GROUPS = {
    "fidelity": {"fid": ["fid"], "kid": ["kid_mean"], "prdc": ["precision", "density"]},
    "diversity": {"prdc": ["recall", "coverage"]},
    "discriminability": {"arc": ["arc"]},
    "label quality": {"label_agreement": ["agreement", "mean_confidence", "mean_label_probability"]},
    "shift": {"effective_robustness": None},  # None: every numeric key is a result
}
#: shares, shown as percentages (the unit of every accuracy on the page)
PERCENT_KEYS = {"precision", "recall", "coverage", "agreement", "mean_confidence", "mean_label_probability", "arc"}
#: what each headline quantity means, shown beside its value
EXPLAIN = {
    "fid": "Fréchet distance of features; lower = closer to real",
    "kid_mean": "kernel inception distance (unbiased); lower = closer",
    "precision": "synthetic samples inside the real manifold",
    "density": "how densely synthetic samples sit among real neighbours (1 ≈ real)",
    "recall": "real samples covered by the synthetic manifold",
    "coverage": "real neighbourhoods that hold a synthetic sample",
    "arc": "area under a robust real-vs-synthetic discriminator's accuracy curve; lower = harder to tell apart",
    "agreement": "synthetic labels the reference classifier agrees with",
    "mean_confidence": "mean top-class probability of the reference classifier",
    "mean_label_probability": "mean probability the reference classifier gives the intended label",
}
FEATURE_NOTE = {"reference": "reference-CNN features (not Inception: not comparable with published FID)"}


# -- number formatting --------------------------------------------------------------------------------

def sig(value: Any, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits (integers as they are); ``–`` for missing/NaN."""
    if isinstance(value, bool) or value is None:
        return "–" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return "–"
        if value == 0:
            return "0"
        text = f"{value:.{digits}g}"
        return text if "e" not in text else f"{value:.2e}"
    return str(value)


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


def metric_groups(report: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(groups, bookkeeping)``: results grouped by what they say, and every other scalar."""
    metrics = _per_source_flat(report)
    claimed: set[tuple[str, str]] = set()
    groups = []
    for group, members in GROUPS.items():
        rows = []
        for metric, keys in members.items():
            for shown_as, result in metrics.get(metric, []):
                rows += _group_rows(shown_as, metric, keys, result, claimed)
        if rows:
            groups.append({"title": group, "rows": rows})
    other, bookkeeping = [], []
    for metric, results in metrics.items():
        known = any(metric in members for members in GROUPS.values())
        for shown_as, result in results:
            items = result.items() if isinstance(result, dict) else [("value", result)]
            for key, value in items:
                if (shown_as, key) in claimed or key in ("tables", "warnings"):
                    continue
                if _is_number(value) or (isinstance(value, str) and len(value) < 80):
                    row = {"name": f"{shown_as}.{key}", "value": sig(value)}
                    # a metric the page does not know: its numbers are shown, its settings folded
                    (other if not known and _is_number(value) and not _bookkeeping_name(key) else bookkeeping).append(row)
    if other:
        groups.append({"title": "other metrics", "rows": [{**r, "explain": ""} for r in other]})
    return groups, bookkeeping


def _per_source_flat(report: dict[str, Any]) -> dict[str, list[tuple[str, Any]]]:
    """metric -> ``[(name shown, result)]``: one result, or one per named synthetic source
    (``metrics.<metric>.<source>``, shown as ``metric[source]``)."""
    from dreamset.report.tables import report_source_names

    sources = report_source_names(report)
    out: dict[str, list[tuple[str, Any]]] = {}
    for metric, result in (report.get("metrics") or {}).items():
        parts = [(f"{metric}[{k}]", v) for k, v in result.items() if k in sources and isinstance(v, dict)] \
            if isinstance(result, dict) else []
        out[metric] = parts or [(metric, result)]
    return out


def _group_rows(shown_as: str, metric: str, keys, result, claimed: set) -> list[dict[str, Any]]:
    """The rows of one metric result in a group (``keys``: the result keys that are findings)."""
    rows: list[dict[str, Any]] = []
    if not isinstance(result, dict):
        return rows
    for key in keys if keys is not None else [k for k, v in result.items() if _is_number(v)]:
        value = result.get(key)
        if not _is_number(value):
            continue
        claimed.add((shown_as, key))
        label = f"{shown_as}: {key}" if key != metric else shown_as
        if metric in ("fid", "kid") and result.get("extractor") in FEATURE_NOTE:
            label += f" — {FEATURE_NOTE[result['extractor']]}"
        if key == "kid_mean" and _is_number(result.get("kid_std")):
            shown = f"{sig(value)} ± {sig(result['kid_std'])}"
            claimed.add((shown_as, "kid_std"))
        elif key in PERCENT_KEYS:
            shown = pct(value)
        elif metric == "effective_robustness":
            shown = f"{100 * value:+.2f} pp"
        else:
            shown = sig(value)
        rows.append({"name": label, "value": shown, "explain": EXPLAIN.get(key, "")})
    return rows


def _bookkeeping_name(key: str) -> bool:
    return key.startswith(("n_", "num_")) or key.endswith(("_dim", "_size", "_seed")) or key in ("k", "seed")


def _cell(value: Any) -> str:
    return sig(value) if _is_number(value) else str(value)


def metric_tables(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every metric's ``tables``, numbers rounded; share columns (precision, recall, ...) in % like
    the rest of the page."""
    out = []
    for name, result in (report.get("metrics") or {}).items():
        for title, table in ((result.get("tables") if isinstance(result, dict) else None) or {}).items():
            header = list(table.get("header", []))
            shares = {i for i, h in enumerate(header) if str(h) in PERCENT_KEYS}
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
        "notes": [str(n) for n in report.get("notes") or []],
        "warnings": warnings(report),
        "grids": grids, "figures": figures,
        "curves": data_uri(curves) if curves else None,
        "groups": groups, "bookkeeping": bookkeeping,
        "arms_table": {"header": arms_header, "rows": arms_rows},
        "comparisons": {"header": c_header, "rows": c_rows},
        "tables": generator_tables(report) + metric_tables(report),
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
