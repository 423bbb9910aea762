"""metric:memorization (planted exact and near copies flagged, none on a clean set, the pairs grid),
metric:vendi (the reference formula on a fixed matrix), extractors as components (legacy option
strings, the conformance of extractor:timm), precomputed feature files from Python and from
`dreamset evaluate`, and the cache of real statistics."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

import dreamset.registry as registry
from dreamset.contracts.data import TensorImageSet
from dreamset.contracts.errors import BadInputError
from dreamset.plugins.metrics.vendi import vendi_score


@pytest.fixture(scope="module")
def context():
    from dreamset.conformance.metrics import tiny_run_context

    return tiny_run_context()


def _planted(context):
    """The run's (clean) synthetic set with 4 exact and 4 near copies of training images appended."""
    clean_x, clean_y = context.synthetic.get(range(len(context.synthetic)))
    train_x, train_y = context.real_train.get(range(8))
    near = (train_x[4:] + 0.01 * torch.randn(train_x[4:].shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    images = torch.cat([clean_x, train_x[:4], near])
    labels = torch.cat([clean_y, train_y])
    return TensorImageSet(images, labels, context.real_train.class_names, name="planted"), set(range(len(clean_x), len(images)))


@pytest.mark.parametrize("pixels", [True, False])
def test_memorization_flags_planted_copies_and_nothing_on_a_clean_set(context, pixels):
    clean = registry.create("metric:memorization", pixels=pixels).compute(context)
    assert clean["memorized_fraction"] == 0.0 and clean["n_flagged"] == 0 and clean["n_checked"] == len(context.synthetic)
    planted, copies = _planted(context)
    result = registry.create("metric:memorization", pixels=pixels, pairs=8).compute(dataclasses.replace(context, synthetic=planted))
    json.dumps(result, allow_nan=False)
    flagged = {p["synthetic_row"] for p in result["closest"] if p["flagged"]}
    exact = set(sorted(copies)[:4])
    assert all(p["distance"] < 1e-5 for p in result["closest"][:4])  # the exact copies come first (0 up to GEMM rounding)
    assert {p["synthetic_row"] for p in result["closest"][:4]} == exact
    if pixels:  # every planted copy, near ones included, and nothing else
        assert flagged == copies and result["n_flagged"] == 8
        assert result["memorized_fraction"] == pytest.approx(8 / len(planted))
        assert {p["train_row"] for p in result["closest"]} == set(range(8))
    else:  # a small CNN's features magnify pixel noise: exact copies always, near ones as they fall
        assert exact <= flagged <= copies and result["n_flagged"] == len(flagged)
    assert result["threshold"] > 0 and (context.run_dir / "memorization_pairs.png").is_file()
    (title, table), = result["tables"].items()
    assert sum(row[2] for row in table["rows"]) == result["n_flagged"]


def test_vendi_matches_the_reference_formula_on_a_fixed_matrix():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 6))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    eigenvalues = np.linalg.eigvalsh(unit @ unit.T / len(x))
    eigenvalues = eigenvalues[eigenvalues > 1e-12]
    expected = math.exp(-np.sum(eigenvalues * np.log(eigenvalues)))
    assert vendi_score(x, chunk=7) == pytest.approx(expected, rel=1e-10)
    assert vendi_score(x, q=2) == pytest.approx(1 / np.sum(eigenvalues ** 2), rel=1e-10)
    assert vendi_score(x, q=float("inf")) == pytest.approx(1 / eigenvalues.max(), rel=1e-10)
    assert vendi_score(np.repeat(x[:1], 10, axis=0)) == pytest.approx(1.0)  # ten copies: one distinct sample
    assert vendi_score(np.eye(5)) == pytest.approx(5.0)  # five orthogonal samples
    with pytest.raises(BadInputError, match="NaN or infinite"):
        vendi_score(np.array([[1.0, float("nan")], [0.0, 1.0]]))


def test_vendi_metric_overall_and_per_class(context):
    from dreamset.conformance.metrics import check_metric

    metric = registry.create("metric:vendi")
    check_metric(metric, context)
    result = metric.compute(context)
    json.dumps(result, allow_nan=False)
    assert 1 <= result["vendi_synthetic"] <= result["n"] and 1 <= result["vendi_real"] <= result["n"]
    (title, table), = result["tables"].items()
    assert [row[0] for row in table["rows"]] == context.real_train.class_names and "per-class" in title
    copies = TensorImageSet(*context.real_train.get([0] * 60), context.real_train.class_names)
    collapsed = registry.create("metric:vendi", per_class=False).compute(dataclasses.replace(context, synthetic=copies))
    assert collapsed["vendi_synthetic"] == pytest.approx(1.0) and result["vendi_synthetic"] > 1.5


