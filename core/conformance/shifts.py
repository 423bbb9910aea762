"""Conformance checks for ``shift:*`` components."""
from __future__ import annotations

import torch


def check_shift(shift, images: torch.Tensor | None = None) -> None:
    """Same shape/dtype, values in [0,1], deterministic given the seed, and not the identity."""
    if images is None:
        images = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for x in (images, images.expand(-1, 3, -1, -1).contiguous()):
        a = shift.apply(x.clone(), seed=1)
        b = shift.apply(x.clone(), seed=1)
        assert a.shape == x.shape and a.dtype == torch.float32
        assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0 and not torch.isnan(a).any()
        assert torch.equal(a, b), "not deterministic for a fixed seed"
        assert not torch.equal(a, x), "the shift changed nothing"
    assert isinstance(shift.label, str) and shift.label


def check_default(shift) -> None:
    check_shift(shift)
