"""The tables README.md and docs/ show, regenerated from a run's ``report.json`` — never typed.

``benchmarks/claims.py`` runs the catalogue recipes and calls :func:`claims_markdown` on each report,
then :func:`splice` writes the result between the markers ``<!-- claims:NAME -->`` and
``<!-- /claims:NAME -->`` of the documents. Every block ends with the line that says where its
numbers came from (command, date, machine, wall time).

A block holds: the arms table (optimizer steps, clean accuracy, worst-case robust accuracy, mean
shifted accuracies, mean ± std over seeds, percent), the paired differences to the baseline arm with
their 95% intervals and verdicts (:mod:`dreamset.report.differences`: ``not shown`` when the interval
contains 0), any loud notes of the report, and optionally the metrics' declared headline values
(:mod:`dreamset.report.headlines`) with the warnings the run recorded (a collapsed ARC discriminator,
an effective-robustness control off its own line).
"""
from __future__ import annotations

import os
import platform
import re
from typing import Any

from dreamset.contracts.errors import BadInputError
from dreamset.report.tables import COMPARISON_LABELS, all_comparisons, compact_rows


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows)]


def difference_cell(d: dict[str, Any]) -> str:
    if d.get("low") is None:
        return f"{100 * d['mean']:+.1f} (one seed: not shown)"
    text = f"{100 * d['mean']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"
    return f"**{text}** {d['verdict']}" if d["verdict"] != "not shown" else f"{text} not shown"


