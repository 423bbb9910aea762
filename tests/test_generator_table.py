"""The generator table (dreamset.report.generator_table): rows from per-source metrics and paired comparisons,
sign-adjusted Spearman rho against scipy, the plot."""
from __future__ import annotations

import pytest
from scipy import stats

from dreamset.orchestration.recipe import validate_recipe
from dreamset.report.generator_table import add_generator_table, spearman

SOURCES = ["a", "b", "c", "d", "e"]


def _recipe():
    return validate_recipe({
        "data": {"dataset": "digits"},
        "generate": {s: {"generator": "glyphs", "count": 10} for s in SOURCES},
        "arms": {"real": {"real": True}, **{f"real+{s}": {"synthetic": [s]} for s in SOURCES},
                 "mix": {"synthetic": ["a", "b"]}},
        "train": {"model": "small-cnn"},
    })


def _report(fid, arc, gains):
    return {
        "metrics": {"fid": {s: {"fid": v} for s, v in zip(SOURCES, fid)},
                    "arc": {s: {"arc": v} for s, v in zip(SOURCES, arc)}, "kid": {"tables": {}}},
        "comparisons": {f"real+{s}": {"baseline": "real",
                                      "robust_accuracy": {"mean": g, "low": g - 0.01, "high": g + 0.01, "n": 3, "verdict": "gain"},
                                      "clean_accuracy": {"mean": g / 2}} for s, g in zip(SOURCES, gains)},
    }


def test_rows_and_sign_adjusted_rho(tmp_path):
    gains = [0.05, 0.04, 0.03, 0.02, 0.01]
    fid = [1.0, 2.0, 3.0, 5.0, 4.0]       # lower is better: nearly the gain's order
    arc = [0.5, 0.4, 0.3, 0.2, 0.1]       # lower is better: exactly the reverse of the gain's order
    report = _report(fid, arc, gains)
    add_generator_table(tmp_path, _recipe(), report)
    table = report["generator_table"]
    assert [row[0] for row in table["rows"]] == SOURCES  # the mixed arm is no source's row
    assert table["sources"]["a"]["arm"] == "real+a" and table["sources"]["c"]["FID"] == 3.0
    assert table["sources"]["a"]["KID"] is None and table["rows"][0][-3:] == ["+5.0", "[+4.0, +6.0]", "+2.5"]
    expected = stats.spearmanr([-v for v in fid], gains)
    assert table["spearman"]["FID"]["rho"] == pytest.approx(expected.statistic) == pytest.approx(0.9)
    assert table["spearman"]["FID"]["p_value"] == pytest.approx(expected.pvalue)
    assert table["spearman"]["ARC"]["rho"] == pytest.approx(-1.0)
    assert "KID" not in table["spearman"] and table["best_ranking_metric"] == "FID"
    assert (tmp_path / "generator_metrics_vs_gain.png").stat().st_size > 1000


def test_rho_needs_three_distinct_points():
    assert spearman([0.1, 0.2], [1.0, 2.0], True)["rho"] is None
    assert spearman([0.1, 0.2, 0.3], [1.0, 1.0, 1.0], True)["rho"] is None
    higher = spearman([0.1, 0.2, 0.3], [1.0, 2.0, 3.0], False)
    assert higher["rho"] == pytest.approx(1.0) and higher["direction"] == "higher is better"


def test_no_table_without_source_arms(tmp_path):
    report = _report([1] * 5, [0] * 5, [0] * 5)
    recipe = validate_recipe({"data": {"dataset": "digits"}, "generate": {"generator": "glyphs", "count": 10},
                              "arms": {"real": {"real": True}, "real+synthetic": {"synthetic": True}},
                              "train": {"model": "small-cnn"}})
    add_generator_table(tmp_path, recipe, report)
    assert "generator_table" not in report
