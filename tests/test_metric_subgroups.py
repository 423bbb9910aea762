"""metric:subgroups (issue 33): kept synthetic images binned by the real data's k-NN density — the known
answer: images copied from a dense region land in the dense bins, images from a sparse region in the
sparsest; per-bin accuracy of each arm's classifier; conformance."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamset import registry
from dreamset.contracts.data import TensorImageSet
from dreamset.contracts.inputs import ArmInputs, RealData, Services


class _FlatFeatures(torch.nn.Module):
    def forward(self, x):
        return torch.stack([x.flatten(1)[:, 0] - x.flatten(1)[:, 1], x.flatten(1)[:, 1] - x.flatten(1)[:, 0]], 1) * 10

    def features(self, x):
        return x.flatten(1)


class _Reference:
    def model(self):
        return _FlatFeatures()


def _points(n, low, high, g):
    return low + (high - low) * torch.rand(n, 1, 1, 2, generator=g)


def test_kept_images_land_in_the_bins_of_their_region_and_accuracy_is_per_bin():
    g = torch.Generator().manual_seed(0)
    dense = 0.2 + 0.01 * torch.randn(200, 1, 1, 2, generator=g)
    sparse = _points(50, 0.5, 1.0, g)
    train_x = torch.cat([dense, sparse]).clamp(0, 1)
    names = ["a", "b"]
    labels = (train_x.flatten(1)[:, 0] < train_x.flatten(1)[:, 1]).long()
    train = TensorImageSet(train_x, labels, names)
    test_x = torch.cat([0.2 + 0.01 * torch.randn(40, 1, 1, 2, generator=g), _points(40, 0.5, 1.0, g)]).clamp(0, 1)
    test = TensorImageSet(test_x, (test_x.flatten(1)[:, 0] < test_x.flatten(1)[:, 1]).long(), names)
    near = TensorImageSet((0.2 + 0.01 * torch.randn(40, 1, 1, 2, generator=g)).clamp(0, 1), torch.zeros(40, dtype=torch.long), names)
    far = TensorImageSet(_points(40, 0.6, 1.0, g), torch.zeros(40, dtype=torch.long), names)
    model = _FlatFeatures()
    inputs = ArmInputs(RealData(train, test, {}), {"near": model, "far": model, "real": model}, {}, 0, {}, None,
                       Services(device=torch.device("cpu"), registry=registry.get_registry(), reference=_Reference()),
                       {"near": near, "far": far})
    result = registry.create("metric:subgroups", bins=4, k=3,
                             attacker={"key": "fgsm", "options": {"eps": 0.05}}).compute(inputs)
    arms = result["arms"]
    assert arms["near"]["sparse_share"] < 0.1  # the dense cluster holds 80% of the real data: bins 0-2
    assert arms["far"]["sparse_share"] > 0.8
    assert "kept_share" not in arms["real"] and len(arms["real"]["clean_accuracy"]) == 4
    assert sum(result["test_counts"]) == len(test) and len(result["edges"]) == 3
    assert all(v is None or 0 <= v <= 1 for v in arms["real"]["robust_accuracy"])
    shares = np.asarray(arms["far"]["kept_share"])
    assert shares.sum() == pytest.approx(1.0)


def test_subgroups_passes_conformance():
    from dreamset.conformance.metrics import check_default

    cls = registry.get("metric:subgroups").load()
    check_default(registry.create("metric:subgroups", **cls.conformance_options))
