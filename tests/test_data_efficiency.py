"""The data-efficiency sweep (issue 33): digits-data-efficiency shrunk to seconds — every arm at the same
steps, the pool generated once and shared, equivalence verdicts against the full pool, the report section,
its plot, the claims table and the run page."""
from __future__ import annotations

import json

import pytest

from dreamset.cli import main
from dreamset.report.differences import equivalence

TINY = ["data.dataset.options.train_size=80", "generate.generator={key: glyphs}", "generate.count=200",
        "generate.batch_size=100", "generate.shard_size=100", "seeds=[0, 1]", "train.budget=6",
        "train.model={key: small-cnn, options: {width: 4}}", "evaluate.robust_samples=40",
        "evaluate.attackers=[{key: pgd, options: {eps: 0.15, steps: 2}}]", "reference.epochs=2",
        "report.curve_samples=0",
        "evaluate.metrics=[{key: subgroups, options: {bins: 2, k: 2, attacker: {key: pgd, options: {eps: 0.15, steps: 1}}}}]"] + [f"arms.discriminator-{p}.sampler.options={{fraction: {f}, epochs: 1, attack_steps: 1}}"
                                     for p, f in ((5, 0.05), (10, 0.1), (20, 0.2), (50, 0.5))]


def test_equivalence_needs_the_whole_interval_inside_the_margin():
    assert equivalence({"low": -0.004, "high": 0.009}, 0.01) == "equivalent"
    assert equivalence({"low": -0.004, "high": 0.011}, 0.01) == "not shown equivalent"
    assert equivalence({"low": None, "high": None}, 0.01) == "not shown equivalent"  # one seed


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "run"
    args = ["run", "digits-data-efficiency", "--out", str(out), "-q"]
    for item in TINY:
        args += ["--set", item]
    assert main(args) == 0
    return out, json.loads((out / "report.json").read_text())


def test_the_sweep_reports_every_sampler_and_fraction_at_equal_steps(sweep):
    out, report = sweep
    steps = {arm["training"]["optimizer_steps"] for arm in report["arms"].values()}
    assert steps == {6}  # every arm trained for the same optimizer steps
    assert not report["notes"]  # so no compute note
    section = report["data_efficiency"]
    assert section["full"] == "full" and section["margin"] == 0.01
    assert {(p["sampler"], p["fraction"]) for p in section["points"]} == {
        (f"sampler:{s}", f) for s in ("uniform", "confidence", "adaptive-low-density", "discriminator-score")
        for f in (0.05, 0.1, 0.2, 0.5)}
    for point in section["points"]:
        assert point["vs_full"]["equivalence"] in ("equivalent", "not shown equivalent")
        assert point["vs_full"]["n"] == 2 and point["gain"]["n"] == 2
        assert (point["vs_reference"] is None) == (point["sampler"] == "sampler:uniform")
        assert point["sampler_seconds"] >= 0 and point["train_seconds"] > 0
    assert set(section["efficiency"]) == {p["sampler"] for p in section["points"]}
    # the pool is generated once: one store, and each arm's selection is a subset of it of its fraction
    assert report["selections"]["uniform-10"]["0"]["selected"] == 20 and report["selections"]["uniform-10"]["0"]["of"] == 200
    assert (out / "data_efficiency.png").stat().st_size > 1000
    subgroups = report["metrics"]["subgroups"]["arms"]
    assert "kept_share" not in subgroups["real"] and len(subgroups["discriminator-50"]["kept_share"]) == 2
    assert subgroups["full"]["kept"] == 200 and subgroups["uniform-10"]["kept"] == 20


def test_the_sweep_is_in_the_claims_block_and_on_the_page(sweep):
    from dreamset.report.claims import claims_markdown

    out, report = sweep
    block = claims_markdown(report, source="test")
    assert "Data efficiency" in block and "| discriminator-score | 0.05 |" in block
    assert "`uniform`:" in block and "shown equivalent to the full pool" in block
    html = (out / "report.html").read_text()
    assert "data efficiency: robust gain per sampler" in html
    import io

    from rich.console import Console

    from dreamset.report.writer import print_summary

    buffer = io.StringIO()
    print_summary(report, Console(file=buffer, width=200))
    printed = buffer.getvalue()
    assert "data efficiency" in printed and "discriminator-score" in printed and "shown equivalent" in printed


def test_a_bad_full_arm_is_one_line(tmp_path, capsys):
    assert main(["run", "digits-data-efficiency", "--out", str(tmp_path / "x"), "--set",
                 "evaluate.data_efficiency={full: nope}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "evaluate.data_efficiency.full" in err[0]
