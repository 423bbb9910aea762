"""Object masks of images whose object stands out from a plain backdrop (glyphs, digits, objects
pasted on black): what the compositing mixers paste through and what ``attacker:masked-pgd``
restricts its perturbation to (Jin & Rinard, arXiv:2005.14707).

``object_masks(images float32 B×C×H×W in [0,1], threshold) -> float32 B×1×H×W in {0,1}``.
"""
from __future__ import annotations

import torch


def object_masks(images: torch.Tensor, threshold: float = 0.2) -> torch.Tensor:
    """``B×1×H×W`` masks of the pixels that differ from the image's border median by more than
    ``threshold`` (max over channels): white-on-black glyphs and objects on a plain backdrop."""
    border = torch.cat([images[..., 0, :], images[..., -1, :], images[..., :, 0], images[..., :, -1]], dim=-1)
    backdrop = border.median(dim=-1).values[..., None, None]
    return ((images - backdrop).abs().amax(dim=1, keepdim=True) > threshold).to(images.dtype)
