"""Vectorised cut-and-paste compositing in torch (Dwibedi et al., 2017, "Cut, Paste and Learn";
Jin & Rinard, "Learning From Context-Agnostic Synthetic Data", arXiv:2005.14707).

A whole batch is composited at once: each object (``float32 B×C×H×W`` in [0,1]) and its mask
(``B×1×H×W`` in [0,1]) are warped by a per-sample affine map (scale, rotation, flip, translation) with
``affine_grid``/``grid_sample``, colour-jittered, and alpha-blended onto its background
(``B×C×H×W``): ``out = m·obj + (1 − m)·bg``. Everything random comes from the given generator.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Placement:
    """Ranges of the random placement of an object on its background."""

    scale: tuple[float, float] = (0.7, 1.0)
    rotation: float = 15.0  # degrees, uniform in [-rotation, rotation]
    translate: float = 0.15  # fraction of the image size, uniform in [-t, t]
    flip: float = 0.0  # probability of a horizontal flip (0 for digits/text)
    brightness: float = 0.2  # object intensity multiplied by U(1 - b, 1 + b)


def composite(objects: torch.Tensor, masks: torch.Tensor, backgrounds: torch.Tensor,
              generator: torch.Generator, placement: Placement = Placement()) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste ``objects`` (through ``masks``) onto ``backgrounds``; returns ``(images, placed_masks)``,
    ``float32 B×C×H×W`` in [0,1] and ``B×1×H×W``."""
    b = objects.shape[0]
    if b == 0:
        return backgrounds.clone(), masks.clone()
    if objects.shape[1] != backgrounds.shape[1]:
        objects = objects.expand(-1, backgrounds.shape[1], -1, -1) if objects.shape[1] == 1 else objects.mean(1, keepdim=True)

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(b, generator=generator)

    scale = uniform(*placement.scale)
    angle = uniform(-placement.rotation, placement.rotation) * math.pi / 180
    flip = torch.where(torch.rand(b, generator=generator) < placement.flip, -1.0, 1.0)
    tx, ty = uniform(-placement.translate, placement.translate) * 2, uniform(-placement.translate, placement.translate) * 2
    # output -> input sampling grid: inverse of "scale, rotate, flip, then translate"
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip, sin * flip
    theta[:, 1, 0], theta[:, 1, 1] = -sin, cos
    theta[:, 0, 2] = -(theta[:, 0, 0] * tx + theta[:, 0, 1] * ty)
    theta[:, 1, 2] = -(theta[:, 1, 0] * tx + theta[:, 1, 1] * ty)
    grid = F.affine_grid(theta, list(objects.shape), align_corners=False)
    warped = F.grid_sample(objects.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    warped_mask = F.grid_sample(masks.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    gain = uniform(1 - placement.brightness, 1 + placement.brightness).view(b, 1, 1, 1)
    warped = (warped * gain).clamp(0, 1)
    out = warped_mask * warped + (1 - warped_mask) * backgrounds.float()
    return out.clamp(0, 1), warped_mask
