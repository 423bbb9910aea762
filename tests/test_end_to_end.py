"""The default recipe end to end at reduced size, resume, and a third-party plugin used in a recipe."""
from __future__ import annotations

import json
from pathlib import Path

from dreamset.cli import main

TINY = [
    "seeds=[0,1]",
    "data.dataset.options.train_size=200",
    "generate.count=200", "generate.batch_size=100", "generate.shard_size=100",
    "generate.generator.options={block_out_channels: [8, 16], train_steps: 20, steps: 4, batch_size: 32}",
    "train.epochs=2", "train.budget=matched", "train.model.options.width=8",
    "evaluate.attackers.0.options.steps=3", "evaluate.robust_samples=64",
    "reference.epochs=1",
    "evaluate.metrics.4.options={eps_max: 0.15, points: 2, epochs: 1, max_samples: 64}",
    "evaluate.metrics.5.options={testbed_sizes: [0.5, 1.0], testbed_epochs: [1]}",
]


def _run(out: Path, *extra: str) -> int:
    args = ["run", "--out", str(out)]
    for item in (*TINY, *extra):
        args += ["--set", item]
    return main(args)


def test_default_recipe_reduced_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(out) == 0
    report = json.loads((out / "report.json").read_text())
    assert {"recipe", "arms", "metrics", "timings"} <= set(report)
    assert report["recipe"]["name"] == "digits-robust" and report["recipe"]["train"]["epochs"] == 2
    assert set(report["arms"]) == {"real", "real+synthetic"}
    for arm in report["arms"].values():
        assert 0 <= arm["clean_accuracy"] <= 1 and 0 <= arm["robust_accuracy"] <= arm["clean_accuracy"] + 0.05
        assert set(arm["per_seed"]) == {"0", "1"} and "clean_accuracy_std" in arm
        assert set(arm["shifted"]) == {"gaussian-noise@3", "blur@2", "contrast@4", "rotate@2"}
    assert {"data", "generate", "train", "evaluate", "report"} <= set(report["timings"])
    metrics = report["metrics"]
    assert set(metrics) == {"fid", "kid", "prdc", "label_agreement", "arc", "effective_robustness"}
    assert metrics["fid"]["fid"] >= 0 and 0 <= metrics["prdc"]["coverage"] <= 1 and 0 <= metrics["arc"]["arc"] <= 1
    assert 0 <= metrics["label_agreement"]["agreement"] <= 1
    assert set(metrics["effective_robustness"]["arms"]) == {"real", "real+synthetic"}
    assert (out / "arc_curve.png").exists() and (out / "effective_robustness.png").exists()
    html = (out / "report.html").read_text()
    assert "<table>" in html and "data:image/png;base64," in html
    assert (out / "synthetic" / "store.json").exists() and (out / "samples_synthetic.png").exists()
    assert list((out / "checkpoints").glob("*/final.safetensors"))
    first = report["arms"]
    # a second run into the same folder reuses the generator, the store and the finished checkpoints
    assert _run(out) == 0
    again = json.loads((out / "report.json").read_text())
    assert again["timings"]["generate"] < report["timings"]["generate"]
    assert again["arms"]["real"]["clean_accuracy"] == first["real"]["clean_accuracy"]
    assert "real+synthetic" in capsys.readouterr().out


def test_third_party_plugin_usable_in_a_recipe(tmp_path, example_plugin):
    recipe = tmp_path / "stripes.yaml"
    recipe.write_text("""
name: stripes
data: {dataset: {key: digits, options: {train_size: 100, test_size: 100}}}
generate: {generator: {key: stripes, options: {size: 8}}, count: 100, batch_size: 50, shard_size: 50}
arms:
  synthetic-only: {real: false, synthetic: true, sampler: {key: confidence, options: {fraction: 0.5}}}
train: {model: {key: small-cnn, options: {width: 8}}, attacker: uniform-noise, epochs: 1}
reference: {epochs: 1}
evaluate: {attackers: [uniform-noise]}
""")
    out = tmp_path / "run"
    assert main(["run", str(recipe), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert "synthetic-only" in report["arms"]
    assert report["recipe"]["generate"]["generator"]["key"] == "stripes"
    # report.json says which distribution supplied every component, and keeps the sampler's diagnostics
    sources = report["components"]
    assert sources["generate.generator"] == {"key": "generator:stripes", "plugin": "generator-stripes",
                                             "distribution": "dreamset-example-plugin", "version": "0.1.0"}
    assert sources["train.attacker"]["distribution"] == "dreamset-example-plugin"
    assert sources["train.model"]["distribution"] == "dreamset" and sources["train.model"]["plugin"] == "model-small-cnn"
    assert sources["train.objective"]["key"] == "objective:pgd-at" and sources["train.objective"]["implied_by"] == "train.attacker"
    assert sources["arms.synthetic-only.mixer"]["key"] == "mixer:ratio"
    selection = report["selections"]["synthetic-only"]["0"]
    assert selection["selected"] == 50 and selection["of"] == 100
    assert 0 < selection["info"]["mean_kept_confidence"] <= 1


def test_generate_fills_the_store_and_run_reuses_it(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["generate", "--out", str(out)]
    for item in TINY:
        args += ["--set", item]
    assert main(args) == 0
    assert "store: " in capsys.readouterr().out
    store = json.loads((out / "synthetic" / "store.json").read_text())
    assert store["count"] == 200 and not (out / "report.json").exists()
    shards = {f: f.stat().st_mtime_ns for f in (out / "synthetic" / "shards").rglob("*") if f.is_file()}
    assert _run(out) == 0  # the run reuses the generated store
    assert {f: f.stat().st_mtime_ns for f in shards} == shards
    assert json.loads((out / "report.json").read_text())["arms"]
