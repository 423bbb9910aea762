"""Conformance checks for ``extractor:*`` components: ``embed`` maps ``float32 B×C×H×W`` images in
[0,1] (1 or 3 channels) to finite ``float32 B×D`` CPU features, row by row (a row's features do not
depend on the batch), and ``preprocessing`` is JSON."""
from __future__ import annotations

import json


def check_default(extractor) -> None:
    import pytest
    import torch

    from dreamset.contracts.errors import BadInputError

    try:
        extractor.prepare(None)
    except BadInputError as exc:
        pytest.skip(f"{extractor.key} needs a run or local weights to embed: {exc}")
    json.dumps(extractor.preprocessing)
    g = torch.Generator().manual_seed(0)
    for channels in (1, 3):
        x = torch.rand(3, channels, 16, 16, generator=g)
        f = extractor.embed(x)
        assert f.dtype == torch.float32 and f.ndim == 2 and f.shape[0] == 3 and f.device.type == "cpu"
        assert bool(torch.isfinite(f).all())
        assert torch.allclose(extractor.embed(x[1:2]), f[1:2], atol=1e-4, rtol=1e-4), "features depend on the batch"
