"""Reports: ``report.json`` (the contract), ``report.html`` (self-contained, images inline), PNG
plots and sample grids beside them, and the terminal summary table.

``report.json`` keys: ``recipe`` (resolved), ``arms`` (arm -> clean/robust accuracy mean, ``*_std``,
shifted accuracies, ``training`` — optimizer steps, images seen, attack passes, wall time — and
``per_seed``), ``comparisons`` (arm -> paired differences to the baseline arm with 95% intervals and
verdicts, :mod:`dreamset.report.differences`), ``pair_comparisons`` (the same for each ``[arm, baseline]``
of ``evaluate.pairs``, a list), ``notes`` (loud caveats, e.g. arms not compute-matched),
``evaluation`` (the evaluation subset and how robust accuracy is defined), ``metrics`` (metric name
-> result), ``components`` (recipe field -> the component's key, plugin, distribution and version,
:mod:`dreamset.orchestration.provenance`), ``selections`` (arm -> seed -> how many synthetic samples the sampler
kept and its ``Selection.info``), ``timings`` (seconds per stage), ``seeds``, ``device``,
``warnings`` (every metric's ``warnings`` lines, per source too, as ``metric[.source]: line``:
:func:`metric_warnings`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dreamset.files.atomic import atomic_write_text
from dreamset.report.tables import comparison_rows, compact_rows, metric_warnings, report_source_names

ACCURACY_KEYS = ("clean_accuracy", "robust_accuracy")
#: report.json entries that measure the machine (or name the run folder), not the result
MACHINE_ENTRIES = ("timings", "wall_seconds", "device", "stages", "wall_notes")  # stages: log texts naming the folder


def result_numbers(report: Any, path: str = "") -> dict[str, Any]:
    """Every leaf of ``report`` by path (``/arms/real/clean_accuracy``, ``/seeds[0]``) without the
    :data:`MACHINE_ENTRIES` and without the training curves' ``loss`` and ``train_accuracy``: what two
    runs of one recipe agree on whatever the machine and the number of processes (under torchrun those
    curve entries are rank 0's own rows of each batch, docs/scale.md; its validation accuracies are
    the whole model's and are kept)."""
    out: dict[str, Any] = {}
    if isinstance(report, dict):
        for key, value in report.items():
            if key not in MACHINE_ENTRIES:
                out.update(result_numbers(value, f"{path}/{key}"))
    elif isinstance(report, list):
        for i, value in enumerate(report):
            out.update(result_numbers(value, f"{path}[{i}]"))
    elif not ("/curves[" in path and path.rsplit("/", 1)[-1] in {"loss", "train_accuracy"}):
        out[path] = report
    return out


def print_summary(report: dict[str, Any], console, quiet: bool = False) -> None:
    """The stage summary, the arms table and scalar metrics as rich tables (``quiet``: the arms and
    differences only)."""
    from rich.markup import escape
    from rich.table import Table

    stages = report.get("stages") or {}
    if stages and not quiet:
        stable = Table(title="stages")
        for column in ("stage", "seconds", "result"):
            stable.add_column(column, justify="right" if column == "seconds" else "left", overflow="fold")
        for name, lines in stages.items():
            stable.add_row(name, f"{(report.get('timings') or {}).get(name, 0.0):.1f}", escape(" | ".join(lines)))
        console.print(stable)
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
    for note in (report.get("notes") or []) + (report.get("wall_notes") or []):
        console.print(f"[bold yellow]note:[/bold yellow] {escape(note)}")
    if report.get("data_efficiency"):
        from dreamset.report.data_efficiency import efficiency_lines, rows

        d_header, d_rows = rows(report["data_efficiency"])
        dtable = Table(title="data efficiency (paired over seeds, points, 95% interval)")
        for column in d_header:
            dtable.add_column(escape(column), overflow="fold")
        for row in d_rows:
            dtable.add_row(*(escape(cell) for cell in row))
        console.print(dtable)
        for line in efficiency_lines(report["data_efficiency"]):
            console.print(escape(line.replace("`", "")))
    from dreamset.report.headlines import headline_values

    metrics = headline_values(report)  # what each metric declares (plugin metrics too), else its numbers
    if metrics and not quiet:
        mtable = Table(title="metrics")
        for column in ("group", "metric", "value", "better"):
            mtable.add_column(column, justify="right" if column == "value" else "left", overflow="fold")  # wrap, never cut
        for v in metrics:
            name = v.label if v.headline else f"{v.shown_as}.{v.key}"
            value = v.text + (f" {v.interval_text}" if v.interval_text else "")
            mtable.add_row(v.group, escape(name), escape(value),  # "effective robustness [real]" is not rich markup
                           (v.headline.better or "–") if v.headline else "–")
        console.print(mtable)
    timings = report.get("timings") or {}
    if timings and not stages and not quiet:
        console.print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))


def render_html(run_dir: Path, report: dict[str, Any]) -> str:
    """The self-contained run page (:mod:`dreamset.report.html`, a jinja2 template)."""
    from dreamset.report.html import render_html as render

    return render(run_dir, report)


def write_report(run_dir: Path, report: dict[str, Any], context=None) -> None:
    """Write sample grids (when a context with data is given), report.json and report.html."""
    run_dir = Path(run_dir)
    if context is not None:
        _write_grids(run_dir, context)
    write_report_json(run_dir, report)
    if context is None or context.recipe.report.html:
        atomic_write_text(run_dir / "report.html", render_html(run_dir, report))


def write_report_json(run_dir: Path, report: dict[str, Any]) -> None:
    """Write ``report.json`` atomically, as strict JSON: a NaN or infinity anywhere is an error naming
    its path, and nothing is written (the components' outputs are checked before they get here,
    :mod:`dreamset.orchestration.guards`)."""
    try:
        text = json.dumps(report, indent=2, default=_json_default, allow_nan=False)
    except ValueError as exc:
        from dreamset.contracts.checks import json_problem
        from dreamset.contracts.errors import DreamsetError

        where = json_problem(json.loads(json.dumps(report, default=_json_default)))
        raise DreamsetError(f"report.json not written: {where or exc} (a dreamset bug: please report it)") from exc
    atomic_write_text(Path(run_dir) / "report.json", text)


def _write_grids(run_dir: Path, context) -> None:
    from dreamset.store.imagefolder import save_sample_grid

    per_class = context.recipe.report.samples_per_class
    from dreamset.orchestration.sources import named

    synthetic = {f"{name}": s for name, s in context.sources.items()} if named(context.recipe) else \
        {"synthetic": context.synthetic}  # named sources: one grid per source
    for name, source in (("real", context.real_train), *synthetic.items()):
        if source is not None and len(source):
            save_sample_grid(source, run_dir / f"samples_{name}.png", per_class=per_class, seed=0)
            # the grid's layout, so that the page can label its rows with the class names
            layout = {"rows": list(source.class_names), "cell": list(source.image_shape[1:]), "pad": 1}
            atomic_write_text(run_dir / f"samples_{name}.json", json.dumps(layout))


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def rerender(run_dir: Path) -> None:
    """Re-render report.html from report.json (and the PNGs already in the folder)."""
    from dreamset.contracts.errors import BadInputError

    path = Path(run_dir) / "report.json"
    if not path.is_file():
        raise BadInputError(f"{path}: no report.json in this run folder")
    try:
        report = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{path}: not valid JSON ({exc})") from None
    atomic_write_text(Path(run_dir) / "report.html", render_html(Path(run_dir), report))
