"""The tables of a report, shared by the terminal summary (:mod:`dreamset.report.writer`), the run page
(:mod:`dreamset.report.html`) and the claims tables (:mod:`dreamset.report.claims`): header and rows of
strings computed from a ``report.json`` dict, nothing rendered."""
from __future__ import annotations

import math
from typing import Any


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


def arm_steps(arm: dict[str, Any]) -> float | None:
    """The optimizer steps an arm of report.json trained for (``training.optimizer_steps``), or None."""
    steps = (arm.get("training") or {}).get("optimizer_steps")
    return steps if isinstance(steps, (int, float)) else None


def _steps(arm: dict[str, Any]) -> str:
    steps = arm_steps(arm)
    return f"{int(round(steps))}" if steps is not None else "–"


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


def all_comparisons(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(arm, entry)`` for every paired difference of a report: each arm against the baseline
    (``comparisons``), then the recipe's ``evaluate.pairs`` (``pair_comparisons``); ``entry`` holds
    ``baseline`` and the compared quantities."""
    found = list((report.get("comparisons") or {}).items())
    return found + [(entry["arm"], entry) for entry in report.get("pair_comparisons") or []]


def comparison_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the paired-differences table, one row per arm and quantity: the mean
    per-seed difference to the baseline arm in percentage points, its 95% interval and the verdict
    (``not shown`` when the interval contains 0 or there is a single seed)."""
    header = ["arm − baseline", "quantity", "difference pp", "95% interval", "verdict"]
    rows = []
    for arm, entry in all_comparisons(report):
        for name, label in COMPARISON_LABELS.items():
            d = entry.get(name)
            if d is None:
                continue
            interval = "–" if d.get("low") is None else f"[{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"
            rows.append([f"{arm} − {entry['baseline']}", label, f"{100 * d['mean']:+.1f}", interval,
                         d["verdict"] if d.get("low") is not None else "not shown (1 seed)"])
    return header, rows


def report_source_names(report: dict[str, Any]) -> set[str]:
    """The named sources of the recipe recorded in ``report`` (empty for one generate block)."""
    from dreamset.orchestration.recipe import GenerateStage

    generate = (report.get("recipe") or {}).get("generate")
    if not isinstance(generate, dict) or set(generate) & set(GenerateStage.model_fields):
        return set()
    return set(generate)


def training_warnings(per_seed: dict[Any, dict[str, dict[str, Any]]]) -> list[str]:
    """One line per arm and seed whose training found catastrophic overfitting (the training record's
    ``catastrophic_overfitting``, :mod:`dreamset.training.curves`), for report.json's top-level ``warnings``."""
    found: list[str] = []
    for seed, results in per_seed.items():
        for arm, result in results.items():
            co = (result.get("training") or {}).get("catastrophic_overfitting")
            if co:
                found.append(
                    f"train: arm {arm!r}, seed {seed}: catastrophic overfitting at epoch {co['epoch']} (step {co['step']}): "
                    f"validation robust accuracy {co['val_robust_accuracy']:.3f}, down from {co['best_val_robust_accuracy']:.3f} "
                    f"at epoch {co['best_epoch']}, while the single-step training attack's accuracy is "
                    f"{co['val_train_attack_accuracy']:.3f}" + ("; the arm was stopped there" if co.get("stopped") else ""))
    return found


def metric_warnings(metrics: dict[str, Any], sources=()) -> list[str]:
    """Every metric's ``warnings`` lines, prefixed ``metric: `` — or ``metric.source: `` for a
    per-source result (``metrics.<metric>.<source>.warnings``, ``sources``: the recipe's named synthetic
    sources) — for report.json's top-level ``warnings``."""
    found: list[str] = []
    for name, result in (metrics or {}).items():
        if not isinstance(result, dict):
            continue
        found += [f"{name}: {w}" for w in result.get("warnings") or []]
        for source in sources:
            if isinstance(result.get(source), dict):
                found += [f"{name}.{source}: {w}" for w in result[source].get("warnings") or []]
    return found
