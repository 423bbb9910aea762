"""The metric headline contract (dreamset.contracts.headline, read by dreamset.report.headlines): every reader
shows what a metric declares — the built-in metrics against a real report.json (the KID drift: claims read
``kid.kid`` while metric:kid reports ``kid_mean``), a plugin metric on the page and in the terminal, ARC's
collapse shown as a lower bound, effective robustness in one unit."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from dreamset import registry
from dreamset.contracts.headline import Headline
from dreamset.contracts.interfaces import Metric
from dreamset.report.headlines import headline_values, metric_classes, report_name

REPORT = Path(__file__).resolve().parents[1] / "docs" / "runs" / "digits-robust" / "report.json"


@pytest.fixture(scope="module")
def real_report():
    return json.loads(REPORT.read_text())


def test_every_built_in_metric_declares_a_headline():
    classes = metric_classes()
    assert {"fid", "kid", "prdc", "arc", "label_agreement", "effective_robustness", "accuracy", "robust_accuracy",
            "memorization", "vendi"} <= set(classes)
    for name, cls in classes.items():
        assert cls.headline, f"{name} declares no headline values"


def test_every_declared_key_is_in_a_real_report(real_report):
    """The default recipe's kept report.json holds every headline key its metrics declare."""
    from dreamset.conformance.metrics import check_headline

    classes = metric_classes()
    for name, result in real_report["metrics"].items():
        check_headline(classes[name], result)
    shown = {(v.metric, v.key) for v in headline_values(real_report)}
    assert ("kid", "kid_mean") in shown and ("arc", "arc") in shown


def test_the_claims_block_lists_kid(real_report):
    """Fails on the code before the contract: claims.py read metrics.kid.kid and showed no KID row."""
    from dreamset.report.claims import claims_markdown

    block = claims_markdown(real_report, source="test", metrics=True)
    kid = next(line for line in block.splitlines() if line.startswith("| KID"))
    assert f"{real_report['metrics']['kid']['kid_mean']:.4f}" in kid


def test_a_collapsed_arc_is_shown_as_a_lower_bound_not_a_number(real_report):
    """The default run's ARC discriminator is constant at every eps > 0: the page says so instead of 1.6%."""
    from dreamset.report.html import metric_groups

    groups, _ = metric_groups(real_report)
    rows = {r["name"]: r["value"] for g in groups for r in g["rows"]}
    assert rows["ARC"] == "collapsed (lower bound)"
    partial = json.loads(json.dumps(real_report["metrics"]["arc"]))
    partial["curve"][1]["predicted_real_fraction"] = 0.6
    (value,) = headline_values({"metrics": {"arc": partial}})
    assert value.text.startswith(f"≥ {partial['arc']:.3f}") and "2 of 3 radii" in value.text


def test_effective_robustness_is_in_percentage_points_everywhere(real_report):
    """report.json's ER is already percentage points (100 x accuracy residual): the page used to multiply
    it by 100 again (-98.46 pp for an ER of -0.98 pp)."""
    from dreamset.report.html import metric_groups

    mean = real_report["metrics"]["effective_robustness"]["arms"]["real"]["effective_robustness_mean"]
    groups, _ = metric_groups(real_report)
    rows = {r["name"]: r["value"] for g in groups for r in g["rows"]}
    assert rows["effective robustness [real]"].startswith(f"{mean:+.2f} pp")


class _Sharpness(Metric):
    """A plugin's metric that declares its headline."""

    key = "metric:sharpness-test"
    scope = "source"
    headline = (Headline("sharpness", "sharpness", better="higher", group="fidelity", format="{:.3f}",
                         explain="mean Laplacian variance"),)

    def compute(self, inputs):
        return {"sharpness": 0.25, "n_samples": 10}


def test_a_plugin_metric_is_on_the_page_and_in_the_terminal():
    from dreamset.report.html import metric_groups
    from dreamset.report.writer import print_summary

    report = {"arms": {}, "metrics": {report_name(_Sharpness.key): {"sharpness": 0.25, "n_samples": 10}}}
    classes = {**metric_classes(), "sharpness_test": _Sharpness}
    groups, bookkeeping = metric_groups(report, classes)
    assert groups[0]["title"] == "fidelity" and groups[0]["rows"][0]["value"] == "0.250"
    assert {r["name"] for r in bookkeeping} == {"sharpness_test.n_samples"}
    out = io.StringIO()
    import dreamset.report.headlines as headlines

    original = headlines.metric_classes
    headlines.metric_classes = lambda: classes
    try:
        print_summary(report, Console(file=out, width=120))
    finally:
        headlines.metric_classes = original
    assert "sharpness" in out.getvalue() and "0.250" in out.getvalue() and "higher" in out.getvalue()


def test_an_undeclared_metric_still_shows_its_numbers():
    report = {"metrics": {"mystery": {"score": 0.5, "n_samples": 10}}}
    (value,) = headline_values(report, classes={})
    assert (value.group, value.key, value.text) == ("other", "score", "0.5")


def test_a_bad_declaration_fails_where_it_is_written():
    with pytest.raises(ValueError, match="group"):
        Headline("x", "x", group="vibes")
    with pytest.raises(ValueError, match="better"):
        Headline("x", "x", better="bigger")


def test_evaluate_prints_the_declared_headline():
    from dreamset.commands.compare import result_rows

    rows = result_rows({"kid": {"kid_mean": 0.01234, "kid_std": 0.002, "n_real": 5}, "fid": {"fid": 3.14159}})
    assert ("fid", "FID (lower is better)", "3.14") in rows
    assert ("kid", "KID (lower is better)", "0.0123 ± 0.0020") in rows
    assert registry.get("metric:kid")
