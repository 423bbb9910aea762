"""Named synthetic sources (dreamset.orchestration.sources): per-source stores, checkpoints and metrics, arms that
choose and mix sources (mixer:ratio keeps the proportions per batch), resume of a multi-source run
after a kill, and a recipe with one generate block behaving as before."""
from __future__ import annotations

import copy
import json
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from dreamset.cli import main
from dreamset.contracts.data import TensorImageSet
from dreamset.contracts.errors import BadInputError
from dreamset.orchestration.recipe import validate_recipe
from dreamset.orchestration.sources import MixedSource, arm_sources

TINY_GAN = {"key": "gan", "options": {"train_steps": 5, "batch_size": 16, "width": 8, "disc_width": 8, "latent_dim": 8}}
TINY_VAE = {"key": "vae", "options": {"train_steps": 5, "batch_size": 16, "width": 8, "latent_dim": 8}}

BASE = {
    "name": "tiny-sources",
    "seeds": [0],
    "device": "cpu",
    "data": {"dataset": {"key": "digits", "options": {"train_size": 100}}},
    "train": {"model": {"key": "small-cnn", "options": {"width": 4}}, "epochs": 1, "batch_size": 32,
              "attacker": {"key": "pgd", "options": {"eps": 0.1, "steps": 1}}},
    "reference": {"epochs": 1},
    "evaluate": {"attackers": [{"key": "pgd", "options": {"eps": 0.1, "steps": 1}}], "robust_samples": 40,
                 "metrics": [{"key": "fid", "options": {"per_class": False}}, {"key": "label-agreement"}]},
}


def _named_recipe(**arms):
    recipe = copy.deepcopy(BASE)
    recipe["generate"] = {
        "glyphs": {"generator": "glyphs", "count": 60, "batch_size": 30, "shard_size": 30},
        "gan": {"generator": TINY_GAN, "count": 60, "batch_size": 30, "shard_size": 30},
    }
    recipe["arms"] = arms or {"real": {"real": True}, "real+glyphs": {"synthetic": ["glyphs"]},
                              "real+gan": {"synthetic": ["gan"]},
                              "real+mix": {"synthetic": {"glyphs": 3, "gan": 1},
                                           "mixer": {"key": "ratio", "options": {"real_fraction": 0.5}}}}
    return recipe


def _run(tmp_path, recipe, out_name="run"):
    path = tmp_path / f"{out_name}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    out = tmp_path / out_name
    assert main(["run", str(path), "--out", str(out)]) == 0
    return out, json.loads((out / "report.json").read_text())


# -- the recipe ------------------------------------------------------------------------------------

def test_arm_forms_and_validation():
    recipe = validate_recipe(_named_recipe())
    assert list(recipe.generate_stages()) == ["glyphs", "gan"]
    assert arm_sources(recipe, recipe.arms["real+mix"]) == (["glyphs", "gan"], {"glyphs": 0.75, "gan": 0.25})
    assert arm_sources(recipe, recipe.arms["real+gan"]) == (["gan"], {"gan": 1.0})
    both = validate_recipe(_named_recipe(a={"synthetic": True}, b={"synthetic": ["gan", "glyphs"]}))
    assert arm_sources(both, both.arms["a"]) == (["glyphs", "gan"], None)
    assert arm_sources(both, both.arms["b"])[1] == {"gan": 0.5, "glyphs": 0.5}
    with pytest.raises(BadInputError, match=r"^arms\.x\.synthetic: unknown source 'ddpm'"):
        validate_recipe(_named_recipe(x={"synthetic": ["ddpm"]}))
    with pytest.raises(BadInputError, match=r"^arms\.x\.synthetic\.gan: Input should be greater than 0"):
        validate_recipe(_named_recipe(x={"synthetic": {"gan": 0}}))
    bad = _named_recipe()
    bad["generate"]["bad name"] = bad["generate"].pop("gan")
    with pytest.raises(BadInputError, match=r"generate\.bad name: a source name"):
        validate_recipe(bad)
    bad = _named_recipe()
    bad["generate"]["gan"]["count"] = 0  # the error path names the source, not the union's form
    with pytest.raises(BadInputError, match=r"^generate\.gan\.count: Input should be greater than 0"):
        validate_recipe(bad)