def per_set_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-set table: each arm's clean accuracy (%, mean ± std over seeds) on
    the test set, every shifted set and every generated evaluation set (``generated: NAME``)."""
    arms = report.get("arms") or {}
    shifts = list(dict.fromkeys(k for arm in arms.values() for k in (arm.get("shifted") or {})))
    generated = list(dict.fromkeys(k for arm in arms.values() for k in (arm.get("generated") or {})))
    header = ["arm", "test"] + shifts + [f"generated: {name}" for name in generated]

    def cell(arm, group, key):
        value = (arm.get(group) or {}).get(key)
        std = (arm.get(f"{group}_std") or {}).get(key)
        return "–" if value is None else f"{100 * value:.1f} ± {100 * (std or 0):.1f}"

    rows = []
    for name, arm in arms.items():
        test = arm.get("clean_accuracy")
        rows.append([name, "–" if test is None else f"{100 * test:.1f} ± {100 * arm.get('clean_accuracy_std', 0):.1f}"]
                    + [cell(arm, "shifted", k) for k in shifts] + [cell(arm, "generated", k) for k in generated])
    return header, rows


def compute_phrase(arm: dict[str, Any], baseline: dict[str, Any]) -> str:
    """How an arm's training cost compares with its baseline's, in words, naming every dimension that
    differs (:func:`dreamset.report.differences.compute_match`) and a wall time beyond 1.5x."""
    from dreamset.report.differences import WALL_RATIO, compute_match, wall_ratio

    equal, unequal = compute_match(arm, baseline)
    if unequal:
        text = "NOT at equal compute (" + "; ".join(f"{label} {mine:,.0f} vs {theirs:,.0f}" for label, mine, theirs in unequal) + ")"
    elif equal:
        text = "at equal " + (", ".join(equal[:-1]) + " and " + equal[-1] if len(equal) > 1 else equal[0])
    else:
        return "(steps not recorded)"
    ratio = wall_ratio(arm, baseline)
    if ratio is not None and not 1 / WALL_RATIO <= ratio <= WALL_RATIO:
        text += f", but {ratio:.1f}x the wall time"
    return text


def reading(report: dict[str, Any]) -> list[str]:
    """One generated sentence per compared arm that says, in words, what its intervals show — so the
    prose around a claims block never has to restate (or mistype) a number: which measures the arm
    gains or loses on (interval excludes 0), which are *not shown*, and whether it trained for as
    much compute as its baseline (:func:`compute_phrase`)."""
    lines, arms = [], report.get("arms") or {}
    for arm, entry in all_comparisons(report):
        baseline = entry["baseline"]
        found: dict[str, list[str]] = {"gain": [], "loss": [], "not shown": []}
        for name, label in COMPARISON_LABELS.items():
            d = entry.get(name)
            if isinstance(d, dict) and "verdict" in d:
                found.setdefault(d["verdict"], []).append(label)
        if not any(found.values()):
            continue
        compute = compute_phrase(arms.get(arm, {}), arms.get(baseline, {}))
        parts = [f"{verdict} on {', '.join(labels)}" for verdict, labels in
                 (("a gain", found["gain"]), ("a loss", found["loss"]), ("not shown", found["not shown"])) if labels]
        lines.append(f"*Reading (generated):* `{arm}` against `{baseline}`, {compute}: " + "; ".join(parts) + ".")
    return lines


def claims_markdown(report: dict[str, Any], *, source: str, metrics: bool = False, per_set: bool = False) -> str:
    """The markdown block for one run: arms table, (clean accuracy per evaluation set,) paired
    differences, notes, (metrics,) and the ``source`` line (how the numbers were produced)."""
    header, rows = compact_rows(report)
    seeds = report.get("seeds") or []
    evaluation = report.get("evaluation") or {}
    lines = markdown_table(header, rows)
    if per_set:
        lines += ["", "Clean accuracy % per evaluation set (mean ± std over seeds):", "", *markdown_table(*per_set_rows(report))]
    size, total = evaluation.get("subset_size", "?"), evaluation.get("test_size", "?")
    where = f"all {total} test images" if size == total else f"one stratified subset of {size} of {total} test images"
    lines += ["", f"Mean ± std over {len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))}); "
              f"robust = per-sample worst case over the evaluation attackers on {where}, the same for every arm; "
              f"steps = optimizer steps per arm.", ""]
    diff_rows = []
    for arm, entry in all_comparisons(report):
        cells = [f"{arm} − {entry['baseline']}"]
        cells += [difference_cell(entry[name]) if name in entry else "–" for name in COMPARISON_LABELS]
        diff_rows.append(cells)
    if diff_rows:
        lines += markdown_table(["paired difference (points)"] + list(COMPARISON_LABELS.values()), diff_rows)
        lines += ["", "Mean of the per-seed differences with its 95% Student-t interval over seeds; "
                  "*not shown*: the interval contains 0.", ""]
        lines += [*reading(report), ""]
    for note in (report.get("notes") or []) + (report.get("wall_notes") or []):
        lines += [f"> **Note:** {note}", ""]
    if report.get("data_efficiency"):
        from dreamset.report.data_efficiency import efficiency_lines, rows

        section = report["data_efficiency"]
        lines += ["Data efficiency (robust accuracy, paired differences over seeds, points, 95% Student-t interval; "
                  f"equivalence: the whole interval inside ±{100 * section['margin']:.0f}):", "",
                  *markdown_table(*rows(section)), "", *efficiency_lines(section), ""]
    if metrics:
        from dreamset.report.headlines import headline_values

        metric_rows, noted = [], set()
        for v in headline_values(report):
            if v.headline is None or (v.headline.per_arm and v.group == "accuracy"):  # accuracies: the arms table
                continue
            note = v.feature_note if v.feature_note and v.feature_note not in noted else None
            noted.add(note)
            metric_rows.append([v.label + (f" ({note})" if note else ""), v.text + (f" {v.interval_text}" if v.interval_text else "")])
        if metric_rows:
            lines += markdown_table(["metric", "value"], metric_rows) + [""]
        warned = report.get("warnings") or []
        if warned:  # what the metrics said of themselves (a collapsed discriminator, a control off its line, ...)
            lines += ["Warnings the run recorded:", "", *[f"* {w}" for w in warned], ""]
    lines.append(source)
    return "\n".join(lines)


def splice(text: str, name: str, block: str) -> str:
    """``text`` with everything between ``<!-- claims:NAME -->`` and ``<!-- /claims:NAME -->``
    replaced by ``block``; refuses a document without both markers."""
    pattern = re.compile(rf"(<!-- claims:{re.escape(name)} -->\n)(?:.*?\n)?(<!-- /claims:{re.escape(name)} -->)", re.S)
    if not pattern.search(text):
        raise BadInputError(f"claims:{name}: the document has no <!-- claims:{name} --> ... <!-- /claims:{name} --> markers")
    return pattern.sub(lambda m: m.group(1) + block + "\n" + m.group(2), text, count=1)


def machine() -> str:
    """The machine a generated block was measured on (architecture, GPU or CPU cores, torch version),
    for its source line."""
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores"
    return f"{platform.machine()} {device}, torch {torch.__version__}"
