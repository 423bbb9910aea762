"""The generator table (dreamset.report.generator_table): rows from the per-source headline values the metrics
declare and the paired comparisons, sign-adjusted Spearman rho with exact permutation p-values and a bootstrap
over seeds, sentences generated only from intervals, the plot."""
from __future__ import annotations

import pytest
from scipy import stats

from dreamset.orchestration.recipe import validate_recipe
from dreamset.report.generator_table import add_generator_table, markdown, spearman

SOURCES = ["a", "b", "c", "d", "e"]


def _recipe():
    return validate_recipe({
        "data": {"dataset": "digits"},
        "generate": {s: {"generator": "glyphs", "count": 10} for s in SOURCES},
        "arms": {"real": {"real": True}, **{f"real+{s}": {"synthetic": [s]} for s in SOURCES},
                 "mix": {"synthetic": ["a", "b"]}},
        "train": {"model": "small-cnn"},
    })


def _report(fid, arc, gains, noise=(0.0, 0.0, 0.0)):
    """Three seeds; seed k's gain of every source is its mean gain + noise[k] * (source index - 2)."""
    base = {str(k): {"robust_accuracy": 0.5} for k in range(3)}
    arms = {"real": {"per_seed": base}}
    for i, (s, g) in enumerate(zip(SOURCES, gains)):
        arms[f"real+{s}"] = {"per_seed": {str(k): {"robust_accuracy": 0.5 + g + noise[k] * (i - 2)} for k in range(3)}}
    return {
        "recipe": {"generate": {s: {} for s in SOURCES}},
        "arms": arms,
        "metrics": {"fid": {s: {"fid": v} for s, v in zip(SOURCES, fid)},
                    "arc": {s: {"arc": v, "curve": [{"eps": 0.0, "predicted_real_fraction": 0.5},
                                                    {"eps": 0.1, "predicted_real_fraction": 0.4}]} for s, v in zip(SOURCES, arc)},
                    "kid": {"tables": {}}},
        "comparisons": {f"real+{s}": {"baseline": "real",
                                      "robust_accuracy": {"mean": g, "low": g - 0.01, "high": g + 0.01, "n": 3, "verdict": "gain"},
                                      "clean_accuracy": {"mean": g / 2}} for s, g in zip(SOURCES, gains)},
    }


def test_rows_and_sign_adjusted_rho_with_exact_p(tmp_path):
    gains = [0.05, 0.04, 0.03, 0.02, 0.01]
    fid = [1.0, 2.0, 3.0, 5.0, 4.0]       # lower is better: nearly the gain's order
    arc = [0.5, 0.4, 0.3, 0.2, 0.1]       # lower is better: exactly the reverse of the gain's order
    report = _report(fid, arc, gains)
    add_generator_table(tmp_path, _recipe(), report)
    table = report["generator_table"]
    assert [row[0] for row in table["rows"]] == SOURCES  # the mixed arm is no source's row
    assert table["sources"]["a"]["arm"] == "real+a" and table["sources"]["c"]["FID"] == 3.0
    assert table["header"][2:4] == ["FID", "ARC"]  # columns: the headline values the report's metrics declare
    assert table["rows"][0][-3:] == ["+5.0", "[+4.0, +6.0]", "+2.5"]
    expected = stats.spearmanr([-v for v in fid], gains)
    assert table["spearman"]["FID"]["rho"] == pytest.approx(expected.statistic) == pytest.approx(0.9)
    # exact: 10 of the 120 pairings reach |rho| >= 0.9; scipy's t-approximation says 0.037
    assert table["spearman"]["FID"]["p_value"] == pytest.approx(10 / 120)
    assert expected.pvalue < 0.05 < table["spearman"]["FID"]["p_value"]
    assert table["spearman"]["ARC"]["rho"] == pytest.approx(-1.0)
    assert table["spearman"]["ARC"]["p_value"] == pytest.approx(2 / 120)
    assert "KID" not in table["spearman"]
    assert (tmp_path / "generator_metrics_vs_gain.png").stat().st_size > 1000


def test_metric_ranking_is_said_only_when_the_bootstrap_over_seeds_excludes_zero(tmp_path):
    gains = [0.05, 0.04, 0.03, 0.02, 0.01]
    fid, arc = [1.0, 2.0, 3.0, 5.0, 4.0], [0.1, 0.2, 0.3, 0.4, 0.5]   # ARC in the gain's exact order
    steady = _report(fid, arc, gains)                                  # every seed agrees
    add_generator_table(tmp_path, _recipe(), steady)
    (d,) = steady["generator_table"]["rho_differences"]
    assert d["verdict"] == "ARC ranks better" and d["resamples"] == 27  # all 3^3 resamples of 3 seeds
    assert steady["generator_table"]["best_ranking_metric"] == "ARC"
    assert "ARC ranks the sources better than FID" in markdown(steady["generator_table"])
    noisy = _report(fid, arc, gains, noise=(0.03, -0.03, 0.0))         # seeds disagree on the order
    add_generator_table(tmp_path, _recipe(), noisy)
    (d,) = noisy["generator_table"]["rho_differences"]
    assert d["verdict"] == "not told apart" and d["low"] < 0 < d["high"]
    assert noisy["generator_table"]["best_ranking_metric"] is None
    text = markdown(noisy["generator_table"])
    assert "not told apart" in text and "ranks the sources better" not in text


def test_a_collapsed_arc_is_shown_as_its_note_and_left_out_of_rho(tmp_path):
    report = _report([1.0, 2.0, 3.0, 5.0, 4.0], [0.5, 0.4, 0.3, 0.2, 0.1], [0.05, 0.04, 0.03, 0.02, 0.01])
    for entry in report["metrics"]["arc"].values():
        entry["curve"][1]["predicted_real_fraction"] = 1.0      # constant discriminator at every eps > 0
    add_generator_table(tmp_path, _recipe(), report)
    table = report["generator_table"]
    assert table["rows"][0][3] == "collapsed (lower bound)" and "ARC" not in table["spearman"]


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


def test_rho_differences_compare_both_metrics_on_the_same_sources(tmp_path):
    # FID misorders d and e; ARC collapsed on d and e, so its rho covers a, b, c only. On those
    # three FID ranks exactly as ARC does: the two are not told apart (over all five FID looked worse)
    report = _report([1.0, 2.0, 3.0, 5.0, 4.0], [0.1, 0.2, 0.3, 0.4, 0.5], [0.05, 0.04, 0.03, 0.02, 0.01])
    for s in ("d", "e"):
        report["metrics"]["arc"][s]["curve"][1]["predicted_real_fraction"] = 1.0
    add_generator_table(tmp_path, _recipe(), report)
    (d,) = report["generator_table"]["rho_differences"]
    assert d["sources"] == 3 and d["difference"] == pytest.approx(0.0)
    assert d["verdict"] == "not told apart"
