"""Sharing and small fixes (issue 20): WebDataset / datasets / parquet exports, an ImageFolder
export that datasets' imagefolder builder loads, world-readable files per umask, ε as ``8/255``,
``dreamset evaluate`` on the whole synthetic file with a table, ``plugins --kind`` checked, the
MLflow tracker."""
from __future__ import annotations

import io
import json
import os
import stat
import tarfile

import numpy as np
import pytest

from dreamset.cli import main
from dreamset.contracts.errors import BadInputError


@pytest.fixture
def store(tmp_path):
    """A 12-image RGB store with three classes and provenance, imported from an .npz."""
    from dreamset.store.npz import import_npz

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "s.npz", image=rng.integers(0, 256, (12, 6, 6, 3), dtype=np.uint8), label=np.arange(12) % 3)
    return import_npz(tmp_path / "s.npz", tmp_path / "store", class_names=["cat", "dog", "ship"], shard_size=5)


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_writes_follow_the_umask(tmp_path):
    from dreamset.files.atomic import atomic_write_bytes, current_umask

    old = os.umask(0o022)
    try:
        assert current_umask() == 0o022
        atomic_write_bytes(tmp_path / "a.json", b"{}")
        assert _mode(tmp_path / "a.json") == 0o644
        os.umask(0o077)
        atomic_write_bytes(tmp_path / "b.json", b"{}")
        assert _mode(tmp_path / "b.json") == 0o600
    finally:
        os.umask(old)


def test_webdataset_export_layout(store, tmp_path, umask022):
    assert main(["export", str(store.path), "--format", "webdataset", "--out", str(tmp_path / "wds"), "--shard-size", "5"]) == 0
    shards = sorted((tmp_path / "wds").glob("shard-*.tar"))
    assert [p.name for p in shards] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    assert json.loads((tmp_path / "wds" / "classes.json").read_text()) == ["cat", "dog", "ship"]
    from PIL import Image

    seen = []
    for shard in shards:
        assert _mode(shard) == 0o644
        with tarfile.open(shard) as tar:
            names = tar.getnames()
            keys = list(dict.fromkeys(n.split(".", 1)[0] for n in names))
            # WebDataset groups consecutive members by key: png, cls, json per sample
            assert names == [f"{k}.{ext}" for k in keys for ext in ("png", "cls", "json")]
            for key in keys:
                label = int(tar.extractfile(f"{key}.cls").read())
                record = json.loads(tar.extractfile(f"{key}.json").read())
                image = np.asarray(Image.open(io.BytesIO(tar.extractfile(f"{key}.png").read())))
                index = int(key)
                assert record["index"] == index and record["label"] == label == index % 3
                assert record["class_name"] == ["cat", "dog", "ship"][label] and "generator" in record
                assert np.array_equal(image, store.get_uint8([index])[0][0].transpose(1, 2, 0))
                seen.append(index)
    assert seen == list(range(12))


def test_datasets_and_parquet_exports_load_with_class_labels(store, tmp_path, umask022):
    datasets = pytest.importorskip("datasets", reason="needs the optional datasets package")
    assert main(["export", str(store.path), "--format", "datasets", "--out", str(tmp_path / "hf")]) == 0
    ds = datasets.load_from_disk(str(tmp_path / "hf"))
    assert len(ds) == 12 and ds.features["label"].names == ["cat", "dog", "ship"]
    assert ds[4]["label"] == 1 and ds[4]["class_name"] == "dog" and ds[4]["index"] == 4
    assert np.array_equal(np.asarray(ds[4]["image"]), store.get_uint8([4])[0][0].transpose(1, 2, 0))
    assert "generator" in ds.column_names and "seed" in ds.column_names
    assert all(_mode(p) & 0o044 == 0o044 for p in (tmp_path / "hf").rglob("*"))
    # a second export into the same, now non-empty, folder is refused, nothing overwritten
    assert main(["export", str(store.path), "--format", "datasets", "--out", str(tmp_path / "hf")]) == 2

    assert main(["export", str(store.path), "--format", "parquet", "--out", str(tmp_path / "pq")]) == 0
    table = datasets.load_dataset("parquet", data_files=str(tmp_path / "pq" / "data.parquet"), split="train")
    assert table.features["label"].names == ["cat", "dog", "ship"] and table[7]["label"] == 1


