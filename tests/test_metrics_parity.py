"""Parity with the reference packages on identical inputs: FID against pytorch-fid and
torch-fidelity, KID against torch-fidelity on the same subsets, PRDC against ``prdc``; the
correctness fixes (NaN/inf refused, density 1 on exact copies, FID never negative); the FID
Inception extractor against torch-fidelity's network on one weights file; and (slow, needs a local
weights file) FID of two image folders against torch-fidelity's."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import dreamset.registry as registry
from dreamset.contracts.errors import BadInputError
from dreamset.plugins.metrics.prdc import prdc
from dreamset.plugins.metrics.statistics import frechet_distance, kernel_inception_distance, kid_subset_indices

KEYS = ("precision", "recall", "density", "coverage")


def _pair(seed=0, n=400, m=300, d=24, shift=0.3):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) * 0.3
    b = rng.standard_normal((m, d)) @ rng.standard_normal((d, d)) * 0.3 + shift
    return a, b


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fid_equals_pytorch_fid_and_torch_fidelity(seed):
    from pytorch_fid.fid_score import calculate_frechet_distance
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    a, b = _pair(seed)
    stats = [(x.mean(0), np.cov(x, rowvar=False)) for x in (a, b)]
    ours = frechet_distance(*stats[0], *stats[1])
    theirs = calculate_frechet_distance(*stats[0], *stats[1])
    fidelity = fid_statistics_to_metric({"mu": stats[0][0], "sigma": stats[0][1]}, {"mu": stats[1][0], "sigma": stats[1][1]}, False)["frechet_inception_distance"]
    assert ours > 1 and abs(ours - theirs) <= 1e-6 * ours and abs(ours - fidelity) <= 1e-6 * ours


def test_fid_is_never_negative_for_identical_statistics():
    from pytorch_fid.fid_score import calculate_frechet_distance

    raw_negative = 0
    for seed in range(20):
        a, _ = _pair(seed, n=60, d=40)  # n close to D: rounding-level negatives show up here
        mu, sigma = a.mean(0), np.cov(a, rowvar=False)
        assert frechet_distance(mu, sigma, mu, sigma) >= 0.0
        raw_negative += calculate_frechet_distance(mu, sigma, mu, sigma) < 0
    assert frechet_distance(mu, sigma, mu, sigma) == 0.0 or raw_negative == 0


def test_kid_equals_torch_fidelity_on_the_same_subsets():
    from torch_fidelity.metric_kid import kernel_mmd

    a, b = _pair(3, n=200, m=150, d=16)
    size, subsets, seed = 50, 20, 7
    theirs = [kernel_mmd(a[i], b[j], kid_kernel="poly", kid_degree=3, kid_gamma=None, kid_coef0=1)
              for i, j in kid_subset_indices(len(a), len(b), size, subsets, seed)]
    mean, std = kernel_inception_distance(a, b, subset_size=size, num_subsets=subsets, seed=seed)
    assert abs(mean - np.mean(theirs)) < 1e-9 * max(1.0, abs(mean)) and abs(std - np.std(theirs)) < 1e-9 * max(1.0, std)
    assert mean > 0


@pytest.mark.parametrize("n,m", [(300, 120), (150, 400)])
def test_prdc_metric_default_equals_the_prdc_package_on_unequal_sets(tmp_path, n, m):
    from prdc import compute_prdc

    a, b = _pair(4, n=n, m=m, d=8, shift=0.2)
    np.save(tmp_path / "real.npy", a.astype(np.float32))
    np.save(tmp_path / "fake.npy", b.astype(np.float32))
    result = registry.create("metric:prdc", k=5, real_features=str(tmp_path / "real.npy"),
                             synthetic_features=str(tmp_path / "fake.npy")).compute(None)
    expected = compute_prdc(a.astype(np.float32), b.astype(np.float32), 5)
    assert result["n_real"] == n and result["n_synthetic"] == m and result["preprocessing"] == "precomputed features"
    for key in KEYS:
        assert abs(result[key] - float(expected[key])) < 1e-6, key


def test_prdc_density_is_exactly_one_on_exact_copies_and_matches_the_package():
    from prdc import compute_prdc

    rng = np.random.default_rng(0)
    for d in (16, 64):
        real = rng.standard_normal((500, d))
        ours, theirs = prdc(real, real.copy(), 5), compute_prdc(real, real.copy(), 5)
        assert ours["density"] == 1.0 == theirs["density"]
        assert ours["precision"] == ours["recall"] == ours["coverage"] == 1.0
        # a shuffled subset of copies: only exact ties at the k-th neighbour (decided by rounding in both
        # implementations, through differently shaped GEMMs) can differ
        fake = real[rng.permutation(500)[:300]]
        assert prdc(real, fake, 5)["density"] == pytest.approx(float(compute_prdc(real, fake, 5)["density"]), abs=0.01)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_prdc_refuses_non_finite_features(bad):
    a, b = _pair(5, n=30, m=30, d=4)
    b[3, 1] = bad
    with pytest.raises(BadInputError, match="NaN or infinite"):
        prdc(a, b, 3)
    with pytest.raises(BadInputError, match="NaN or infinite"):
        prdc(b, a, 3)


# -- the FID Inception network -------------------------------------------------------------------

def _random_fid_inception_weights(path):
    """pytorch-fid's FID Inception network with random (seeded) weights, saved as a state dict:
    the file format of pt_inception-2015-12-05-6726825d.pth, without the download."""
    from unittest import mock

    from pytorch_fid import inception

    torch.manual_seed(0)
    with mock.patch.object(inception, "load_state_dict_from_url", lambda *a, **k: None), \
            mock.patch.object(torch.nn.Module, "load_state_dict", lambda self, state, strict=True: None):
        network = inception.fid_inception_v3()
    torch.save(network.state_dict(), path)
    return path


def test_inception_fid_without_weights_is_a_one_line_offline_error(tmp_path, monkeypatch):
    monkeypatch.delenv("DREAMSET_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    extractor = registry.create("extractor:inception-fid")
    with pytest.raises(BadInputError, match="DREAMSET_INCEPTION_WEIGHTS") as info:
        extractor.prepare(None)
    assert "pt_inception-2015-12-05-6726825d.pth" in str(info.value) and "\n" not in str(info.value)


def test_inception_fid_features_equal_torch_fidelity_network_on_the_same_weights(tmp_path):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    weights = _random_fid_inception_weights(tmp_path / "inception.pth")
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    images = (images * 255).round() / 255  # what uint8 files hold
    ours = registry.create("extractor:inception-fid", weights=str(weights), preprocessing="torch-fidelity")
    ours.prepare(None)
    theirs = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights))
    with torch.no_grad():
        expected = theirs((images * 255).round().to(torch.uint8))[0]
    got = ours.embed(images)
    assert got.shape == (2, 2048)
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)
    plain = registry.create("extractor:inception-fid", weights=str(weights))
    plain.prepare(None)
    assert plain.embed(images[:, :1]).shape == (2, 2048)  # grey images are replicated to 3 channels


@pytest.mark.slow
def test_fid_of_two_image_folders_equals_torch_fidelity(tmp_path):
    weights = os.environ.get("DREAMSET_INCEPTION_WEIGHTS")
    if not weights or not os.path.isfile(weights):
        pytest.skip("set DREAMSET_INCEPTION_WEIGHTS to a local pt_inception-2015-12-05-6726825d.pth "
                    "(https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/) to compare with torch-fidelity")
    import torch_fidelity
    from PIL import Image

    from dreamset.contracts.data import TensorImageSet
    from dreamset.toolkit.features import FeatureSet

    rng = np.random.default_rng(0)
    folders = []
    for name, shift in (("a", 0), ("b", 40)):
        folder = tmp_path / name
        folder.mkdir()
        images = np.clip(rng.integers(0, 200, size=(120, 32, 32, 3)) + shift, 0, 255).astype(np.uint8)
        for i, image in enumerate(images):
            Image.fromarray(image).save(folder / f"{i:04d}.png")
        folders.append((folder, torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255))
    expected = torch_fidelity.calculate_metrics(input1=str(folders[0][0]), input2=str(folders[1][0]), fid=True, cuda=False,
                                                feature_extractor_weights_path=weights, verbose=False)["frechet_inception_distance"]
    extractor = registry.create("extractor:inception-fid", weights=weights, preprocessing="torch-fidelity")
    extractor.prepare(None)
    stats = []
    for _, images in folders:
        source = TensorImageSet(images, torch.zeros(len(images), dtype=torch.int64), ["x"])
        features = FeatureSet(source=source, embed=lambda s: extractor.embed(s.get(range(len(s)))[0])).at(range(len(source)), 40)
        f = features.double().numpy()
        stats.append((f.mean(0), np.cov(f, rowvar=False)))
    assert abs(frechet_distance(*stats[0], *stats[1]) - expected) < 1e-3
