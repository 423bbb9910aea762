"""Differences between arms, with their uncertainty over seeds, and the compute each arm got.

A claim such as "synthetic data raises robust accuracy" is a difference between two arms of one
recipe. dreamset reports it **paired**: for every seed both arms share (same data split, same
evaluation subset, same attack seeds), ``d_s = arm_s − baseline_s``; then the mean of ``d`` and its
**95% Student-t interval** ``mean ± t_{0.975, n−1} · sd(d)/√n`` over the ``n`` seeds
(``scipy.stats.t``). The interval is about seed-to-seed variation of training (initialisation, batch
order, attack starts) on a fixed evaluation set; it is not a test-set sampling interval.

Verdicts: ``gain`` when the whole interval is above 0, ``loss`` when below, and ``not shown`` when it
contains 0 — or when there is only one seed, so no interval exists. Reports never call a
``not shown`` difference a gain.

Units: the inputs are accuracies as fractions in [0,1]; differences are fractions too (tables
print percentage points).
"""
from __future__ import annotations

import math
import statistics
from typing import Any, Iterable

#: the per-seed results every comparison covers: name -> how to read it from one arm's result
COMPARED = {
    "clean_accuracy": lambda r: r.get("clean_accuracy"),
    "robust_accuracy": lambda r: r.get("robust_accuracy"),
    "shifted_mean": lambda r: _mean_of(r.get("shifted")),
    "shifted_robust_mean": lambda r: _mean_of(r.get("shifted_robust")),
    "generated_mean": lambda r: _mean_of(r.get("generated")),
}


def _mean_of(values: dict[str, Any] | None) -> float | None:
    numbers = [v for v in (values or {}).values() if isinstance(v, (int, float))]
    return statistics.fmean(numbers) if numbers else None


def t_interval(values: Iterable[float], confidence: float = 0.95) -> dict[str, Any]:
    """``{mean, std, n, low, high, confidence}`` of ``values``: the Student-t interval for their
    mean (``low``/``high`` are ``None`` for fewer than two values)."""
    from scipy import stats

    values = [float(v) for v in values]
    n = len(values)
    mean = statistics.fmean(values) if values else float("nan")
    std = statistics.stdev(values) if n > 1 else 0.0
    low = high = None
    if n > 1:
        half = stats.t.ppf(0.5 + confidence / 2, df=n - 1) * std / math.sqrt(n)
        low, high = mean - half, mean + half
    return {"mean": mean, "std": std, "n": n, "low": low, "high": high, "confidence": confidence}


def verdict(interval: dict[str, Any]) -> str:
    """``gain`` / ``loss`` when the interval excludes 0 on that side, else ``not shown``."""
    low, high = interval.get("low"), interval.get("high")
    if low is None or high is None:
        return "not shown"
    if low > 0:
        return "gain"
    if high < 0:
        return "loss"
    return "not shown"


def equivalence(interval: dict[str, Any], margin: float) -> str:
    """``equivalent`` when the whole interval lies inside ``[−margin, +margin]`` (two one-sided tests
    at the interval's level), else ``not shown equivalent`` (also with one seed: no interval)."""
    low, high = interval.get("low"), interval.get("high")
    if low is None or high is None:
        return "not shown equivalent"
    return "equivalent" if -margin <= low and high <= margin else "not shown equivalent"


def compare_arms(per_seed: dict[int, dict[str, dict[str, Any]]], arm: str, baseline: str,
                 confidence: float = 0.95, margin: float | None = None) -> dict[str, Any]:
    """``arm − baseline``: per compared quantity (:data:`COMPARED`), the per-seed paired differences,
    their :func:`t_interval` and :func:`verdict` (and, with an equivalence ``margin``, the
    :func:`equivalence` verdict and the margin); ``{"baseline": baseline, quantity: {...}, ...}``.
    Seeds where either arm lacks the quantity are left out of that quantity's interval."""
    entry: dict[str, Any] = {"baseline": baseline}
    for name, read in COMPARED.items():
        diffs = {}
        for seed, results in per_seed.items():
            if arm in results and baseline in results:
                a, b = read(results[arm]), read(results[baseline])
                if isinstance(a, (int, float)) and isinstance(b, (int, float)):
                    diffs[str(seed)] = float(a) - float(b)
        if diffs:
            interval = t_interval(diffs.values(), confidence)
            entry[name] = {**interval, "per_seed": diffs, "verdict": verdict(interval)}
            if margin is not None:
                entry[name].update(equivalence=equivalence(interval, margin), margin=margin)
    return entry


def paired_comparisons(per_seed: dict[int, dict[str, dict[str, Any]]], baseline: str,
                       confidence: float = 0.95, margin: float | None = None) -> dict[str, Any]:
    """For every arm but ``baseline``: :func:`compare_arms` ``(arm, baseline)`` (report.json's
    ``comparisons``, keyed by arm)."""
    arms = list(dict.fromkeys(arm for results in per_seed.values() for arm in results))
    return {arm: compare_arms(per_seed, arm, baseline, confidence, margin) for arm in arms if arm != baseline}


