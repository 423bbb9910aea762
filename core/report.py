"""Reports: ``report.json`` (the contract), ``report.html`` (self-contained, images inline), PNG
plots and sample grids beside them, and the terminal summary table.

``report.json`` keys: ``recipe`` (resolved), ``arms`` (arm -> clean/robust accuracy mean, ``*_std``,
shifted accuracies, ``training`` — optimizer steps, images seen, attack passes, wall time — and
``per_seed``), ``comparisons`` (arm -> paired differences to the baseline arm with 95% intervals and
verdicts, :mod:`dreamset.differences`), ``notes`` (loud caveats, e.g. arms not compute-matched),
``evaluation`` (the evaluation subset and how robust accuracy is defined), ``metrics`` (metric name
-> result), ``components`` (recipe field -> the component's key, plugin, distribution and version,
:mod:`dreamset.provenance`), ``selections`` (arm -> seed -> how many synthetic samples the sampler
kept and its ``Selection.info``), ``timings`` (seconds per stage), ``seeds``, ``device``.
"""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

from dreamset.atomic import atomic_write_text

ACCURACY_KEYS = ("clean_accuracy", "robust_accuracy")


def _pct(value: Any, std: Any = None) -> str:
    if not isinstance(value, (int, float)) or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = f"{100 * value:.1f}"
    if isinstance(std, (int, float)) and std:
        text += f" ± {100 * std:.1f}"
    return text


def _shift_labels(arms: dict[str, Any]) -> list[str]:
    labels: list[str] = []
    for arm in arms.values():
        for label in arm.get("shifted", {}) or {}:
            if label not in labels:
                labels.append(label)
    return labels


def arms_table_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (percentages, mean ± std over seeds) of the arms table."""
    arms = report.get("arms", {})
    shifts = _shift_labels(arms)
    header = (["arm", "clean acc %", "robust acc %"] + [f"{s} %" for s in shifts]
              + [f"{s} robust %" for s in shifts if any(s in (a.get("shifted_robust") or {}) for a in arms.values())]
              + ["optimizer steps", "images seen (real / synthetic)"])
    rows = []
    for name, arm in arms.items():
        row = [name, _pct(arm.get("clean_accuracy"), arm.get("clean_accuracy_std")),
               _pct(arm.get("robust_accuracy"), arm.get("robust_accuracy_std"))]
        shifted, shifted_std = arm.get("shifted", {}) or {}, arm.get("shifted_std", {}) or {}
        row += [_pct(shifted.get(s), shifted_std.get(s)) for s in shifts]
        robust, robust_std = arm.get("shifted_robust", {}) or {}, arm.get("shifted_robust_std", {}) or {}
        row += [_pct(robust.get(s), robust_std.get(s)) for s in shifts if any(s in (a.get("shifted_robust") or {}) for a in arms.values())]
        seen = (arm.get("training") or {}).get("images_seen") or {}
        row += [_steps(arm), f"{seen['real']:,.0f} / {seen['synthetic']:,.0f}" if seen.get("real") is not None else "–"]
        rows.append(row)
    return header, rows


def _steps(arm: dict[str, Any]) -> str:
    steps = (arm.get("training") or {}).get("optimizer_steps")
    return f"{int(round(steps))}" if isinstance(steps, (int, float)) else "–"


def compact_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The terminal's narrow table: clean, robust, the mean over shifts of shifted accuracies, and
    the optimizer steps each arm trained for."""
    header = ["arm", "clean %", "robust %", "shifted %", "shifted robust %", "steps"]
    rows = []
    for name, arm in report.get("arms", {}).items():
        def mean(values):
            values = [v for v in (values or {}).values() if isinstance(v, (int, float))]
            return sum(values) / len(values) if values else None
        rows.append([name, _pct(arm.get("clean_accuracy"), arm.get("clean_accuracy_std")),
                     _pct(arm.get("robust_accuracy"), arm.get("robust_accuracy_std")),
                     _pct(mean(arm.get("shifted"))), _pct(mean(arm.get("shifted_robust"))), _steps(arm)])
    return header, rows


COMPARISON_LABELS = {"clean_accuracy": "clean", "robust_accuracy": "robust",
                     "shifted_mean": "shifted", "shifted_robust_mean": "shifted robust",
                     "generated_mean": "generated test sets"}


