"""A run a researcher looks at, talks to from a notebook and shares (issue 20): the Python API,
training curves, the trackers, the log of a piped run, -q/--json, the run page (in headless
Chromium when there is one) and report.html: false.

One tiny run (digits, 2 seeds, an imported .npz as the synthetic source: no generator training)
is shared by the tests of this module.
"""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import dreamset
from dreamset.cli import main


def digits_npz(path: Path, noise: float = 0.1, seed: int = 0, n: int = 200) -> Path:
    """``n`` noised scikit-learn digits as an ``image``/``label`` .npz: a stand-in synthetic set."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images[:n] / 16.0 + noise * np.random.default_rng(seed).standard_normal(digits.images[:n].shape)
    np.savez(path, image=(np.clip(images, 0, 1) * 255).round().astype(np.uint8), label=digits.target[:n])
    return path


def tiny_recipe(source: Path) -> dict:
    return {
        "name": "tiny-page",
        "seeds": [0, 1],
        "device": "cpu",
        "data": {"dataset": {"key": "digits", "options": {"train_size": 200}}, "shifts": ["invert"]},
        "generate": {"generator": "glyphs", "count": 10, "source": str(source)},
        "arms": {"real": {"real": True},
                 "real+synthetic": {"real": True, "synthetic": True, "mixer": {"key": "ratio", "options": {"real_fraction": 0.5}}}},
        "train": {"model": {"key": "small-cnn", "options": {"width": 8}}, "epochs": 2, "batch_size": 64,
                  "attacker": {"key": "fgsm", "options": {"eps": "8/255"}}},
        "reference": {"epochs": 1},
        "evaluate": {"attackers": [{"key": "pgd", "options": {"eps": "8/255", "steps": 2}}], "robust_samples": 50,
                     "metrics": ["fid", "label-agreement"]},
        "report": {"curve_samples": 40, "curve_every": 1, "trackers": ["tensorboard"]},
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """``(RunReport, records)``: the tiny run through ``dreamset.run`` with the log captured."""
    pytest.importorskip("tensorboard", reason="the run uses the tensorboard tracker (pip install tensorboard)")
    root = tmp_path_factory.mktemp("page")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Keep(level=logging.INFO)
    logger = logging.getLogger("dreamset")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        report = dreamset.run(tiny_recipe(digits_npz(root / "synthetic.npz")), out=root / "run",
                              overrides={"train.lr": 0.05})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    return report, records


def test_python_api_returns_and_loads_the_report(finished):
    report, _ = finished
    assert isinstance(report, dreamset.RunReport) and report.folder.name == "run"
    assert set(report.arms) == {"real", "real+synthetic"}
    assert report.recipe["train"]["attacker"]["options"]["eps"] == "8/255"  # the recipe as written
    assert report.recipe["train"]["lr"] == 0.05  # the override reached the run
    assert report.comparisons["real+synthetic"]["baseline"] == "real"
    again = dreamset.load_run(report.folder)
    assert dict(again) == json.loads(json.dumps(dict(report), default=str))
    rows = again.table()
    assert [r["arm"] for r in rows] == ["real", "real+synthetic"] and 0 <= rows[0]["clean_accuracy"] <= 1
    html = again._repr_html_()
    assert "real+synthetic" in html and "8/255" in html and "<section" in html
    with pytest.raises(dreamset.BadInputError, match="no report.json"):
        dreamset.load_run(report.folder / "nothing-here")


def test_python_api_refuses_a_bad_recipe_before_writing(tmp_path):
    with pytest.raises(dreamset.BadInputError, match="train.epochs"):
        dreamset.run("digits-robust", out=tmp_path / "bad", overrides=["train.epochs=-1"])
    assert not (tmp_path / "bad").exists()


def test_training_curves_are_recorded_per_arm_and_seed(finished):
    report, _ = finished
    for arm in ("real", "real+synthetic"):
        for seed in (0, 1):
            curve = report.curves(arm, seed)
            steps = report.arms[arm]["per_seed"][str(seed)]["training"]["optimizer_steps"]
            assert [p["epoch"] for p in curve] == list(range(len(curve))) and len(curve) >= 2
            assert curve[-1]["step"] == steps
            for point in curve:
                assert point["loss"] > 0 and 0 <= point["train_accuracy"] <= 1
                # validation on 40 images: a multiple of 1/40; robust never above clean
                assert round(point["val_clean_accuracy"] * 40, 6).is_integer()
                assert 0 <= point["val_robust_accuracy"] <= point["val_clean_accuracy"]
            assert curve[-1]["loss"] < curve[0]["loss"] + 0.5
    # the curves survive beside the checkpoints (a resumed run reports them)
    saved = json.loads((report.folder / "checkpoints" / "real-seed0" / "curves.json").read_text())
    assert saved == report.curves("real", 0)


def test_tensorboard_tracker_logged_every_epoch_and_the_final_numbers(finished):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    report, _ = finished
    events = EventAccumulator(str(report.folder / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"real/seed0/loss", "real+synthetic/seed1/val_robust_accuracy", "final/real/clean_accuracy",
            "final/metrics/fid/fid"} <= tags
    losses = events.Scalars("real/seed0/loss")
    assert [e.value for e in losses] == pytest.approx([p["loss"] for p in report.curves("real", 0)])
    assert events.Scalars("final/real/clean_accuracy")[0].value == pytest.approx(report.arms["real"]["clean_accuracy"])


def test_every_stage_announces_itself_and_its_result(finished):
    report, records = finished
    lines = [r.getMessage() for r in records]
    for stage in ("data", "generate", "select", "train", "evaluate", "metrics", "report"):
        assert any(line == f"{stage} ..." or line.startswith(f"{stage} ... ") for line in lines), stage  # + its planned work
        assert any(line.startswith(f"{stage} done in ") for line in lines), stage
    assert any(line.startswith("metric metric:fid: fid ") for line in lines)
    evaluate = [line for line in lines if line.startswith("evaluate done")]
    assert len(evaluate) == 2 and "real+synthetic clean " in evaluate[0] and "robust " in evaluate[0]
    assert set(report["stages"]) >= {"data", "train", "evaluate", "metrics"} and len(report["stages"]["train"]) == 2


def test_versions_name_every_component_and_its_distribution(finished):
    report, _ = finished
    versions = report["versions"]
    assert versions["dreamset"] == dreamset.__version__ and "torch" in versions and "python" in versions
    html = (report.folder / "report.html").read_text()
    assert f"<td>dreamset</td><td>{dreamset.__version__}</td>" in html
    # every component with the distribution that supplied it (report.json's components)
    assert "attacker:fgsm (train.attacker)</td><td>dreamset</td>" in html and "metric:fid (evaluate.metrics.0)" in html


def test_run_page_content(finished):
    report, _ = finished
    html = (report.folder / "report.html").read_text()
    assert '<meta name="viewport"' in html
    assert "What the synthetic data bought" in html
    assert "pgd-2 L∞ ε=8/255" in html  # the attack and the radius are named beside robust accuracy
    assert "one seed" not in html and "95%" in html  # two seeds: intervals, not the one-seed wording
    for group in ("fidelity", "label quality"):
        assert f"<h3>{group}</h3>" in html
    assert "reference-classifier features, not comparable with published Inception values" in html
    assert "<details><summary>bookkeeping" in html and "fid.n_real" in html.split("<summary>bookkeeping")[1]
    assert "Training curves" in html and "resolved recipe" in html and "tiny-page" in html
    # sample grids: one labelled row per class, upscaled
    assert html.count('alt="real samples: ') == 10 and html.count('alt="synthetic samples: ') == 10
    assert "fid: " in html and "Warning:" in html  # the run's metric warnings are shown
    assert "http://" not in html and "https://" not in html and "src=\"data:image/png;base64," in html


def test_run_page_renders_unknown_report_sections(finished, tmp_path):
    from dreamset.report.writer import render_html

    report, _ = finished
    extra = {**dict(report), "generators": {"ddpm": {"images": 10, "fid": 1.23456}}, "custom_note": [1, 2]}
    html = render_html(tmp_path, extra)
    assert "<h2>generators</h2>" in html and "1.23" in html and "1.23456" not in html
    assert "<h2>custom note</h2>" in html


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.parametrize("width", [pytest.param(1200, marks=pytest.mark.slow), 400])
def test_run_page_in_headless_chromium(finished, tmp_path, width):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    from PIL import Image

    report, _ = finished
    shot = tmp_path / f"page-{width}.png"
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--allow-file-access-from-files", f"--window-size={width},3000", f"--screenshot={shot}",
                           (report.folder / "report.html").as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    image = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert image.shape[1] == width
    # the page is not blank: the headline cards and the sample grids draw dark pixels at the top ...
    assert (image[:600] < 100).mean() > 0.01
    # ... and the sample grids (black digits on a dark lattice) make a band of mostly dark rows
    dark_rows = (image < 60).mean(axis=1)
    assert (dark_rows > 0.15).sum() > 200
    # at 400 px nothing is wider than the viewport: the screenshot's right edge is page background
    if width == 400:
        assert image[:, -3:].mean() > 200


def test_cli_json_quiet_and_html_false(finished, tmp_path, capsys):
    report, _ = finished
    recipe = tmp_path / "r.json"
    data = tiny_recipe(Path(report.recipe["generate"]["source"]))
    data.update(seeds=[0], report={"html": False, "curve_samples": 0})
    recipe.write_text(json.dumps(data))
    # YAML is a superset of JSON: a .yaml file holding JSON is a recipe
    path = recipe.rename(tmp_path / "r.yaml")
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--json", "-q"]) == 0
    out = capsys.readouterr().out
    printed = json.loads(out)  # stdout holds the report alone
    assert set(printed["arms"]) == {"real", "real+synthetic"}
    assert (tmp_path / "run" / "report.json").is_file() and not (tmp_path / "run" / "report.html").exists()
    assert all("val_clean_accuracy" not in p for p in printed["arms"]["real"]["per_seed"]["0"]["training"]["curves"])
    assert " INFO " not in capsys.readouterr().err  # -q: warnings and errors only
    # without -q and --json, off a terminal (as when piped), the log lines are plain, one per stage
    # start and result, on stdout with the tables (this second run reuses the checkpoints)
    assert main(["run", str(path), "--out", str(tmp_path / "run")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("dreamset run tiny-page")
    for stage in ("data", "train", "evaluate", "metrics", "report"):
        assert any(f" INFO    {stage} ..." in line for line in lines), stage
        assert any(f" INFO    {stage} done in " in line for line in lines), stage
    assert any(line.strip().startswith("stages") for line in lines)


@pytest.mark.slow
def test_piped_run_is_a_readable_log(finished, tmp_path):
    """``dreamset run > file``: the header, one line per stage start and result, the summary."""
    import sys

    report, _ = finished
    data = tiny_recipe(Path(report.recipe["generate"]["source"]))
    data.update(seeds=[0], report={"curve_samples": 0})
    data["evaluate"]["metrics"] = []
    path = tmp_path / "r.yaml"
    path.write_text(json.dumps(data))
    done = subprocess.run([sys.executable, "-m", "dreamset", "run", str(path), "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("dreamset run tiny-page")
    for stage in ("data", "train", "evaluate", "report"):
        assert any(f" INFO    {stage} done in " in line for line in lines), stage
    assert any("stages" in line for line in lines) and any("arms (mean" in line for line in lines)


def test_page_numbers_are_rounded_and_in_one_unit():
    from dreamset.report.html import attack_name, metric_groups, metric_tables, radius, sig

    assert radius(8 / 255) == "8/255" and radius(0.15) == "0.15" and radius("4/255") == "4/255"
    assert attack_name({"key": "pgd", "options": {"eps": 8 / 255, "steps": 20}}) == "pgd-20 L∞ ε=8/255"
    assert attack_name({"key": "apgd", "options": {"norm": "l2", "eps": 0.5}}) == "apgd L2 ε=0.5"
    assert sig(0.06870422322089538) == "0.0687" and sig(1234) == "1,234" and sig(float("nan")) == "–"
    report = {"metrics": {
        "prdc": {"precision": 0.2105263, "recall": 1.0, "density": 0.0421, "coverage": 0.157, "k": 5, "n_real": 19,
                 "tables": {"per class": {"header": ["class", "n_real", "precision", "density"],
                                          "rows": [["0", 19, 0.21052631578947367, 0.042105263157894736]]}}},
        "fid": {"fid": 12.3456, "extractor": "reference", "n_real": 200, "feature_dim": 32},
        "mystery": {"score": 0.5, "n_samples": 10},
    }}
    groups, bookkeeping = metric_groups(report)
    rows = {r["name"]: r["value"] for g in groups for r in g["rows"]}
    assert rows["precision"] == "21.1%" and rows["density"] == "0.042"  # as metric:prdc declares them
    assert rows["mystery.score"] == "0.5" and [g["title"] for g in groups][-1] == "other metrics"
    assert any(name.startswith("FID — reference-classifier features") for name in rows)
    folded = {r["name"] for r in bookkeeping}
    assert {"prdc.k", "prdc.n_real", "fid.n_real", "fid.feature_dim", "mystery.n_samples", "fid.extractor"} <= folded
    table = metric_tables(report)[0]
    assert table["header"] == ["class", "n_real", "precision %", "density"]
    assert table["rows"] == [["0", "19", "21.1", "0.0421"]]