# -- mixing ----------------------------------------------------------------------------------------

def _marked(label: int, n: int, value: float) -> TensorImageSet:
    return TensorImageSet(torch.full((n, 1, 4, 4), value), torch.full((n,), label), ["a", "b", "c", "r"])


@pytest.mark.parametrize("proportions,real_fraction", [({"a": 0.5, "b": 0.5}, 0.25),
                                                        ({"a": 0.6, "b": 0.3, "c": 0.1}, 0.5)])
def test_ratio_mixer_keeps_the_real_fraction_and_splits_the_synthetic_share(proportions, real_fraction):
    from dreamset.registry import get_registry

    parts = {"a": _marked(0, 37, 0.1), "b": _marked(1, 11, 0.2), "c": _marked(2, 23, 0.3)}
    synthetic = MixedSource({k: parts[k] for k in proportions}, proportions)
    # a sampler's selection keeps the structure (the mixer still sees three sources)
    synthetic = synthetic.subset(torch.arange(len(synthetic)).flip(0))
    real = _marked(3, 64, 0.9)
    mixer = get_registry().create("mixer:ratio", real_fraction=real_fraction, epoch_steps=20)
    totals = {k: 0 for k in proportions}
    taken = 0
    for x, y in mixer.batches(real, synthetic, 40, epoch=0, seed=0):
        counts = torch.bincount(y, minlength=4)
        assert counts[3] == round(real_fraction * 40)
        n_syn = 40 - int(counts[3])
        taken += n_syn
        for i, name in enumerate(proportions):
            assert abs(int(counts[i]) - proportions[name] * n_syn) < 1 + 1e-9  # per batch
            totals[name] += int(counts[i])
            assert abs(totals[name] - proportions[name] * taken) <= 1 + 1e-9  # running totals
        # images come with their own labels (each part is a constant image)
        assert torch.allclose(x[y == 0], torch.tensor(0.1)) and torch.allclose(x[y == 3], torch.tensor(0.9))


def test_mixed_source_reads_labels_and_provenance_of_each_part(tmp_path):
    from dreamset.store.npz import import_npz
    import numpy as np

    np.savez(tmp_path / "a.npz", image=np.full((5, 4, 4, 1), 10, np.uint8), label=np.arange(5) % 2)
    store = import_npz(tmp_path / "a.npz", tmp_path / "store", class_names=["x", "y"])
    other = TensorImageSet(torch.ones(3, 1, 4, 4), torch.tensor([1, 1, 0]), ["x", "y"])
    mixed = MixedSource({"imported": store, "memory": other})
    assert len(mixed) == 8 and mixed.labels.tolist() == [0, 1, 0, 1, 0, 1, 1, 0]
    x, y = mixed.get([6, 0, 7])
    assert y.tolist() == [1, 0, 0] and float(x[0].max()) == 1.0 and abs(float(x[1].max()) - 10 / 255) < 1e-6
    assert mixed.provenance(1)["source"] == "imported" and mixed.provenance(1)["label"] == 1
    assert mixed.subset([7, 2]).source_of(0) == "memory"
    with pytest.raises(BadInputError, match="differ from those of the other sources"):
        MixedSource({"a": other, "b": TensorImageSet(torch.ones(1, 1, 5, 5), [0], ["x", "y"])})


# -- runs ------------------------------------------------------------------------------------------