def comparison_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the paired-differences table, one row per arm and quantity: the mean
    per-seed difference to the baseline arm in percentage points, its 95% interval and the verdict
    (``not shown`` when the interval contains 0 or there is a single seed)."""
    header = ["arm − baseline", "quantity", "difference pp", "95% interval", "verdict"]
    rows = []
    for arm, entry in (report.get("comparisons") or {}).items():
        for name, label in COMPARISON_LABELS.items():
            d = entry.get(name)
            if d is None:
                continue
            interval = "–" if d.get("low") is None else f"[{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"
            rows.append([f"{arm} − {entry['baseline']}", label, f"{100 * d['mean']:+.1f}", interval,
                         d["verdict"] if d.get("low") is not None else "not shown (1 seed)"])
    return header, rows


def _scalar_metrics(report: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for name, result in (report.get("metrics") or {}).items():
        if isinstance(result, dict):
            for key, value in result.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    out.append((f"{name}.{key}", f"{value:.4g}"))
                elif isinstance(value, str) and len(value) < 60:
                    out.append((f"{name}.{key}", value))
        elif isinstance(result, (int, float)):
            out.append((name, f"{result:.4g}"))
    return out


def print_summary(report: dict[str, Any], console) -> None:
    """The arms table and scalar metrics as rich tables."""
    from rich.markup import escape
    from rich.table import Table

    header, rows = compact_rows(report)
    seeds = report.get("seeds", [])
    table = Table(title=f"arms (mean ± std over {len(seeds)} seed{'s' if len(seeds) != 1 else ''})")
    for column in header:
        table.add_column(column, justify="left" if column == "arm" else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    c_header, c_rows = comparison_rows(report)
    if c_rows:
        ctable = Table(title="paired differences over seeds (mean, 95% t-interval)")
        for column in c_header:
            ctable.add_column(column, justify="right" if column in ("difference pp", "95% interval") else "left")
        for row in c_rows:
            ctable.add_row(*row)
        console.print(ctable)
    for note in report.get("notes") or []:
        console.print(f"[bold yellow]note:[/bold yellow] {escape(note)}")
    metrics = _scalar_metrics(report)
    if metrics:
        mtable = Table(title="metrics")
        mtable.add_column("metric", overflow="fold")  # long keys wrap, never get cut off
        mtable.add_column("value", justify="right", overflow="fold")
        for key, value in metrics:
            mtable.add_row(escape(key), escape(value))  # "effective_robustness[real]" is not rich markup
        console.print(mtable)
    timings = report.get("timings") or {}
    if timings:
        console.print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))


def _img_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(alt)}</figcaption></figure>'


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(run_dir: Path, report: dict[str, Any]) -> str:
    """A self-contained page: arms table, metrics, every PNG of the run folder inline, timings."""
    header, rows = arms_table_rows(report)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>dreamset report: {html.escape(str(report.get('recipe', {}).get('name', '')))}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #bbb;padding:.3em .6em;text-align:right}td:first-child,th:first-child{text-align:left}"
        "figure{display:inline-block;margin:.5em}img{image-rendering:pixelated;max-width:32em}"
        ".note{background:#fff3cd;border:1px solid #e0b000;padding:.5em}</style></head><body>",
        f"<h1>dreamset report: {html.escape(str(report.get('recipe', {}).get('name', '')))}</h1>",
        f"<p>seeds {html.escape(str(report.get('seeds')))} · device {html.escape(str(report.get('device')))}</p>",
        "<h2>Arms</h2>",
    ]
    parts += [f"<p class='note'><strong>Note:</strong> {html.escape(note)}</p>" for note in report.get("notes") or []]
    parts.append(_table(header, rows))
    c_header, c_rows = comparison_rows(report)
    if c_rows:
        parts += ["<h2>Paired differences over seeds</h2>",
                  "<p>Mean of the per-seed differences to the baseline arm, with its 95% Student-t interval; "
                  "<em>not shown</em> means the interval contains 0 (or there is one seed).</p>", _table(c_header, c_rows)]
    metrics = _scalar_metrics(report)
    if metrics:
        parts += ["<h2>Metrics</h2>", _table(["metric", "value"], [list(m) for m in metrics])]
    for name, result in (report.get("metrics") or {}).items():
        tables = result.get("tables") if isinstance(result, dict) else None
        for title, table in (tables or {}).items():
            parts += [f"<h3>{html.escape(name)}: {html.escape(title)}</h3>", _table(table["header"], table["rows"])]
    images = sorted(run_dir.glob("*.png"))
    if images:
        parts.append("<h2>Figures</h2>")
        parts += [_img_tag(p, p.stem.replace("_", " ")) for p in images]
    timings = report.get("timings") or {}
    parts += ["<h2>Timings</h2>", _table(["stage", "seconds"], [[k, f"{v:.1f}"] for k, v in timings.items()])]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run_dir: Path, report: dict[str, Any], context=None) -> None:
    """Write sample grids (when a context with data is given), report.json and report.html."""
    run_dir = Path(run_dir)
    if context is not None:
        _write_grids(run_dir, context)
    write_report_json(run_dir, report)
    atomic_write_text(run_dir / "report.html", render_html(run_dir, report))


def write_report_json(run_dir: Path, report: dict[str, Any]) -> None:
    """Write ``report.json`` atomically."""
    atomic_write_text(Path(run_dir) / "report.json", json.dumps(report, indent=2, default=_json_default))


def _write_grids(run_dir: Path, context) -> None:
    from dreamset.store import save_sample_grid

    per_class = context.recipe.report.samples_per_class
    if context.real_train is not None:
        save_sample_grid(context.real_train, run_dir / "samples_real.png", per_class=per_class, seed=0)
    if context.synthetic is not None and len(context.synthetic):
        save_sample_grid(context.synthetic, run_dir / "samples_synthetic.png", per_class=per_class, seed=0)


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def rerender(run_dir: Path) -> None:
    """Re-render report.html from report.json (and the PNGs already in the folder)."""
    from dreamset.errors import BadInputError

    path = Path(run_dir) / "report.json"
    if not path.is_file():
        raise BadInputError(f"{path}: no report.json in this run folder")
    try:
        report = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{path}: not valid JSON ({exc})") from None
    atomic_write_text(Path(run_dir) / "report.html", render_html(Path(run_dir), report))