def pair_comparisons(per_seed: dict[int, dict[str, dict[str, Any]]], pairs, confidence: float = 0.95,
                     margin: float | None = None) -> list[dict[str, Any]]:
    """The recipe's extra ``evaluate.pairs`` (e.g. a full method against each of its ablations):
    report.json's ``pair_comparisons``, a list of ``{"arm": arm, **compare_arms(arm, baseline)}``."""
    return [{"arm": arm, **compare_arms(per_seed, arm, baseline, confidence, margin)} for arm, baseline in pairs]


#: the compute a fair comparison matches, per arm's ``training`` record: label -> reader
COMPUTE_DIMENSIONS = {
    "optimizer steps": lambda t: t.get("optimizer_steps"),
    "attack forward/backward passes": lambda t: t.get("attack_forward_backward_passes"),
    "images seen": lambda t: (t.get("images_seen") or {}).get("total") if isinstance(t.get("images_seen"), dict)
    else t.get("images_seen"),
}
#: wall-time ratio (slowest arm / fastest) beyond which the report says the arms did not cost alike
WALL_RATIO = 1.5
#: relative tolerance per dimension: images seen may differ by short last batches of an epoch (a
#: real-only arm's last batch of 500 digits holds 116 of 128); steps and attack passes must match exactly
TOLERANCE = {"images seen": 0.05}


def _same(label: str, a: float, b: float) -> bool:
    return abs(a - b) <= TOLERANCE.get(label, 0.0) * max(abs(a), abs(b)) or round(a) == round(b)


def _dimension(arm: dict[str, Any], reader) -> float | None:
    value = reader(arm.get("training") or {})
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def compute_match(arm: dict[str, Any], baseline: dict[str, Any]) -> tuple[list[str], list[tuple[str, float, float]]]:
    """``(equal, unequal)``: the compute dimensions (:data:`COMPUTE_DIMENSIONS`) both arms recorded
    and match on, and ``(dimension, arm's value, baseline's value)`` for those they differ on."""
    equal, unequal = [], []
    for label, reader in COMPUTE_DIMENSIONS.items():
        mine, theirs = _dimension(arm, reader), _dimension(baseline, reader)
        if mine is None or theirs is None:
            continue
        if _same(label, mine, theirs):
            equal.append(label)
        else:
            unequal.append((label, mine, theirs))
    return equal, unequal


def wall_ratio(arm: dict[str, Any], baseline: dict[str, Any]) -> float | None:
    """The arm's training wall time over the baseline's (``training.wall_seconds``), or ``None``."""
    mine, theirs = (_dimension(a, lambda t: t.get("wall_seconds")) for a in (arm, baseline))
    return mine / theirs if mine and theirs else None


def compute_notes(arms: dict[str, dict[str, Any]]) -> list[str]:
    """Loud notes for the report, one per compute dimension the arms differ on (optimizer steps,
    attack forward/backward passes, images seen — counted by the trainer, beyond :data:`TOLERANCE`),
    naming the dimension and every arm's value."""
    notes = []
    for label, reader in COMPUTE_DIMENSIONS.items():
        values = {name: _dimension(arm, reader) for name, arm in arms.items()}
        values = {name: int(round(v)) for name, v in values.items() if v is not None}
        if not values or all(_same(label, v, max(values.values())) for v in values.values()):
            continue
        listed = ", ".join(f"{name} {value}" for name, value in values.items())
        if label == "optimizer steps":
            notes.append(f"NOT COMPUTE-MATCHED: the arms trained for different numbers of optimizer steps ({listed}); "
                         f"their differences mix the effect of the data with that of training longer")
        else:
            notes.append(f"NOT COMPUTE-MATCHED in {label}: the arms differ ({listed}); their differences mix the effect "
                         f"of the data with that of the extra {label}")
    return notes


def wall_notes(arms: dict[str, dict[str, Any]]) -> list[str]:
    """A note when the slowest arm's training took more than :data:`WALL_RATIO` times the fastest's wall
    time (machine-dependent: report.json keeps it apart from the notes, in ``wall_notes``)."""
    walls = {name: _dimension(arm, lambda t: t.get("wall_seconds")) for name, arm in arms.items()}
    walls = {name: v for name, v in walls.items() if v}
    if len(walls) < 2 or max(walls.values()) <= WALL_RATIO * min(walls.values()):
        return []
    slow, fast = max(walls, key=walls.get), min(walls, key=walls.get)
    listed = ", ".join(f"{name} {value:.0f} s" for name, value in walls.items())
    return [f"NOT TIME-MATCHED: training {slow!r} took {walls[slow] / walls[fast]:.1f}x the wall time of {fast!r} "
            f"({listed}); equal steps did not cost alike"]
