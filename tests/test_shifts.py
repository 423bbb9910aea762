"""Shifts: the conformance contract, seeded determinism, severity monotone in distance."""
from __future__ import annotations

import pytest
import torch

import dreamset.registry as registry
from dreamset.conformance.shifts import check_shift

SHIFTS = ["shift:blur", "shift:contrast", "shift:edges", "shift:gaussian-noise", "shift:invert", "shift:rotate"]


def _digits():
    return registry.create("dataset:digits").load("test").get(range(64))[0]


def test_all_builtin_shifts_are_registered():
    assert set(SHIFTS) <= set(registry.list("shift:*"))


@pytest.mark.parametrize("key", SHIFTS)
def test_shift_contract(key):
    check_shift(registry.create(key), _digits())


@pytest.mark.parametrize("key", SHIFTS)
def test_severity_moves_images_further(key):
    x = _digits()
    distances = [float((registry.create(key, severity=s).apply(x, seed=0) - x).abs().mean()) for s in range(1, 6)]
    assert all(b > a for a, b in zip(distances, distances[1:])), distances


def test_noise_depends_on_seed_only():
    shift = registry.create("shift:gaussian-noise", severity=3)
    x = _digits()
    assert not torch.equal(shift.apply(x, seed=0), shift.apply(x, seed=1))
    assert torch.equal(shift.apply(x, seed=5), shift.apply(x, seed=5))


def test_invert_and_rotate_oracles():
    x = torch.zeros(2, 1, 8, 8)
    x[:, :, :, :4] = 1.0  # left half bright
    assert torch.equal(registry.create("shift:invert").apply(x, 0), 1 - x)
    assert registry.create("shift:invert").label == "invert@5"
    y = registry.create("shift:rotate", severity=5).apply(x, 0)  # 60 degrees: the bright half tilts
    assert y[:, :, :, :4].mean() < 0.95 and y[:, :, :, 4:].mean() > 0.05


def test_severity_out_of_range_is_rejected():
    from dreamset.contracts.errors import BadInputError

    with pytest.raises(BadInputError, match=r"shift:blur.severity: Input should be less than or equal to 5"):
        registry.create("shift:blur", severity=6)