def test_legacy_extractor_strings_map_to_registry_keys():
    from dreamset.toolkit.features import extractor_ref

    assert extractor_ref("reference").key == "extractor:reference"
    timm = extractor_ref("timm:resnet18", "w.safetensors")
    assert (timm.key, timm.options) == ("extractor:timm", {"model": "resnet18", "weights": "w.safetensors"})
    assert extractor_ref("inception-v3", "w.pth").key == "extractor:torchvision-inception"
    assert extractor_ref({"key": "extractor:inception-fid", "options": {"preprocessing": "torch-fidelity"}}).options == {
        "preprocessing": "torch-fidelity"}
    with pytest.raises(BadInputError, match="weights"):
        registry.create("metric:fid", extractor="timm:resnet18")  # still refused early, as before
    with pytest.raises(BadInputError, match="extractor"):
        registry.create("metric:fid", extractor="extractor:no-such-thing")


def test_extractor_timm_conformance():
    from dreamset.conformance import check_component

    check_component("extractor:timm")


def _feature_files(tmp_path, context):
    real = context.features(context.real_train).numpy()
    synthetic = context.features(context.synthetic).numpy()
    np.savez(tmp_path / "real.npz", features=real, labels=context.real_train.labels.numpy())
    np.save(tmp_path / "synthetic.npy", synthetic)
    return real, synthetic


def test_metrics_accept_precomputed_feature_files(context, tmp_path):
    real, synthetic = _feature_files(tmp_path, context)
    from_images = registry.create("metric:fid").compute(context)
    from_files = registry.create("metric:fid", real_features=str(tmp_path / "real.npz"),
                                 synthetic_features=str(tmp_path / "synthetic.npy")).compute(None)
    assert from_files["fid"] == pytest.approx(from_images["fid"], rel=1e-9)
    assert "tables" not in from_files and any("without labels" in w for w in from_files["warnings"])
    mixed = registry.create("metric:kid", real_features=str(tmp_path / "real.npz")).compute(context)
    assert mixed["kid_mean"] == pytest.approx(registry.create("metric:kid").compute(context)["kid_mean"], rel=1e-9)
    with pytest.raises(BadInputError, match="real_features"):
        registry.create("metric:fid", real_features=str(tmp_path / "missing.npy")).compute(context)


def test_dreamset_evaluate_takes_feature_files(context, tmp_path, capsys):
    from dreamset.cli import main

    _feature_files(tmp_path, context)
    assert main(["evaluate", str(tmp_path / "real.npz"), str(tmp_path / "synthetic.npy"), "--metric", "fid", "--metric", "prdc", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fid"]["fid"] > 0 and 0 <= out["prdc"]["precision"] <= 1
    assert main(["evaluate", str(tmp_path / "real.npz"), str(tmp_path / "synthetic.npy"), "--metric", "label-agreement"]) == 2


def test_fid_real_statistics_are_cached_by_dataset_split_and_extractor(context, tmp_path, monkeypatch):
    timm = pytest.importorskip("timm")
    monkeypatch.setenv("DREAMSET_CACHE_DIR", str(tmp_path / "cache"))
    weights = tmp_path / "test_resnet.pt"
    torch.manual_seed(0)
    torch.save(timm.create_model("test_resnet", pretrained=False, num_classes=0).state_dict(), weights)
    options = {"extractor": {"key": "extractor:timm", "options": {"model": "test_resnet", "weights": str(weights), "image_size": 16}}}
    first = registry.create("metric:fid", **options).compute(context)
    second = registry.create("metric:fid", **options).compute(context)
    assert (first["real_statistics"], second["real_statistics"]) == ("computed", "cache")
    assert second["fid"] == first["fid"] and second["tables"] == first["tables"]
    assert len(list((tmp_path / "cache" / "statistics").glob("*.npz"))) == 1
    other_split = registry.create("metric:fid", real="test", **options).compute(context)
    assert other_split["real_statistics"] == "computed"
    assert registry.create("metric:fid").compute(context)["real_statistics"] == "computed"  # reference: never cached
