"""metric:fid, metric:kid and metric:prdc: PRDC against the reference ``prdc`` package, bounded-memory
k-NN blocks, the metrics on a real tiny RunContext against dense recomputations, and option errors."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

import dreamset.registry as registry
from dreamset.contracts.errors import BadInputError
from dreamset.plugins.metrics.prdc import prdc
from dreamset.plugins.metrics.statistics import frechet_distance, kernel_inception_distance

KEYS = ("precision", "recall", "density", "coverage")


def _features(seed: int, n: int, m: int, d: int, shift: float):
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((n, d))
    fake = rng.standard_normal((m, d)) * rng.uniform(0.7, 1.3) + shift
    return real, fake


@pytest.mark.parametrize("seed,n,m,k", [(0, 200, 150, 5), (1, 120, 260, 3), (2, 300, 301, 5), (3, 90, 70, 3)])
def test_prdc_matches_reference_package(seed, n, m, k, capsys):
    from prdc import compute_prdc

    real, fake = _features(seed, n, m, d=8, shift=0.4)
    expected = compute_prdc(real, fake, k)
    ours = prdc(torch.from_numpy(real), torch.from_numpy(fake), k)
    for key in KEYS:
        assert abs(ours[key] - float(expected[key])) < 1e-6, key
    assert 0 < ours["precision"] < 1 and 0 < ours["coverage"] < 1  # informative values, not a trivial 0/1 case


def test_prdc_is_chunked_and_chunking_does_not_change_the_answer(monkeypatch):
    import dreamset.toolkit.knn as knn

    real, fake = _features(4, 150, 110, d=6, shift=0.3)
    full = prdc(real, fake, 5)
    blocks: list[tuple[int, int]] = []
    original = knn._block_distances

    def recording(a, b):
        blocks.append(tuple(a.shape[:1]) + tuple(b.shape[:1]))
        return original(a, b)

    monkeypatch.setattr(knn, "_block_distances", recording)
    chunked = prdc(real, fake, 5, query_chunk=7, reference_chunk=13)
    assert chunked == full
    assert blocks and max(q for q, _ in blocks) <= 7 and max(r for _, r in blocks) <= 13  # never an N×M matrix


def test_prdc_rejects_bad_arguments():
    real, fake = _features(5, 10, 10, d=3, shift=0.0)
    with pytest.raises(BadInputError, match="k"):
        prdc(real, fake, 0)
    with pytest.raises(BadInputError, match="k"):
        prdc(real, fake[:5], 5)
    with pytest.raises(BadInputError, match="features"):
        prdc(real, fake[:, :2], 3)


@pytest.fixture(scope="module")
def context():
    from dreamset.conformance.metrics import tiny_run_context

    return tiny_run_context()


def _replace(context, **changes):
    """The same run (same trained reference classifier) with other real/synthetic sources."""
    return dataclasses.replace(context, **changes)


def _dense_fid(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().numpy(), b.double().numpy()
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


@pytest.mark.parametrize("key", ["metric:fid", "metric:kid", "metric:prdc"])
def test_metric_conformance_and_per_class_table(key, context):
    from dreamset.conformance.metrics import check_metric

    metric = registry.create(key)
    check_metric(metric, context)
    result = metric.compute(context)
    json.dumps(result, allow_nan=False)
    assert result["extractor"] == "reference" and result["n_real"] == 60 and result["n_synthetic"] == 60
    assert isinstance(result["warnings"], list)
    ((title, table),) = result["tables"].items()
    assert [row[0] for row in table["rows"]] == context.real_train.class_names
    assert all(len(row) == len(table["header"]) for row in table["rows"])
    assert title.startswith("per-class")


def test_fid_streams_to_the_dense_value_and_is_zero_for_a_set_with_itself(context):
    real, synthetic = context.features(context.real_train), context.features(context.synthetic)
    streamed = registry.create("metric:fid", batch_size=7).compute(context)
    whole = registry.create("metric:fid").compute(context)
    # the reference features have dead ReLU units (rank-deficient Σ): the square roots of Σ1Σ2's
    # near-zero eigenvalues turn rounding-level differences of Σ into ~1e-7 relative ones
    assert streamed["fid"] == pytest.approx(_dense_fid(real, synthetic), rel=1e-6)
    assert streamed["fid"] == pytest.approx(whole["fid"], rel=1e-6) and streamed["fid"] > 0.1
    assert streamed["feature_dim"] == real.shape[1]
    labels_real, labels_synthetic = context.real_train.labels, context.synthetic.labels
    rows = streamed["tables"]["per-class FID (biased upward for small n: prefer KID)"]["rows"]
    for c, (name, n_real, n_synthetic, value) in enumerate(rows):
        assert (n_real, n_synthetic) == (int((labels_real == c).sum()), int((labels_synthetic == c).sum()))
        # per class n is tiny and Σ more rank-deficient still: rounding-level differences grow to ~1e-6
        assert value == pytest.approx(_dense_fid(real[labels_real == c], synthetic[labels_synthetic == c]), rel=1e-5)
    same = registry.create("metric:fid").compute(_replace(context, synthetic=context.real_train))
    assert abs(same["fid"]) < 1e-6
    assert all(abs(row[3]) < 1e-6 for row in same["tables"]["per-class FID (biased upward for small n: prefer KID)"]["rows"])


def test_fid_warns_when_n_is_not_above_the_feature_dim(context):
    few = context.synthetic.subset(range(9))
    result = registry.create("metric:fid", real="test").compute(_replace(context, synthetic=few))
    assert result["n_synthetic"] == 9 and result["n_real"] == 45
    assert any("synthetic" in w and "singular" in w for w in result["warnings"])
    assert any("per-class FID" in w for w in result["warnings"])
    skipped = registry.create("metric:fid", per_class_memory_mb=0.001).compute(context)
    assert "tables" not in skipped and any("per_class" in w for w in skipped["warnings"])


def test_kid_matches_full_feature_computation_and_separates_shift(context):
    real, synthetic = context.features(context.real_train), context.features(context.synthetic)
    result = registry.create("metric:kid", subset_size=25, num_subsets=9, seed=2).compute(context)
    expected = kernel_inception_distance(real, synthetic, subset_size=25, num_subsets=9, seed=2)
    assert (result["kid_mean"], result["kid_std"]) == pytest.approx(expected, rel=1e-9)
    assert result["subset_size"] == 25 and result["kid_std"] > 0
    rows = result["tables"]["per-class KID"]["rows"]
    assert [row[3] for row in rows] == [20, 20, 20]  # min(subset_size, smallest n of the class)
    assert all(row[4] > 0 for row in rows)


def test_kid_near_zero_for_the_same_distribution_and_large_for_a_shifted_one(context):
    from dreamset.conformance.metrics import toy_row_images

    from dreamset.contracts.nn import Classifier
    from dreamset.orchestration.reference import ReferenceClassifier

    g = torch.Generator().manual_seed(5)  # fresh draws, unseen by the reference classifier
    real, same, shifted = toy_row_images(300, 3, 0.0, g), toy_row_images(300, 3, 0.0, g), toy_row_images(300, 3, 0.1, g)
    metric = registry.create("metric:kid", real="test", subset_size=100, num_subsets=20)
    # features of a known scale (the pixels): the cubic kernel of a tiny trained CNN's penultimate layer
    # (norms 3 to 50, depending on its initial weights and epochs) makes the subset estimates vary by
    # thousands, so whether a 0.1 brightness shift showed depended on the draw of initial weights
    pixels = Classifier(torch.nn.Flatten(), torch.nn.Linear(64, 3), mean=[0.0], std=[1.0]).eval()
    pixels = ReferenceClassifier.fixed(pixels, context.device)
    kid_same = metric.compute(_replace(context, real_test=real, synthetic=same, reference=pixels))
    kid_shifted = metric.compute(_replace(context, real_test=real, synthetic=shifted, reference=pixels))
    assert kid_shifted["kid_mean"] > 2 * kid_shifted["kid_std"] > 0
    assert abs(kid_same["kid_mean"]) < 0.25 * kid_shifted["kid_mean"]


def test_prdc_metric_matches_reference_package_on_the_same_features(context):
    from prdc import compute_prdc

    train, test = context.features(context.real_train), context.features(context.real_test)
    result = registry.create("metric:prdc", k=3, equal_n=False).compute(_replace(context, synthetic=context.real_test))
    expected = compute_prdc(train.double().numpy(), test.double().numpy(), 3)
    for key in KEYS:
        assert abs(result[key] - float(expected[key])) < 1e-6, key
    assert result["n_real"] == 60 and result["n_synthetic"] == 45 and result["precision"] > 0.5
    (title, table), = result["tables"].items()
    assert "n = 15 real and 15 synthetic per class, equalised across classes" in title
    assert all(row[1] == row[2] == 15 for row in table["rows"])
    equal = registry.create("metric:prdc", k=3, max_samples=30).compute(context)
    assert equal["n_real"] == equal["n_synthetic"] == 30


def test_reports_render_the_tables(context, tmp_path):
    from dreamset.report.writer import render_html

    result = registry.create("metric:kid", subset_size=10, num_subsets=2).compute(context)
    page = render_html(tmp_path, {"metrics": {"kid": result}})
    assert "kid: per-class KID" in page and "<td>KID — reference-classifier features" in page  # the fidelity group (headline contract)


@pytest.mark.parametrize("key,options,field", [
    ("metric:prdc", {"k": 0}, "k"),
    ("metric:fid", {"extractor": "clip"}, "extractor"),
    ("metric:kid", {"extractor": "inception-v3"}, "weights"),
    ("metric:prdc", {"weights": "w.pt"}, "weights"),
    ("metric:kid", {"subset_size": 1}, "subset_size"),
    ("metric:fid", {"real": "validation"}, "real"),
    ("metric:prdc", {"max_samples": 1}, "max_samples"),
])
def test_bad_options_name_the_field(key, options, field):
    with pytest.raises(BadInputError, match=field):
        registry.create(key, **options)


def test_missing_sources_and_too_few_samples_are_one_line_errors(context):
    with pytest.raises(BadInputError, match="synthetic"):
        registry.create("metric:kid").compute(_replace(context, synthetic=None))
    with pytest.raises(BadInputError, match="real"):
        registry.create("metric:fid", real="test").compute(_replace(context, real_test=None))
    with pytest.raises(BadInputError, match="k"):
        registry.create("metric:prdc", k=5).compute(_replace(context, synthetic=context.synthetic.subset(range(5))))


@pytest.mark.slow
def test_fid_with_a_timm_extractor_and_local_weights(context, tmp_path, monkeypatch):
    from dreamset.plugins.extractors.timm import TimmExtractor

    timm = pytest.importorskip("timm")
    weights = tmp_path / "test_resnet.pt"
    torch.manual_seed(0)
    torch.save(timm.create_model("test_resnet", pretrained=False, num_classes=0).state_dict(), weights)
    builds = []
    prepare = TimmExtractor.prepare
    monkeypatch.setattr(TimmExtractor, "prepare", lambda self, ctx: builds.append(1) or prepare(self, ctx))
    result = registry.create("metric:fid", extractor="timm:test_resnet", weights=str(weights), batch_size=32).compute(context)
    assert result["extractor"] == "timm:test_resnet" and result["fid"] > 0 and result["feature_dim"] > 16
    # the network is built once for both streamed sources (real, synthetic), not once per 32-row chunk
    assert len(builds) == 1