def test_imagefolder_export_loads_with_the_datasets_imagefolder_builder(store, tmp_path, umask022):
    datasets = pytest.importorskip("datasets", reason="needs the optional datasets package")
    assert main(["export", str(store.path), "--format", "imagefolder", "--out", str(tmp_path / "if")]) == 0
    header = (tmp_path / "if" / "metadata.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["file_name", "path"]  # path kept for older readers
    assert _mode(tmp_path / "if" / "metadata.csv") == 0o644 and _mode(tmp_path / "if" / "dog" / "00000001.png") == 0o644
    ds = datasets.load_dataset("imagefolder", data_dir=str(tmp_path / "if"), split="train")
    assert len(ds) == 12
    by_index = {row["index"]: row for row in ds}
    assert by_index[5]["class_name"] == "ship" and by_index[5]["label"] == 2
    assert np.array_equal(np.asarray(by_index[5]["image"]), store.get_uint8([5])[0][0].transpose(1, 2, 0))


@pytest.mark.parametrize("key", ["attacker:pgd", "attacker:fgsm", "attacker:trades", "attacker:apgd", "attacker:fgsm-rs"])
def test_eps_accepts_fractions(key):
    from dreamset.registry import get_registry

    attacker = get_registry().create(key, eps="8/255")
    assert attacker.options.eps == pytest.approx(8 / 255)
    with pytest.raises(BadInputError, match="eps"):
        get_registry().create(key, eps="8/0")
    with pytest.raises(BadInputError, match="eps"):
        get_registry().create(key, eps="eight")


def test_eps_fraction_from_set_and_recipes():
    from dreamset.orchestration.recipe import load_recipe
    from dreamset.registry import get_registry

    recipe, resolved = load_recipe(None, ["train.attacker.options.eps=8/255", "evaluate.attackers.0.options.eps=4 / 255",
                                          "train.attacker.options.alpha=2/255"], registry=get_registry())
    assert resolved["train"]["attacker"]["options"]["eps"] == "8/255"  # the recipe keeps what was written
    attacker = get_registry().create(recipe.train.attacker.key, **recipe.train.attacker.options)
    assert attacker.options.eps == pytest.approx(8 / 255) and attacker.options.alpha == pytest.approx(2 / 255)
    arc = get_registry().create("metric:arc", eps=["0", "2/255", "8/255"])
    assert arc.options.eps == pytest.approx([0, 2 / 255, 8 / 255])
    with pytest.raises(BadInputError, match="eps"):
        load_recipe(None, ["train.attacker.options.eps=300/255"], registry=get_registry())


def test_unknown_plugin_kind_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["plugins", "--kind", "attackers"])
    assert exc.value.code == 2
    assert "invalid choice: 'attackers'" in capsys.readouterr().err
    assert main(["plugins", "--kind", "attacker", "--json"]) == 0
    keys = [c["key"] for c in json.loads(capsys.readouterr().out)["components"]]
    assert keys and all(k.startswith("attacker:") for k in keys)


def test_evaluate_help_names_the_real_defaults(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # argparse wraps help at the terminal width
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "default fid, kid, prdc, label-agreement" in " ".join(capsys.readouterr().out.split())


def test_evaluate_uses_the_whole_synthetic_npz_and_prints_a_table(tmp_path, capsys, monkeypatch):
    import functools

    import dreamset.commands.compare
    from sklearn.datasets import load_digits

    # the reference classifier (KID's feature space) need not be good here: train it briefly
    monkeypatch.setattr(dreamset.commands.compare, "evaluate_sources",
                        functools.partial(dreamset.commands.compare.evaluate_sources, reference_epochs=2))
    digits = load_digits()
    np.savez(tmp_path / "s.npz", image=(digits.images[:300] * 16).clip(0, 255).astype(np.uint8), label=digits.target[:300])
    assert main(["evaluate", "dataset:digits", str(tmp_path / "s.npz"), "--metric", "kid"]) == 0
    out = capsys.readouterr().out
    assert not out.lstrip().startswith("{") and "KID (lower is better)" in out  # metric:kid's declared headline
    # all 300 images of the file: no test split on the synthetic side (the table shows the headline; --json all)
    assert main(["evaluate", "dataset:digits", str(tmp_path / "s.npz"), "--metric", "kid", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kid"]["n_synthetic"] == 300


def test_mlflow_tracker_logs_curves_and_final_numbers(tmp_path):
    mlflow = pytest.importorskip("mlflow", reason="the MLflow tracker needs mlflow (pip install mlflow-skinny)")
    import sys
    from pathlib import Path

    import dreamset

    sys.path.insert(0, str(Path(__file__).parent))
    from test_run_page import digits_npz, tiny_recipe

    recipe = tiny_recipe(digits_npz(tmp_path / "s.npz"))
    recipe.update(seeds=[0], report={"trackers": ["mlflow"], "curve_samples": 0})
    recipe["evaluate"]["metrics"] = []
    report = dreamset.run(recipe, out=tmp_path / "run")
    client = mlflow.MlflowClient(tracking_uri=(tmp_path / "run" / "mlruns").resolve().as_uri())
    run = client.search_runs([client.get_experiment_by_name("dreamset").experiment_id])[0]
    assert run.data.metrics["final.real.clean_accuracy"] == pytest.approx(report.arms["real"]["clean_accuracy"])
    history = client.get_metric_history(run.info.run_id, "real.seed0.loss")
    assert [h.value for h in history] == pytest.approx([p["loss"] for p in report.curves("real", 0)])