def test_named_sources_have_their_own_stores_checkpoints_and_metrics(tmp_path):
    import numpy as np

    recipe = _named_recipe()
    # an existing .npz is a source like any other
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "old.npz", image=rng.integers(0, 255, (30, 8, 8, 1), dtype=np.uint8), label=np.arange(30) % 10)
    recipe["generate"]["old"] = {"generator": "glyphs", "count": 30, "source": str(tmp_path / "old.npz")}
    recipe["arms"]["real+old"] = {"synthetic": ["old"]}
    out, report = _run(tmp_path, recipe)
    for name, count in (("glyphs", 60), ("gan", 60), ("old", 30)):
        assert json.loads((out / "synthetic" / name / "store.json").read_text())["count"] == count
    assert report["metrics"]["fid"]["old"]["n_synthetic"] == 30
    report["metrics"]["fid"].pop("old")
    assert (out / "generator" / "gan" / "gan.safetensors").is_file()
    assert not (out / "synthetic" / "store.json").exists()
    fid, agreement = report["metrics"]["fid"], report["metrics"]["label_agreement"]
    assert set(fid) == {"glyphs", "gan"} and all(fid[s]["fid"] >= 0 and fid[s]["n_synthetic"] == 60 for s in fid)
    assert fid["glyphs"]["fid"] != fid["gan"]["fid"]
    assert set(agreement) == {"glyphs", "gan", "old", "tables"}  # tables hoisted, titled by source
    assert {title.split(":")[0] for title in agreement["tables"]} == {"glyphs", "gan", "old"}
    # the per-source numbers are those of a recipe that has only that source
    alone = _named_recipe(**{"real+gan": {"synthetic": True}})
    alone["generate"].pop("glyphs")
    _, single = _run(tmp_path, alone, "alone")
    assert single["metrics"]["fid"]["gan"]["fid"] == pytest.approx(fid["gan"]["fid"], rel=1e-6)
    # every arm trained the same number of steps, the mixed arm on both sources
    assert len({arm["training"]["optimizer_steps"] for arm in report["arms"].values()}) == 1
    html = (out / "report.html").read_text()
    assert "fid[gan]" in html and "gan samples" in html and "generators: Spearman" in html
    # three single-source arms: a generator table, rho over three sources
    table = report["generator_table"]
    assert sorted(row[0] for row in table["rows"]) == ["gan", "glyphs", "old"]
    assert table["sources"]["gan"]["FID"] == fid["gan"]["fid"] and table["spearman"]["FID"]["n"] == 3
    assert (out / "generator_metrics_vs_gain.png").is_file()


def test_one_generate_block_keeps_the_old_layout_and_report(tmp_path):
    recipe = copy.deepcopy(BASE)
    recipe["generate"] = {"generator": TINY_GAN, "count": 60, "batch_size": 30, "shard_size": 30}
    recipe["arms"] = {"real": {"real": True}, "real+synthetic": {"synthetic": True}}
    out, report = _run(tmp_path, recipe)
    assert json.loads((out / "synthetic" / "store.json").read_text())["count"] == 60
    assert (out / "generator" / "gan.safetensors").is_file()
    assert report["metrics"]["fid"]["fid"] >= 0 and "synthetic" not in report["metrics"]["fid"]
    assert "tables" in report["metrics"]["label_agreement"] and "generator_table" not in report
    assert (out / "samples_synthetic.png").is_file()
    # an old run folder resumes: the stores and the checkpoint are reused, not rewritten
    before = {f: f.stat().st_mtime_ns for f in (out / "synthetic").rglob("*") if f.is_file()}
    before[out / "generator" / "gan.safetensors"] = (out / "generator" / "gan.safetensors").stat().st_mtime_ns
    _, again = _run(tmp_path, recipe)
    assert {f: f.stat().st_mtime_ns for f in before} == before
    assert again["metrics"]["fid"]["fid"] == report["metrics"]["fid"]["fid"]


def test_a_sampler_that_drops_a_mixed_source_is_refused(tmp_path):
    recipe = _named_recipe(**{"real": {"real": True},
                              "mix": {"synthetic": {"glyphs": 1, "gan": 1},
                                      "sampler": {"key": "uniform", "options": {"count": 1}}}})
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["run", str(path), "--out", str(tmp_path / "run")]) == 2


