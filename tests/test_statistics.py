"""Oracles for dreamset.plugins.metrics.statistics: streaming moments vs two-pass numpy, the Fréchet distance vs its
closed form, and the unbiased polynomial MMD (KID) vs a direct double sum."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from dreamset.contracts.errors import BadInputError
from dreamset.plugins.metrics.statistics import (
    StreamingMoments,
    frechet_distance,
    kernel_inception_distance,
    kid_subset_indices,
    mean_and_std,
    polynomial_mmd,
    singular_covariance_message,
)


def _stream(x: np.ndarray, sizes) -> StreamingMoments:
    moments, start = StreamingMoments(), 0
    for size in sizes:
        moments.update(x[start:start + size])
        start += size
    assert start == len(x)
    return moments


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_streaming_matches_two_pass_numpy(dtype):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((517, 12)) @ rng.standard_normal((12, 12)) + rng.standard_normal(12) * 3).astype(dtype)
    sizes = [1, 0, 2, 37, 100, 250, 127]
    moments = _stream(torch.from_numpy(x) if dtype == np.float32 else x, sizes)
    reference = x.astype(np.float64)
    assert moments.count == 517 and moments.dim == 12
    np.testing.assert_allclose(moments.mean.numpy(), reference.mean(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(moments.covariance().numpy(), np.cov(reference, rowvar=False), rtol=1e-11, atol=1e-11)
    assert moments.mean.dtype == torch.float64 and moments.covariance().dtype == torch.float64


def test_merge_equals_single_stream():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 7)) * rng.uniform(0.1, 10, 7) + 5
    single = _stream(x, [300])
    left, right, empty = _stream(x[:41], [20, 21]), _stream(x[41:], [100, 159]), StreamingMoments()
    merged = StreamingMoments().merge(left).merge(empty).merge(right)
    assert merged.count == single.count == 300
    np.testing.assert_allclose(merged.mean.numpy(), single.mean.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(merged.covariance().numpy(), single.covariance().numpy(), rtol=1e-12, atol=1e-12)
    assert left.count == 41  # merge leaves the other accumulator unchanged


def test_large_common_offset_keeps_precision():
    rng = np.random.default_rng(2)
    centred = rng.standard_normal((2000, 8))
    x = centred + 1e6  # float64; subtracting 1e6 back below is exact (Sterbenz)
    reference = np.cov(x - 1e6, rowvar=False)
    moments = _stream(x, [500, 333, 667, 500])
    ours = np.abs(moments.covariance().numpy() - reference).max()
    n, mu = len(x), x.mean(axis=0)
    naive = np.abs((x.T @ x - n * np.outer(mu, mu)) / (n - 1) - reference).max()
    assert ours < 1e-9
    assert naive > 1e-5  # the naive Σxxᵀ − nμμᵀ formula loses ~6 digits here: the test can tell them apart


def test_covariance_warns_when_singular_and_needs_two_samples():
    moments = StreamingMoments().update(np.random.default_rng(3).standard_normal((10, 20)))
    with pytest.warns(RuntimeWarning, match="singular"):
        moments.covariance()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        moments.covariance(warn=False)
    assert singular_covariance_message(21, 20) is None and "singular" in singular_covariance_message(20, 20)
    with pytest.raises(BadInputError, match="covariance"):
        StreamingMoments().update(np.zeros((1, 3))).covariance()


def test_streaming_rejects_bad_batches():
    moments = StreamingMoments().update(np.zeros((4, 3)))
    with pytest.raises(BadInputError, match="batch"):
        moments.update(np.zeros((4, 5)))
    with pytest.raises(BadInputError, match="batch"):
        moments.update(np.full((2, 3), np.nan))
    with pytest.raises(BadInputError, match="batch"):
        moments.update(np.zeros(3))
    with pytest.raises(BadInputError, match="merge"):
        moments.merge(StreamingMoments().update(np.zeros((2, 2))))


def _closed_form_commuting(mu1, a, mu2, b):
    """‖μ1−μ2‖² + Σ (a + b − 2√(ab)) for covariances sharing eigenvectors with eigenvalues a, b."""
    return float(np.sum((mu1 - mu2) ** 2) + np.sum(a + b - 2 * np.sqrt(a * b)))


def test_frechet_distance_diagonal_and_commuting_closed_form():
    rng = np.random.default_rng(4)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    a, b = rng.uniform(0.1, 4, 6), rng.uniform(0.1, 4, 6)
    expected = _closed_form_commuting(mu1, a, mu2, b)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10, abs=1e-10)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))  # same eigenvectors, not diagonal
    sigma1, sigma2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    assert frechet_distance(torch.from_numpy(mu1), torch.from_numpy(sigma1), mu2, sigma2) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_frechet_distance_non_commuting_matches_sqrtm():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(5)
    d = 10
    m1, m2 = rng.standard_normal((d, d)), rng.standard_normal((d, d))
    sigma1, sigma2 = m1 @ m1.T + 0.1 * np.eye(d), m2 @ m2.T + 0.1 * np.eye(d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    covmean = scipy_linalg.sqrtm(sigma1 @ sigma2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(float(expected), rel=1e-8)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    rng = np.random.default_rng(6)
    features = rng.standard_normal((400, 64)) @ rng.standard_normal((64, 64)) + 2
    moments = StreamingMoments().update(features)
    assert abs(frechet_distance(moments.mean, moments.covariance(), moments.mean, moments.covariance())) < 1e-6
    # singular covariance (rank 20 < 64): Σ1Σ2 has 44 eigenvalues that are 0 up to rounding (±ε‖Σ‖²),
    # clamped at 0 before the square root; each can still add ~√ε‖Σ‖, so the bound is relative
    low_rank = StreamingMoments().update(rng.standard_normal((400, 20)) @ rng.standard_normal((20, 64)))
    cov = low_rank.covariance()
    assert abs(frechet_distance(low_rank.mean, cov, low_rank.mean, cov)) < 1e-6 * float(torch.trace(cov))


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(BadInputError, match="sigma2"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))
    with pytest.raises(BadInputError, match="mu2"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(3))
    with pytest.raises(BadInputError, match="sigma1"):
        frechet_distance(np.zeros(2), np.array([[1.0, np.inf], [0, 1]]), np.zeros(2), np.eye(2))


def _mmd_double_sum(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² by explicit sums over pairs (independent of the vectorised implementation)."""
    d = x.shape[1]

    def k(u, v):
        return (float(u @ v) / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_polynomial_mmd_matches_double_sum():
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((15, 4)), rng.standard_normal((11, 4)) + 0.5
    assert polynomial_mmd(x, y) == pytest.approx(_mmd_double_sum(x, y), rel=1e-12)
    assert polynomial_mmd(torch.from_numpy(x).float(), y) == pytest.approx(_mmd_double_sum(x.astype(np.float32).astype(np.float64), y), rel=1e-10)
    with pytest.raises(BadInputError, match="y"):
        polynomial_mmd(x, rng.standard_normal((5, 3)))


def test_kid_near_zero_for_same_distribution_and_larger_when_shifted():
    rng = np.random.default_rng(8)
    real, same = rng.standard_normal((600, 16)), rng.standard_normal((600, 16))
    shifted = rng.standard_normal((600, 16)) * 1.2 + 0.5
    same_mean, same_std = kernel_inception_distance(real, same, subset_size=200, num_subsets=20, seed=0)
    shift_mean, shift_std = kernel_inception_distance(real, shifted, subset_size=200, num_subsets=20, seed=0)
    assert shift_mean > 0.5 and shift_std > 0
    assert abs(same_mean) < 0.02 * shift_mean
    assert same_std > 0  # subsets differ, so the estimates do


def test_kid_is_seeded_and_uses_the_documented_subsets():
    rng = np.random.default_rng(9)
    x, y = rng.standard_normal((50, 5)), rng.standard_normal((40, 5)) + 0.3
    first = kernel_inception_distance(x, y, subset_size=10, num_subsets=7, seed=3)
    assert first == kernel_inception_distance(x, y, subset_size=10, num_subsets=7, seed=3)
    assert first != kernel_inception_distance(x, y, subset_size=10, num_subsets=7, seed=4)
    values = [polynomial_mmd(x[i], y[j]) for i, j in kid_subset_indices(50, 40, 10, 7, 3)]
    assert first == pytest.approx((np.mean(values), np.std(values)), rel=1e-12)
    # subset_size larger than the smaller set is capped at it
    assert kernel_inception_distance(x[:40], y, subset_size=1000, num_subsets=1)[0] == pytest.approx(polynomial_mmd(x[:40], y), rel=1e-12)
    with pytest.raises(BadInputError, match="subset_size"):
        kid_subset_indices(50, 40, 1, 3, 0)
    with pytest.raises(BadInputError, match="num_subsets"):
        kid_subset_indices(50, 40, 5, 0, 0)


def test_mean_and_std():
    assert mean_and_std([1.0, 2.0, 3.0, 6.0]) == pytest.approx((3.0, float(np.std([1, 2, 3, 6]))))
    with pytest.raises(BadInputError, match="values"):
        mean_and_std([])