def _shards(folder):
    return [p for p in (folder / "shards").iterdir() if p.name.startswith("shard-")] if (folder / "shards").is_dir() else []


def test_a_multi_source_run_killed_mid_generation_resumes(tmp_path):
    recipe = _named_recipe()
    recipe["generate"]["vae"] = {"generator": TINY_VAE, "count": 600, "batch_size": 20, "shard_size": 20}
    recipe["evaluate"]["metrics"] = []
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "dreamset", "run", str(path), "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not _shards(out / "synthetic" / "vae"):  # the first two sources are done, the third is being written
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert not (out / "report.json").exists()
    done = {f: f.stat().st_mtime_ns for name in ("glyphs", "gan") for f in (out / "synthetic" / name).rglob("*") if f.is_file()}
    done.update({f: f.stat().st_mtime_ns for f in (out / "generator").rglob("*") if f.is_file()})
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    assert {f: f.stat().st_mtime_ns for f in done} == done  # finished stores and checkpoints reused
    # the resumed store equals an uninterrupted run's, shard for shard
    fresh, _ = _run(tmp_path, recipe, "fresh")
    for name in ("glyphs", "gan", "vae"):
        ours = sorted((out / "synthetic" / name / "shards").glob("*/checksums.json"))
        theirs = sorted((fresh / "synthetic" / name / "shards").glob("*/checksums.json"))
        assert ours and [p.read_text() for p in ours] == [p.read_text() for p in theirs]
    assert len(list((out / "synthetic" / "vae" / "shards").glob("shard-*"))) == 600 // 20


def test_dreamset_generate_fills_every_named_store(tmp_path, capsys):
    recipe = copy.deepcopy(BASE)
    recipe["generate"] = {"a": {"generator": "glyphs", "count": 20}, "b": {"generator": "glyphs", "count": 10, "seed": 1}}
    recipe["arms"] = {"real+a": {"synthetic": ["a"]}}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    assert main(["generate", str(path), "--out", str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out
    assert "store a:" in printed and "store b:" in printed
    assert json.loads((tmp_path / "run" / "synthetic" / "b" / "store.json").read_text())["count"] == 10


def test_metric_warnings_reach_the_reports_top_level_warnings(tmp_path, monkeypatch):
    import dreamset.plugins.metrics.arc as arc

    recipe = copy.deepcopy(BASE)
    recipe["generate"] = {"glyphs": {"generator": "glyphs", "count": 30, "batch_size": 30, "shard_size": 30}}
    recipe["arms"] = {"real": {"real": True}, "real+glyphs": {"synthetic": ["glyphs"]}}
    recipe["evaluate"]["metrics"] = [
        {"key": "fid", "options": {"per_class": False}},
        {"key": "arc", "options": {"points": 2, "epochs": 1, "attack_steps": 1, "eval_steps": 1, "max_samples": 20,
                                   "discriminator": {"key": "model:small-cnn", "options": {"width": 2}}}}]
    # a discriminator that calls every held-out image real at every radius: ARC's collapse check fires
    monkeypatch.setattr(arc, "_predicted_fraction", lambda *args: 1.0)
    out, report = _run(tmp_path, recipe)
    arc_lines = [w for w in report["warnings"] if w.startswith("arc.glyphs: the discriminator collapsed")]
    assert len(arc_lines) == 1 and report["metrics"]["arc"]["glyphs"]["warnings"] == [arc_lines[0].split(": ", 1)[1]]
    # every metric's lines, each once, prefixed with the metric and the source
    assert sorted(report["warnings"]) == sorted(f"{m}.glyphs: {w}" for m in ("fid", "arc")
                                                for w in report["metrics"][m]["glyphs"]["warnings"])
    assert len(report["warnings"]) == sum(len(report["metrics"][m]["glyphs"]["warnings"]) for m in ("fid", "arc"))
    html = (out / "report.html").read_text()
    assert "the discriminator collapsed" in html
